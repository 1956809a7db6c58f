//! One repository per aggregate, reached through [`crate::Store`]. Tenant-scoped functions take
//! `&TenantId` first, filter by it in SQL, and run inside [`crate::Store::tenant_tx`].

mod adapters;
mod api_keys;
mod audit_settings;
mod classifiers;
mod limits;
mod memberships;
mod output_templates;
mod policies;
mod refresh_tokens;
mod signing_keys;
mod tenants;
mod throttle;
mod users;

pub use adapters::{AdapterRecord, AdapterVersionRecord, Adapters, NewAdapterVersion, Removal};
pub use api_keys::{ApiKeyRecord, ApiKeys, NewApiKey, StoredApiKey};
pub use audit_settings::{AuditSettings, AuditSettingsRepo};
pub use classifiers::{
    ClassifierVersion, ClassifierVersionInfo, Classifiers, NewClassifierVersion,
};
pub use limits::{
    KeyLimits, RateLimits, TenantLimits, Usage, WindowCounts, WindowSnapshot, month_start,
};
pub use memberships::{Member, Membership, Memberships};
pub use output_templates::{Activation, NewOutputTemplate, OutputTemplate, OutputTemplates};
pub use policies::{NewPolicyVersion, Policies, PolicyFormat, PolicyVersion, PolicyVersionInfo};
pub use refresh_tokens::{NewRefreshToken, RefreshTokenRecord, RefreshTokens, Rotation};
pub use signing_keys::{KeySeal, KeyStatus, NewSigningKey, SigningKeyRecord, SigningKeys};
pub use tenants::{NewTenant, Tenant, TenantAccess, TenantStatus, Tenants};
pub use throttle::{LoginThrottle, ThrottlePolicy, ThrottleState};
pub use users::{NewUser, User, UserCredentials, UserStatus, Users};

use crate::Store;

impl Store {
    pub fn adapters(&self) -> Adapters<'_> {
        Adapters { store: self }
    }
    pub fn tenants(&self) -> Tenants<'_> {
        Tenants { store: self }
    }
    pub fn users(&self) -> Users<'_> {
        Users { store: self }
    }
    pub fn memberships(&self) -> Memberships<'_> {
        Memberships { store: self }
    }
    pub fn api_keys(&self) -> ApiKeys<'_> {
        ApiKeys { store: self }
    }
    pub fn refresh_tokens(&self) -> RefreshTokens<'_> {
        RefreshTokens { store: self }
    }
    pub fn signing_keys(&self) -> SigningKeys<'_> {
        SigningKeys { store: self }
    }
    pub fn login_throttle(&self) -> LoginThrottle<'_> {
        LoginThrottle { store: self }
    }
    pub fn rate_limits(&self) -> RateLimits<'_> {
        RateLimits { store: self }
    }
    pub fn policies(&self) -> Policies<'_> {
        Policies { store: self }
    }
    pub fn classifiers(&self) -> Classifiers<'_> {
        Classifiers { store: self }
    }
    pub fn audit_settings(&self) -> AuditSettingsRepo<'_> {
        AuditSettingsRepo { store: self }
    }
    pub fn output_templates(&self) -> OutputTemplates<'_> {
        OutputTemplates { store: self }
    }
}
