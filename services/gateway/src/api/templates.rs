//! Bodies of the output template routes: a tenant's named minijinja templates with the JSON
//! schema of the data they render, their versions, dry-run renders, and the default
//! `response_format` of an API key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// A new version of an output template (the first one creates the template). The schema is
/// compiled for constrained decoding and the template parsed before anything is stored; a fault
/// in either answers 4xx with a `code` and stores nothing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplateRequest {
    /// 1 to 64 characters of `a-z`, `0-9`, `_` and `-`, starting with a letter or digit.
    #[schema(example = "people-csv")]
    pub name: String,
    /// The JSON schema the model's answer is generated under (in XML: the schema as JSON text).
    #[schema(value_type = Object)]
    pub schema: Value,
    /// minijinja source rendering that JSON (available as `data`, and its top-level members by
    /// name). No includes, no file access; execution is bounded.
    #[schema(example = "name,age\n{% for p in rows %}{{ p.name }},{{ p.age }}\n{% endfor %}")]
    pub template: String,
    /// Free text kept with the version (at most 1000 characters).
    #[serde(default)]
    pub comment: Option<String>,
}

/// One version of an output template.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputTemplate {
    pub tenant_id: Uuid,
    pub name: String,
    /// 1, 2, ... per name in creation order; versions never change.
    pub version: u32,
    /// `name@v<version>`: the id that pins this version in `response_format`.
    pub id: String,
    /// Whether a `response_format` naming the template without a version gets this one.
    pub active: bool,
    #[schema(value_type = Object)]
    pub schema: Value,
    pub template: String,
    pub comment: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// The tenant's templates: every version, by name, newest version first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputTemplateList {
    pub data: Vec<OutputTemplate>,
}

/// Renders a stored template over caller-given data, without generating anything.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    /// The data, shaped like the template's schema.
    #[schema(value_type = Object)]
    pub data: Value,
    /// The version to render (default: the active one).
    #[serde(default)]
    pub version: Option<u32>,
}

/// What a render produced.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RenderResult {
    /// `name@v<version>` of the template rendered.
    pub id: String,
    pub text: String,
}

/// The `response_format` applied to an API key's requests that name none (`null`: free text).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyResponseFormat {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<Value>,
}

/// The default `response_format` to set (`null` clears it), checked like a request's.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultResponseFormat {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<Value>,
}

/// Which stored version of a template becomes the active one again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// An existing version number of the template (see `GET /v1/templates`).
    pub version: u32,
}
