//! A tenant's LoRA adapters: names, immutable content-addressed versions, movable aliases.
//! The files live in [`crate::AdapterBlobs`]; these rows are what the API lists and resolves.

use chrono::{DateTime, Utc};
use enclave_domain::{
    AdapterAlias, AdapterName, AdapterRef, AdapterSelector, AdapterVersion, DigestPrefix, TenantId,
    UserId,
};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Result, Store, StoreError};

/// What an upload stores about a validated version.
#[derive(Debug, Clone)]
pub struct NewAdapterVersion {
    pub name: AdapterName,
    pub version: AdapterVersion,
    pub size_bytes: u64,
    /// The largest rank over all modules.
    pub rank: u32,
    /// Target modules (`q_proj`, ...).
    pub targets: Vec<String>,
    pub base_model: String,
    pub base_architecture: String,
    pub declared_base: Option<String>,
    pub warnings: Vec<String>,
    pub created_by: Option<UserId>,
    /// Aliases moved to this version in the same transaction.
    pub aliases: Vec<AdapterAlias>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdapterVersionRecord {
    pub tenant_id: TenantId,
    pub name: AdapterName,
    pub version: AdapterVersion,
    /// 1, 2, 3 ... in upload order (`name@v2`).
    pub number: u32,
    pub size_bytes: u64,
    pub rank: u32,
    pub targets: Vec<String>,
    pub base_model: String,
    pub base_architecture: String,
    pub declared_base: Option<String>,
    pub warnings: Vec<String>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    /// The aliases pointing at this version.
    pub aliases: Vec<AdapterAlias>,
    /// The default `response_format` of those aliases that have one (as the tenant set it).
    pub alias_formats: Vec<(AdapterAlias, serde_json::Value)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdapterRecord {
    pub name: AdapterName,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    /// Oldest first.
    pub versions: Vec<AdapterVersionRecord>,
}

/// The outcome of a delete: done (with the versions whose files no row references any more, to
/// be removed from the blob store), or refused because aliases still point at what it would delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Removed { unreferenced: Vec<AdapterVersion> },
    AliasedBy(Vec<AdapterAlias>),
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    tenant_id: Uuid,
    adapter_name: String,
    digest: String,
    number: i32,
    size_bytes: i64,
    rank: i32,
    targets: Vec<String>,
    base_model: String,
    base_architecture: String,
    declared_base: Option<String>,
    warnings: Vec<String>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
}

impl VersionRow {
    fn into_record(
        self,
        aliases: Vec<AdapterAlias>,
        alias_formats: Vec<(AdapterAlias, serde_json::Value)>,
    ) -> Result<AdapterVersionRecord> {
        let bad = |e: enclave_domain::DomainError| StoreError::corrupt("adapter version", e);
        Ok(AdapterVersionRecord {
            tenant_id: TenantId::from_uuid(self.tenant_id),
            name: AdapterName::parse(&self.adapter_name).map_err(bad)?,
            version: AdapterVersion::parse(&self.digest).map_err(bad)?,
            number: self.number.unsigned_abs(),
            size_bytes: self.size_bytes.unsigned_abs(),
            rank: self.rank.unsigned_abs(),
            targets: self.targets,
            base_model: self.base_model,
            base_architecture: self.base_architecture,
            declared_base: self.declared_base,
            warnings: self.warnings,
            created_by: self.created_by.map(UserId::from_uuid),
            created_at: self.created_at,
            aliases,
            alias_formats,
        })
    }
}

macro_rules! version_cols {
    () => {
        "v.tenant_id, v.adapter_name, v.digest, v.number, v.size_bytes, v.rank, v.targets, v.base_model, \
         v.base_architecture, v.declared_base, v.warnings, v.created_by, v.created_at"
    };
}

const BY_ALIAS: &str = concat!(
    "SELECT ",
    version_cols!(),
    " FROM adapter_aliases a JOIN adapter_versions v USING (tenant_id, adapter_name, digest) \
     WHERE a.tenant_id = $1 AND a.adapter_name = $2 AND a.alias = $3"
);
const BY_NUMBER: &str = concat!(
    "SELECT ",
    version_cols!(),
    " FROM adapter_versions v WHERE v.tenant_id = $1 AND v.adapter_name = $2 AND v.number = $3"
);
// The prefix is lowercase hex (AdapterSelector::Digest), so it holds no LIKE wildcard.
const BY_DIGEST_PREFIX: &str = concat!(
    "SELECT ",
    version_cols!(),
    " FROM adapter_versions v WHERE v.tenant_id = $1 AND v.adapter_name = $2 AND v.digest LIKE $3 || '%' LIMIT 2"
);
const OF_ADAPTER: &str = concat!(
    "SELECT ",
    version_cols!(),
    " FROM adapter_versions v WHERE v.tenant_id = $1 AND v.adapter_name = $2 ORDER BY v.number"
);
const OF_TENANT: &str = concat!(
    "SELECT ",
    version_cols!(),
    " FROM adapter_versions v WHERE v.tenant_id = $1 ORDER BY v.adapter_name, v.number"
);

fn not_found() -> StoreError {
    StoreError::NotFound { entity: "adapter" }
}

fn to_i32(field: &'static str, v: u32) -> Result<i32> {
    i32::try_from(v).map_err(|_| StoreError::Invalid {
        field,
        reason: "too large".into(),
    })
}

/// The version `selector` names within one adapter, or `None`.
async fn find(
    conn: &mut PgConnection,
    tenant: &TenantId,
    name: &AdapterName,
    selector: &AdapterSelector,
) -> Result<Option<VersionRow>> {
    let (t, n) = (tenant.as_uuid(), name.as_str());
    let rows: Vec<VersionRow> = match selector {
        AdapterSelector::Alias(alias) => {
            sqlx::query_as(BY_ALIAS)
                .bind(t)
                .bind(n)
                .bind(alias.as_str())
                .fetch_all(&mut *conn)
                .await?
        }
        AdapterSelector::Number(num) => {
            sqlx::query_as(BY_NUMBER)
                .bind(t)
                .bind(n)
                .bind(to_i32("version", *num)?)
                .fetch_all(&mut *conn)
                .await?
        }
        AdapterSelector::Digest(prefix) => {
            sqlx::query_as(BY_DIGEST_PREFIX)
                .bind(t)
                .bind(n)
                .bind(prefix.as_str())
                .fetch_all(&mut *conn)
                .await?
        }
    };
    if rows.len() > 1 {
        return Err(StoreError::Invalid {
            field: "version",
            reason: format!(
                "digest prefix {selector} matches several versions; give more characters"
            ),
        });
    }
    Ok(rows.into_iter().next())
}

/// One alias row: adapter name, alias, digest, default `response_format`.
type AliasRow = (String, AdapterAlias, String, Option<serde_json::Value>);

/// `alias` → digest (and default format) for every alias of `name` (or of the tenant when
/// `name` is `None`).
async fn aliases(
    conn: &mut PgConnection,
    tenant: &TenantId,
    name: Option<&AdapterName>,
) -> Result<Vec<AliasRow>> {
    let rows: Vec<(String, String, String, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT adapter_name, alias, digest, default_response_format FROM adapter_aliases
         WHERE tenant_id = $1 AND ($2::text IS NULL OR adapter_name = $2) ORDER BY alias",
    )
    .bind(tenant.as_uuid())
    .bind(name.map(AdapterName::as_str))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(n, a, d, f)| {
            Ok((
                n,
                AdapterAlias::parse(&a).map_err(|e| StoreError::corrupt("adapter alias", e))?,
                d,
                f,
            ))
        })
        .collect()
}

fn records(rows: Vec<VersionRow>, aliases: &[AliasRow]) -> Result<Vec<AdapterVersionRecord>> {
    rows.into_iter()
        .map(|r| {
            let mine: Vec<&AliasRow> = aliases
                .iter()
                .filter(|(n, _, d, _)| *n == r.adapter_name && *d == r.digest)
                .collect();
            let formats = mine
                .iter()
                .filter_map(|(_, a, _, f)| Some((a.clone(), f.clone()?)))
                .collect();
            r.into_record(
                mine.into_iter().map(|(_, a, _, _)| a.clone()).collect(),
                formats,
            )
        })
        .collect()
}

/// Digests among `candidates` that no version row of the tenant references any more.
async fn unreferenced(
    conn: &mut PgConnection,
    tenant: &TenantId,
    candidates: Vec<String>,
) -> Result<Vec<AdapterVersion>> {
    let still: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT digest FROM adapter_versions WHERE tenant_id = $1 AND digest = ANY($2)",
    )
    .bind(tenant.as_uuid())
    .bind(&candidates)
    .fetch_all(&mut *conn)
    .await?;
    candidates
        .into_iter()
        .filter(|d| !still.contains(d))
        .map(|d| AdapterVersion::parse(&d).map_err(|e| StoreError::corrupt("adapter version", e)))
        .collect()
}

pub struct Adapters<'s> {
    pub(crate) store: &'s Store,
}

impl Adapters<'_> {
    /// Records a validated version (creating the adapter on its first version) and moves
    /// `new.aliases` to it. Uploading content the adapter already has is idempotent: the existing
    /// version is returned with `false`.
    pub async fn create_version(
        &self,
        tenant: &TenantId,
        new: NewAdapterVersion,
    ) -> Result<(AdapterVersionRecord, bool)> {
        let size = i64::try_from(new.size_bytes).map_err(|_| StoreError::Invalid {
            field: "size_bytes",
            reason: "too large".into(),
        })?;
        let mut tx = self.store.tenant_tx(tenant).await?;
        sqlx::query("INSERT INTO adapters (tenant_id, name, created_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(tenant.as_uuid())
            .bind(new.name.as_str())
            .bind(new.created_by.map(|u| *u.as_uuid()))
            .execute(&mut *tx)
            .await?;
        // The row lock orders concurrent uploads to one adapter (version numbers stay gapless).
        let number: i32 = sqlx::query_scalar(
            "SELECT next_number FROM adapters WHERE tenant_id = $1 AND name = $2 FOR UPDATE",
        )
        .bind(tenant.as_uuid())
        .bind(new.name.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let existing = sqlx::query_scalar::<_, String>(
            "SELECT digest FROM adapter_versions WHERE tenant_id = $1 AND adapter_name = $2 AND digest = $3",
        )
        .bind(tenant.as_uuid())
        .bind(new.name.as_str())
        .bind(new.version.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let created = existing.is_none();
        if created {
            sqlx::query(
                "INSERT INTO adapter_versions (tenant_id, adapter_name, digest, number, size_bytes, rank, targets,
                     base_model, base_architecture, declared_base, warnings, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(tenant.as_uuid())
            .bind(new.name.as_str())
            .bind(new.version.as_str())
            .bind(number)
            .bind(size)
            .bind(to_i32("rank", new.rank)?)
            .bind(&new.targets)
            .bind(&new.base_model)
            .bind(&new.base_architecture)
            .bind(&new.declared_base)
            .bind(&new.warnings)
            .bind(new.created_by.map(|u| *u.as_uuid()))
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE adapters SET next_number = next_number + 1 WHERE tenant_id = $1 AND name = $2")
                .bind(tenant.as_uuid())
                .bind(new.name.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for alias in &new.aliases {
            upsert_alias(
                &mut tx,
                tenant,
                &new.name,
                alias,
                new.version.as_str(),
                new.created_by,
            )
            .await?;
        }
        let selector = AdapterSelector::Digest(DigestPrefix::from(&new.version));
        let row = find(&mut tx, tenant, &new.name, &selector)
            .await?
            .ok_or_else(not_found)?;
        let all = aliases(&mut tx, tenant, Some(&new.name)).await?;
        tx.commit().await?;
        let record = records(vec![row], &all)?.pop().ok_or_else(not_found)?;
        Ok((record, created))
    }

    /// Every adapter of the tenant with its versions, by name.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<AdapterRecord>> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let heads: Vec<(String, Option<Uuid>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT name, created_by, created_at FROM adapters WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant.as_uuid())
        .fetch_all(&mut *tx)
        .await?;
        let rows: Vec<VersionRow> = sqlx::query_as(OF_TENANT)
            .bind(tenant.as_uuid())
            .fetch_all(&mut *tx)
            .await?;
        let all = aliases(&mut tx, tenant, None).await?;
        tx.commit().await?;
        let mut versions = records(rows, &all)?;
        heads
            .into_iter()
            .map(|(name, by, at)| {
                let name =
                    AdapterName::parse(&name).map_err(|e| StoreError::corrupt("adapter", e))?;
                let (mine, rest): (Vec<_>, Vec<_>) =
                    versions.drain(..).partition(|v| v.name == name);
                versions = rest;
                Ok(AdapterRecord {
                    name,
                    created_by: by.map(UserId::from_uuid),
                    created_at: at,
                    versions: mine,
                })
            })
            .collect()
    }

    pub async fn get(&self, tenant: &TenantId, name: &AdapterName) -> Result<AdapterRecord> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let head: Option<(Option<Uuid>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT created_by, created_at FROM adapters WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant.as_uuid())
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let (by, at) = head.ok_or_else(not_found)?;
        let rows: Vec<VersionRow> = sqlx::query_as(OF_ADAPTER)
            .bind(tenant.as_uuid())
            .bind(name.as_str())
            .fetch_all(&mut *tx)
            .await?;
        let all = aliases(&mut tx, tenant, Some(name)).await?;
        tx.commit().await?;
        Ok(AdapterRecord {
            name: name.clone(),
            created_by: by.map(UserId::from_uuid),
            created_at: at,
            versions: records(rows, &all)?,
        })
    }

    /// The version a request's `model` names; `NotFound` for unknown names, aliases and
    /// versions alike (and for another tenant's adapters).
    pub async fn resolve(&self, tenant: &TenantId, r: &AdapterRef) -> Result<AdapterVersionRecord> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row = find(&mut tx, tenant, &r.name, &r.selector)
            .await?
            .ok_or_else(not_found)?;
        let all = aliases(&mut tx, tenant, Some(&r.name)).await?;
        tx.commit().await?;
        records(vec![row], &all)?.pop().ok_or_else(not_found)
    }

    /// Points `alias` of `name` at the version `target` selects (which may be another alias).
    pub async fn set_alias(
        &self,
        tenant: &TenantId,
        name: &AdapterName,
        alias: &AdapterAlias,
        target: &AdapterSelector,
        by: Option<UserId>,
    ) -> Result<AdapterVersionRecord> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row = find(&mut tx, tenant, name, target)
            .await?
            .ok_or_else(not_found)?;
        upsert_alias(&mut tx, tenant, name, alias, &row.digest, by).await?;
        let all = aliases(&mut tx, tenant, Some(name)).await?;
        tx.commit().await?;
        records(vec![row], &all)?.pop().ok_or_else(not_found)
    }

    pub async fn delete_alias(
        &self,
        tenant: &TenantId,
        name: &AdapterName,
        alias: &AdapterAlias,
    ) -> Result<()> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let done = sqlx::query(
            "DELETE FROM adapter_aliases WHERE tenant_id = $1 AND adapter_name = $2 AND alias = $3",
        )
        .bind(tenant.as_uuid())
        .bind(name.as_str())
        .bind(alias.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { entity: "alias" });
        }
        Ok(())
    }

    /// Deletes one version unless an alias points at it.
    pub async fn delete_version(
        &self,
        tenant: &TenantId,
        name: &AdapterName,
        selector: &AdapterSelector,
    ) -> Result<Removal> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row = find(&mut tx, tenant, name, selector)
            .await?
            .ok_or_else(not_found)?;
        let pointing: Vec<AdapterAlias> = aliases(&mut tx, tenant, Some(name))
            .await?
            .into_iter()
            .filter(|(_, _, d, _)| *d == row.digest)
            .map(|(_, a, _, _)| a)
            .collect();
        if !pointing.is_empty() {
            return Ok(Removal::AliasedBy(pointing));
        }
        sqlx::query("DELETE FROM adapter_versions WHERE tenant_id = $1 AND adapter_name = $2 AND digest = $3")
            .bind(tenant.as_uuid())
            .bind(name.as_str())
            .bind(&row.digest)
            .execute(&mut *tx)
            .await?;
        let unreferenced = unreferenced(&mut tx, tenant, vec![row.digest]).await?;
        tx.commit().await?;
        Ok(Removal::Removed { unreferenced })
    }

    /// Deletes an adapter and all its versions unless it still has aliases.
    pub async fn delete(&self, tenant: &TenantId, name: &AdapterName) -> Result<Removal> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let exists: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM adapters WHERE tenant_id = $1 AND name = $2 FOR UPDATE",
        )
        .bind(tenant.as_uuid())
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        exists.ok_or_else(not_found)?;
        let pointing: Vec<AdapterAlias> = aliases(&mut tx, tenant, Some(name))
            .await?
            .into_iter()
            .map(|(_, a, _, _)| a)
            .collect();
        if !pointing.is_empty() {
            return Ok(Removal::AliasedBy(pointing));
        }
        let digests: Vec<String> =
            sqlx::query_scalar("DELETE FROM adapter_versions WHERE tenant_id = $1 AND adapter_name = $2 RETURNING digest")
                .bind(tenant.as_uuid())
                .bind(name.as_str())
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM adapters WHERE tenant_id = $1 AND name = $2")
            .bind(tenant.as_uuid())
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        let unreferenced = unreferenced(&mut tx, tenant, digests).await?;
        tx.commit().await?;
        Ok(Removal::Removed { unreferenced })
    }

    /// Whether any version row of the tenant references `version` (the blob store asks before
    /// removing files, and an upload that lost a race checks before cleaning up).
    pub async fn is_referenced(&self, tenant: &TenantId, version: &AdapterVersion) -> Result<bool> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM adapter_versions WHERE tenant_id = $1 AND digest = $2",
        )
        .bind(tenant.as_uuid())
        .bind(version.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n > 0)
    }
}

async fn upsert_alias(
    conn: &mut PgConnection,
    tenant: &TenantId,
    name: &AdapterName,
    alias: &AdapterAlias,
    digest: &str,
    by: Option<UserId>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO adapter_aliases (tenant_id, adapter_name, alias, digest, updated_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, adapter_name, alias) DO UPDATE SET digest = $4, updated_by = $5, updated_at = now()",
    )
    .bind(tenant.as_uuid())
    .bind(name.as_str())
    .bind(alias.as_str())
    .bind(digest)
    .bind(by.map(|u| *u.as_uuid()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
