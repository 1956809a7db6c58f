use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use enclave_domain::{ApiKeyId, Scopes, TenantId, UserId};
use serde::Serialize;
use uuid::Uuid;

use crate::repo::tenants::check_display_name;
use crate::{Result, Store, StoreError};

/// How often one process writes a key's `last_used_at` at most: the column is informational
/// ("unused for 90 days?"), not worth a write per request.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// An API key as listed (never the secret, never its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: String,
    /// The visible part, e.g. `enc_3kTt9QxZ` (shown in listings to tell keys apart).
    pub prefix: String,
    pub scopes: Scopes,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
}

/// A key with its secret hash, for verification only.
#[derive(Clone)]
pub struct StoredApiKey {
    pub record: ApiKeyRecord,
    pub secret_hash: [u8; 32],
}

impl std::fmt::Debug for StoredApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredApiKey")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct NewApiKey {
    pub name: String,
    pub prefix: String,
    pub secret_hash: [u8; 32],
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<UserId>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    prefix: String,
    secret_hash: Vec<u8>,
    scopes: Vec<String>,
    requests_per_minute: Option<i32>,
    tokens_per_minute: Option<i32>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
}

impl TryFrom<KeyRow> for StoredApiKey {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> Result<StoredApiKey> {
        let bad = |e: String| StoreError::corrupt("api key", e);
        let record = ApiKeyRecord {
            id: ApiKeyId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            name: r.name,
            prefix: r.prefix,
            scopes: Scopes::parse_all(&r.scopes).map_err(|e| bad(e.to_string()))?,
            requests_per_minute: r.requests_per_minute.map(|v| v.unsigned_abs()),
            tokens_per_minute: r.tokens_per_minute.map(|v| v.unsigned_abs()),
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            created_by: r.created_by.map(UserId::from_uuid),
            created_at: r.created_at,
        };
        let secret_hash = <[u8; 32]>::try_from(r.secret_hash.as_slice())
            .map_err(|_| bad("hash length".into()))?;
        Ok(StoredApiKey {
            record,
            secret_hash,
        })
    }
}

const SELECT: &str = "SELECT id, tenant_id, name, prefix, secret_hash, scopes, requests_per_minute, \
    tokens_per_minute, expires_at, revoked_at, last_used_at, created_by, created_at FROM api_keys";

fn limit(field: &'static str, v: Option<u32>) -> Result<Option<i32>> {
    v.map(|v| match i32::try_from(v) {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(StoreError::Invalid {
            field,
            reason: format!("must be 1 to {}", i32::MAX),
        }),
    })
    .transpose()
}

pub struct ApiKeys<'s> {
    pub(crate) store: &'s Store,
}

impl ApiKeys<'_> {
    pub async fn create(&self, tenant: &TenantId, new: NewApiKey) -> Result<ApiKeyRecord> {
        check_display_name("name", &new.name, 100)?;
        if new.scopes.is_empty() {
            return Err(StoreError::Invalid {
                field: "scopes",
                reason: "at least one scope is required".into(),
            });
        }
        let rpm = limit("requests_per_minute", new.requests_per_minute)?;
        let tpm = limit("tokens_per_minute", new.tokens_per_minute)?;
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: KeyRow = sqlx::query_as(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, scopes, requests_per_minute,
                                   tokens_per_minute, expires_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING id, tenant_id, name, prefix, secret_hash, scopes, requests_per_minute,
                       tokens_per_minute, expires_at, revoked_at, last_used_at, created_by, created_at",
        )
        .bind(ApiKeyId::new().as_uuid())
        .bind(tenant.as_uuid())
        .bind(new.name.trim())
        .bind(&new.prefix)
        .bind(new.secret_hash.as_slice())
        .bind(new.scopes.to_strings())
        .bind(rpm)
        .bind(tpm)
        .bind(new.expires_at)
        .bind(new.created_by.map(|u| *u.as_uuid()))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StoredApiKey::try_from(row)?.record)
    }

    pub async fn get(&self, tenant: &TenantId, key: &ApiKeyId) -> Result<ApiKeyRecord> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(tenant.as_uuid())
        .bind(key.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StoredApiKey::try_from(row.ok_or(StoreError::NotFound { entity: "api key" })?)?.record)
    }

    /// The tenant's keys, newest first (revoked ones included, marked by `revoked_at`).
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRecord>> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let rows: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC"
        )))
        .bind(tenant.as_uuid())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter()
            .map(|r| StoredApiKey::try_from(r).map(|k| k.record))
            .collect()
    }

    /// Revokes the key (idempotent: revoking twice keeps the first time).
    pub async fn revoke(&self, tenant: &TenantId, key: &ApiKeyId) -> Result<ApiKeyRecord> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_uuid())
        .bind(key.as_uuid())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { entity: "api key" });
        }
        self.get(tenant, key).await
    }

    /// Sets (or clears, with `None`) the key's own limits.
    pub async fn set_limits(
        &self,
        tenant: &TenantId,
        key: &ApiKeyId,
        requests_per_minute: Option<u32>,
        tokens_per_minute: Option<u32>,
    ) -> Result<ApiKeyRecord> {
        let rpm = limit("requests_per_minute", requests_per_minute)?;
        let tpm = limit("tokens_per_minute", tokens_per_minute)?;
        let mut tx = self.store.tenant_tx(tenant).await?;
        let done = sqlx::query(
            "UPDATE api_keys SET requests_per_minute = $3, tokens_per_minute = $4 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_uuid())
        .bind(key.as_uuid())
        .bind(rpm)
        .bind(tpm)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { entity: "api key" });
        }
        self.get(tenant, key).await
    }

    /// The key with this visible prefix, whatever its tenant (authentication happens before a
    /// tenant is known); `None` if there is none.
    pub async fn find_by_prefix(&self, prefix: &str) -> Result<Option<StoredApiKey>> {
        let mut tx = self.store.system_tx().await?;
        let row: Option<KeyRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE prefix = $1")))
                .bind(prefix)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        row.map(StoredApiKey::try_from).transpose()
    }

    /// Records that the key was used, at most once a minute per key and process; returns
    /// whether it wrote. Callers run it off the request path (`tokio::spawn`).
    pub async fn touch(&self, tenant: &TenantId, key: &ApiKeyId) -> Result<bool> {
        {
            // INVARIANT: nothing panics while holding this lock, so it is never poisoned.
            #[allow(clippy::unwrap_used)]
            let mut touches = self.store.key_touches.lock().unwrap();
            let now = Instant::now();
            if touches
                .get(key.as_uuid())
                .is_some_and(|t| now.duration_since(*t) < TOUCH_INTERVAL)
            {
                return Ok(false);
            }
            touches.insert(*key.as_uuid(), now);
        }
        let mut tx = self.store.tenant_tx(tenant).await?;
        sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_uuid())
            .bind(key.as_uuid())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
