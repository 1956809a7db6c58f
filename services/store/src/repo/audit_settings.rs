//! A tenant's audit settings (redaction mode, retention), one row per chain; see migration 0103.

use chrono::{DateTime, Utc};
use enclave_domain::{AuditRedaction, RetentionDays, TenantId, UserId};
use serde::Serialize;

use crate::{Result, Store, StoreError};

/// What a chain's settings are; [`AuditSettings::default`] (raw, kept forever) when none were set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AuditSettings {
    pub redaction: AuditRedaction,
    /// `None`: kept forever.
    pub retention_days: Option<RetentionDays>,
    /// When they were last changed (`None`: never set, the defaults apply).
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<UserId>,
}

type Row = (String, Option<i32>, DateTime<Utc>, Option<uuid::Uuid>);

fn from_row((redaction, days, at, by): Row) -> Result<AuditSettings> {
    let invalid = |field, reason: String| StoreError::Invalid { field, reason };
    Ok(AuditSettings {
        redaction: redaction
            .parse()
            .map_err(|e: enclave_domain::DomainError| invalid("redaction", e.to_string()))?,
        retention_days: days
            .map(|d| RetentionDays::new(i64::from(d)))
            .transpose()
            .map_err(|e| invalid("retention_days", e.to_string()))?,
        updated_at: Some(at),
        updated_by: by.map(UserId::from),
    })
}

pub struct AuditSettingsRepo<'s> {
    pub(crate) store: &'s Store,
}

impl AuditSettingsRepo<'_> {
    /// The settings of `tenant`'s chain (the defaults when never set).
    pub async fn get(&self, tenant: &TenantId) -> Result<AuditSettings> {
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Option<Row> = sqlx::query_as(
            "SELECT redaction, retention_days, updated_at, updated_by
             FROM audit_settings WHERE tenant_id = $1",
        )
        .bind(tenant.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map_or(Ok(AuditSettings::default()), from_row)
    }

    /// Replaces `tenant`'s settings; returns them as stored.
    pub async fn set(
        &self,
        tenant: &TenantId,
        redaction: AuditRedaction,
        retention_days: Option<RetentionDays>,
        by: Option<&UserId>,
    ) -> Result<AuditSettings> {
        let days = retention_days.map(|d| i32::try_from(d.days()).unwrap_or(i32::MAX));
        let mut tx = self.store.tenant_tx(tenant).await?;
        let row: Row = sqlx::query_as(
            "INSERT INTO audit_settings AS s (tenant_id, redaction, retention_days, updated_by)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id) DO UPDATE
               SET redaction = excluded.redaction, retention_days = excluded.retention_days,
                   updated_by = excluded.updated_by, updated_at = now()
             RETURNING redaction, retention_days, updated_at, updated_by",
        )
        .bind(tenant.as_uuid())
        .bind(redaction.as_str())
        .bind(days)
        .bind(by.map(|u| *u.as_uuid()))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        from_row(row)
    }
}
