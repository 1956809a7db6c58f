//! Reading an export range in blocks of seqs on several connections at once.
//!
//! Turning stored jsonb back into text is most of an export's cost and happens in the server
//! backend, one core per connection; so the range is cut into blocks of seqs, each worker
//! connection reads and encodes every K-th block, and the exporter writes the blocks in order.
//! Every worker imports the leader's snapshot (`pg_export_snapshot`, as `pg_dump -j` does), so
//! the export is exactly what one query would have returned at its start, appends that land
//! meanwhile included nowhere. Memory is bounded by 2 blocks per worker.

use chrono::{DateTime, Utc};
use enclave_domain::TenantId;
use futures::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::format::{Encoder, ExportFormat, ExportRow};
use crate::AuditError;
use crate::canonical::ChainHash;

/// Seqs per block (about 1 MiB of JSON lines for typical records).
const BLOCK_SEQS: i64 = 2048;
/// Worker connections (the leader's connection only holds the snapshot).
const WORKERS: usize = 3;

/// One encoded block and what the manifest needs from it.
pub(crate) struct Block {
    pub bytes: Vec<u8>,
    pub count: u64,
    /// (seq, prev_hash, hash) of the block's first row.
    pub first: Option<(u64, ChainHash, ChainHash)>,
    /// (seq, hash) of its last row.
    pub last: Option<(u64, ChainHash)>,
}

/// The blocks of one export, in order.
pub(crate) struct Blocks {
    lead: Option<Transaction<'static, Postgres>>,
    receivers: Vec<mpsc::Receiver<Result<Block, AuditError>>>,
    next: usize,
    total: usize,
    /// Dropping it (an error, a cancelled export) aborts the workers.
    workers: JoinSet<()>,
}

impl Blocks {
    pub async fn start(
        pool: &PgPool,
        tenant: &TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        format: ExportFormat,
    ) -> Result<Blocks, AuditError> {
        let mut lead = pool
            .begin()
            .await
            .map_err(AuditError::db("beginning the export"))?;
        sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *lead)
            .await
            .map_err(AuditError::db("beginning the export"))?;
        let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
            .fetch_one(&mut *lead)
            .await
            .map_err(AuditError::db("exporting the snapshot"))?;
        set_tenant(&mut lead, tenant).await?;
        let (lo, hi): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT min(seq), max(seq) FROM audit_events
             WHERE tenant_id = $1 AND inserted_at >= $2 AND inserted_at < $3",
        )
        .bind(tenant.as_uuid())
        .bind(from)
        .bind(to)
        .fetch_one(&mut *lead)
        .await
        .map_err(AuditError::db("finding the export range"))?;
        let ranges: Vec<(i64, i64)> = match (lo, hi) {
            (Some(lo), Some(hi)) => (lo..=hi)
                .step_by(BLOCK_SEQS as usize)
                .map(|a| (a, (a + BLOCK_SEQS - 1).min(hi)))
                .collect(),
            _ => Vec::new(),
        };
        let k = WORKERS.min(ranges.len()).max(1);
        let mut workers = JoinSet::new();
        let mut receivers = Vec::with_capacity(k);
        for w in 0..k {
            let (tx, rx) = mpsc::channel(1);
            receivers.push(rx);
            let job = Job {
                pool: pool.clone(),
                snapshot: snapshot.clone(),
                tenant: *tenant,
                from,
                to,
                format,
                ranges: ranges.iter().skip(w).step_by(k).copied().collect(),
            };
            workers.spawn(async move {
                if let Err(e) = job.run(&tx).await {
                    let _ = tx.send(Err(e)).await;
                }
            });
        }
        Ok(Blocks {
            lead: Some(lead),
            receivers,
            next: 0,
            total: ranges.len(),
            workers,
        })
    }

    /// The next block in chain order; `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Block>, AuditError> {
        if self.next >= self.total {
            return Ok(None);
        }
        let k = self.receivers.len();
        let block =
            self.receivers[self.next % k]
                .recv()
                .await
                .ok_or(AuditError::BatchFailed {
                    reason: "an export worker stopped".into(),
                })??;
        self.next += 1;
        Ok(Some(block))
    }

    /// Ends the snapshot's transaction once every block is read.
    pub async fn finish(mut self) -> Result<(), AuditError> {
        while self.workers.join_next().await.is_some() {}
        if let Some(lead) = self.lead.take() {
            lead.commit()
                .await
                .map_err(AuditError::db("finishing the export"))?;
        }
        Ok(())
    }
}

async fn set_tenant(conn: &mut PgConnection, tenant: &TenantId) -> Result<(), AuditError> {
    sqlx::query("SELECT set_config('enclave.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(conn)
        .await
        .map_err(AuditError::db("setting the tenant context"))?;
    Ok(())
}

/// One worker's share of the blocks.
struct Job {
    pool: PgPool,
    snapshot: String,
    tenant: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    format: ExportFormat,
    ranges: Vec<(i64, i64)>,
}

impl Job {
    async fn run(self, out: &mpsc::Sender<Result<Block, AuditError>>) -> Result<(), AuditError> {
        // The id comes from the server; checking its alphabet keeps the statement a constant
        // shape (SET TRANSACTION SNAPSHOT takes no bind parameters).
        if !self
            .snapshot
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-')
        {
            return Err(AuditError::BatchFailed {
                reason: format!("unexpected snapshot id {:?}", self.snapshot),
            });
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(AuditError::db("beginning an export worker"))?;
        let set = format!(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
            self.snapshot
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(set))
            .execute(&mut *tx)
            .await
            .map_err(AuditError::db("importing the export snapshot"))?;
        set_tenant(&mut tx, &self.tenant).await?;
        let tenant_text = self.tenant.to_string();
        for &(lo, hi) in &self.ranges {
            let block = self.block(&mut tx, &tenant_text, lo, hi).await?;
            if out.send(Ok(block)).await.is_err() {
                return Ok(()); // the export was abandoned
            }
        }
        tx.commit()
            .await
            .map_err(AuditError::db("finishing an export worker"))
    }

    async fn block(
        &self,
        conn: &mut PgConnection,
        tenant_text: &str,
        lo: i64,
        hi: i64,
    ) -> Result<Block, AuditError> {
        let mut enc = Encoder::body(self.format);
        let mut block = Block {
            bytes: Vec::new(),
            count: 0,
            first: None,
            last: None,
        };
        // Only the columns the encoders print; the record as jsonb's own text, so no row is
        // parsed into a JSON tree on the way out.
        let mut rows = sqlx::query(
            "SELECT seq, inserted_at, record_id, prev_hash, hash, record::text, record ->> 'time',
                    actor_kind, actor_id, action, phase, model, status_code
             FROM audit_events
             WHERE tenant_id = $1 AND seq BETWEEN $2 AND $3
               AND inserted_at >= $4 AND inserted_at < $5
             ORDER BY seq, inserted_at",
        )
        .bind(self.tenant.as_uuid())
        .bind(lo)
        .bind(hi)
        .bind(self.from)
        .bind(self.to)
        .fetch(conn);
        while let Some(pg_row) = rows
            .try_next()
            .await
            .map_err(AuditError::db("reading audit records for export"))?
        {
            let row = export_row(&pg_row, tenant_text)
                .map_err(AuditError::db("decoding audit records for export"))?;
            let seq = row.seq as u64;
            let hash = ChainHash::from_slice(row.hash).unwrap_or_default();
            if block.first.is_none() {
                let prev = ChainHash::from_slice(row.prev_hash).unwrap_or_default();
                block.first = Some((seq, prev, hash));
            }
            block.last = Some((seq, hash));
            block.count += 1;
            enc.row(&row);
        }
        block.bytes = std::mem::take(enc.pending());
        Ok(block)
    }
}

fn export_row<'r>(r: &'r PgRow, tenant: &'r str) -> Result<ExportRow<'r>, sqlx::Error> {
    let opt = |i: usize| -> Result<&'r str, sqlx::Error> {
        Ok(r.try_get::<Option<&str>, _>(i)?.unwrap_or(""))
    };
    Ok(ExportRow {
        tenant,
        seq: r.try_get(0)?,
        inserted_at: r.try_get(1)?,
        record_id: r.try_get(2)?,
        prev_hash: r.try_get(3)?,
        hash: r.try_get(4)?,
        record: r.try_get(5)?,
        time: opt(6)?,
        actor_kind: opt(7)?,
        actor_id: opt(8)?,
        action: opt(9)?,
        phase: opt(10)?,
        model: opt(11)?,
        status_code: r.try_get(12)?,
    })
}
