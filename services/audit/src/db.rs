//! Chaining and inserting a batch of records in one transaction (group commit).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use enclave_domain::TenantId;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::canonical::{ChainHash, canonical_json, chain_hash_canonical};
use crate::{AuditError, AuditRecord};

/// Where a record landed in its tenant's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chained {
    pub seq: u64,
    pub hash: ChainHash,
}

/// A record ready for insertion: encoded once (in the appending task, not on the writer's
/// single commit path), so chaining a batch only hashes.
pub(crate) struct Prepared {
    pub record_id: Uuid,
    pub tenant: TenantId,
    pub time: DateTime<Utc>,
    /// `canonical_json(record)`: what the chain hash covers, and (being JSON) also the text
    /// the jsonb column is given.
    pub canonical: String,
}

impl Prepared {
    pub fn new(record: &AuditRecord) -> Result<Prepared, AuditError> {
        let value = serde_json::to_value(record).map_err(AuditError::json("audit record"))?;
        Ok(Self::from_value(record, &value))
    }

    /// From the record and its JSON value (when the caller has the value already).
    pub fn from_value(record: &AuditRecord, value: &serde_json::Value) -> Prepared {
        Prepared {
            record_id: record.record_id,
            tenant: record.tenant,
            time: record.time,
            // canonical_json writes UTF-8 only (strings come from &str); the lossy conversion
            // never replaces anything.
            canonical: String::from_utf8_lossy(&canonical_json(value)).into_owned(),
        }
    }
}

/// A transaction that sees every tenant's audit rows (the writer chains several tenants at once).
pub(crate) async fn system_tx(pool: &PgPool) -> Result<Transaction<'static, Postgres>, AuditError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(AuditError::db("beginning an audit transaction"))?;
    sqlx::query("SELECT set_config('enclave.rls_bypass', 'on', true)")
        .execute(&mut *tx)
        .await
        .map_err(AuditError::db("entering system context"))?;
    Ok(tx)
}

/// A transaction scoped to one tenant (row-level security shows only its rows).
pub(crate) async fn tenant_tx(
    pool: &PgPool,
    tenant: &TenantId,
) -> Result<Transaction<'static, Postgres>, AuditError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(AuditError::db("beginning an audit transaction"))?;
    sqlx::query("SELECT set_config('enclave.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await
        .map_err(AuditError::db("setting the tenant context"))?;
    Ok(tx)
}

/// Months (year*12 + month0) whose partitions this process has already ensured.
#[derive(Default)]
pub(crate) struct PartitionCache(HashSet<i32>);

fn month_key(t: &DateTime<Utc>) -> i32 {
    t.year() * 12 + t.month0() as i32
}

impl PartitionCache {
    async fn ensure(
        &mut self,
        conn: &mut sqlx::PgConnection,
        at: DateTime<Utc>,
    ) -> Result<(), AuditError> {
        if self.0.contains(&month_key(&at)) {
            return Ok(());
        }
        sqlx::query("SELECT audit_ensure_partition($1)")
            .bind(at)
            .execute(&mut *conn)
            .await
            .map_err(AuditError::db("creating an audit partition"))?;
        self.0.insert(month_key(&at));
        Ok(())
    }

    /// Creates this month's and next month's partitions (writer start-up).
    pub async fn ensure_now(&mut self, pool: &PgPool) -> Result<(), AuditError> {
        let mut tx = system_tx(pool).await?;
        let now = Utc::now();
        self.ensure(&mut *tx, now).await?;
        self.ensure(&mut *tx, now + chrono::Duration::days(32))
            .await?;
        tx.commit()
            .await
            .map_err(AuditError::db("committing partitions"))
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    seq: u64,
    hash: ChainHash,
    last: DateTime<Utc>,
}

/// Locks the chain heads of `tenants` (sorted, so concurrent writers lock in the same order).
async fn lock_heads(
    tx: &mut Transaction<'static, Postgres>,
    tenants: &[Uuid],
) -> Result<BTreeMap<Uuid, Head>, AuditError> {
    sqlx::query(
        "INSERT INTO audit_chain_heads (tenant_id, seq, hash, last_inserted_at)
         SELECT t, 0, $2, '-infinity' FROM unnest($1::uuid[]) AS t ORDER BY t
         ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenants)
    .bind(ChainHash::GENESIS.as_bytes().as_slice())
    .execute(&mut **tx)
    .await
    .map_err(AuditError::db("creating chain heads"))?;
    let rows: Vec<(Uuid, i64, Vec<u8>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT tenant_id, seq, hash, greatest(last_inserted_at, '1970-01-01Z')
         FROM audit_chain_heads WHERE tenant_id = ANY($1) ORDER BY tenant_id FOR UPDATE",
    )
    .bind(tenants)
    .fetch_all(&mut **tx)
    .await
    .map_err(AuditError::db("locking chain heads"))?;
    let mut heads = BTreeMap::new();
    for (t, seq, hash, last) in rows {
        let hash = ChainHash::from_slice(&hash).ok_or_else(|| AuditError::InvalidRecord {
            field: "audit_chain_heads.hash",
            reason: format!("tenant {t}: stored head is not 32 bytes"),
        })?;
        heads.insert(
            t,
            Head {
                seq: u64::try_from(seq).unwrap_or(0),
                hash,
                last,
            },
        );
    }
    Ok(heads)
}

/// Chains `batch` onto `heads` (advancing them) and lays it out as columns.
fn chain<'a>(
    heads: &mut BTreeMap<Uuid, Head>,
    batch: &[&'a Prepared],
) -> Result<(Columns<'a>, Vec<Chained>), AuditError> {
    let now = Utc::now().trunc_subsecs(6);
    let mut cols = Columns::with_capacity(batch.len());
    let mut out = Vec::with_capacity(batch.len());
    for p in batch {
        let Some(head) = heads.get_mut(p.tenant.as_uuid()) else {
            return Err(AuditError::InvalidRecord {
                field: "tenant",
                reason: format!("no chain head for {}", p.tenant),
            });
        };
        let seq = head.seq + 1;
        let hash = chain_hash_canonical(&head.hash, &p.tenant, seq, p.canonical.as_bytes());
        // Monotonic per tenant even if this process's clock is behind another's.
        let inserted_at = now.max(head.last);
        cols.tenant.push(p.tenant.into_uuid());
        cols.seq.push(seq as i64);
        cols.inserted_at.push(inserted_at);
        cols.record_id.push(p.record_id);
        cols.event_time.push(p.time);
        cols.prev.push(head.hash.as_bytes().to_vec());
        cols.hash.push(hash.as_bytes().to_vec());
        cols.record.push(&p.canonical);
        *head = Head {
            seq,
            hash,
            last: inserted_at,
        };
        out.push(Chained { seq, hash });
    }
    Ok((cols, out))
}

/// Columns of the batch, in UNNEST order.
#[derive(Default)]
struct Columns<'a> {
    tenant: Vec<Uuid>,
    seq: Vec<i64>,
    inserted_at: Vec<DateTime<Utc>>,
    record_id: Vec<Uuid>,
    event_time: Vec<DateTime<Utc>>,
    prev: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
    record: Vec<&'a str>,
}

impl Columns<'_> {
    fn with_capacity(n: usize) -> Self {
        Columns {
            tenant: Vec::with_capacity(n),
            seq: Vec::with_capacity(n),
            inserted_at: Vec::with_capacity(n),
            record_id: Vec::with_capacity(n),
            event_time: Vec::with_capacity(n),
            prev: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
            record: Vec::with_capacity(n),
        }
    }
}

/// Chain heads as this process last stored or read them. A batch is chained from these in
/// memory and stored by `audit_append_batch` in one round trip, which refuses it if another
/// process moved a head meanwhile (then the heads are re-read and the batch chained again).
#[derive(Default)]
pub(crate) struct HeadCache(HashMap<Uuid, Head>);

impl HeadCache {
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// The writer's own connection, kept between batches: taking a connection from the pool
/// pings it first (sqlx's `test_before_acquire`), one more round trip per batch. Discarded
/// (closed, not returned to the pool) after any failed or interrupted attempt, whose state on
/// the wire is unknown.
#[derive(Default)]
pub(crate) struct HeldConn(Option<PoolConnection<Postgres>>);

impl HeldConn {
    async fn get(&mut self, pool: &PgPool) -> Result<&mut PgConnection, AuditError> {
        let c = match self.0.take() {
            Some(c) => c,
            None => pool
                .acquire()
                .await
                .map_err(AuditError::db("connecting the audit writer"))?,
        };
        Ok(&mut **self.0.insert(c))
    }

    /// Gives the connection back to the pool.
    pub fn release(&mut self) {
        self.0 = None;
    }

    pub fn discard(&mut self) {
        if let Some(mut c) = self.0.take() {
            c.close_on_drop();
        }
    }
}

/// Attempts of the one-round-trip path before falling back to locking the heads first.
const OPTIMISTIC_ATTEMPTS: usize = 3;

/// Chains and stores `batch` atomically; returns each record's place, in input order. Seqs and
/// hashes follow the stored chain heads, so several processes may append to the same chain.
pub(crate) async fn insert_batch(
    pool: &PgPool,
    conn: &mut HeldConn,
    partitions: &mut PartitionCache,
    cache: &mut HeadCache,
    batch: &[&Prepared],
) -> Result<Vec<Chained>, AuditError> {
    let result = match append_or_lock(pool, conn, partitions, cache, batch).await {
        // 23514 "no partition of relation found for row": a prune dropped a month this
        // process had ensured. Forget what it knew and try once more.
        Err(AuditError::Database {
            source: sqlx::Error::Database(e),
            ..
        }) if e.code().as_deref() == Some("23514") => {
            partitions.0.clear();
            append_or_lock(pool, conn, partitions, cache, batch).await
        }
        other => other,
    };
    if result.is_err() {
        // The outcome may be unknown (a timeout during commit): read the heads again.
        cache.clear();
        conn.discard();
    }
    result
}

async fn append_or_lock(
    pool: &PgPool,
    conn: &mut HeldConn,
    partitions: &mut PartitionCache,
    cache: &mut HeadCache,
    batch: &[&Prepared],
) -> Result<Vec<Chained>, AuditError> {
    let mut tenants: Vec<Uuid> = batch.iter().map(|p| p.tenant.into_uuid()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    for _ in 0..OPTIMISTIC_ATTEMPTS {
        let missing: Vec<Uuid> = tenants
            .iter()
            .filter(|t| !cache.0.contains_key(t))
            .copied()
            .collect();
        if !missing.is_empty() {
            cache.0.extend(load_heads(pool, &missing).await?);
        }
        let before: BTreeMap<Uuid, Head> = tenants
            .iter()
            .filter_map(|t| cache.0.get(t).map(|h| (*t, *h)))
            .collect();
        let mut after = before.clone();
        let (cols, out) = chain(&mut after, batch)?;
        ensure_months(pool, partitions, &cols).await?;
        if append_once(conn.get(pool).await?, &before, &after, &cols).await? {
            cache.0.extend(after);
            return Ok(out);
        }
        for t in &tenants {
            cache.0.remove(t);
        }
    }
    let out = insert_once(pool, partitions, batch).await?;
    for t in &tenants {
        cache.0.remove(t);
    }
    Ok(out)
}

async fn ensure_months(
    pool: &PgPool,
    partitions: &mut PartitionCache,
    cols: &Columns<'_>,
) -> Result<(), AuditError> {
    let mut months: Vec<DateTime<Utc>> = cols.inserted_at.clone();
    months.dedup_by_key(|t| month_key(t));
    if months.iter().all(|m| partitions.0.contains(&month_key(m))) {
        return Ok(());
    }
    let mut tx = system_tx(pool).await?;
    for m in months {
        partitions.ensure(&mut tx, m).await?;
    }
    tx.commit()
        .await
        .map_err(AuditError::db("committing partitions"))
}

/// Reads (creating where missing) the chain heads of `tenants`.
async fn load_heads(pool: &PgPool, tenants: &[Uuid]) -> Result<BTreeMap<Uuid, Head>, AuditError> {
    let mut tx = system_tx(pool).await?;
    let heads = lock_heads(&mut tx, tenants).await?;
    tx.commit()
        .await
        .map_err(AuditError::db("reading chain heads"))?;
    Ok(heads)
}

/// One statement, so one round trip and one commit; false when a head moved (nothing stored).
async fn append_once(
    conn: &mut PgConnection,
    before: &BTreeMap<Uuid, Head>,
    after: &BTreeMap<Uuid, Head>,
    cols: &Columns<'_>,
) -> Result<bool, AuditError> {
    let tenants: Vec<Uuid> = before.keys().copied().collect();
    let old_seqs: Vec<i64> = before.values().map(|h| h.seq as i64).collect();
    let old_hashes: Vec<&[u8]> = before
        .values()
        .map(|h| h.hash.as_bytes().as_slice())
        .collect();
    let new_seqs: Vec<i64> = after.values().map(|h| h.seq as i64).collect();
    let new_hashes: Vec<&[u8]> = after
        .values()
        .map(|h| h.hash.as_bytes().as_slice())
        .collect();
    let new_lasts: Vec<DateTime<Utc>> = after.values().map(|h| h.last).collect();
    let stale: i32 = sqlx::query_scalar(
        "SELECT audit_append_batch($1::uuid[], $2::int8[], $3::bytea[], $4::int8[], $5::bytea[],
             $6::timestamptz[], $7::uuid[], $8::int8[], $9::timestamptz[], $10::uuid[],
             $11::timestamptz[], $12::bytea[], $13::bytea[], $14::text[])",
    )
    .bind(&tenants)
    .bind(&old_seqs)
    .bind(&old_hashes)
    .bind(&new_seqs)
    .bind(&new_hashes)
    .bind(&new_lasts)
    .bind(&cols.tenant)
    .bind(&cols.seq)
    .bind(&cols.inserted_at)
    .bind(&cols.record_id)
    .bind(&cols.event_time)
    .bind(&cols.prev)
    .bind(&cols.hash)
    .bind(&cols.record)
    .fetch_one(conn)
    .await
    .map_err(AuditError::db("appending audit records"))?;
    Ok(stale == 0)
}

async fn insert_once(
    pool: &PgPool,
    partitions: &mut PartitionCache,
    batch: &[&Prepared],
) -> Result<Vec<Chained>, AuditError> {
    let mut tx = system_tx(pool).await?;
    let mut tenants: Vec<Uuid> = batch.iter().map(|p| p.tenant.into_uuid()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let mut heads = lock_heads(&mut tx, &tenants).await?;
    let (cols, out) = chain(&mut heads, batch)?;
    let mut months: Vec<DateTime<Utc>> = cols.inserted_at.clone();
    months.dedup_by_key(|t| month_key(t));
    for m in months {
        partitions.ensure(&mut *tx, m).await?;
    }
    sqlx::query(
        "INSERT INTO audit_events (tenant_id, seq, inserted_at, record_id, event_time, prev_hash, hash, record)
         SELECT t, s, i, r, e, p, h, j::jsonb
         FROM unnest($1::uuid[], $2::int8[], $3::timestamptz[], $4::uuid[], $5::timestamptz[],
                     $6::bytea[], $7::bytea[], $8::text[]) AS u(t, s, i, r, e, p, h, j)",
    )
    .bind(&cols.tenant)
    .bind(&cols.seq)
    .bind(&cols.inserted_at)
    .bind(&cols.record_id)
    .bind(&cols.event_time)
    .bind(&cols.prev)
    .bind(&cols.hash)
    .bind(&cols.record)
    .execute(&mut *tx)
    .await
    .map_err(AuditError::db("inserting audit records"))?;
    update_heads(&mut tx, &heads).await?;
    tx.commit()
        .await
        .map_err(AuditError::db("committing audit records"))?;
    Ok(out)
}

async fn update_heads(
    tx: &mut Transaction<'static, Postgres>,
    heads: &BTreeMap<Uuid, Head>,
) -> Result<(), AuditError> {
    let tenants: Vec<Uuid> = heads.keys().copied().collect();
    let seqs: Vec<i64> = heads.values().map(|h| h.seq as i64).collect();
    let hashes: Vec<Vec<u8>> = heads.values().map(|h| h.hash.as_bytes().to_vec()).collect();
    let lasts: Vec<DateTime<Utc>> = heads.values().map(|h| h.last).collect();
    sqlx::query(
        "UPDATE audit_chain_heads h SET seq = u.s, hash = u.h, last_inserted_at = u.l, updated_at = now()
         FROM unnest($1::uuid[], $2::int8[], $3::bytea[], $4::timestamptz[]) AS u(t, s, h, l)
         WHERE h.tenant_id = u.t",
    )
    .bind(&tenants)
    .bind(&seqs)
    .bind(&hashes)
    .bind(&lasts)
    .execute(&mut **tx)
    .await
    .map_err(AuditError::db("advancing chain heads"))?;
    Ok(())
}

/// Which of `ids` are already stored (spool replay after a crash between commit and truncate).
pub(crate) async fn existing_ids(pool: &PgPool, ids: &[Uuid]) -> Result<HashSet<Uuid>, AuditError> {
    let mut tx = system_tx(pool).await?;
    let rows: Vec<(Uuid,)> =
        sqlx::query_as("SELECT record_id FROM audit_events WHERE record_id = ANY($1)")
            .bind(ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(AuditError::db("checking replayed records"))?;
    tx.commit()
        .await
        .map_err(AuditError::db("checking replayed records"))?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}
