//! The `xml` response format: a root element name plus an optional element schema, compiled to a
//! Lark grammar that can only produce well-formed XML with that root.
//!
//! Element schema (JSON; every field optional):
//!
//! ```json
//! {"attributes": [{"name": "id", "required": true}],
//!  "content": "elements",
//!  "children": [
//!    {"name": "title", "content": "text"},
//!    {"name": "score", "content": "number", "min_occurs": 0},
//!    {"name": "tag", "content": "text", "min_occurs": 0, "max_occurs": "unbounded"}]}
//! ```
//!
//! `content` is one of `text` (escaped character data), `integer`, `number`, `boolean`, `empty`
//! (a self-closing element) or `elements` (the listed `children`, in order). It defaults to
//! `elements` when `children` is given and to `text` otherwise, so `{"root": "answer"}` alone
//! means `<answer>some text</answer>`. Children occur `min_occurs` (default 1) to `max_occurs`
//! (default 1; a number or `"unbounded"`) times; whitespace may separate children. Attributes
//! are string-valued and written in the listed order. Names are ASCII XML names without a
//! namespace prefix; names starting with `xml` are reserved by XML and refused.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::error::ConstraintError;
use super::format::RawXml;

/// Deepest element nesting accepted in a schema.
pub const MAX_XML_DEPTH: usize = 16;
/// Most elements (all levels together) accepted in a schema.
pub const MAX_XML_ELEMENTS: usize = 256;
/// Largest finite `max_occurs`.
pub const MAX_XML_OCCURS: u32 = 1000;
const MAX_NAME_BYTES: usize = 64;
const MAX_ATTRIBUTES: usize = 32;

/// An element description as sent by the caller (see the module docs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawXmlElement {
    /// Child element name; must be absent on the root description (the root is `xml.root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<XmlContentKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<RawXmlAttribute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<RawXmlElement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_occurs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_occurs: Option<RawMaxOccurs>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawXmlAttribute {
    pub name: String,
    #[serde(default)]
    pub required: bool,
}

/// `max_occurs`: a count or the string `"unbounded"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawMaxOccurs {
    Count(u32),
    Word(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XmlContentKind {
    Text,
    Integer,
    Number,
    Boolean,
    Empty,
    Elements,
}

/// A validated `xml` format.
#[derive(Debug, Clone, PartialEq)]
pub struct XmlFormat {
    root: String,
    body: Body,
}

#[derive(Debug, Clone, PartialEq)]
struct Body {
    attributes: Vec<(String, bool)>,
    content: Content,
}

#[derive(Debug, Clone, PartialEq)]
enum Content {
    Leaf(XmlContentKind),
    Elements(Vec<Child>),
}

#[derive(Debug, Clone, PartialEq)]
struct Child {
    name: String,
    min: u32,
    /// `None`: unbounded.
    max: Option<u32>,
    body: Body,
}

impl XmlFormat {
    pub(crate) fn new(raw: RawXml) -> Result<Self, ConstraintError> {
        let root = check_name(&raw.root)?;
        let element = raw.schema.unwrap_or_default();
        if element.name.is_some() || element.min_occurs.is_some() || element.max_occurs.is_some() {
            return Err(invalid(
                "the root description takes no name, min_occurs or max_occurs (the root is `root`, \
                 exactly once)",
            ));
        }
        let mut count = 0;
        let body = parse_body(element, 1, &mut count)?;
        Ok(Self { root, body })
    }

    /// The required root element name.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The Lark grammar (llguidance dialect) that produces exactly the allowed documents.
    pub fn to_lark(&self) -> String {
        let mut out = String::new();
        let mut next = 0usize;
        let root = emit_element(&mut out, &mut next, &self.root, &self.body);
        // Rule names are generated, never taken from caller text; names inside literals are
        // validated ASCII XML names, so nothing the caller sends needs escaping.
        let _ = writeln!(out, "start: {root}");
        let _ = writeln!(out, "SEP: /[ \\t\\r\\n]{{1,32}}/");
        let _ = writeln!(
            out,
            "TEXT: /(?:[^<>&\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F]|&(?:amp|lt|gt|quot|apos);)+/"
        );
        let _ = writeln!(
            out,
            "ATTRVAL: /\"(?:[^<>&\"\\x00-\\x1F]|&(?:amp|lt|gt|quot|apos);)*\"/"
        );
        let _ = writeln!(out, "INT: /-?(?:0|[1-9][0-9]{{0,17}})/");
        let _ = writeln!(
            out,
            "NUM: /-?(?:0|[1-9][0-9]{{0,17}})(?:\\.[0-9]{{1,17}})?(?:[eE][+-]?[0-9]{{1,3}})?/"
        );
        out
    }
}

fn parse_body(
    raw: RawXmlElement,
    depth: usize,
    count: &mut usize,
) -> Result<Body, ConstraintError> {
    if depth > MAX_XML_DEPTH {
        return Err(invalid(format!(
            "elements nest deeper than {MAX_XML_DEPTH} levels"
        )));
    }
    if raw.attributes.len() > MAX_ATTRIBUTES {
        return Err(invalid(format!(
            "an element has {} attributes; at most {MAX_ATTRIBUTES} are allowed",
            raw.attributes.len()
        )));
    }
    let mut attributes = Vec::with_capacity(raw.attributes.len());
    for a in raw.attributes {
        let name = check_name(&a.name)?;
        if attributes.iter().any(|(n, _)| *n == name) {
            return Err(invalid(format!("attribute `{name}` is listed twice")));
        }
        attributes.push((name, a.required));
    }
    let kind = raw.content.unwrap_or(if raw.children.is_empty() {
        XmlContentKind::Text
    } else {
        XmlContentKind::Elements
    });
    let content = match kind {
        XmlContentKind::Elements => {
            let children = raw
                .children
                .into_iter()
                .map(|c| parse_child(c, depth + 1, count))
                .collect::<Result<_, _>>()?;
            Content::Elements(children)
        }
        leaf if raw.children.is_empty() => Content::Leaf(leaf),
        _ => {
            return Err(invalid(
                "`children` are only allowed with content `elements`",
            ));
        }
    };
    Ok(Body {
        attributes,
        content,
    })
}

fn parse_child(
    raw: RawXmlElement,
    depth: usize,
    count: &mut usize,
) -> Result<Child, ConstraintError> {
    *count += 1;
    if *count > MAX_XML_ELEMENTS {
        return Err(invalid(format!(
            "the schema describes more than {MAX_XML_ELEMENTS} elements"
        )));
    }
    let name = match &raw.name {
        Some(n) => check_name(n)?,
        None => return Err(invalid("every child element needs a `name`")),
    };
    let min = raw.min_occurs.unwrap_or(1);
    let max = match &raw.max_occurs {
        None => Some(1),
        Some(RawMaxOccurs::Count(n)) => Some(*n),
        Some(RawMaxOccurs::Word(w)) if w == "unbounded" => None,
        Some(RawMaxOccurs::Word(w)) => {
            return Err(invalid(format!(
                "max_occurs of `{name}` must be a number or \"unbounded\", got \"{w}\""
            )));
        }
    };
    if let Some(max) = max {
        if max > MAX_XML_OCCURS || min > max {
            return Err(invalid(format!(
                "`{name}` must have min_occurs <= max_occurs <= {MAX_XML_OCCURS}, got {min}..{max}"
            )));
        }
    } else if min > MAX_XML_OCCURS {
        return Err(invalid(format!(
            "min_occurs of `{name}` is {min}; at most {MAX_XML_OCCURS} is allowed"
        )));
    }
    let body = parse_body(
        RawXmlElement {
            name: None,
            min_occurs: None,
            max_occurs: None,
            ..raw
        },
        depth,
        count,
    )?;
    Ok(Child {
        name,
        min,
        max,
        body,
    })
}

/// Writes the rules of one element and returns its rule name.
fn emit_element(out: &mut String, next: &mut usize, name: &str, body: &Body) -> String {
    let id = *next;
    *next += 1;
    let rule = format!("e{id}");
    let mut open = format!("\"<{name}\"");
    for (attr, required) in &body.attributes {
        let part = format!("\" {attr}=\" ATTRVAL");
        if *required {
            let _ = write!(open, " {part}");
        } else {
            let _ = write!(open, " ({part})?");
        }
    }
    let close = format!("\"</{name}>\"");
    let line = match &body.content {
        Content::Leaf(XmlContentKind::Empty) => format!("{rule}: {open} \"/>\""),
        Content::Leaf(XmlContentKind::Text) => format!("{rule}: {open} \">\" TEXT? {close}"),
        Content::Leaf(XmlContentKind::Integer) => format!("{rule}: {open} \">\" INT {close}"),
        Content::Leaf(XmlContentKind::Number) => format!("{rule}: {open} \">\" NUM {close}"),
        Content::Leaf(XmlContentKind::Boolean) => {
            format!("{rule}: {open} \">\" (\"true\" | \"false\") {close}")
        }
        // INVARIANT-free fallback: `Elements` never appears as a leaf (parse_body maps it).
        Content::Leaf(XmlContentKind::Elements) => format!("{rule}: {open} \">\" {close}"),
        Content::Elements(children) => {
            let mut seq = String::from("SEP?");
            for child in children {
                if child.max == Some(0) {
                    continue;
                }
                let child_rule = emit_element(out, next, &child.name, &child.body);
                let range = match child.max {
                    Some(max) => format!("{{{},{}}}", child.min, max),
                    None => format!("{{{},}}", child.min),
                };
                let _ = write!(seq, " ({child_rule} SEP?){range}");
            }
            format!("{rule}: {open} \">\" {seq} {close}")
        }
    };
    let _ = writeln!(out, "{line}");
    rule
}

fn check_name(name: &str) -> Result<String, ConstraintError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !first_ok || !rest_ok || name.len() > MAX_NAME_BYTES {
        return Err(invalid(format!(
            "`{name}` is not an element/attribute name: use 1 to {MAX_NAME_BYTES} ASCII letters, \
             digits, _, - or ., starting with a letter or _"
        )));
    }
    if name.to_ascii_lowercase().starts_with("xml") {
        return Err(invalid(format!(
            "`{name}`: names starting with `xml` are reserved"
        )));
    }
    Ok(name.to_owned())
}

fn invalid(message: impl Into<String>) -> ConstraintError {
    ConstraintError::InvalidXmlSchema {
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<XmlFormat, ConstraintError> {
        let raw: RawXml = serde_json::from_value(v).expect("raw xml shape");
        XmlFormat::new(raw)
    }

    #[test]
    fn plain_root_is_text_content() {
        let f = parse(json!({"root": "answer"})).unwrap();
        let lark = f.to_lark();
        assert!(
            lark.contains("e0: \"<answer\" \">\" TEXT? \"</answer>\""),
            "{lark}"
        );
    }

    #[test]
    fn children_get_ranges_and_attributes() {
        let f = parse(json!({"root": "r", "schema": {
            "attributes": [{"name": "id", "required": true}, {"name": "lang"}],
            "children": [
                {"name": "a", "content": "integer"},
                {"name": "b", "min_occurs": 0, "max_occurs": "unbounded"}]}}))
        .unwrap();
        let lark = f.to_lark();
        assert!(
            lark.contains("\" id=\" ATTRVAL (\" lang=\" ATTRVAL)?"),
            "{lark}"
        );
        assert!(
            lark.contains("(e1 SEP?){1,1}") && lark.contains("(e2 SEP?){0,}"),
            "{lark}"
        );
    }

    #[test]
    fn bad_schemas_are_refused() {
        let cases = [
            json!({"root": "xmlroot"}),
            json!({"root": "a b"}),
            json!({"root": "r", "schema": {"name": "r"}}),
            json!({"root": "r", "schema": {"children": [{"content": "text"}]}}),
            json!({"root": "r", "schema": {"children": [{"name": "c", "min_occurs": 3, "max_occurs": 2}]}}),
            json!({"root": "r", "schema": {"children": [{"name": "c", "max_occurs": "many"}]}}),
            json!({"root": "r", "schema": {"content": "text", "children": [{"name": "c"}]}}),
            json!({"root": "r", "schema": {"attributes": [{"name": "a"}, {"name": "a"}]}}),
        ];
        for case in cases {
            let err = parse(case.clone()).expect_err(&case.to_string());
            assert_eq!(err.code(), "invalid_xml_schema", "{case}");
        }
    }

    #[test]
    fn depth_is_bounded() {
        let mut element = json!({"name": "leaf"});
        for _ in 0..MAX_XML_DEPTH + 1 {
            element = json!({"name": "n", "children": [element]});
        }
        let err = parse(json!({"root": "r", "schema": {"children": [element]}})).unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
    }
}
