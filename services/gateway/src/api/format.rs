//! OpenAPI description of `response_format` (the field is read as JSON and parsed by
//! `inference::format`, so a bad format is a typed error naming the field rather than a body
//! parse error; these types only document the accepted shapes).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The output format the answer must follow. Generation is constrained token by token, so a
/// completed answer always follows the format; an answer cut off by `max_tokens` carries
/// `format_incomplete: true` on its choice.
///
/// OpenAI's shapes: `{"type": "text"}`, `{"type": "json_object"}`,
/// `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`. Enclave's extensions:
/// `{"type": "regex", "regex": {"pattern"}}` (the whole output matches),
/// `{"type": "grammar", "grammar": {"lark"}}` (llguidance's Lark dialect),
/// `{"type": "xml", "xml": {"root", "schema"?}}` (well-formed XML under `root`),
/// `{"type": "template", "template": {"id"}}` or `{"type": "template", "template": "id"}` (a tenant
/// output template: schema-constrained JSON rendered by the template).
///
/// Every JSON schema is enforced strictly: a keyword that cannot be enforced is refused with
/// `unsupported_schema_keyword` (400) naming it, never ignored. In XML bodies, `schema` is given
/// as JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormatSpec {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaSpec },
    Regex { regex: RegexSpec },
    Grammar { grammar: GrammarSpec },
    Xml { xml: XmlSpec },
    Template { template: TemplateSpec },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JsonSchemaSpec {
    /// 1 to 64 characters of `a-z A-Z 0-9 _ -`.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// A JSON schema (draft 2020-12 keywords; `$ref` to local definitions). Default `{}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    /// Accepted for compatibility: every schema is enforced strictly.
    #[serde(default)]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegexSpec {
    /// Rust `regex` syntax; the whole output must match (up to 16 KiB).
    #[schema(example = "[0-9]{3}-[0-9]{4}")]
    pub pattern: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GrammarSpec {
    /// A context-free grammar in llguidance's Lark dialect (up to 256 KiB).
    #[schema(example = "start: \"yes\" | \"no\"")]
    pub lark: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct XmlSpec {
    /// The root element's name.
    #[schema(example = "answer")]
    pub root: String,
    /// Optional element schema: `{"children": [{"name", "content": "text"|"integer"|"number"|
    /// "boolean"|"elements", "children"?, "attributes"?, "min_occurs"?, "max_occurs"?}]}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
}

/// A tenant output template by name (`{"id": "name"}`, or the name as a string).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TemplateSpec {
    Name(String),
    Id { id: String },
}
