//! The error body every endpoint answers with (JSON or XML).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"error": {"code": "...", "message": "...", "field": "...", "request_id": "..."}}`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

/// What went wrong, in a stable machine-readable `code` and a human-readable `message`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_json`, `rate_limited`, `not_found`.
    #[schema(example = "invalid_request")]
    pub code: String,
    /// Human-readable explanation naming the field and the limit where there is one.
    pub message: String,
    /// The request field the error is about (a dotted path such as `messages[0].role`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request id (also in the `X-Request-Id` header); quote it when reporting a 5xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}
