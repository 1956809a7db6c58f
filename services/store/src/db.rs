use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use enclave_domain::TenantId;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::Result;

/// Owns the schema; migrations run as this role.
pub const OWNER_ROLE: &str = "enclave_owner";
/// What request handling connects as: owns nothing, no BYPASSRLS, per-table grants only.
pub const APP_ROLE: &str = "enclave_app";

/// Where to connect: the owner URL runs migrations, the app URL serves requests. With an
/// external server (`DATABASE_URL`) both may be the same URL; then row-level security still
/// binds unless that role is a superuser or has BYPASSRLS (see the operator docs).
#[derive(Debug, Clone)]
pub struct DbUrls {
    pub owner: String,
    pub app: String,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Applies every pending migration in `migrations/` (embedded at build time) as `pool`'s role.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The handle every service holds (cheap to clone): a pool connected as the application role
/// plus the repositories reached through it (`store.tenants()`, `store.api_keys()`, ...).
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    /// When each API key's `last_used_at` was last written by this process (see ApiKeys::touch).
    pub(crate) key_touches: Arc<Mutex<HashMap<uuid::Uuid, std::time::Instant>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("pool_size", &self.pool.size())
            .finish()
    }
}

impl Store {
    /// Connects a pool to `url` (normally the application role's).
    pub async fn connect(url: &str) -> Result<Store> {
        let opts: PgConnectOptions = url.parse()?;
        Self::connect_with(opts, 16).await
    }

    pub async fn connect_with(opts: PgConnectOptions, max_connections: u32) -> Result<Store> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        Ok(Store::from_pool(pool))
    }

    pub fn from_pool(pool: PgPool) -> Store {
        Store {
            pool,
            key_touches: Arc::default(),
        }
    }

    /// Migrates with the owner URL, then connects as the application role.
    pub async fn connect_and_migrate(urls: &DbUrls) -> Result<Store> {
        let owner = PgPoolOptions::new()
            .max_connections(1)
            .connect(&urls.owner)
            .await?;
        migrate(&owner).await?;
        owner.close().await;
        Store::connect(&urls.app).await
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Round trip to the server, for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A transaction in which row-level security shows only `tenant`'s rows.
    pub async fn tenant_tx(&self, tenant: &TenantId) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        // set_config(..., true) = SET LOCAL: reverts at commit/rollback, so a pooled
        // connection never carries one tenant's context into another's transaction.
        sqlx::query("SELECT set_config('enclave.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// A transaction that sees every tenant: only for lookups that happen before a tenant is
    /// known (API key by prefix, a user's memberships at login) and platform-admin listings.
    pub async fn system_tx(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('enclave.rls_bypass', 'on', true)")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}
