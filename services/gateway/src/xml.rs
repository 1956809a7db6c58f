//! The one JSON ⇄ XML mapping used by every endpoint.
//!
//! A document is the JSON value of the same DTO, written as elements:
//! - the root element is the DTO's schema name in snake_case (`ChatCompletionRequest` →
//!   `<chat_completion_request>`); on input any root name is accepted;
//! - an object member is a child element named after the member; a member whose name is not a
//!   valid XML name (e.g. a token id in `logit_bias`) is written `<entry key="50256">…</entry>`;
//! - an array is an element holding one `<item>` child per element;
//! - strings, numbers and booleans are the element's text (`true`/`false`);
//! - `null` and absent members are omitted; member order is not significant (members are
//!   written in alphabetical order);
//! - characters that XML 1.0 forbids (most C0 controls) are written as U+FFFD.
//!
//! Input is parsed type-directed against the DTO, so `<max_tokens>16</max_tokens>` becomes a
//! number where the DTO wants a number and `<stop>16</stop>` a string where it wants a string.
//! DTDs are refused (no entity expansion) and nesting is bounded.

use std::fmt::Write as _;

use quick_xml::events::Event;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde::{Deserializer, Serialize};
use serde_json::Value;

/// Deepest element nesting accepted on input; bounds the recursive deserializer.
const MAX_DEPTH: usize = 64;

/// Name of array elements.
const ITEM: &str = "item";
/// Name of object members whose key is not a valid XML name.
const ENTRY: &str = "entry";

/// Why a document could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML at byte {position}: {source}")]
    Syntax {
        position: u64,
        #[source]
        source: quick_xml::Error,
    },
    #[error("XML body is not UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    #[error("DTDs are not accepted")]
    DocType,
    #[error("XML body has no root element")]
    NoRoot,
    #[error("XML body has more than one root element, or text outside the root")]
    TrailingContent,
    #[error("XML nesting deeper than {MAX_DEPTH} elements")]
    TooDeep,
    #[error("{0}")]
    Invalid(String),
    #[error("value cannot be represented as JSON: {0}")]
    Serialize(#[source] serde_json::Error),
}

impl de::Error for XmlError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        XmlError::Invalid(msg.to_string())
    }
}

// ---------------------------------------------------------------- writing

/// Serializes `value` as an XML document with the given root element name.
pub fn to_xml<T: Serialize + ?Sized>(root: &str, value: &T) -> Result<String, XmlError> {
    let json = serde_json::to_value(value).map_err(XmlError::Serialize)?;
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    write_element(&mut out, root, None, &json);
    Ok(out)
}

/// `CamelCase` schema name → `snake_case` element name.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for ch in name.chars() {
        if ch.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
            prev_lower = false;
        } else {
            out.push(ch);
            prev_lower = ch.is_ascii_lowercase() || ch.is_ascii_digit();
        }
    }
    out
}

fn write_element(out: &mut String, name: &str, key: Option<&str>, value: &Value) {
    if value.is_null() {
        return;
    }
    out.push('<');
    out.push_str(name);
    if let Some(key) = key {
        out.push_str(" key=\"");
        push_escaped(out, key);
        out.push('"');
    }
    out.push('>');
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            // INVARIANT: writing to a String cannot fail.
            let _ = write!(out, "{n}");
        }
        Value::String(s) => push_escaped(out, s),
        Value::Array(items) => {
            for item in items {
                write_element(out, ITEM, None, item);
            }
        }
        Value::Object(members) => {
            for (member, v) in members {
                if is_xml_name(member) {
                    write_element(out, member, None, v);
                } else {
                    write_element(out, ENTRY, Some(member), v);
                }
            }
        }
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn push_escaped(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Keep CR and TAB through parsers' newline/whitespace normalisation.
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(ch),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// A conservative XML name check: ASCII letters/underscore first, then letters, digits, `_-.`,
/// and not the reserved `xml` prefix.
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.to_ascii_lowercase().starts_with("xml")
}

// ---------------------------------------------------------------- reading

/// A parsed element: the tree the type-directed deserializer walks.
#[derive(Debug, Default)]
struct Node {
    name: String,
    key: Option<String>,
    text: String,
    children: Vec<Node>,
}

/// Parses an XML document into `T` using the mapping described in the module docs.
/// Errors carry the path of the offending field (e.g. `messages[0].role`).
pub fn from_xml<T: DeserializeOwned>(body: &[u8]) -> Result<T, FieldError<XmlError>> {
    let root = parse_tree(body).map_err(|e| FieldError {
        path: None,
        error: e,
    })?;
    serde_path_to_error::deserialize(NodeDe { node: &root }).map_err(|e| {
        let path = e.path().to_string();
        FieldError {
            path: (path != ".").then_some(path),
            error: e.into_inner(),
        }
    })
}

/// A decoding error with the path of the field it is about, when known.
#[derive(Debug)]
pub struct FieldError<E> {
    pub path: Option<String>,
    pub error: E,
}

fn parse_tree(body: &[u8]) -> Result<Node, XmlError> {
    let text = std::str::from_utf8(body).map_err(XmlError::NotUtf8)?;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let event = reader.read_event().map_err(|source| XmlError::Syntax {
            position: reader.buffer_position(),
            source,
        })?;
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                if root.is_some() {
                    return Err(XmlError::TrailingContent);
                }
                stack.push(open_node(&start)?);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(XmlError::TrailingContent);
                }
                let node = open_node(&start)?;
                close_node(&mut stack, &mut root, node);
            }
            Event::End(_) => {
                // INVARIANT: check_end_names makes the reader refuse an End without a Start.
                let Some(node) = stack.pop() else {
                    return Err(XmlError::TrailingContent);
                };
                close_node(&mut stack, &mut root, node);
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content())?,
            Event::CData(t) => push_text(&mut stack, &t.into_inner())?,
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                        .ok_or_else(|| {
                            XmlError::Invalid(format!("unknown entity &{};", r.xml10_content()))
                        })?
                        .to_string(),
                    Err(source) => {
                        return Err(XmlError::Syntax {
                            position: reader.buffer_position(),
                            source,
                        });
                    }
                };
                push_text(&mut stack, &resolved)?;
            }
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Invalid("unclosed element at end of body".into()));
    }
    root.ok_or(XmlError::NoRoot)
}

fn open_node(start: &quick_xml::events::BytesStart<'_>) -> Result<Node, XmlError> {
    let name = start.local_name().as_ref().to_owned();
    let mut key = None;
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError::Syntax {
            position: 0,
            source: quick_xml::Error::from(e),
        })?;
        if attr.key.local_name().as_ref() == "key" {
            let value = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|source| XmlError::Syntax {
                    position: 0,
                    source,
                })?;
            key = Some(value.into_owned());
        }
    }
    Ok(Node {
        name,
        key,
        ..Node::default()
    })
}

fn close_node(stack: &mut [Node], root: &mut Option<Node>, node: Node) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => *root = Some(node),
    }
}

fn push_text(stack: &mut [Node], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(node) => {
            node.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(XmlError::TrailingContent),
    }
}

impl Node {
    fn member_name(&self) -> &str {
        match (&self.key, self.name.as_str()) {
            (Some(key), ENTRY) => key,
            _ => &self.name,
        }
    }

    fn looks_like_array(&self) -> bool {
        !self.children.is_empty()
            && self
                .children
                .iter()
                .all(|c| c.name == ITEM && c.key.is_none())
    }

    fn scalar(&self) -> Result<&str, XmlError> {
        if self.children.is_empty() {
            Ok(self.text.trim())
        } else {
            Err(XmlError::Invalid(format!(
                "<{}> must hold text, not child elements",
                self.name
            )))
        }
    }

    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, XmlError> {
        let text = self.scalar()?;
        text.parse().map_err(|_| {
            XmlError::Invalid(format!("<{}>: expected {what}, found {text:?}", self.name))
        })
    }
}

struct NodeDe<'a> {
    node: &'a Node,
}

macro_rules! parse_number {
    ($($method:ident => $ty:ty, $visit:ident, $what:literal;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
                visitor.$visit(self.node.parse::<$ty>($what)?)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = XmlError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        if self.node.looks_like_array() {
            self.deserialize_seq(visitor)
        } else if !self.node.children.is_empty() {
            self.deserialize_map(visitor)
        } else {
            visitor.visit_string(self.node.text.clone())
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        match self.node.scalar()? {
            "true" | "1" => visitor.visit_bool(true),
            "false" | "0" => visitor.visit_bool(false),
            other => Err(XmlError::Invalid(format!(
                "<{}>: expected true or false, found {other:?}",
                self.node.name
            ))),
        }
    }

    parse_number! {
        deserialize_i8 => i8, visit_i8, "an integer";
        deserialize_i16 => i16, visit_i16, "an integer";
        deserialize_i32 => i32, visit_i32, "an integer";
        deserialize_i64 => i64, visit_i64, "an integer";
        deserialize_u8 => u8, visit_u8, "a non-negative integer";
        deserialize_u16 => u16, visit_u16, "a non-negative integer";
        deserialize_u32 => u32, visit_u32, "a non-negative integer";
        deserialize_u64 => u64, visit_u64, "a non-negative integer";
        deserialize_f32 => f32, visit_f32, "a number";
        deserialize_f64 => f64, visit_f64, "a number";
        deserialize_char => char, visit_char, "a single character";
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        if !self.node.children.is_empty() {
            return Err(XmlError::Invalid(format!(
                "<{}> must hold text, not child elements",
                self.node.name
            )));
        }
        visitor.visit_string(self.node.text.clone())
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        visitor.visit_bytes(self.node.text.as_bytes())
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, XmlError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, XmlError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        if self.node.children.is_empty() && !self.node.text.trim().is_empty() {
            return Err(XmlError::Invalid(format!(
                "<{}>: expected a list of <item> elements",
                self.node.name
            )));
        }
        visitor.visit_seq(Children {
            iter: self.node.children.iter(),
            pending: None,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, XmlError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, XmlError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        if self.node.children.is_empty() && !self.node.text.trim().is_empty() {
            return Err(XmlError::Invalid(format!(
                "<{}>: expected child elements, found text",
                self.node.name
            )));
        }
        visitor.visit_map(Children {
            iter: self.node.children.iter(),
            pending: None,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, XmlError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, XmlError> {
        match self.node.children.as_slice() {
            [] => visitor.visit_enum(self.node.text.trim().to_owned().into_deserializer()),
            [only] => visitor.visit_enum(VariantAccess { node: only }),
            _ => Err(XmlError::Invalid(format!(
                "<{}>: expected one variant element",
                self.node.name
            ))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        visitor.visit_unit()
    }
}

/// Children of an element, read as a sequence (values) or a map (name → value).
struct Children<'a> {
    iter: std::slice::Iter<'a, Node>,
    pending: Option<&'a Node>,
}

impl<'de> de::SeqAccess<'de> for Children<'_> {
    type Error = XmlError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, XmlError> {
        match self.iter.next() {
            Some(node) => seed.deserialize(NodeDe { node }).map(Some),
            None => Ok(None),
        }
    }
}

impl<'de> de::MapAccess<'de> for Children<'_> {
    type Error = XmlError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, XmlError> {
        match self.iter.next() {
            Some(node) => {
                self.pending = Some(node);
                seed.deserialize(KeyDe(node.member_name().to_owned()))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, XmlError> {
        let node = self
            .pending
            .take()
            .ok_or_else(|| XmlError::Invalid("value requested before key".into()))?;
        seed.deserialize(NodeDe { node })
    }
}

/// A member name; parses as a number when the map's key type is numeric (`logit_bias`).
struct KeyDe(String);

impl<'de> Deserializer<'de> for KeyDe {
    type Error = XmlError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        visitor.visit_string(self.0)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        let n = self
            .0
            .parse()
            .map_err(|_| XmlError::Invalid(format!("key {:?} is not an integer", self.0)))?;
        visitor.visit_u32(n)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        let n = self
            .0
            .parse()
            .map_err(|_| XmlError::Invalid(format!("key {:?} is not an integer", self.0)))?;
        visitor.visit_u64(n)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, XmlError> {
        let n = self
            .0
            .parse()
            .map_err(|_| XmlError::Invalid(format!("key {:?} is not an integer", self.0)))?;
        visitor.visit_i64(n)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 u8 u16 f32 f64 char str string bytes byte_buf option unit unit_struct
        newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any i128 u128
    }
}

struct VariantAccess<'a> {
    node: &'a Node,
}

impl<'de> de::EnumAccess<'de> for VariantAccess<'_> {
    type Error = XmlError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), XmlError> {
        let name = seed.deserialize(KeyDe(self.node.name.clone()))?;
        Ok((name, self))
    }
}

impl<'de> de::VariantAccess<'de> for VariantAccess<'_> {
    type Error = XmlError;

    fn unit_variant(self) -> Result<(), XmlError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, XmlError> {
        seed.deserialize(NodeDe { node: self.node })
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, XmlError> {
        NodeDe { node: self.node }.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, XmlError> {
        NodeDe { node: self.node }.deserialize_map(visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Message {
        role: String,
        content: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Stop {
        One(String),
        Many(Vec<String>),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Plain,
        Fancy,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Request {
        model: String,
        messages: Vec<Message>,
        max_tokens: Option<u32>,
        temperature: Option<f32>,
        stream: bool,
        stop: Option<Stop>,
        logit_bias: Option<BTreeMap<u32, f32>>,
        kind: Kind,
        #[serde(default)]
        tags: Vec<String>,
    }

    fn sample() -> Request {
        Request {
            model: "m <&> \"x\"".into(),
            messages: vec![
                Message {
                    role: "system".into(),
                    content: "line1\nline2\t\r end".into(),
                },
                Message {
                    role: "user".into(),
                    content: "  padded  ".into(),
                },
            ],
            max_tokens: Some(16),
            temperature: Some(0.5),
            stream: false,
            stop: Some(Stop::Many(vec!["a".into(), "b".into()])),
            logit_bias: Some(BTreeMap::from([(50256, -100.0)])),
            kind: Kind::Fancy,
            tags: vec![],
        }
    }

    #[test]
    fn round_trips_through_the_mapping() {
        let xml = to_xml("request", &sample()).expect("serialize");
        let back: Request = from_xml(xml.as_bytes()).expect("parse");
        assert_eq!(back, sample(), "document was {xml}");
    }

    #[test]
    fn writes_documented_shapes() {
        let xml = to_xml("request", &sample()).expect("serialize");
        assert!(
            xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><request><"#),
            "{xml}"
        );
        assert!(xml.contains("<model>m "), "{xml}");
        // Member order is not significant (README), and serde_json's key order depends on
        // workspace feature unification, so check each member of the first item on its own.
        let first_item = xml
            .split("<messages><item>")
            .nth(1)
            .and_then(|rest| rest.split("</item>").next())
            .expect("messages are items");
        assert!(first_item.contains("<role>system</role>"), "{xml}");
        assert!(
            first_item.contains("<content>line1\nline2\t&#13; end</content>"),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<logit_bias><entry key="50256">-100.0</entry></logit_bias>"#),
            "{xml}"
        );
        assert!(xml.contains("&lt;&amp;&gt;"), "{xml}");
        assert!(
            !xml.contains("<tags>") || xml.contains("<tags></tags>"),
            "{xml}"
        );
    }

    #[test]
    fn single_string_stop_and_absent_options() {
        let body = b"<r><model>m</model><messages/><stream>true</stream><stop>END</stop><kind>plain</kind></r>";
        let req: Request = from_xml(body).expect("parse");
        assert_eq!(req.stop, Some(Stop::One("END".into())));
        assert_eq!(req.max_tokens, None);
        assert!(req.messages.is_empty());
        assert_eq!(req.kind, Kind::Plain);
    }

    #[test]
    fn forbidden_characters_become_replacement_char() {
        let xml = to_xml(
            "m",
            &Message {
                role: "a\u{1}b".into(),
                content: String::new(),
            },
        )
        .expect("serialize");
        assert!(xml.contains("a\u{FFFD}b"), "{xml}");
    }

    #[test]
    fn bad_documents_are_typed_errors_with_paths() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "no root"),
            (b"<r><model>m</model>", "unclosed"),
            (b"<r></x>", "malformed"),
            (b"<!DOCTYPE r [<!ENTITY e \"x\">]><r/>", "DTD"),
            (b"<r/><r/>", "more than one root"),
            (b"<r><model>m</model><messages/><stream>maybe</stream><kind>plain</kind></r>", "true or false"),
            (b"<r><model>m</model><messages/><stream>true</stream><max_tokens>-1</max_tokens><kind>plain</kind></r>", "non-negative"),
            (b"<r><model>m</model><messages><item><role>x</role></item></messages><stream>true</stream><kind>plain</kind></r>", "content"),
            (b"<r>&bogus;</r>", "entity"),
            (b"\xff\xfe", "UTF-8"),
        ];
        for (body, expected) in cases {
            let err = from_xml::<Request>(body).expect_err("must fail");
            let text = format!("{} {:?}", err.error, err.path);
            assert!(
                text.contains(expected),
                "body {:?}: got {text}",
                String::from_utf8_lossy(body)
            );
        }
        let err = from_xml::<Request>(b"<r><model>m</model><messages/><stream>true</stream><max_tokens>x</max_tokens><kind>plain</kind></r>")
            .expect_err("must fail");
        assert_eq!(err.path.as_deref(), Some("max_tokens"));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let body = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
        let err = from_xml::<serde_json::Value>(body.as_bytes()).expect_err("must fail");
        assert!(matches!(err.error, XmlError::TooDeep));
    }

    #[test]
    fn snake_case_names() {
        assert_eq!(
            snake_case("ChatCompletionRequest"),
            "chat_completion_request"
        );
        assert_eq!(snake_case("ApiKey"), "api_key");
        assert_eq!(snake_case("ErrorResponse"), "error_response");
    }
}
