//! A tenant's output templates: immutable versions (1, 2, ...) per template name and the one
//! active version per name (the newest unless rolled back), plus the default `response_format`
//! of an API key and of an adapter alias.
//!
//! The store keeps schema and template exactly as submitted; compiling the schema and parsing
//! the template belong to the gateway and happen *before* a version is written, so a rejected
//! template never becomes a version.

use chrono::{DateTime, Utc};
use enclave_domain::{AdapterAlias, AdapterName, ApiKeyId, TenantId, UserId};
use serde_json::Value;
use uuid::Uuid;

use crate::{Result, Store, StoreError};

/// One stored version of a template.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTemplate {
    pub tenant_id: TenantId,
    pub name: String,
    pub version: u32,
    pub schema: Value,
    pub template: String,
    pub comment: Option<String>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    /// Whether this is the version requests naming the template without `@v<n>` get.
    pub active: bool,
}

/// The outcome of [`OutputTemplates::activate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    /// The version that was active before.
    pub previous: u32,
    /// The now active version.
    pub active: OutputTemplate,
}

/// A validated template to store as the next version of `name` (and make active).
#[derive(Debug, Clone)]
pub struct NewOutputTemplate {
    pub name: String,
    pub schema: Value,
    pub template: String,
    pub comment: Option<String>,
    pub created_by: Option<UserId>,
}

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: Uuid,
    name: String,
    version: i32,
    schema: Value,
    template: String,
    comment: Option<String>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    active: bool,
}

impl Row {
    fn into_template(self) -> Result<OutputTemplate> {
        Ok(OutputTemplate {
            tenant_id: TenantId::from_uuid(self.tenant_id),
            name: self.name,
            version: u32::try_from(self.version)
                .map_err(|_| StoreError::corrupt("output template", "negative version"))?,
            schema: self.schema,
            template: self.template,
            comment: self.comment,
            created_by: self.created_by.map(UserId::from_uuid),
            created_at: self.created_at,
            active: self.active,
        })
    }
}

const NOT_FOUND: StoreError = StoreError::NotFound {
    entity: "output template",
};

/// The select list and join of a version with its active flag (sqlx takes `&'static str` only,
/// so the queries are assembled with `concat!`).
macro_rules! select_versions {
    () => {
        "SELECT v.tenant_id, v.name, v.version, v.schema, v.template, v.comment, v.created_by,
                v.created_at, (a.version IS NOT NULL) AS active
           FROM output_template_versions v
           LEFT JOIN output_template_active a
                  ON a.tenant_id = v.tenant_id AND a.name = v.name AND a.version = v.version "
    };
}

pub struct OutputTemplates<'s> {
    pub(crate) store: &'s Store,
}

impl OutputTemplates<'_> {
    /// Appends the next version of `new.name` (one past its highest) and makes it active.
    pub async fn create(
        &self,
        tenant: &TenantId,
        new: NewOutputTemplate,
    ) -> Result<OutputTemplate> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        // Serialises concurrent creates of one tenant, so version numbers never collide.
        sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
            .bind(tenant.as_uuid())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound { entity: "tenant" })?;
        let version: i32 = sqlx::query_scalar(
            "INSERT INTO output_template_versions
                    (tenant_id, name, version, schema, template, comment, created_by)
             SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6
               FROM output_template_versions WHERE tenant_id = $1 AND name = $2
             RETURNING version",
        )
        .bind(tenant.as_uuid())
        .bind(&new.name)
        .bind(&new.schema)
        .bind(&new.template)
        .bind(&new.comment)
        .bind(new.created_by.map(|u| *u.as_uuid()))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO output_template_active (tenant_id, name, version, activated_by)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, name) DO UPDATE
                SET version = EXCLUDED.version, activated_by = EXCLUDED.activated_by,
                    activated_at = now()",
        )
        .bind(tenant.as_uuid())
        .bind(&new.name)
        .bind(version)
        .bind(new.created_by.map(|u| *u.as_uuid()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let version = u32::try_from(version)
            .map_err(|_| StoreError::corrupt("output template", "negative version"))?;
        self.get(tenant, &new.name, Some(version)).await
    }

    /// Every version of every template of the tenant, by name, newest version first.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<OutputTemplate>> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let rows: Vec<Row> = sqlx::query_as(concat!(
            select_versions!(),
            "WHERE v.tenant_id = $1 ORDER BY v.name, v.version DESC"
        ))
        .bind(tenant.as_uuid())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(Row::into_template).collect()
    }

    /// Version `version` of `name`, or its active version when `None`.
    pub async fn get(
        &self,
        tenant: &TenantId,
        name: &str,
        version: Option<u32>,
    ) -> Result<OutputTemplate> {
        let version = version
            .map(|v| i32::try_from(v).map_err(|_| NOT_FOUND))
            .transpose()?;
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Option<Row> = sqlx::query_as(concat!(
            select_versions!(),
            "WHERE v.tenant_id = $1 AND v.name = $2
               AND (v.version = $3 OR ($3::integer IS NULL AND a.version IS NOT NULL))"
        ))
        .bind(tenant.as_uuid())
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.ok_or(NOT_FOUND)?.into_template()
    }

    /// The default `response_format` of an API key (`None`: none set, or no such key here).
    pub async fn key_default(&self, tenant: &TenantId, key: &ApiKeyId) -> Result<Option<Value>> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let v: Option<Option<Value>> = sqlx::query_scalar(
            "SELECT default_response_format FROM api_keys WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_uuid())
        .bind(key.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(v.flatten())
    }

    /// Sets (or with `None` clears) the default `response_format` of an API key; returns the
    /// previous one (for the audit record's before/after).
    pub async fn set_key_default(
        &self,
        tenant: &TenantId,
        key: &ApiKeyId,
        format: Option<&Value>,
    ) -> Result<Option<Value>> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let before: Option<Option<Value>> = sqlx::query_scalar(
            "SELECT default_response_format FROM api_keys WHERE tenant_id = $1 AND id = $2
             FOR UPDATE",
        )
        .bind(tenant.as_uuid())
        .bind(key.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        let before = before.ok_or(StoreError::NotFound { entity: "api key" })?;
        sqlx::query(
            "UPDATE api_keys SET default_response_format = $3 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_uuid())
        .bind(key.as_uuid())
        .bind(format)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(before)
    }

    /// Sets (or with `None` clears) the default `response_format` of an adapter alias (requests
    /// naming `name@alias`, or `name` for `prod`); returns the previous one. The default stays
    /// with the alias when it is moved to another version and goes when it is deleted.
    pub async fn set_alias_default(
        &self,
        tenant: &TenantId,
        name: &AdapterName,
        alias: &AdapterAlias,
        format: Option<&Value>,
    ) -> Result<Option<Value>> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let before: Option<Option<Value>> = sqlx::query_scalar(
            "SELECT default_response_format FROM adapter_aliases
              WHERE tenant_id = $1 AND adapter_name = $2 AND alias = $3 FOR UPDATE",
        )
        .bind(tenant.as_uuid())
        .bind(name.as_str())
        .bind(alias.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let before = before.ok_or(StoreError::NotFound { entity: "alias" })?;
        sqlx::query(
            "UPDATE adapter_aliases SET default_response_format = $4
              WHERE tenant_id = $1 AND adapter_name = $2 AND alias = $3",
        )
        .bind(tenant.as_uuid())
        .bind(name.as_str())
        .bind(alias.as_str())
        .bind(format)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(before)
    }

    /// Makes the stored `version` of `name` the active one again (rollback, or forward again
    /// after one). Versions are immutable: only the active pointer moves. `NotFound` for an
    /// unknown name; `Ok(None)` when the name exists but the version does not.
    pub async fn activate(
        &self,
        tenant: &TenantId,
        name: &str,
        version: u32,
        by: Option<UserId>,
    ) -> Result<Option<Activation>> {
        let version_i32 = i32::try_from(version).ok();
        let mut tx = self.store.tenant_tx(tenant).await?;
        let previous: Option<i32> = sqlx::query_scalar(
            "SELECT version FROM output_template_active WHERE tenant_id = $1 AND name = $2
             FOR UPDATE",
        )
        .bind(tenant.as_uuid())
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let previous = previous.ok_or(NOT_FOUND)?;
        let exists: Option<i32> = sqlx::query_scalar(
            "SELECT version FROM output_template_versions
              WHERE tenant_id = $1 AND name = $2 AND version = $3",
        )
        .bind(tenant.as_uuid())
        .bind(name)
        .bind(version_i32)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(target) = exists else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE output_template_active
                SET version = $3, activated_by = $4, activated_at = now()
              WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant.as_uuid())
        .bind(name)
        .bind(target)
        .bind(by.map(|u| *u.as_uuid()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let previous = u32::try_from(previous)
            .map_err(|_| StoreError::corrupt("output template", "negative version"))?;
        Ok(Some(Activation {
            previous,
            active: self.get(tenant, name, Some(version)).await?,
        }))
    }
}
