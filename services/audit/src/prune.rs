//! Retention: dropping whole monthly partitions (owner role only).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use crate::{AuditActor, AuditError, AuditRecord, AuditWriter, PLATFORM_CHAIN};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedPartition {
    pub name: String,
    pub rows: u64,
}

/// Drops every audit partition whose month ends at or before `cutoff`. First writes (durably,
/// through `writer`) an `audit.prune` record in the platform chain naming the cutoff and the
/// operator; then, in one transaction as the owner (`owner_pool`), records each tenant's last
/// pruned (seq, hash) as its new chain anchor and drops the partitions.
pub async fn prune(
    owner_pool: &PgPool,
    writer: &AuditWriter,
    operator: &str,
    cutoff: DateTime<Utc>,
) -> Result<Vec<DroppedPartition>, AuditError> {
    let mut record = AuditRecord::new(
        PLATFORM_CHAIN,
        AuditActor::System {
            id: operator.to_owned(),
        },
        "audit.prune",
        json!({ "cutoff": cutoff }),
    );
    record.resource = Some("audit_events".into());
    writer.append(record).await?;
    let mut tx = owner_pool
        .begin()
        .await
        .map_err(AuditError::db("beginning the prune"))?;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT partition_name, row_count FROM audit_prune_partitions($1)")
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await
            .map_err(AuditError::db("dropping audit partitions"))?;
    tx.commit()
        .await
        .map_err(AuditError::db("committing the prune"))?;
    Ok(rows
        .into_iter()
        .map(|(name, rows)| DroppedPartition {
            name,
            rows: rows as u64,
        })
        .collect())
}
