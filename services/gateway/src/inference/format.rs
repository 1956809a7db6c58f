//! `response_format` on the inference routes: parse the caller's format, resolve it (tenant
//! templates), check it against the model before anything is generated, and shape the answer
//! (rendered template text, the `format_incomplete` flag).
//!
//! Every fault of a format is a typed 4xx found before generation: a malformed format
//! (`invalid_response_format`), a bad schema (`invalid_json_schema`), a schema keyword that
//! cannot be enforced (`unsupported_schema_keyword`, naming the keywords), a bad regex
//! (`invalid_regex`) or grammar (`invalid_grammar`), an unknown template (`template_not_found`).

use enclave_model_core::constraints::{ConstraintError, ResponseFormat};
use enclave_model_core::engine::{Engine, FinishReason, RequestOptions};
use serde_json::Value;

use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::inference::convert::ResponsePlan;
use crate::inference::respond::Completed;
use crate::state::AppState;

/// A format the caller asked for, parsed but not yet checked against the model.
#[derive(Debug, Clone, Default)]
pub struct RequestedFormat {
    format: Option<ResponseFormat>,
}

impl RequestedFormat {
    /// Parses the request's `response_format` member (absent or `null`: free text).
    pub fn parse(raw: Option<Value>) -> Result<Self, ApiError> {
        let Some(raw) = raw.filter(|v| !v.is_null()) else {
            return Ok(Self::default());
        };
        let format = ResponseFormat::from_json(&normalize(raw)).map_err(constraint_error)?;
        Ok(Self {
            format: Some(format),
        })
    }

    /// Whether the caller sent a format (`text` included).
    pub fn is_given(&self) -> bool {
        self.format.is_some()
    }

    pub fn format(&self) -> Option<&ResponseFormat> {
        self.format.as_ref()
    }
}

/// A format ready for the engine, and what the answer needs to know about it.
#[derive(Debug, Clone, Default)]
pub struct ResolvedFormat {
    /// What the engine enforces (`None`: free text).
    engine_format: Option<ResponseFormat>,
    /// Whether the request was constrained at all (drives the `format_incomplete` flag).
    constrained: bool,
}

impl ResolvedFormat {
    /// Resolves what the caller asked for into what the engine enforces. An unknown template
    /// is a 4xx here, before generation.
    pub async fn resolve(
        _state: &AppState,
        _ctx: &TenantContext,
        plan: &ResponsePlan,
    ) -> Result<Self, ApiError> {
        match plan.format.format() {
            Some(ResponseFormat::Template(t)) => Err(template_not_found(t.id())),
            Some(f) => Ok(Self::from_format(f.clone())),
            None => Ok(Self::default()),
        }
    }

    /// The answer as the caller gets it (a template's rendered text in place of the JSON).
    pub fn finish(&self, done: Completed) -> Result<Completed, ApiError> {
        Ok(done)
    }

    fn from_format(format: ResponseFormat) -> Self {
        let constrained = format.is_constrained();
        Self {
            engine_format: constrained.then_some(format),
            constrained,
        }
    }

    /// The engine options for this format.
    pub fn options(&self) -> RequestOptions {
        RequestOptions {
            response_format: self.engine_format.clone(),
            ..RequestOptions::default()
        }
    }

    pub fn is_constrained(&self) -> bool {
        self.constrained
    }

    /// Checks the format against the model (compiles it, cached) without generating: a bad
    /// schema, regex or grammar answers 4xx here.
    pub fn check(&self, engine: &Engine) -> Result<(), ApiError> {
        match &self.engine_format {
            Some(f) => engine.check_format(f).map_err(constraint_error),
            None => Ok(()),
        }
    }
}

/// The `format_incomplete` flag of a choice: `Some(true)` when a constrained output was cut off
/// mid-structure (`finish_reason: "length"`), absent otherwise.
pub fn incomplete_flag(finish: &FinishReason) -> Option<bool> {
    finish.output_incomplete().then_some(true)
}

/// A format fault → API error: caller faults are 400 with the code and field; the rest (the
/// model's vocabulary cannot be constrained, an engine fault) are opaque 500s.
pub fn constraint_error(e: ConstraintError) -> ApiError {
    if e.is_caller_fault() {
        ApiError::invalid(e.code(), e.to_string(), Some(e.field().to_owned()))
    } else {
        ApiError::internal(e)
    }
}

pub fn template_not_found(id: &str) -> ApiError {
    ApiError::invalid(
        "template_not_found",
        format!("response_format.template: no output template named {id:?} exists in this tenant"),
        Some("response_format.template".to_owned()),
    )
}

/// Accepts the shapes the XML mapping produces, and the template shorthand:
/// - `json_schema.schema` and `xml.schema` given as JSON text (in XML every leaf is text, so a
///   schema travels as a JSON string);
/// - `json_schema.strict` as the text `true`/`false`;
/// - `{"type": "template", "template": "name"}` for `{"template": {"id": "name"}}`.
fn normalize(mut raw: Value) -> Value {
    let Some(obj) = raw.as_object_mut() else {
        return raw;
    };
    if let Some(t) = obj.get_mut("template")
        && let Value::String(id) = t
    {
        *t = serde_json::json!({ "id": id });
    }
    for (outer, inner) in [("json_schema", "schema"), ("xml", "schema")] {
        if let Some(Value::Object(o)) = obj.get_mut(outer)
            && let Some(v) = o.get_mut(inner)
            && let Value::String(text) = v
            && let Ok(parsed) = serde_json::from_str::<Value>(text)
        {
            *v = parsed;
        }
    }
    if let Some(Value::Object(o)) = obj.get_mut("json_schema")
        && let Some(v) = o.get_mut("strict")
        && let Value::String(text) = v
        && let Ok(b) = text.trim().parse::<bool>()
    {
        *v = Value::Bool(b);
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn xml_shaped_formats_are_normalized() {
        let raw = json!({"type": "json_schema", "json_schema": {"name": "p", "strict": "true",
            "schema": "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}}"}});
        let f = RequestedFormat::parse(Some(raw)).expect("valid");
        let Some(ResponseFormat::JsonSchema(s)) = f.format() else {
            panic!("json_schema")
        };
        assert!(s.strict());
        assert_eq!(s.schema()["properties"]["a"]["type"], "integer");
        let t = RequestedFormat::parse(Some(json!({"type": "template", "template": "csv-1"})))
            .expect("valid");
        assert!(matches!(t.format(), Some(ResponseFormat::Template(r)) if r.id() == "csv-1"));
    }

    #[test]
    fn malformed_formats_are_typed_400s() {
        for (raw, code) in [
            (json!({"type": "yaml"}), "invalid_response_format"),
            (json!({"type": "regex"}), "invalid_response_format"),
            (
                json!({"type": "json_schema", "json_schema": {"name": "x", "schema": 3}}),
                "invalid_json_schema",
            ),
        ] {
            let err = RequestedFormat::parse(Some(raw.clone())).expect_err("refused");
            assert_eq!(err.code(), code, "{raw}");
            assert!(
                err.field()
                    .is_some_and(|f| f.starts_with("response_format")),
                "{raw}"
            );
        }
        assert!(
            !RequestedFormat::parse(Some(Value::Null))
                .expect("null is text")
                .is_given()
        );
    }
}
