//! A tenant's trained classifiers: named, each training run an immutable version (1, 2, ...)
//! kept with its model, thresholds and held-out metrics.
//!
//! Training and validation belong to `enclave-policy` and the gateway and happen *before* a
//! version is written; the store keeps what it is given, byte for byte (the model JSON), so a
//! version reads back exactly as it was evaluated.

use chrono::{DateTime, Utc};
use enclave_domain::{TenantId, UserId};
use serde::Serialize;
use uuid::Uuid;

use crate::{Result, Store, StoreError};

/// A version as listed (without its model).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassifierVersionInfo {
    pub tenant_id: TenantId,
    pub name: String,
    pub version: u32,
    /// Sorted label names.
    pub labels: Vec<String>,
    /// `{"<label>": threshold}`.
    pub thresholds: serde_json::Value,
    /// Held-out evaluation as the gateway computed it.
    pub metrics: serde_json::Value,
    /// Training hyper-parameters.
    pub config: serde_json::Value,
    pub train_examples: u32,
    pub holdout_examples: u32,
    pub data_sha256: String,
    pub comment: Option<String>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
}

/// A version with its trained model (the policy crate's JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierVersion {
    pub info: ClassifierVersionInfo,
    pub model: String,
}

/// A trained, evaluated model to store as the next version of `name`.
#[derive(Debug, Clone)]
pub struct NewClassifierVersion {
    pub name: String,
    pub labels: Vec<String>,
    pub model: String,
    pub thresholds: serde_json::Value,
    pub metrics: serde_json::Value,
    pub config: serde_json::Value,
    pub train_examples: u32,
    pub holdout_examples: u32,
    pub data_sha256: String,
    pub comment: Option<String>,
    pub created_by: Option<UserId>,
}

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: Uuid,
    name: String,
    version: i32,
    labels: Vec<String>,
    thresholds: serde_json::Value,
    metrics: serde_json::Value,
    config: serde_json::Value,
    train_examples: i32,
    holdout_examples: i32,
    data_sha256: String,
    comment: Option<String>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    model: Option<String>,
}

const ENTITY: &str = "classifier version";
const NOT_FOUND: StoreError = StoreError::NotFound { entity: ENTITY };

fn count(v: i32) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::corrupt(ENTITY, "negative count"))
}

impl Row {
    fn into_version(mut self) -> Result<ClassifierVersion> {
        let model = self.model.take().unwrap_or_default();
        Ok(ClassifierVersion {
            info: self.into_info()?,
            model,
        })
    }

    fn into_info(self) -> Result<ClassifierVersionInfo> {
        Ok(ClassifierVersionInfo {
            tenant_id: TenantId::from_uuid(self.tenant_id),
            name: self.name,
            version: count(self.version)?,
            labels: self.labels,
            thresholds: self.thresholds,
            metrics: self.metrics,
            config: self.config,
            train_examples: count(self.train_examples)?,
            holdout_examples: count(self.holdout_examples)?,
            data_sha256: self.data_sha256,
            comment: self.comment,
            created_by: self.created_by.map(UserId::from_uuid),
            created_at: self.created_at,
        })
    }
}

fn to_i32(v: u32) -> Result<i32> {
    i32::try_from(v).map_err(|_| NOT_FOUND)
}

/// Columns of a listing (the model, the large part, left out); a macro so queries stay
/// `&'static str`.
macro_rules! info_columns {
    () => {
        "tenant_id, name, version, labels, thresholds, metrics, config, train_examples, \
         holdout_examples, data_sha256, comment, created_by, created_at"
    };
}

pub struct Classifiers<'s> {
    pub(crate) store: &'s Store,
}

impl Classifiers<'_> {
    /// Appends the next version of `new.name` (one past its highest, 1 for a new name).
    pub async fn create(
        &self,
        tenant: &TenantId,
        new: NewClassifierVersion,
    ) -> Result<ClassifierVersion> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        // Serialises concurrent creates of one tenant, so version numbers never collide.
        sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
            .bind(tenant.as_uuid())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound { entity: "tenant" })?;
        let row: Row = sqlx::query_as(
            "INSERT INTO classifier_versions (tenant_id, name, version, labels, model, thresholds,
                 metrics, config, train_examples, holdout_examples, data_sha256, comment, created_by)
             SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
               FROM classifier_versions WHERE tenant_id = $1 AND name = $2
             RETURNING tenant_id, name, version, labels, thresholds, metrics, config,
                       train_examples, holdout_examples, data_sha256, comment, created_by,
                       created_at, model",
        )
        .bind(tenant.as_uuid())
        .bind(&new.name)
        .bind(&new.labels)
        .bind(&new.model)
        .bind(&new.thresholds)
        .bind(&new.metrics)
        .bind(&new.config)
        .bind(i32::try_from(new.train_examples).unwrap_or(i32::MAX))
        .bind(i32::try_from(new.holdout_examples).unwrap_or(i32::MAX))
        .bind(&new.data_sha256)
        .bind(&new.comment)
        .bind(new.created_by.map(|u| *u.as_uuid()))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        row.into_version()
    }

    /// Every version of every classifier of the tenant: by name, newest version first.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<ClassifierVersionInfo>> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let rows: Vec<Row> = sqlx::query_as(concat!(
            "SELECT ",
            info_columns!(),
            ", NULL::text AS model FROM classifier_versions
              WHERE tenant_id = $1 ORDER BY name, version DESC"
        ))
        .bind(tenant.as_uuid())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(Row::into_info).collect()
    }

    /// One version with its model.
    pub async fn get(
        &self,
        tenant: &TenantId,
        name: &str,
        version: u32,
    ) -> Result<ClassifierVersion> {
        let version = to_i32(version)?;
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Option<Row> = sqlx::query_as(concat!(
            "SELECT ",
            info_columns!(),
            ", model FROM classifier_versions
              WHERE tenant_id = $1 AND name = $2 AND version = $3"
        ))
        .bind(tenant.as_uuid())
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.ok_or(NOT_FOUND)?.into_version()
    }

    /// The newest version of `name` with its model.
    pub async fn latest(&self, tenant: &TenantId, name: &str) -> Result<ClassifierVersion> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Option<Row> = sqlx::query_as(concat!(
            "SELECT ",
            info_columns!(),
            ", model FROM classifier_versions
              WHERE tenant_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1"
        ))
        .bind(tenant.as_uuid())
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.ok_or(NOT_FOUND)?.into_version()
    }
}
