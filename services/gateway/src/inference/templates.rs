//! Tenant output templates on the inference path: a template id (`name` or `name@v<n>`) →
//! the tenant's stored template → the JSON schema the engine enforces; after generation the
//! JSON is rendered with the template, sandboxed.
//!
//! The sandbox: a fresh minijinja `Environment` per render with no loader (no `include`,
//! `import` or `extends` can reach a file), auto-escaping off (the output is not HTML), a fuel
//! limit (every instruction costs fuel, so a runaway loop or recursion stops with an error) and
//! a cap on the bytes written (the output is written through a counting writer that fails past
//! [`MAX_RENDERED_BYTES`], so a template that multiplies strings cannot grow memory unbounded).

use std::collections::BTreeMap;
use std::io::Write;

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use enclave_domain::TenantId;
use enclave_store::{OutputTemplate, Store, StoreError};
use minijinja::{AutoEscape, Environment, ErrorKind, Value as JinjaValue};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::ApiError;

/// Largest template source accepted.
pub const MAX_TEMPLATE_BYTES: usize = 65_536;
/// Largest rendered output; a render writing more stops with `template_output_too_large`.
pub const MAX_RENDERED_BYTES: usize = 1 << 20;
/// Instructions one render may execute (a CSV of a few hundred rows uses a few thousand).
pub const RENDER_FUEL: u64 = 200_000;
/// Nesting depth of calls/macros a render may reach.
const RECURSION_LIMIT: usize = 64;

/// A template id as a request names it: the active version, or a pinned one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateId {
    pub name: String,
    pub version: Option<u32>,
}

impl TemplateId {
    /// `name` or `name@v<n>`; `None` when the text is neither (no such template can exist).
    pub fn parse(id: &str) -> Option<Self> {
        let (name, version) = match id.split_once('@') {
            Some((name, v)) => (name, Some(v.strip_prefix('v')?.parse::<u32>().ok()?)),
            None => (id, None),
        };
        valid_name(name).then(|| TemplateId {
            name: name.to_owned(),
            version,
        })
    }
}

/// Template names: 1 to 64 of `a-z 0-9 _ -`, starting with a letter or digit (the store's
/// CHECK constraint says the same).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// `name@v<version>` of a stored version.
pub fn pinned_id(t: &OutputTemplate) -> String {
    format!("{}@v{}", t.name, t.version)
}

/// Loads the tenant's template for a request; any miss (no store, no such name or version,
/// another tenant's) is `template_not_found`.
pub async fn load(
    store: Option<&Store>,
    tenant: &TenantId,
    id: &str,
) -> Result<OutputTemplate, ApiError> {
    let parsed = TemplateId::parse(id).ok_or_else(|| super::format::template_not_found(id))?;
    let Some(store) = store else {
        return Err(super::format::template_not_found(id));
    };
    match store
        .output_templates()
        .get(tenant, &parsed.name, parsed.version)
        .await
    {
        Ok(t) => Ok(t),
        Err(StoreError::NotFound { .. }) => Err(super::format::template_not_found(id)),
        Err(e) => Err(e.into()),
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(RENDER_FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env
}

fn unprocessable(code: &'static str, message: String) -> ApiError {
    ApiError::Status {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code,
        message,
    }
}

/// Checks a template's source before it is stored: size, and that minijinja parses it.
pub fn check_source(source: &str) -> Result<(), ApiError> {
    if source.trim().is_empty() || source.len() > MAX_TEMPLATE_BYTES {
        return Err(ApiError::invalid_field(
            "invalid_template",
            "template",
            format!("template must be 1 to {MAX_TEMPLATE_BYTES} bytes"),
        ));
    }
    environment()
        .template_from_str(source)
        .map(drop)
        .map_err(|e| unprocessable("invalid_template", format!("template: {e:#}")))
}

/// Fails the render once more than [`MAX_RENDERED_BYTES`] were written.
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDERED_BYTES {
            return Err(std::io::Error::other("render output cap reached"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders `data` with a template's source. The data is the template's context: `data` is the
/// whole value, and an object's members are also top-level names.
pub fn render(source: &str, data: &Value) -> Result<String, ApiError> {
    let env = environment();
    let tmpl = env
        .template_from_str(source)
        .map_err(|e| unprocessable("invalid_template", format!("template: {e:#}")))?;
    let mut ctx = match data {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    ctx.insert("data".to_owned(), data.clone());
    let mut out = Capped(Vec::new());
    let rendered = tmpl
        .render_captured_to(jinja_value(&Value::Object(ctx)), &mut out)
        .map(drop);
    match rendered {
        Ok(()) => String::from_utf8(out.0).map_err(|_| {
            unprocessable(
                "template_render_failed",
                "the template wrote invalid UTF-8".to_owned(),
            )
        }),
        Err(e) => Err(render_error(&e)),
    }
}

/// serde_json → minijinja (minijinja's `serde` feature is off in this workspace).
fn jinja_value(v: &Value) -> JinjaValue {
    match v {
        Value::Null => JinjaValue::from(()),
        Value::Bool(b) => JinjaValue::from(*b),
        Value::Number(n) => n
            .as_i64()
            .map(JinjaValue::from)
            .or_else(|| n.as_u64().map(JinjaValue::from))
            .unwrap_or_else(|| JinjaValue::from(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => JinjaValue::from(s.as_str()),
        Value::Array(a) => JinjaValue::from(a.iter().map(jinja_value).collect::<Vec<_>>()),
        Value::Object(m) => JinjaValue::from(
            m.iter()
                .map(|(k, v)| (k.clone(), jinja_value(v)))
                .collect::<BTreeMap<String, JinjaValue>>(),
        ),
    }
}

fn render_error(e: &minijinja::Error) -> ApiError {
    match e.kind() {
        ErrorKind::OutOfFuel => unprocessable(
            "template_fuel_exhausted",
            format!("the template executed more than {RENDER_FUEL} instructions and was stopped"),
        ),
        ErrorKind::WriteFailure => unprocessable(
            "template_output_too_large",
            format!("the template wrote more than {MAX_RENDERED_BYTES} bytes and was stopped"),
        ),
        _ => unprocessable(
            "template_render_failed",
            format!("the template failed to render: {e:#}"),
        ),
    }
}

/// What a templated answer leaves in its audit record, next to the response body.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateAudit {
    /// `name@v<version>` of the template used.
    pub id: String,
    /// The JSON the model generated, before rendering.
    pub raw_json: Value,
    /// The rendered text (before the output policy, which the body shows applied).
    pub rendered: String,
}

/// Records the answer in the call's audit record as `{...the body..., "output_template":
/// {id, raw_json, rendered}}`.
pub fn note_audit<T: Serialize>(req: &HttpRequest, body: &T, audit: &TemplateAudit) {
    let Ok(mut recorded) = serde_json::to_value(body) else {
        return;
    };
    if let Value::Object(m) = &mut recorded {
        m.insert("output_template".to_owned(), json!(audit));
    }
    crate::audit::annotate(req, |n| n.response = Some(recorded));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_with_and_without_version() {
        let pinned = TemplateId::parse("people-csv@v3").expect("valid");
        assert_eq!(
            (pinned.name.as_str(), pinned.version),
            ("people-csv", Some(3))
        );
        assert_eq!(TemplateId::parse("a").expect("valid").version, None);
        for bad in ["", "Up", "a@3", "a@vx", "-a", "a@v"] {
            assert!(TemplateId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn renders_csv_and_stops_runaways() {
        let out = render(
            "{% for r in rows %}{{ r.name }},{{ r.age }}\n{% endfor %}",
            &json!({"rows": [{"name": "Ada", "age": 36}]}),
        )
        .expect("renders");
        assert_eq!(out, "Ada,36\n");
        let fuel = render(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            &json!({}),
        )
        .expect_err("stopped");
        assert_eq!(fuel.code(), "template_fuel_exhausted");
        let big = render("{{ 'x' * 2000000 }}", &json!({})).expect_err("stopped");
        assert_eq!(big.code(), "template_output_too_large");
        let escape = render("{{ '<a>' }}", &json!({})).expect("renders");
        assert_eq!(escape, "<a>");
        let include = render("{% include 'etc/passwd' %}", &json!({})).expect_err("no loader");
        assert_eq!(include.code(), "template_render_failed");
        assert_eq!(
            check_source("{% for %}").expect_err("syntax").code(),
            "invalid_template"
        );
    }
}
