//! Types shared by every Enclave service. Each one is parsed once at the edge (HTTP, CLI, database)
//! and is valid from then on: private fields, `parse`/`FromStr`/`TryFrom`, no `validate()` calls later.

mod adapter;
mod audit;
mod error;
mod ids;
mod principal;
mod role;
mod scope;
mod text;

pub use adapter::{
    AdapterAlias, AdapterName, AdapterRef, AdapterSelector, AdapterVersion, DEFAULT_ALIAS,
    DigestPrefix,
};
pub use audit::{AuditRedaction, RetentionDays};
pub use error::DomainError;
pub use ids::{ApiKeyId, RequestId, TenantId, UserId};
pub use principal::{Actor, Principal};
pub use role::Role;
pub use scope::{Scope, Scopes};
pub use text::{Email, TenantSlug};
