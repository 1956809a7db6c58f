//! The request's `response_format`: the raw wire shape ([`RawResponseFormat`]) and the validated
//! [`ResponseFormat`] the engine accepts.
//!
//! Wire shapes (OpenAI-compatible where OpenAI defines them; the others are our extensions,
//! built the same way: `type` plus an object named after the type):
//!
//! ```json
//! {"type": "text"}
//! {"type": "json_object"}
//! {"type": "json_schema", "json_schema": {"name": "person", "schema": {...}, "strict": true}}
//! {"type": "regex",       "regex":       {"pattern": "[0-9]{3}-[0-9]{4}"}}
//! {"type": "grammar",     "grammar":     {"lark": "start: \"yes\" | \"no\""}}
//! {"type": "xml",         "xml":         {"root": "answer", "schema": {...}}}
//! {"type": "template",    "template":    {"id": "csv-report"}}
//! ```
//!
//! Every `json_schema` is enforced strictly, whatever `strict` says: a schema keyword that
//! cannot be enforced is refused rather than ignored, because the platform promises the output
//! validates. `regex` patterns must match the whole output. `template` names a tenant output
//! template; the gateway resolves it to the template's JSON schema (with
//! [`ResponseFormat::json_schema`]) before the request reaches the engine.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ConstraintError;
use super::xml::{RawXmlElement, XmlFormat};

/// Longest regex pattern accepted, in bytes.
pub const MAX_REGEX_BYTES: usize = 16 * 1024;
/// Longest Lark grammar accepted, in bytes.
pub const MAX_GRAMMAR_BYTES: usize = 256 * 1024;
/// Largest JSON schema accepted, in bytes of its compact serialisation.
pub const MAX_SCHEMA_BYTES: usize = 1024 * 1024;
/// Longest `json_schema.name` (OpenAI's limit).
pub const MAX_SCHEMA_NAME_CHARS: usize = 64;
/// Longest template id.
pub const MAX_TEMPLATE_ID_CHARS: usize = 128;

/// `response_format` exactly as it arrives on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RawResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: RawJsonSchema },
    Regex { regex: RawRegex },
    Grammar { grammar: RawGrammar },
    Xml { xml: RawXml },
    Template { template: RawTemplate },
}

/// OpenAI's `json_schema` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJsonSchema {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegex {
    pub pattern: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrammar {
    pub lark: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawXml {
    pub root: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<RawXmlElement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTemplate {
    pub id: String,
}

/// A validated output format. Build it with [`ResponseFormat::parse`] (or `TryFrom`).
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Unconstrained text.
    Text,
    /// Any JSON object.
    JsonObject,
    JsonSchema(JsonSchemaFormat),
    Regex(RegexFormat),
    Grammar(GrammarFormat),
    Xml(XmlFormat),
    /// A tenant output template, still to be resolved by the gateway (see the module docs).
    Template(TemplateRef),
}

impl ResponseFormat {
    /// Parses the wire JSON of `response_format`.
    pub fn from_json(value: &Value) -> Result<Self, ConstraintError> {
        let raw: RawResponseFormat =
            serde_json::from_value(value.clone()).map_err(|e| ConstraintError::Malformed {
                message: e.to_string(),
            })?;
        Self::parse(raw)
    }

    /// Validates the wire shape. Cheap: schema, regex and grammar are compiled (and their
    /// deeper errors found) by [`super::ConstraintCompiler::compile`].
    pub fn parse(raw: RawResponseFormat) -> Result<Self, ConstraintError> {
        Ok(match raw {
            RawResponseFormat::Text => ResponseFormat::Text,
            RawResponseFormat::JsonObject => ResponseFormat::JsonObject,
            RawResponseFormat::JsonSchema { json_schema } => {
                let RawJsonSchema {
                    name,
                    description,
                    schema,
                    strict,
                } = json_schema;
                let mut format =
                    JsonSchemaFormat::new(name, schema.unwrap_or(Value::Bool(true)), strict)?;
                format.description = description;
                ResponseFormat::JsonSchema(format)
            }
            RawResponseFormat::Regex { regex } => ResponseFormat::Regex(RegexFormat::new(regex)?),
            RawResponseFormat::Grammar { grammar } => {
                ResponseFormat::Grammar(GrammarFormat::new(grammar)?)
            }
            RawResponseFormat::Xml { xml } => ResponseFormat::Xml(XmlFormat::new(xml)?),
            RawResponseFormat::Template { template } => {
                ResponseFormat::Template(TemplateRef::new(template.id)?)
            }
        })
    }

    /// A JSON-schema format from parts; the gateway uses it to resolve a template.
    pub fn json_schema(name: &str, schema: Value) -> Result<Self, ConstraintError> {
        Ok(ResponseFormat::JsonSchema(JsonSchemaFormat::new(
            name.to_owned(),
            schema,
            Some(true),
        )?))
    }

    /// Whether generation under this format is constrained at all.
    pub fn is_constrained(&self) -> bool {
        !matches!(self, ResponseFormat::Text)
    }

    /// The wire `type` string.
    pub fn kind(&self) -> &'static str {
        match self {
            ResponseFormat::Text => "text",
            ResponseFormat::JsonObject => "json_object",
            ResponseFormat::JsonSchema(_) => "json_schema",
            ResponseFormat::Regex(_) => "regex",
            ResponseFormat::Grammar(_) => "grammar",
            ResponseFormat::Xml(_) => "xml",
            ResponseFormat::Template(_) => "template",
        }
    }
}

impl TryFrom<RawResponseFormat> for ResponseFormat {
    type Error = ConstraintError;
    fn try_from(raw: RawResponseFormat) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

/// A named JSON schema. The schema is an object, or `true` (stored as `{}`).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonSchemaFormat {
    name: String,
    description: Option<String>,
    schema: Value,
    strict: bool,
}

impl JsonSchemaFormat {
    fn new(name: String, schema: Value, strict: Option<bool>) -> Result<Self, ConstraintError> {
        let name_ok = (1..=MAX_SCHEMA_NAME_CHARS).contains(&name.chars().count())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(ConstraintError::InvalidField {
                field: "response_format.json_schema.name",
                message: format!(
                    "must be 1 to {MAX_SCHEMA_NAME_CHARS} characters of a-z, A-Z, 0-9, _ or -"
                ),
            });
        }
        let schema = match schema {
            Value::Bool(true) => Value::Object(Default::default()),
            Value::Bool(false) => {
                return Err(ConstraintError::UnsatisfiableSchema {
                    message: "the schema `false` admits no value".into(),
                });
            }
            Value::Object(map) => Value::Object(map),
            other => {
                return Err(ConstraintError::InvalidJsonSchema {
                    message: format!(
                        "a schema must be an object or a boolean, got {}",
                        json_type_name(&other)
                    ),
                });
            }
        };
        let size = serde_json::to_string(&schema).map_or(usize::MAX, |s| s.len());
        if size > MAX_SCHEMA_BYTES {
            return Err(ConstraintError::InvalidField {
                field: "response_format.json_schema.schema",
                message: format!("is {size} bytes; at most {MAX_SCHEMA_BYTES} are allowed"),
            });
        }
        Ok(Self {
            name,
            description: None,
            schema,
            strict: strict.unwrap_or(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The schema object (a top-level `true` is stored as `{}`).
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// What the caller sent in `strict` (informational: every schema is enforced strictly).
    pub fn strict(&self) -> bool {
        self.strict
    }
}

/// A regular expression the whole output must match (Rust `regex` syntax).
#[derive(Debug, Clone, PartialEq)]
pub struct RegexFormat {
    pattern: String,
}

impl RegexFormat {
    fn new(raw: RawRegex) -> Result<Self, ConstraintError> {
        let field = "response_format.regex.pattern";
        check_text(field, &raw.pattern, MAX_REGEX_BYTES)?;
        Ok(Self {
            pattern: raw.pattern,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

/// A context-free grammar in llguidance's Lark dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct GrammarFormat {
    lark: String,
}

impl GrammarFormat {
    fn new(raw: RawGrammar) -> Result<Self, ConstraintError> {
        check_text("response_format.grammar.lark", &raw.lark, MAX_GRAMMAR_BYTES)?;
        Ok(Self { lark: raw.lark })
    }

    pub fn lark(&self) -> &str {
        &self.lark
    }
}

/// The id of a tenant output template (resolved by the gateway).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemplateRef {
    id: String,
}

impl TemplateRef {
    fn new(id: String) -> Result<Self, ConstraintError> {
        let ok = (1..=MAX_TEMPLATE_ID_CHARS).contains(&id.chars().count())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
        if !ok {
            return Err(ConstraintError::InvalidField {
                field: "response_format.template.id",
                message: format!(
                    "must be 1 to {MAX_TEMPLATE_ID_CHARS} characters of a-z, A-Z, 0-9, _, -, . or @ (`name@v<n>` pins a version)"
                ),
            });
        }
        Ok(Self { id })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), ConstraintError> {
    if text.trim().is_empty() {
        return Err(ConstraintError::InvalidField {
            field,
            message: "must not be empty".into(),
        });
    }
    if text.len() > max {
        return Err(ConstraintError::InvalidField {
            field,
            message: format!("is {} bytes; at most {max} are allowed", text.len()),
        });
    }
    Ok(())
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_wire_shape() {
        let cases = [
            (json!({"type": "text"}), "text"),
            (json!({"type": "json_object"}), "json_object"),
            (
                json!({"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}, "strict": true}}),
                "json_schema",
            ),
            (
                json!({"type": "regex", "regex": {"pattern": "a+"}}),
                "regex",
            ),
            (
                json!({"type": "grammar", "grammar": {"lark": "start: \"a\""}}),
                "grammar",
            ),
            (json!({"type": "xml", "xml": {"root": "answer"}}), "xml"),
            (
                json!({"type": "template", "template": {"id": "csv-1"}}),
                "template",
            ),
        ];
        for (value, kind) in cases {
            let f = ResponseFormat::from_json(&value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(f.kind(), kind);
        }
    }

    #[test]
    fn bad_shapes_are_typed_errors() {
        let cases = [
            (json!({"type": "yaml"}), "invalid_response_format"),
            (
                json!({"type": "regex", "regex": {"pattern": ""}}),
                "invalid_response_format",
            ),
            (
                json!({"type": "regex", "regex": {"patern": "a"}}),
                "invalid_response_format",
            ),
            (
                json!({"type": "json_schema", "json_schema": {"name": "bad name", "schema": {}}}),
                "invalid_response_format",
            ),
            (
                json!({"type": "json_schema", "json_schema": {"name": "x", "schema": 3}}),
                "invalid_json_schema",
            ),
            (
                json!({"type": "json_schema", "json_schema": {"name": "x", "schema": false}}),
                "unsatisfiable_schema",
            ),
            (
                json!({"type": "template", "template": {"id": "a/b"}}),
                "invalid_response_format",
            ),
            (
                json!({"type": "xml", "xml": {"root": "1abc"}}),
                "invalid_xml_schema",
            ),
        ];
        for (value, code) in cases {
            let err = ResponseFormat::from_json(&value).expect_err(&value.to_string());
            assert_eq!(err.code(), code, "{value}: {err}");
            assert!(err.is_caller_fault());
        }
    }

    #[test]
    fn schema_true_becomes_empty_object() {
        let f = ResponseFormat::json_schema("any", json!(true)).unwrap();
        let ResponseFormat::JsonSchema(s) = f else {
            panic!("not a schema")
        };
        assert_eq!(s.schema(), &json!({}));
    }
}
