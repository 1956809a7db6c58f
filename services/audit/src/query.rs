//! Filtered, cursor-paginated reads of a tenant's records (GET /v1/audit/events).

use chrono::{DateTime, Utc};
use enclave_domain::TenantId;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::AuditError;
use crate::canonical::ChainHash;
use crate::db::tenant_tx;

/// Filters; every one that is set must match. Time bounds are on the record's event time.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// `user`, `api_key` or `system`.
    pub actor_kind: Option<String>,
    /// The user / API key id (or system component).
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub model: Option<String>,
    pub adapter_version: Option<String>,
    /// The policy outcome summary (e.g. `block`).
    pub decision: Option<String>,
    /// Case-insensitive substring of the request or response JSON.
    pub text: Option<String>,
}

impl AuditFilter {
    /// Refuses what PostgreSQL cannot compare against text (a NUL character), naming the field,
    /// so that a hostile filter is a 400 rather than a database error.
    fn check(&self) -> Result<(), AuditError> {
        let fields = [
            ("actor_kind", &self.actor_kind),
            ("actor_id", &self.actor_id),
            ("action", &self.action),
            ("model", &self.model),
            ("adapter_version", &self.adapter_version),
            ("decision", &self.decision),
            ("q", &self.text),
        ];
        match fields
            .into_iter()
            .find(|(_, v)| v.as_deref().is_some_and(|s| s.contains('\0')))
        {
            Some((field, _)) => Err(AuditError::InvalidQuery {
                field,
                reason: "must not contain a NUL character".into(),
            }),
            None => Ok(()),
        }
    }
}

/// Opaque position after the last record of a page (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(u64);

impl Cursor {
    pub fn parse(s: &str) -> Result<Self, AuditError> {
        s.strip_prefix("s")
            .and_then(|n| n.parse::<u64>().ok())
            .map(Cursor)
            .ok_or_else(|| AuditError::InvalidQuery {
                field: "cursor",
                reason: "not a cursor this server issued".into(),
            })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// One stored record with its chain position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub seq: u64,
    pub inserted_at: DateTime<Utc>,
    pub record_id: Uuid,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
    /// The record as written (see `AuditRecord`; kept as JSON so old records stay readable).
    pub record: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Pass back to get the next (older) page; `None` at the end.
    pub next_cursor: Option<String>,
}

pub const MAX_PAGE: u32 = 500;

fn like_pattern(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

type Row = (
    i64,
    DateTime<Utc>,
    Uuid,
    Vec<u8>,
    Vec<u8>,
    serde_json::Value,
);

/// `tenant`'s records matching `filter`, newest first, `limit` (1..=500) per page.
pub async fn query(
    pool: &PgPool,
    tenant: &TenantId,
    filter: &AuditFilter,
    cursor: Option<Cursor>,
    limit: u32,
) -> Result<AuditPage, AuditError> {
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AuditError::InvalidQuery {
            field: "limit",
            reason: format!("must be 1..={MAX_PAGE}, got {limit}"),
        });
    }
    filter.check()?;
    let mut tx = tenant_tx(pool, tenant).await?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, inserted_at, record_id, prev_hash, hash, record FROM audit_events
         WHERE tenant_id = $1
           AND ($2::timestamptz IS NULL OR event_time >= $2)
           AND ($3::timestamptz IS NULL OR event_time < $3)
           AND ($4::text IS NULL OR actor_kind = $4)
           AND ($5::text IS NULL OR actor_id = $5)
           AND ($6::text IS NULL OR action = $6)
           AND ($7::text IS NULL OR model = $7)
           AND ($8::text IS NULL OR adapter_version = $8)
           AND ($9::text IS NULL OR policy_outcome = $9)
           AND ($10::text IS NULL OR (record -> 'request')::text ILIKE $10
                                  OR (record -> 'response')::text ILIKE $10)
           AND ($11::bigint IS NULL OR seq < $11)
         ORDER BY seq DESC LIMIT $12",
    )
    .bind(tenant.as_uuid())
    .bind(filter.from)
    .bind(filter.to)
    .bind(&filter.actor_kind)
    .bind(&filter.actor_id)
    .bind(&filter.action)
    .bind(&filter.model)
    .bind(&filter.adapter_version)
    .bind(&filter.decision)
    .bind(filter.text.as_deref().map(like_pattern))
    .bind(cursor.map(|c| c.0 as i64))
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await
    .map_err(AuditError::db("querying audit records"))?;
    tx.commit()
        .await
        .map_err(AuditError::db("querying audit records"))?;
    let more = rows.len() > limit as usize;
    let events: Vec<AuditEvent> = rows
        .into_iter()
        .take(limit as usize)
        .map(
            |(seq, inserted_at, record_id, prev, hash, record)| AuditEvent {
                seq: seq as u64,
                inserted_at,
                record_id,
                prev_hash: ChainHash::from_slice(&prev).unwrap_or_default(),
                hash: ChainHash::from_slice(&hash).unwrap_or_default(),
                record,
            },
        )
        .collect();
    let next_cursor = if more {
        events.last().map(|e| Cursor(e.seq).to_string())
    } else {
        None
    };
    Ok(AuditPage {
        events,
        next_cursor,
    })
}
