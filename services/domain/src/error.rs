/// Why a value from outside could not become a domain type. Each variant names the field's kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid {kind}: {value:?} is not a UUID")]
    InvalidId { kind: &'static str, value: String },
    #[error("invalid request id: {reason}")]
    InvalidRequestId { reason: &'static str },
    #[error("invalid tenant slug {value:?}: {reason}")]
    InvalidSlug { value: String, reason: &'static str },
    #[error("invalid email address: {reason}")]
    InvalidEmail { reason: &'static str },
    #[error("unknown role {0:?} (expected platform_admin, tenant_admin, developer or auditor)")]
    UnknownRole(String),
    #[error("unknown scope {0:?}")]
    UnknownScope(String),
    #[error("unknown redaction mode {0:?} (expected raw or pii_masked)")]
    UnknownRedaction(String),
    #[error("invalid retention_days {days}: must be 1 to 36500 days, or null to keep forever")]
    InvalidRetention { days: i64 },
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidAdapterRef {
        kind: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl DomainError {
    /// Stable machine-readable code, for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::InvalidId { .. } => "invalid_id",
            DomainError::InvalidRequestId { .. } => "invalid_request_id",
            DomainError::InvalidSlug { .. } => "invalid_slug",
            DomainError::InvalidEmail { .. } => "invalid_email",
            DomainError::UnknownRole(_) => "unknown_role",
            DomainError::UnknownScope(_) => "unknown_scope",
            DomainError::InvalidAdapterRef { .. } => "invalid_adapter_name",
            DomainError::UnknownRedaction(_) => "unknown_redaction",
            DomainError::InvalidRetention { .. } => "invalid_retention_days",
        }
    }
}
