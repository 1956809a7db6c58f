use enclave_store::StoreError;

/// Why authentication failed. `code()` is stable for API bodies; messages never say whether an
/// email exists or which part of a credential was wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error("this account belongs to several tenants; name one")]
    TenantRequired,
    #[error("invalid token: {reason}")]
    InvalidToken { reason: &'static str },
    #[error("the access token has expired")]
    ExpiredToken,
    #[error("the account is disabled or deleted, or no longer a member of this tenant")]
    UserInactive,
    #[error("the tenant is suspended")]
    TenantSuspended,
    #[error("invalid API key")]
    InvalidApiKey,
    #[error("the API key has been revoked")]
    RevokedKey,
    #[error("the API key has expired")]
    ExpiredKey,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("the refresh token has expired")]
    ExpiredRefreshToken,
    /// An already-used refresh token was presented: the whole session family is now revoked.
    #[error("refresh token reuse detected; the session has been revoked")]
    RefreshTokenReused,
    #[error("password rejected: {reason}")]
    WeakPassword { reason: String },
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cryptographic failure: {0}")]
    Crypto(String),
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::InvalidCredentials => "invalid_credentials",
            AuthError::Throttled { .. } => "login_throttled",
            AuthError::TenantRequired => "tenant_required",
            AuthError::InvalidToken { .. } => "invalid_token",
            AuthError::ExpiredToken => "token_expired",
            AuthError::UserInactive => "user_inactive",
            AuthError::TenantSuspended => "tenant_suspended",
            AuthError::InvalidApiKey => "invalid_api_key",
            AuthError::RevokedKey => "key_revoked",
            AuthError::ExpiredKey => "key_expired",
            AuthError::InvalidRefreshToken => "invalid_refresh_token",
            AuthError::ExpiredRefreshToken => "refresh_token_expired",
            AuthError::RefreshTokenReused => "refresh_token_reused",
            AuthError::WeakPassword { .. } => "weak_password",
            AuthError::InvalidInput { .. } => "invalid_input",
            AuthError::Store(e) => e.code(),
            AuthError::Crypto(_) => "internal",
        }
    }

    /// The HTTP status this error stands for: 401 for credentials, 429 for throttling, 400/422
    /// for bad input, the store's mapping otherwise, 500 for the rest.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::Throttled { .. } => 429,
            AuthError::TenantSuspended => 403,
            AuthError::TenantRequired
            | AuthError::InvalidInput { .. }
            | AuthError::WeakPassword { .. } => 422,
            AuthError::Store(StoreError::NotFound { .. }) => 404,
            AuthError::Store(StoreError::Conflict { .. }) => 409,
            AuthError::Store(StoreError::Invalid { .. }) => 422,
            AuthError::Store(_) | AuthError::Crypto(_) => 500,
            _ => 401,
        }
    }

    /// Seconds for a `Retry-After` header, when there is one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AuthError::Throttled { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}
