//! A tenant's policy documents: immutable versions (1, 2, ...) and the one active version.
//!
//! The store keeps the document text exactly as submitted; parsing and validation belong to
//! `enclave-policy` and happen in the gateway *before* a version is written, so a rejected
//! document never becomes a version and the active one stays as it was.

use chrono::{DateTime, Utc};
use enclave_domain::{TenantId, UserId};
use serde::Serialize;
use uuid::Uuid;

use crate::{Result, Store, StoreError};

/// How a version's document was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyFormat {
    Toml,
    Json,
}

impl PolicyFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyFormat::Toml => "toml",
            PolicyFormat::Json => "json",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "toml" => Ok(PolicyFormat::Toml),
            "json" => Ok(PolicyFormat::Json),
            other => Err(StoreError::corrupt(
                "policy version",
                format!("format {other:?}"),
            )),
        }
    }
}

/// A version as listed (without its document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyVersionInfo {
    pub tenant_id: TenantId,
    pub version: u32,
    pub format: PolicyFormat,
    pub name: Option<String>,
    pub comment: Option<String>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    /// Whether this is the tenant's active version.
    pub active: bool,
}

/// A version with its document text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    pub info: PolicyVersionInfo,
    pub source: String,
}

/// A validated document to store as the next version.
#[derive(Debug, Clone)]
pub struct NewPolicyVersion {
    pub format: PolicyFormat,
    pub source: String,
    /// The document's own `name`, for listings.
    pub name: Option<String>,
    pub comment: Option<String>,
    pub created_by: Option<UserId>,
    /// Make the new version the active one in the same transaction.
    pub activate: bool,
}

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: Uuid,
    version: i32,
    format: String,
    name: Option<String>,
    comment: Option<String>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    active: bool,
    source: Option<String>,
}

impl Row {
    fn into_version(self) -> Result<PolicyVersion> {
        let source = self.source.clone().unwrap_or_default();
        Ok(PolicyVersion {
            info: self.into_info()?,
            source,
        })
    }

    fn into_info(self) -> Result<PolicyVersionInfo> {
        Ok(PolicyVersionInfo {
            tenant_id: TenantId::from_uuid(self.tenant_id),
            version: u32::try_from(self.version)
                .map_err(|_| StoreError::corrupt("policy version", "negative version"))?,
            format: PolicyFormat::parse(&self.format)?,
            name: self.name,
            comment: self.comment,
            created_by: self.created_by.map(UserId::from_uuid),
            created_at: self.created_at,
            active: self.active,
        })
    }
}

const NOT_FOUND: StoreError = StoreError::NotFound {
    entity: "policy version",
};

fn version_i32(version: u32) -> Result<i32> {
    i32::try_from(version).map_err(|_| NOT_FOUND)
}

pub struct Policies<'s> {
    pub(crate) store: &'s Store,
}

impl Policies<'_> {
    /// Appends the next version (numbered one past the highest); activates it if asked.
    pub async fn create(&self, tenant: &TenantId, new: NewPolicyVersion) -> Result<PolicyVersion> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        // Serialises concurrent creates of one tenant, so version numbers never collide.
        sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
            .bind(tenant.as_uuid())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound { entity: "tenant" })?;
        let row: Row = sqlx::query_as(
            "INSERT INTO policy_versions (tenant_id, version, format, source, name, comment, created_by)
             SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, $6
               FROM policy_versions WHERE tenant_id = $1
             RETURNING tenant_id, version, format, name, comment, created_by, created_at,
                       false AS active, source",
        )
        .bind(tenant.as_uuid())
        .bind(new.format.as_str())
        .bind(&new.source)
        .bind(&new.name)
        .bind(&new.comment)
        .bind(new.created_by.map(|u| *u.as_uuid()))
        .fetch_one(&mut *tx)
        .await?;
        let mut version = row.into_version()?;
        if new.activate {
            set_active(&mut tx, tenant, version.info.version, new.created_by).await?;
            version.info.active = true;
        }
        tx.commit().await?;
        Ok(version)
    }

    /// Every version of the tenant, newest first.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<PolicyVersionInfo>> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT v.tenant_id, v.version, v.format, v.name, v.comment, v.created_by, v.created_at,
                    (a.version IS NOT NULL) AS active, NULL::text AS source
               FROM policy_versions v
               LEFT JOIN policy_active a ON a.tenant_id = v.tenant_id AND a.version = v.version
              WHERE v.tenant_id = $1
              ORDER BY v.version DESC",
        )
        .bind(tenant.as_uuid())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(Row::into_info).collect()
    }

    /// One version with its document.
    pub async fn get(&self, tenant: &TenantId, version: u32) -> Result<PolicyVersion> {
        let version = version_i32(version)?;
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Option<Row> = sqlx::query_as(
            "SELECT v.tenant_id, v.version, v.format, v.name, v.comment, v.created_by, v.created_at,
                    (a.version IS NOT NULL) AS active, v.source
               FROM policy_versions v
               LEFT JOIN policy_active a ON a.tenant_id = v.tenant_id AND a.version = v.version
              WHERE v.tenant_id = $1 AND v.version = $2",
        )
        .bind(tenant.as_uuid())
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.ok_or(NOT_FOUND)?.into_version()
    }

    /// The active version with its document; `None` when the tenant has none (baseline only).
    pub async fn active(&self, tenant: &TenantId) -> Result<Option<PolicyVersion>> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Option<Row> = sqlx::query_as(
            "SELECT v.tenant_id, v.version, v.format, v.name, v.comment, v.created_by, v.created_at,
                    true AS active, v.source
               FROM policy_active a
               JOIN policy_versions v ON v.tenant_id = a.tenant_id AND v.version = a.version
              WHERE a.tenant_id = $1",
        )
        .bind(tenant.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(Row::into_version).transpose()
    }

    /// Only the active version's number (cheap: what the inference path checks per request).
    pub async fn active_version(&self, tenant: &TenantId) -> Result<Option<u32>> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let v: Option<i32> =
            sqlx::query_scalar("SELECT version FROM policy_active WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        v.map(|v| u32::try_from(v).map_err(|_| StoreError::corrupt("policy version", "negative")))
            .transpose()
    }

    /// Makes an existing version the active one (activation and rollback alike).
    pub async fn activate(
        &self,
        tenant: &TenantId,
        version: u32,
        by: Option<UserId>,
    ) -> Result<PolicyVersionInfo> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        set_active(&mut tx, tenant, version, by).await?;
        tx.commit().await?;
        let mut info = self.get(tenant, version).await?.info;
        info.active = true;
        Ok(info)
    }
}

async fn set_active(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    tenant: &TenantId,
    version: u32,
    by: Option<UserId>,
) -> Result<()> {
    let version = version_i32(version)?;
    let exists: Option<i32> = sqlx::query_scalar(
        "SELECT version FROM policy_versions WHERE tenant_id = $1 AND version = $2",
    )
    .bind(tenant.as_uuid())
    .bind(version)
    .fetch_optional(&mut **tx)
    .await?;
    if exists.is_none() {
        return Err(NOT_FOUND);
    }
    sqlx::query(
        "INSERT INTO policy_active (tenant_id, version, activated_by, activated_at)
         VALUES ($1, $2, $3, now())
         ON CONFLICT (tenant_id) DO UPDATE
            SET version = EXCLUDED.version, activated_by = EXCLUDED.activated_by,
                activated_at = EXCLUDED.activated_at",
    )
    .bind(tenant.as_uuid())
    .bind(version)
    .bind(by.map(|u| *u.as_uuid()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
