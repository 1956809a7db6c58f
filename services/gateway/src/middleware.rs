//! The outermost middleware: request id in and out, a tracing span per request, one access-log
//! line, and the final rendering of every error in the negotiated format.

use std::fmt;
use std::future::{Ready, ready};
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use tracing::Instrument as _;

use crate::error::ApiError;
use crate::negotiate::{Deliberate, Format};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of one request ([`enclave_domain::RequestId`]: the caller's `X-Request-Id` when it is
/// sane, a fresh UUID v7 otherwise), as an extractor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(enclave_domain::RequestId);

impl RequestId {
    fn from_headers(headers: &HeaderMap) -> RequestId {
        let parsed = headers
            .get(X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| enclave_domain::RequestId::parse(v).ok());
        RequestId(parsed.unwrap_or_default())
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn domain(&self) -> &enclave_domain::RequestId {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl FromRequest for RequestId {
    type Error = ApiError;
    type Future = Ready<Result<RequestId, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Ok(req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId::from_headers(req.headers()))))
    }
}

/// See the module docs.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = RequestId::from_headers(req.headers());
    req.extensions_mut().insert(request_id.clone());
    let format = Format::from_accept(req.headers());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
        tenant_id = tracing::field::Empty,
        actor = tracing::field::Empty,
        end_user = tracing::field::Empty,
    );
    let started = Instant::now();
    // Handlers and extractors turn their errors into responses, so an `Err` here is rare (a
    // failing inner middleware); it is answered by its own `error_response`.
    let res = next
        .call(req)
        .instrument(span.clone())
        .await?
        .map_into_boxed_body();
    let mut res = span.in_scope(|| render_errors(res, format, &request_id));
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        res.headers_mut().insert(X_REQUEST_ID, value);
    }
    span.in_scope(|| {
        tracing::info!(
            status = res.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1e3,
            "request completed"
        );
    });
    Ok(res)
}

/// Re-renders any error response as an [`ApiError`] body in `format` with the request id;
/// logs server faults with their source chain.
fn render_errors(
    res: ServiceResponse<BoxBody>,
    format: Format,
    request_id: &RequestId,
) -> ServiceResponse<BoxBody> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error())
        || res.response().extensions().contains::<Deliberate>()
    {
        return res;
    }
    let fallback;
    let api_error = match res
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
    {
        Some(api_error) => api_error,
        None => {
            fallback = match res.response().error() {
                // A framework error we did not map: keep its status, not its plain-text body.
                Some(err) if status.is_client_error() => {
                    let mut mapped = ApiError::from_status(status);
                    if let ApiError::Status { message, .. } = &mut mapped {
                        *message = err.to_string();
                    }
                    mapped
                }
                _ => ApiError::from_status(status),
            };
            &fallback
        }
    };
    if status.is_server_error() {
        tracing::error!(code = api_error.code(), error = %ErrorChain(api_error), "request failed");
    }
    let rendered = api_error.render(format, Some(request_id.as_str()));
    let (req, _) = res.into_parts();
    ServiceResponse::new(req, rendered)
}

/// Longest `user` (the caller's end-user id) put on a log line; longer ids are cut.
const MAX_END_USER_CHARS: usize = 256;

/// Puts the OpenAI `user` field (the caller's own end-user id) on the request's log lines, so
/// an operator can find one end user's requests; it is not interpreted otherwise.
pub fn record_end_user(user: Option<&str>) {
    if let Some(user) = user {
        let cut: String = user.chars().take(MAX_END_USER_CHARS).collect();
        tracing::Span::current().record("end_user", cut.as_str());
    }
}

/// Display of an error with its `source()` chain, for logs.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}
