//! Postgres persistence for Enclave: the embedded cluster launcher, the connection pool with
//! per-transaction tenant context (row-level security), and one repository per aggregate.
//!
//! Two walls keep tenants apart: every tenant-scoped repository function takes `&TenantId` first
//! and filters by it in SQL, and every transaction it runs sets `enclave.tenant_id`, which the
//! forced row-level-security policies compare against. The application role owns no table and has
//! no BYPASSRLS, so a query that forgets its WHERE clause still sees only the current tenant.

pub mod blobs;
mod db;
pub mod embedded;
mod error;
pub mod repo;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use blobs::{AdapterBlobs, AdapterFiles, BlobError};
pub use db::{APP_ROLE, DbUrls, OWNER_ROLE, Store, migrate};
pub use embedded::{EmbeddedOptions, EmbeddedPostgres};
pub use error::{EmbeddedError, StoreError};
pub use repo::*;
#[cfg(feature = "test-support")]
pub use test_support::TestDb;

/// Convenience alias used by every repository.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
