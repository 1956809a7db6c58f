//! `response_format` on the inference routes: parse the caller's format, resolve it (tenant
//! templates), check it against the model before anything is generated, and shape the answer
//! (rendered template text, the `format_incomplete` flag).
//!
//! Every fault of a format is a typed 4xx found before generation: a malformed format
//! (`invalid_response_format`), a bad schema (`invalid_json_schema`), a schema keyword that
//! cannot be enforced (`unsupported_schema_keyword`, naming the keywords), a bad regex
//! (`invalid_regex`) or grammar (`invalid_grammar`), an unknown template (`template_not_found`).

use std::sync::{Arc, OnceLock};

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use enclave_model_core::constraints::{ConstraintError, ResponseFormat};
use enclave_model_core::engine::{Engine, FinishReason, RequestOptions};
use enclave_store::OutputTemplate;
use serde::Serialize;
use serde_json::Value;

use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::inference::convert::ResponsePlan;
use crate::inference::respond::Completed;
use crate::inference::templates::{self, TemplateAudit};
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
    /// The tenant template that renders the answer (`type: template`).
    template: Option<Arc<OutputTemplate>>,
    /// Raw JSON and rendered text of a templated answer, for the audit record.
    rendered: OnceLock<TemplateAudit>,
}

impl ResolvedFormat {
    /// Resolves what the caller asked for into what the engine enforces. Precedence: the
    /// request's own `response_format` (`text` included), else the default of the adapter
    /// alias the request selected (`alias_default`), else its API key's default, else free
    /// text. A template resolves to its JSON schema; an unknown template, or a template with
    /// `stream: true`, is a 4xx here, before generation.
    pub async fn resolve(
        state: &AppState,
        ctx: &TenantContext,
        plan: &ResponsePlan,
        alias_default: Option<&Value>,
    ) -> Result<Self, ApiError> {
        let format = match (plan.format.format(), alias_default) {
            (Some(f), _) => Some(f.clone()),
            (None, Some(raw)) => RequestedFormat::parse(Some(raw.clone()))?.format,
            (None, None) => key_default(state, ctx).await?,
        };
        match format {
            Some(ResponseFormat::Template(t)) => {
                // An unknown template is reported before the streaming refusal.
                let tpl = templates::load(state.store().ok(), &ctx.tenant_id, t.id()).await?;
                if plan.stream {
                    return Err(template_stream_unsupported());
                }
                let schema = ResponseFormat::json_schema(&tpl.name, tpl.schema.clone())
                    .map_err(constraint_error)?;
                Ok(Self {
                    engine_format: Some(schema),
                    constrained: true,
                    template: Some(Arc::new(tpl)),
                    rendered: OnceLock::new(),
                })
            }
            Some(f) => Ok(Self::from_format(f)),
            None => Ok(Self::default()),
        }
    }

    /// The answer as the caller gets it: with a template, the generated JSON rendered by it
    /// (kept with the raw JSON for [`ResolvedFormat::note_audit`]). JSON cut off by
    /// `max_tokens` is not rendered: 422 `template_data_incomplete`.
    pub fn finish(&self, mut done: Completed) -> Result<Completed, ApiError> {
        let Some(tpl) = &self.template else {
            return Ok(done);
        };
        let id = templates::pinned_id(tpl);
        if done.finish.output_incomplete() {
            return Err(ApiError::Status {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "template_data_incomplete",
                message: format!(
                    "the answer reached max_tokens before its JSON was complete, so template \
                     {id} was not rendered; raise max_tokens"
                ),
            });
        }
        let raw_json: Value = serde_json::from_str(&done.text).map_err(|e| {
            ApiError::internal(std::io::Error::other(format!(
                "constrained output is not JSON: {e}"
            )))
        })?;
        let rendered = templates::render(&tpl.template, &raw_json)?;
        done.text = rendered.clone();
        let _ = self.rendered.set(TemplateAudit {
            id,
            raw_json,
            rendered,
        });
        Ok(done)
    }

    /// Records a templated answer's raw JSON and template id in the call's audit record, with
    /// the response `body` (a no-op for other formats).
    pub fn note_audit<T: Serialize>(&self, req: &HttpRequest, body: &T) {
        if let Some(audit) = self.rendered.get() {
            templates::note_audit(req, body, audit);
        }
    }

    fn from_format(format: ResponseFormat) -> Self {
        let constrained = format.is_constrained();
        Self {
            engine_format: constrained.then_some(format),
            constrained,
            ..Self::default()
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

pub fn template_stream_unsupported() -> ApiError {
    ApiError::invalid(
        "template_stream_unsupported",
        "response_format.template cannot be streamed: the whole JSON is needed to render the \
         template; send stream: false",
        Some("stream".to_owned()),
    )
}

/// The API key's default `response_format`, for a request that names none (absent for
/// sessions, keys without one, and servers without a database).
async fn key_default(
    state: &AppState,
    ctx: &TenantContext,
) -> Result<Option<ResponseFormat>, ApiError> {
    let (Ok(store), Some(key)) = (state.store(), ctx.principal().api_key_id()) else {
        return Ok(None);
    };
    let Some(raw) = store
        .output_templates()
        .key_default(&ctx.tenant_id, &key)
        .await?
    else {
        return Ok(None);
    };
    Ok(RequestedFormat::parse(Some(raw))?.format)
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
