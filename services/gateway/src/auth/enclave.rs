//! The platform's own credentials (access JWTs and API keys from `enclave-auth`) behind
//! [`Authenticate`], and how `enclave-auth`'s errors answer over HTTP.
//!
//! The mapping goes by error variant, never by message: 401 for a credential that does not
//! authenticate, 403 for one whose tenant is suspended, 429 for login throttling, 400 for bad
//! input, the store's mapping for store faults.

use enclave_auth::{AuthError, Authenticator};

use super::{AuthFailure, AuthFuture, AuthRejection, Authenticate};
use crate::error::ApiError;

impl Authenticate for Authenticator {
    fn authenticate<'a>(&'a self, bearer: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            Authenticator::authenticate(self, bearer)
                .await
                .map_err(AuthFailure::from)
        })
    }
}

fn rejection(e: &AuthError) -> AuthRejection {
    AuthRejection {
        code: e.code(),
        message: e.to_string(),
    }
}

impl From<AuthError> for AuthFailure {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store(_) | AuthError::Crypto(_) => AuthFailure::Backend(Box::new(e)),
            AuthError::TenantSuspended => AuthFailure::Forbidden(rejection(&e)),
            AuthError::Throttled { retry_after_secs } => AuthFailure::Throttled {
                rejection: rejection(&e),
                retry_after_secs,
            },
            _ => AuthFailure::Rejected(rejection(&e)),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store(store) => ApiError::from(store),
            AuthError::WeakPassword { .. } => {
                ApiError::invalid_field(e.code(), "password", e.to_string())
            }
            AuthError::TenantRequired => ApiError::invalid_field(e.code(), "tenant", e.to_string()),
            AuthError::InvalidInput { field, .. } => {
                ApiError::invalid_field(e.code(), field, e.to_string())
            }
            other => AuthFailure::from(other).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError as _;
    use actix_web::http::StatusCode;

    use super::*;

    #[test]
    fn auth_errors_map_by_variant() {
        let cases: [(AuthError, StatusCode, &str); 11] = [
            (
                AuthError::ExpiredToken,
                StatusCode::UNAUTHORIZED,
                "token_expired",
            ),
            (
                AuthError::InvalidToken {
                    reason: "bad signature",
                },
                StatusCode::UNAUTHORIZED,
                "invalid_token",
            ),
            (
                AuthError::RevokedKey,
                StatusCode::UNAUTHORIZED,
                "key_revoked",
            ),
            (
                AuthError::ExpiredKey,
                StatusCode::UNAUTHORIZED,
                "key_expired",
            ),
            (
                AuthError::UserInactive,
                StatusCode::UNAUTHORIZED,
                "user_inactive",
            ),
            (
                AuthError::RefreshTokenReused,
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
            ),
            (
                AuthError::InvalidCredentials,
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
            ),
            (
                AuthError::TenantSuspended,
                StatusCode::FORBIDDEN,
                "tenant_suspended",
            ),
            (
                AuthError::Throttled {
                    retry_after_secs: 9,
                },
                StatusCode::TOO_MANY_REQUESTS,
                "login_throttled",
            ),
            (
                AuthError::TenantRequired,
                StatusCode::BAD_REQUEST,
                "tenant_required",
            ),
            (
                AuthError::Crypto("no signer".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
            ),
        ];
        for (err, status, code) in cases {
            let name = format!("{err:?}");
            let api = ApiError::from(err);
            assert_eq!(api.status_code(), status, "{name}");
            assert_eq!(api.code(), code, "{name}");
        }
        match ApiError::from(AuthError::Throttled {
            retry_after_secs: 9,
        }) {
            ApiError::RateLimited {
                retry_after_secs, ..
            } => assert_eq!(retry_after_secs, 9),
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }
}
