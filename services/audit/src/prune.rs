//! Retention: dropping whole monthly partitions (owner role only), by an explicit cutoff or by
//! each chain's retention setting (`audit_settings.retention_days`).
//!
//! Records are never deleted one by one (the table is append-only). A partition holds one month
//! of every chain, so dropping one removes a prefix of each chain in it; to keep every chain
//! verifiable, prune only ever drops a prefix of the months: it walks them oldest first and
//! stops at the first month it must keep. `audit_prune_partitions` records each chain's last
//! dropped (seq, hash) as the anchor verification resumes from.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Months, NaiveDate, Utc};
use enclave_domain::TenantId;
use serde::Serialize;
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{AuditActor, AuditError, AuditRecord, AuditWriter, PLATFORM_CHAIN};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedPartition {
    pub name: String,
    pub rows: u64,
}

/// One monthly partition as a prune plan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionInfo {
    pub name: String,
    /// Rows are stored in `[month_start, ends)` (UTC).
    pub month_start: DateTime<Utc>,
    pub ends: DateTime<Utc>,
    pub rows: u64,
    /// Records per chain in this month.
    pub chains: BTreeMap<TenantId, u64>,
}

/// Why a month was kept (the first month a retention prune could not drop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptPartition {
    pub name: String,
    /// A chain with records in it that is not past its retention.
    pub tenant: TenantId,
    /// `None`: that chain keeps its records forever (no retention set).
    pub retention_days: Option<u32>,
    /// When that chain's records of this month are past their retention.
    pub droppable_from: Option<DateTime<Utc>>,
}

/// What a prune drops (or would drop: `--dry-run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunePlan {
    /// `before` (explicit cutoff) or `retention`.
    pub mode: &'static str,
    /// Months ending at or before this go; `None` when nothing goes.
    pub cutoff: Option<DateTime<Utc>>,
    /// Oldest first.
    pub partitions: Vec<PartitionInfo>,
    /// Retention mode: the month prune stopped at, and the chain that keeps it.
    pub kept: Option<KeptPartition>,
}

/// The month a partition named `audit_events_pYYYYMM` holds: `[start, end)`.
fn month_of(name: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let digits = name.strip_prefix("audit_events_p")?;
    if digits.len() != 6 {
        return None;
    }
    let (y, m) = (digits[..4].parse().ok()?, digits[4..].parse().ok()?);
    let start = NaiveDate::from_ymd_opt(y, m, 1)?;
    let end = start.checked_add_months(Months::new(1))?;
    Some((
        start.and_hms_opt(0, 0, 0)?.and_utc(),
        end.and_hms_opt(0, 0, 0)?.and_utc(),
    ))
}

async fn owner_tx(owner_pool: &PgPool) -> Result<Transaction<'static, Postgres>, AuditError> {
    let mut tx = owner_pool
        .begin()
        .await
        .map_err(AuditError::db("beginning the prune plan"))?;
    sqlx::query("SELECT set_config('enclave.rls_bypass', 'on', true)")
        .execute(&mut *tx)
        .await
        .map_err(AuditError::db("entering system context"))?;
    Ok(tx)
}

/// Every month partition, oldest first, with its rows per chain (months ending after `limit`
/// are not counted, and not returned).
async fn partitions(
    tx: &mut Transaction<'static, Postgres>,
    limit: DateTime<Utc>,
) -> Result<Vec<PartitionInfo>, AuditError> {
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'audit_events'::regclass AND c.relname ~ '^audit_events_p[0-9]{6}$'
         ORDER BY 1",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(AuditError::db("listing audit partitions"))?;
    let mut out = Vec::new();
    for (name,) in names {
        let Some((month_start, ends)) = month_of(&name) else {
            continue;
        };
        if ends > limit {
            break;
        }
        // The range selects exactly this partition (partition pruning: one table scanned).
        let counts: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT tenant_id, count(*) FROM audit_events
             WHERE inserted_at >= $1 AND inserted_at < $2 GROUP BY tenant_id",
        )
        .bind(month_start)
        .bind(ends)
        .fetch_all(&mut **tx)
        .await
        .map_err(AuditError::db("counting a partition's records"))?;
        let chains: BTreeMap<TenantId, u64> = counts
            .into_iter()
            .map(|(t, n)| (TenantId::from(t), u64::try_from(n).unwrap_or(0)))
            .collect();
        out.push(PartitionInfo {
            name,
            month_start,
            ends,
            rows: chains.values().sum(),
            chains,
        });
    }
    Ok(out)
}

/// What `prune(.., cutoff)` drops: every month ending at or before `cutoff`.
pub async fn plan_before(
    owner_pool: &PgPool,
    cutoff: DateTime<Utc>,
) -> Result<PrunePlan, AuditError> {
    let mut tx = owner_tx(owner_pool).await?;
    let partitions = partitions(&mut tx, cutoff).await?;
    tx.commit()
        .await
        .map_err(AuditError::db("ending the prune plan"))?;
    Ok(PrunePlan {
        mode: "before",
        cutoff: Some(cutoff),
        partitions,
        kept: None,
    })
}

/// What a retention prune at `now` drops: the oldest months, up to the first one holding a
/// record of a chain that is not past its retention (`retention_days` after the month's end)
/// or that keeps its records forever (no retention set, the default).
pub async fn plan_retention(
    owner_pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<PrunePlan, AuditError> {
    let mut tx = owner_tx(owner_pool).await?;
    let settings: Vec<(Uuid, Option<i32>)> =
        sqlx::query_as("SELECT tenant_id, retention_days FROM audit_settings")
            .fetch_all(&mut *tx)
            .await
            .map_err(AuditError::db("reading the retention settings"))?;
    let retention: HashMap<TenantId, u32> = settings
        .into_iter()
        .filter_map(|(t, d)| Some((TenantId::from(t), u32::try_from(d?).ok()?)))
        .collect();
    let all = partitions(&mut tx, now).await?;
    tx.commit()
        .await
        .map_err(AuditError::db("ending the prune plan"))?;
    let mut plan = PrunePlan {
        mode: "retention",
        cutoff: None,
        partitions: Vec::new(),
        kept: None,
    };
    for p in all {
        if let Some(kept) = keeper(&p, &retention, now) {
            plan.kept = Some(kept);
            break;
        }
        plan.cutoff = Some(p.ends);
        plan.partitions.push(p);
    }
    Ok(plan)
}

/// The first chain in `p` that is not past its retention at `now`, if any.
fn keeper(
    p: &PartitionInfo,
    retention: &HashMap<TenantId, u32>,
    now: DateTime<Utc>,
) -> Option<KeptPartition> {
    p.chains.keys().find_map(|t| {
        let days = retention.get(t).copied();
        let from = days.map(|d| p.ends + chrono::Duration::days(i64::from(d)));
        let past = from.is_some_and(|f| f <= now);
        (!past).then(|| KeptPartition {
            name: p.name.clone(),
            tenant: *t,
            retention_days: days,
            droppable_from: from,
        })
    })
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
    write_record(writer, operator, json!({ "cutoff": cutoff })).await?;
    drop_through(owner_pool, cutoff).await
}

/// Carries out `plan` (from [`plan_retention`] or [`plan_before`]): writes the `audit.prune`
/// record (mode, cutoff, the months planned) first, then drops the planned months.
pub async fn prune_planned(
    owner_pool: &PgPool,
    writer: &AuditWriter,
    operator: &str,
    plan: &PrunePlan,
) -> Result<Vec<DroppedPartition>, AuditError> {
    let names: Vec<&str> = plan.partitions.iter().map(|p| p.name.as_str()).collect();
    let request = json!({
        "mode": plan.mode,
        "cutoff": plan.cutoff,
        "partitions": names,
        "kept": plan.kept,
    });
    write_record(writer, operator, request).await?;
    match plan.cutoff {
        Some(cutoff) => drop_through(owner_pool, cutoff).await,
        None => Ok(Vec::new()),
    }
}

async fn write_record(
    writer: &AuditWriter,
    operator: &str,
    request: serde_json::Value,
) -> Result<(), AuditError> {
    let mut record = AuditRecord::new(
        PLATFORM_CHAIN,
        AuditActor::System {
            id: operator.to_owned(),
        },
        "audit.prune",
        request,
    );
    record.resource = Some("audit_events".into());
    writer.append(record).await.map(|_| ())
}

async fn drop_through(
    owner_pool: &PgPool,
    cutoff: DateTime<Utc>,
) -> Result<Vec<DroppedPartition>, AuditError> {
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
            rows: u64::try_from(rows).unwrap_or(0),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_give_their_month() {
        let (s, e) = month_of("audit_events_p202612").unwrap();
        assert_eq!(s.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(e.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert!(month_of("audit_events_p2026").is_none());
        assert!(month_of("audit_events_p202613").is_none());
    }

    #[test]
    fn a_chain_without_retention_or_not_yet_past_it_keeps_the_month() {
        let (month_start, ends) = month_of("audit_events_p202601").unwrap();
        let (a, b) = (TenantId::new(), TenantId::new());
        let p = PartitionInfo {
            name: "audit_events_p202601".into(),
            month_start,
            ends,
            rows: 2,
            chains: BTreeMap::from([(a, 1), (b, 1)]),
        };
        let now = ends + chrono::Duration::days(40);
        let mut retention = HashMap::from([(a, 30)]);
        assert_eq!(keeper(&p, &retention, now).map(|k| k.tenant), Some(b));
        retention.insert(b, 41);
        let kept = keeper(&p, &retention, now).unwrap();
        assert_eq!((kept.tenant, kept.retention_days), (b, Some(41)));
        retention.insert(b, 40);
        assert_eq!(keeper(&p, &retention, now), None);
    }
}
