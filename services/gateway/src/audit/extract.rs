//! What a record says about a call, read from the request and the response: who, which tenant,
//! which action on which object, the bodies (secrets redacted), finish reason and usage.

use std::time::Instant;

use actix_web::dev::ServiceRequest;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web::Bytes;
use actix_web::{HttpMessage as _, HttpRequest};
use enclave_audit::{AdminChange, AuditActor, AuditRecord, AuditResponse, PLATFORM_CHAIN, Usage};
use enclave_domain::{RequestId, TenantId};
use serde_json::{Map, Value, json};

use super::AuditNotes;
use crate::auth::Caller;
use crate::middleware::X_REQUEST_ID;

/// Members whose values are credentials: never stored (login passwords, tokens, a new API
/// key's secret).
const SECRET_MEMBERS: &[&str] = &[
    "password",
    "new_password",
    "access_token",
    "refresh_token",
    "secret",
    "token",
    "api_key_secret",
];

/// The request side of a call, captured before the handler runs.
pub(crate) struct Call {
    method: Method,
    path: String,
    query: String,
    body: Value,
    client_addr: Option<String>,
    trace_id: Option<String>,
}

impl Call {
    pub(crate) fn from_request(req: &ServiceRequest, body: Bytes) -> Call {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        Call {
            method: req.method().clone(),
            path: req.path().to_owned(),
            query: req.query_string().to_owned(),
            body: request_body(&body, content_type, declared_length(req.headers())),
            client_addr: req.peer_addr().map(|a| a.ip().to_string()),
            trace_id: trace_id(req.headers()),
        }
    }

    pub(crate) fn is_inference(&self) -> bool {
        matches!(
            self.path.as_str(),
            "/v1/chat/completions" | "/v1/completions"
        )
    }

    /// The record of this call: `response` is `None` for a stream's `started` record. `req` is
    /// the request after the handler ran (its extensions hold the authenticated caller); no
    /// clone of it may be held while the call is routed (routing needs it unshared).
    pub(crate) fn record(
        &self,
        req: Option<&HttpRequest>,
        response: Option<AuditResponse>,
        status: u16,
        started: Instant,
        notes: &AuditNotes,
        request_id: Option<RequestId>,
    ) -> AuditRecord {
        let caller = req.and_then(|r| r.extensions().get::<Caller>().cloned());
        let pattern = req.and_then(HttpRequest::match_pattern);
        let action = action_for(&self.method, pattern.as_deref());
        let mut request =
            json!({"method": self.method.as_str(), "path": self.path, "body": self.body});
        if !self.query.is_empty() {
            request["query"] = Value::String(self.query.clone());
        }
        let (tenant, actor) = match &caller {
            Some(c) => (
                self.tenant_of(req, c, status, notes.tenant),
                AuditActor::from(c.principal().actor.clone()),
            ),
            None => (PLATFORM_CHAIN, AuditActor::Anonymous),
        };
        let mut rec = AuditRecord::new(tenant, actor, action, request);
        rec.request_id = request_id;
        rec.trace_id = self.trace_id.clone();
        rec.client_addr = self.client_addr.clone();
        rec.status_code = status;
        rec.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        rec.model = notes
            .model
            .clone()
            .or_else(|| self.model_of(response.as_ref()));
        rec.adapter_version = notes.adapter_version.clone();
        rec.policy = notes.policy.clone();
        rec.resource = notes
            .resource
            .clone()
            .or_else(|| self.resource_of(response.as_ref()));
        rec.change = notes
            .change
            .clone()
            .or_else(|| self.change_of(status, response.as_ref()));
        rec.response = match (&notes.response, response) {
            (Some(body), Some(mut r)) => {
                r.body = body.clone();
                Some(r)
            }
            (_, r) => r,
        };
        rec
    }

    /// The caller's tenant; a platform admin acting on a tenant's object is recorded in that
    /// tenant's chain (its auditors see it), other platform-level calls in the platform chain.
    fn tenant_of(
        &self,
        req: Option<&HttpRequest>,
        caller: &Caller,
        status: u16,
        noted: Option<TenantId>,
    ) -> TenantId {
        let p = caller.principal();
        if p.is_platform_admin() && (200..300).contains(&status) {
            let named = noted.or_else(|| {
                req.and_then(|r| r.match_info().get("tenant_id"))
                    .and_then(|t| TenantId::parse(t).ok())
            });
            if let Some(t) = named {
                return t;
            }
        }
        p.tenant_id.unwrap_or(PLATFORM_CHAIN)
    }

    fn model_of(&self, response: Option<&AuditResponse>) -> Option<String> {
        if !self.is_inference() {
            return None;
        }
        let from_response = response
            .and_then(|r| r.body.get("model"))
            .and_then(Value::as_str);
        from_response
            .or_else(|| self.body.get("model").and_then(Value::as_str))
            .map(str::to_owned)
    }

    /// `tenants/<id>` style: the path below `/v1/`, plus the id of an object a POST created.
    fn resource_of(&self, response: Option<&AuditResponse>) -> Option<String> {
        if self.is_inference() || self.method == Method::GET {
            return None;
        }
        let base = self
            .path
            .trim_start_matches("/v1/")
            .trim_end_matches('/')
            .to_owned();
        let created = response
            .and_then(|r| r.body.get("id").or_else(|| r.body.pointer("/api_key/id")))
            .and_then(Value::as_str);
        Some(match created {
            Some(id) if self.method == Method::POST && !base.ends_with(id) => {
                format!("{base}/{id}")
            }
            _ => base,
        })
    }

    /// An administrative change that succeeded: `after` is what the server answered, `before`
    /// is null unless the handler noted it.
    fn change_of(&self, status: u16, response: Option<&AuditResponse>) -> Option<AdminChange> {
        let mutating = matches!(
            self.method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        );
        if self.is_inference()
            || !mutating
            || !(200..300).contains(&status)
            || self.path.starts_with("/v1/auth/")
        {
            return None;
        }
        let after = if self.method == Method::DELETE {
            Value::Null
        } else {
            response.map(|r| r.body.clone()).unwrap_or(Value::Null)
        };
        Some(AdminChange {
            before: Value::Null,
            after,
        })
    }
}

/// `chat.completions.create`, `tenants.update`, `tenants.api_keys.delete`, ...: the route's
/// literal segments and a verb from the method.
pub fn action_for(method: &Method, pattern: Option<&str>) -> String {
    let Some(pattern) = pattern else {
        return "http.unrouted".to_owned();
    };
    let segments: Vec<&str> = pattern
        .trim_start_matches("/v1")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let ends_with_param = segments.last().is_some_and(|s| s.starts_with('{'));
    let names: Vec<String> = segments
        .iter()
        .filter(|s| !s.starts_with('{'))
        .map(|s| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    let base = if names.is_empty() {
        "root".to_owned()
    } else {
        names.join(".")
    };
    // Routes that name their action (`/auth/login`, `/keys/{id}/revoke`) keep it as is.
    let named_action = matches!(
        names.last().map(String::as_str),
        Some("login" | "logout" | "refresh" | "revoke" | "rollback" | "export" | "manifest")
    );
    let verb = match *method {
        _ if named_action && !ends_with_param => return base,
        Method::GET if ends_with_param => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT | Method::PATCH => "update",
        Method::DELETE => "delete",
        _ => "call",
    };
    format!("{base}.{verb}")
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A request body as recorded: [`body_value`], with `declared` (Content-Length) giving the size
/// of a body whose head only was read.
fn request_body(body: &[u8], content_type: Option<&str>, declared: Option<u64>) -> Value {
    match super::body::summary(body, content_type, declared) {
        Some(summary) => summary,
        None => body_value(body, content_type),
    }
}

/// The body as JSON: parsed when it is JSON, the document text otherwise (XML), a summary when
/// it is multipart or binary (see [`super::body`]), absent when empty; credentials redacted.
pub(crate) fn body_value(body: &[u8], content_type: Option<&str>) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    if let Some(summary) = super::body::summary(body, content_type, None) {
        return summary;
    }
    let looks_json = content_type.is_none_or(|c| c.contains("json")) || body.first() == Some(&b'{');
    if looks_json && let Ok(mut v) = serde_json::from_slice::<Value>(body) {
        redact(&mut v);
        return v;
    }
    let text = String::from_utf8_lossy(body).into_owned();
    Value::String(redact_xml(text))
}

/// Removes credential values (see [`SECRET_MEMBERS`]) anywhere in `v`.
pub(crate) fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if SECRET_MEMBERS.contains(&k.as_str()) && !val.is_null() {
                    *val = Value::String("[redacted]".to_owned());
                } else {
                    redact(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The same for an XML document (elements named like a secret member lose their text).
fn redact_xml(mut text: String) -> String {
    for name in SECRET_MEMBERS {
        let (open, close) = (format!("<{name}>"), format!("</{name}>"));
        let mut from = 0;
        while let Some(start) = text[from..].find(&open).map(|i| i + from + open.len()) {
            let Some(end) = text[start..].find(&close).map(|i| i + start) else {
                break;
            };
            text.replace_range(start..end, "[redacted]");
            from = start + "[redacted]".len() + close.len();
        }
    }
    text
}

/// A whole response as recorded: the body (JSON, or the XML text), and for completions the
/// finish reason and usage.
pub(crate) fn response_of(bytes: &[u8], content_type: Option<&str>) -> AuditResponse {
    let body = body_value(bytes, content_type);
    let tree = match &body {
        Value::String(xml) => xml_tree(xml.as_bytes()).unwrap_or(Value::Null),
        other => other.clone(),
    };
    let choice = tree.pointer("/choices/0");
    AuditResponse {
        finish_reason: choice
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        usage: tree.get("usage").and_then(usage_of),
        body,
    }
}

/// `{prompt_tokens, completion_tokens, total_tokens}` as numbers or (XML) numeric text.
pub(crate) fn usage_of(u: &Value) -> Option<Usage> {
    let n = |k: &str| {
        u.get(k)
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
    };
    let (p, c) = (n("prompt_tokens")?, n("completion_tokens")?);
    Some(Usage {
        prompt_tokens: p,
        completion_tokens: c,
        total_tokens: n("total_tokens").unwrap_or(p + c),
    })
}

/// An XML document in the gateway's mapping as a JSON tree (leaves are strings; an element
/// whose children are all `<item>` is an array), for reading fields out of XML answers.
pub(crate) fn xml_tree(doc: &[u8]) -> Option<Value> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(doc);
    // Stack of (name, children, text) of open elements.
    let mut stack: Vec<(String, Vec<(String, Value)>, String)> = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).ok()? {
            Event::Start(e) => {
                stack.push((e.name().into_inner().to_owned(), Vec::new(), String::new()))
            }
            Event::Empty(e) => {
                let name = e.name().into_inner().to_owned();
                stack
                    .last_mut()?
                    .1
                    .push((name, Value::String(String::new())));
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                        .unwrap_or("")
                        .to_owned(),
                };
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&resolved);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&t.into_inner());
                }
            }
            Event::End(_) => {
                let (name, children, text) = stack.pop()?;
                let value = element_value(children, text);
                match stack.last_mut() {
                    Some(parent) => parent.1.push((name, value)),
                    None => return Some(value),
                }
            }
            Event::Eof => return None,
            _ => {}
        }
        buf.clear();
    }
}

fn element_value(children: Vec<(String, Value)>, text: String) -> Value {
    if children.is_empty() {
        return Value::String(text);
    }
    if children.iter().all(|(n, _)| n == "item") {
        return Value::Array(children.into_iter().map(|(_, v)| v).collect());
    }
    let mut m = Map::new();
    for (n, v) in children {
        m.insert(n, v);
    }
    Value::Object(m)
}

/// The trace id of a W3C `traceparent` header (`00-<trace id>-<span id>-<flags>`).
fn trace_id(headers: &HeaderMap) -> Option<String> {
    let tp = headers.get("traceparent")?.to_str().ok()?;
    let id = tp.split('-').nth(1)?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// The request id the response carries (set by the request-context middleware).
pub(crate) fn request_id(headers: &HeaderMap) -> Option<RequestId> {
    RequestId::parse(headers.get(X_REQUEST_ID)?.to_str().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_come_from_the_route() {
        let cases = [
            (
                Method::POST,
                Some("/v1/chat/completions"),
                "chat.completions.create",
            ),
            (Method::POST, Some("/v1/completions"), "completions.create"),
            (Method::GET, Some("/v1/models"), "models.list"),
            (
                Method::PATCH,
                Some("/v1/tenants/{tenant_id}"),
                "tenants.update",
            ),
            (Method::GET, Some("/v1/tenants/{tenant_id}"), "tenants.get"),
            (
                Method::DELETE,
                Some("/v1/tenants/{tenant_id}/api-keys/{key_id}"),
                "tenants.api_keys.delete",
            ),
            (Method::POST, Some("/v1/auth/login"), "auth.login"),
            (Method::GET, Some("/v1/audit/export"), "audit.export"),
            (
                Method::GET,
                Some("/v1/audit/exports/{export_id}/manifest"),
                "audit.exports.manifest",
            ),
            (Method::GET, None, "http.unrouted"),
        ];
        for (m, p, want) in cases {
            assert_eq!(action_for(&m, p), want, "{m} {p:?}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_json_and_xml() {
        let v = body_value(
            br#"{"email":"a@b","password":"hunter2","nested":{"secret":"enc_x"}}"#,
            Some("application/json"),
        );
        assert_eq!(v["password"], "[redacted]");
        assert_eq!(v["nested"]["secret"], "[redacted]");
        assert_eq!(v["email"], "a@b");
        let x = body_value(
            b"<login_request><password>hunter2</password><email>a</email></login_request>",
            Some("application/xml"),
        );
        assert!(!x.as_str().unwrap_or("").contains("hunter2"), "{x}");
    }

    #[test]
    fn xml_answers_yield_finish_reason_and_usage() {
        let doc = b"<chat_completion><choices><item><finish_reason>stop</finish_reason><message><content>a &amp; b</content></message></item></choices><usage><prompt_tokens>3</prompt_tokens><completion_tokens>2</completion_tokens><total_tokens>5</total_tokens></usage></chat_completion>";
        let r = response_of(doc, Some("application/xml"));
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));
        assert_eq!(r.usage.map(|u| u.total_tokens), Some(5));
        let tree = xml_tree(doc).unwrap();
        assert_eq!(
            tree.pointer("/choices/0/message/content")
                .and_then(Value::as_str),
            Some("a & b")
        );
    }
}
