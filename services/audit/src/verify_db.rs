//! Verifying a tenant's chain as stored in PostgreSQL.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use enclave_domain::TenantId;
use futures::TryStreamExt;
use sqlx::PgPool;
use uuid::Uuid;

use crate::AuditError;
use crate::canonical::ChainHash;
use crate::db::tenant_tx;
use crate::signing::{AuditPublicKey, Checkpoint, load_checkpoints};
use crate::verify::{ChainRow, ChainVerifier, Finding, VerifyReport};

/// Which seqs to verify (inclusive); `None` = from the chain's start / to its head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqRange {
    pub from: Option<u64>,
    pub to: Option<u64>,
}

type Row = (
    i64,
    Uuid,
    DateTime<Utc>,
    Vec<u8>,
    Vec<u8>,
    serde_json::Value,
);

/// Verifies `tenant`'s chain over `range`: recomputes every hash, names the first record that
/// is altered, missing, inserted or reordered, compares the chain head (when reading to the
/// end) and every checkpoint in the range. Checkpoints signed by a key in `trusted` must carry
/// a valid signature; with `trusted` empty only their hashes are compared. Reads in one
/// streamed pass (constant memory).
pub async fn verify_db(
    pool: &PgPool,
    tenant: &TenantId,
    range: SeqRange,
    trusted: &[AuditPublicKey],
) -> Result<VerifyReport, AuditError> {
    let mut tx = tenant_tx(pool, tenant).await?;
    let anchor: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT through_seq, through_hash FROM audit_prune_anchors WHERE tenant_id = $1",
    )
    .bind(tenant.as_uuid())
    .fetch_optional(&mut *tx)
    .await
    .map_err(AuditError::db("reading the prune anchor"))?;
    let anchor = anchor.map(|(s, h)| (s as u64, ChainHash::from_slice(&h).unwrap_or_default()));
    let from = range
        .from
        .unwrap_or_else(|| anchor.map_or(1, |a| a.0 + 1))
        .max(1);
    let start_prev = if from == 1 {
        Some(ChainHash::GENESIS)
    } else if anchor.is_some_and(|a| a.0 + 1 == from) {
        anchor.map(|a| a.1)
    } else {
        let h: Option<(Vec<u8>,)> = sqlx::query_as(
            "SELECT hash FROM audit_events WHERE tenant_id = $1 AND seq = $2 LIMIT 1",
        )
        .bind(tenant.as_uuid())
        .bind(from as i64 - 1)
        .fetch_optional(&mut *tx)
        .await
        .map_err(AuditError::db("reading the record before the range"))?;
        h.and_then(|h| ChainHash::from_slice(&h.0))
    };
    let to = range.to.unwrap_or(i64::MAX as u64);
    let checkpoints = load_checkpoints(pool, tenant, from, to).await?;
    let mut verifier = start_prev.map(|p| ChainVerifier::new(*tenant, from, p));
    let mut expected_cp: BTreeMap<u64, Vec<Checkpoint>> = BTreeMap::new();
    let mut cp_findings = Vec::new();
    for cp in checkpoints {
        if let Some(reason) = checkpoint_problem(&cp, trusted) {
            cp_findings.push(Finding::Checkpoint {
                seq: cp.seq,
                key_id: cp.key_id.clone(),
                reason,
            });
        }
        expected_cp.entry(cp.seq).or_default().push(cp);
    }
    {
        let mut rows = sqlx::query_as::<_, Row>(
            "SELECT seq, record_id, event_time, prev_hash, hash, record FROM audit_events
             WHERE tenant_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq, inserted_at",
        )
        .bind(tenant.as_uuid())
        .bind(from as i64)
        .bind(i64::try_from(to).unwrap_or(i64::MAX))
        .fetch(&mut *tx);
        while let Some((seq, record_id, event_time, prev, hash, record)) = rows
            .try_next()
            .await
            .map_err(AuditError::db("reading audit records"))?
        {
            let seq = seq as u64;
            let prev_hash = ChainHash::from_slice(&prev).unwrap_or_default();
            let hash = ChainHash::from_slice(&hash).unwrap_or_default();
            let v = verifier.get_or_insert_with(|| ChainVerifier::new(*tenant, seq, prev_hash));
            let time_ok = record
                .get("time")
                .and_then(|t| t.as_str())
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                == Some(event_time);
            if let Some(cps) = expected_cp.get(&seq) {
                for cp in cps.iter().filter(|cp| cp.hash != hash) {
                    v.report.push(Finding::Checkpoint {
                        seq,
                        key_id: cp.key_id.clone(),
                        reason: "signed hash differs from the stored record".into(),
                    });
                }
            }
            v.feed(ChainRow {
                seq,
                record_id: Some(record_id),
                prev_hash,
                hash,
                record,
            });
            if !time_ok {
                v.report.push(Finding::Column {
                    seq,
                    column: "event_time",
                });
            }
        }
    }
    let mut report = verifier
        .map(ChainVerifier::finish)
        .unwrap_or_else(|| ChainVerifier::new(*tenant, from, ChainHash::GENESIS).finish());
    for f in cp_findings {
        report.push(f);
    }
    if range.to.is_none() {
        let head: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT seq, hash FROM audit_chain_heads WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(AuditError::db("reading the chain head"))?;
        if let Some((head_seq, head_hash)) = head {
            let last_seq = report.last_seq.unwrap_or(from - 1);
            let head_hash = ChainHash::from_slice(&head_hash);
            if head_seq as u64 != last_seq
                || (last_seq > 0 && report.last_hash.is_some() && head_hash != report.last_hash)
            {
                report.push(Finding::Head {
                    head_seq: head_seq as u64,
                    last_seq,
                });
            }
        }
    }
    tx.commit()
        .await
        .map_err(AuditError::db("finishing verification"))?;
    Ok(report)
}

fn checkpoint_problem(cp: &Checkpoint, trusted: &[AuditPublicKey]) -> Option<String> {
    if trusted.is_empty() {
        return None;
    }
    match trusted.iter().find(|k| k.key_id() == cp.key_id) {
        None => Some("signed by a key that is not trusted".into()),
        Some(k) if !cp.verify(k) => Some("signature does not verify".into()),
        Some(_) => None,
    }
}
