//! Bodies of the platform routes: login, tenants, users, API keys, limits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

// ------------------------------------------------------------------ auth

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "admin@example.com")]
    pub email: String,
    pub password: String,
    /// The tenant to act in (slug or id); omit for a platform admin's platform-wide session or
    /// for a user of exactly one tenant.
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Ends the session (the whole login) the refresh token belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    pub refresh_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// Short-lived signed access token; send as `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until `access_token` expires.
    pub expires_in: u64,
    /// Single-use: exchange at `/v1/auth/refresh` for a new pair. Presenting a used one again
    /// ends the whole session.
    pub refresh_token: String,
    /// Seconds until `refresh_token` expires.
    pub refresh_expires_in: u64,
    pub user_id: Uuid,
    /// The tenant the session acts in; absent for a platform admin's platform-wide session.
    pub tenant_id: Option<Uuid>,
    /// `platform_admin`, `tenant_admin`, `developer` or `auditor`.
    pub role: String,
}

// ------------------------------------------------------------------ tenants and limits

/// Per-tenant limits; an absent value means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u32>,
    /// Tokens (prompt + completion) per calendar month (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_token_budget: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// Lowercase letters, digits and `-`; unique.
    #[schema(example = "acme")]
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub limits: Option<Limits>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    /// `active` or `suspended`.
    pub status: String,
    pub limits: Limits,
    pub created_at: DateTime<Utc>,
}

/// A change to a tenant; absent members stay as they are.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantRequest {
    #[serde(default)]
    pub name: Option<String>,
    /// `active` or `suspended`; a suspended tenant's keys and members' tokens are refused.
    #[serde(default)]
    #[schema(example = "suspended")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantList {
    pub data: Vec<Tenant>,
}

/// The caller's tenant's limits and this month's usage.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LimitsStatus {
    pub tenant_id: Uuid,
    pub limits: Limits,
    /// First day (UTC) of the budget period.
    pub period_start: chrono::NaiveDate,
    pub requests_this_month: u64,
    /// Tokens used against `monthly_token_budget` this month.
    pub tokens_this_month: u64,
}

// ------------------------------------------------------------------ users

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: String,
    /// At least 12 characters.
    pub password: String,
    /// `tenant_admin`, `developer` or `auditor`.
    #[schema(example = "developer")]
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    /// The user's role in this tenant.
    pub role: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub data: Vec<User>,
}

// ------------------------------------------------------------------ API keys

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    pub name: String,
    /// `inference`, `adapters:read`, `adapters:write`, `policies:read`, `policies:write`,
    /// `audit:read`, `admin`; default `["inference"]`.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// When the key stops working (RFC 3339, in the future); absent = never.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// This key's own limits, on top of the tenant's.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    #[serde(default)]
    pub tokens_per_minute: Option<u32>,
}

/// An API key as listed: never the secret, only its visible prefix.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new key: `secret` is shown this once and never again (only its hash is stored).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    /// The full key, `enc_<prefix>_<secret>`; send it as `Authorization: Bearer`.
    pub secret: String,
    pub api_key: ApiKey,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<ApiKey>,
}
