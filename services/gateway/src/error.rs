//! One error type for every handler and extractor, one HTTP mapping.
//!
//! Caller faults are 4xx with a stable `code`, a message naming the field and the limit, and the
//! field. Server faults are an opaque 500 whose body holds only the request id; the detail is
//! logged with that id by [`crate::middleware`].

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::api::error::{ErrorDetail, ErrorResponse};
use crate::negotiate::Format;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or a value is out of range.
    #[error("{message}")]
    InvalidRequest {
        code: Cow<'static, str>,
        message: String,
        field: Option<String>,
    },
    /// 401: no credentials, or credentials that do not authenticate.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// 403: authenticated, but the role or scope does not allow the action.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 404: no such object — also the answer for another tenant's object.
    #[error("{resource} not found")]
    NotFound { resource: &'static str },
    /// 409: the object exists, or the change conflicts with its state.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// 413
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 415
    #[error(
        "content type {content_type:?} is not supported; send application/json or application/xml"
    )]
    UnsupportedMediaType { content_type: String },
    /// 429: a rate limit or budget is exhausted; retry after the given seconds.
    #[error("{message}")]
    RateLimited {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// 503: the service cannot take the request now (overloaded, shutting down, not ready).
    #[error("{message}")]
    Unavailable {
        code: &'static str,
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// Any other status answered by the framework itself (405, 406, ...).
    #[error("{message}")]
    Status {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// 500: a fault of the server; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

impl ApiError {
    pub fn invalid(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
        field: Option<String>,
    ) -> Self {
        ApiError::InvalidRequest {
            code: code.into(),
            message: message.into(),
            field,
        }
    }

    pub fn invalid_field(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        ApiError::invalid(code, message, Some(field.to_owned()))
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn internal(source: impl Into<BoxError>) -> Self {
        ApiError::Internal(source.into())
    }

    /// The error a bare status maps to when the framework answered without an [`ApiError`].
    pub fn from_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("not_found", "no route matches this path"),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "this method is not allowed on this path",
            ),
            StatusCode::NOT_ACCEPTABLE => (
                "not_acceptable",
                "the requested representation is not available",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body too large"),
            StatusCode::URI_TOO_LONG => ("uri_too_long", "request URI too long"),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                ("headers_too_large", "request headers too large")
            }
            StatusCode::REQUEST_TIMEOUT => {
                ("request_timeout", "the request took too long to arrive")
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                ("unavailable", "the service cannot take requests now")
            }
            s if s.is_server_error() => ("internal_error", "internal error"),
            _ => ("invalid_request", "the request could not be processed"),
        };
        ApiError::Status {
            status,
            code,
            message: message.to_owned(),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            ApiError::InvalidRequest { code, .. } => code,
            ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::RateLimited { code, .. }
            | ApiError::Unavailable { code, .. }
            | ApiError::Status { code, .. } => code,
            ApiError::NotFound { .. } => "not_found",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::InvalidRequest { field, .. } | ApiError::Conflict { field, .. } => {
                field.as_deref()
            }
            _ => None,
        }
    }

    /// The message a client may see: the Display text, except for 5xx faults.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Internal(_) => {
                "internal error; quote the request_id when reporting it".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// The body for this error.
    pub fn body(&self, request_id: Option<&str>) -> ErrorResponse {
        ErrorResponse {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.public_message(),
                field: self.field().map(str::to_owned),
                request_id: request_id.map(str::to_owned),
            },
        }
    }

    /// The full response in the given format.
    pub fn render(&self, format: Format, request_id: Option<&str>) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::RateLimited {
                retry_after_secs, ..
            }
            | ApiError::Unavailable {
                retry_after_secs: Some(retry_after_secs),
                ..
            } => {
                res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            ApiError::Unauthorized { .. } => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            _ => {}
        }
        let body = self.body(request_id);
        let (format, bytes) = match format.encode(&body) {
            Ok(bytes) => (format, bytes),
            // The XML writer cannot fail on this DTO; fall back to JSON all the same.
            Err(_) => (Format::Json, serde_json::to_vec(&body).unwrap_or_default()),
        };
        res.content_type(format.content_type()).body(bytes)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Status { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// JSON without request id; [`crate::middleware`] re-renders it in the negotiated format
    /// with the request id.
    fn error_response(&self) -> HttpResponse {
        self.render(Format::Json, None)
    }
}

/// Error handlers for actix's built-in extractors, so none of them answers in plain text.
pub fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::invalid(
        "invalid_path_parameter",
        format!("path parameter is not valid: {err}"),
        None,
    )
    .into()
}

pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &HttpRequest,
) -> actix_web::Error {
    ApiError::invalid(
        "invalid_query",
        format!("query string is not valid: {err}"),
        None,
    )
    .into()
}

pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::Overflow { limit } | E::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge { limit }.into()
        }
        E::ContentType => ApiError::UnsupportedMediaType {
            content_type: "non-JSON".to_owned(),
        }
        .into(),
        other => ApiError::invalid(
            "invalid_json",
            format!("request body is not valid: {other}"),
            None,
        )
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_are_opaque() {
        let err = ApiError::internal(std::io::Error::other("password=hunter2 at db:5432"));
        let body = err.body(Some("req-1"));
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !body.error.message.contains("hunter2"),
            "{}",
            body.error.message
        );
        assert_eq!(body.error.request_id.as_deref(), Some("req-1"));
        assert_eq!(body.error.code, "internal_error");
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let err = ApiError::RateLimited {
            code: "rate_limited_requests",
            message: "limit of 10 requests per minute reached".into(),
            retry_after_secs: 7,
        };
        let res = err.render(Format::Xml, None);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            res.headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
        assert_eq!(
            res.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/xml")
        );
    }
}
