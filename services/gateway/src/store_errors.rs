//! How the store's and the domain's errors answer over HTTP.

use enclave_domain::DomainError;
use enclave_store::StoreError;

use crate::error::ApiError;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity } => ApiError::NotFound { resource: entity },
            StoreError::Conflict { .. } => ApiError::Conflict {
                code: "already_exists",
                field: e.field().map(str::to_owned),
                message: e.to_string(),
            },
            StoreError::Invalid { field, .. } => {
                ApiError::invalid("invalid_value", e.to_string(), Some(field.to_owned()))
            }
            other => ApiError::internal(other),
        }
    }
}

/// A domain parse failure of the named request field.
pub fn domain_error(field: &str, e: DomainError) -> ApiError {
    ApiError::invalid(e.code(), e.to_string(), Some(field.to_owned()))
}
