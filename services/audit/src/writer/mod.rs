//! The durable writer: an actor that group-commits appends into PostgreSQL and falls back to
//! the local spool while the database cannot be reached.
//!
//! `append` returns only once the record is durable: committed (with its seq and chain hash),
//! or fsynced into the spool. While the spool holds anything, every new record goes behind it,
//! so replay preserves the order in which appends were acknowledged.

mod spool;
mod stream;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use enclave_domain::TenantId;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

pub(crate) use self::spool::Spool;
pub use self::stream::StreamAudit;
use crate::canonical::ChainHash;
use crate::db::{self, HeadCache, HeldConn, PartitionCache, Prepared};
use crate::{AuditError, AuditRecord};

/// How the writer runs.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The spool file (created if missing; its directory too). One per process.
    pub spool_path: PathBuf,
    /// Most records committed in one transaction.
    pub max_batch: usize,
    /// How often a spooling writer checks whether the database is back.
    pub retry_interval: Duration,
    /// Appends that may wait for the actor before `append` itself waits (back-pressure).
    pub queue: usize,
    /// How long a batch may wait for the callers of the previous batch to come back (bounds
    /// what group commit adds to one append).
    pub batch_wait: Duration,
    /// How long one database attempt may take before the batch goes to the spool instead
    /// (bounds what an outage adds to a request). A commit that did land in the meantime is
    /// recognised by record id at replay and not stored twice.
    pub db_timeout: Duration,
}

impl WriterConfig {
    pub fn new(spool_path: impl Into<PathBuf>) -> Self {
        WriterConfig {
            spool_path: spool_path.into(),
            max_batch: 512,
            retry_interval: Duration::from_secs(1),
            queue: 8192,
            db_timeout: Duration::from_secs(2),
            batch_wait: Duration::from_millis(1),
        }
    }
}

/// Where an acknowledged record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Committed to PostgreSQL at this place in the tenant's chain.
    Database { seq: u64, hash: ChainHash },
    /// Fsynced into the local spool; it gets its seq when the spool is replayed.
    Spooled,
}

/// Proof that a record is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditReceipt {
    pub record_id: Uuid,
    pub tenant: TenantId,
    pub durability: Durability,
}

/// How long an idle writer keeps its connection.
const CONN_IDLE: Duration = Duration::from_secs(1);

type Ack = oneshot::Sender<Result<AuditReceipt, AuditError>>;

/// A record and its encoding (done in the appending task, so the actor only chains and stores).
struct Pending {
    record: AuditRecord,
    prepared: Prepared,
}

enum Cmd {
    Append(Box<Pending>, Ack),
    /// Replays the spool now if the database is reachable; answers whether it is empty.
    Replay(oneshot::Sender<Result<bool, AuditError>>),
    Shutdown(oneshot::Sender<()>),
}

/// Handle to the writer actor (cheap to clone; every gateway worker holds one).
#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Cmd>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter").finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Opens the spool (refusing a damaged one), replays it if the database is reachable, and
    /// starts the actor on the current Tokio runtime. `pool` should connect as the application
    /// role.
    pub async fn start(pool: PgPool, config: WriterConfig) -> Result<AuditWriter, AuditError> {
        let path = config.spool_path.clone();
        let spool = tokio::task::spawn_blocking(move || Spool::open(&path))
            .await
            .map_err(|e| AuditError::Io {
                context: "opening the spool",
                source: std::io::Error::other(e),
            })??;
        let mut actor = Actor {
            pool,
            spool: Arc::new(Mutex::new(spool)),
            partitions: PartitionCache::default(),
            heads: HeadCache::default(),
            conn: HeldConn::default(),
            last_batch: 1,
            config: config.clone(),
            last_attempt: None,
        };
        if let Err(e) = actor.partitions.ensure_now(&actor.pool).await {
            tracing::warn!(error = %e, "audit partitions not ensured at start (database unreachable?)");
        }
        if let Err(e) = actor.replay().await {
            tracing::warn!(error = %e, "audit spool not replayed at start");
        }
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        tokio::spawn(actor.run(rx));
        Ok(AuditWriter { tx })
    }

    /// Appends `record` to its tenant's chain; returns once it is durable.
    pub async fn append(&self, record: AuditRecord) -> Result<AuditReceipt, AuditError> {
        let (record, value) = record.checked_value()?;
        let prepared = Prepared::from_value(&record, &value);
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Cmd::Append(Box::new(Pending { record, prepared }), ack))
            .await
            .map_err(|_| AuditError::WriterStopped)?;
        done.await.map_err(|_| AuditError::WriterStopped)?
    }

    /// Starts a two-phase record for a streamed response: writes the `started` record now and
    /// returns the guard that writes `completed` or `aborted` (also when dropped unfinished).
    pub async fn begin_stream(
        &self,
        record: AuditRecord,
    ) -> Result<(AuditReceipt, StreamAudit), AuditError> {
        let receipt = self.append(record.stream_started()).await?;
        Ok((receipt, StreamAudit::new(self.clone(), record)))
    }

    /// Replays the spool now if the database is reachable; true when the spool is empty
    /// afterwards, false while the database is still unreachable.
    pub async fn replay_spool(&self) -> Result<bool, AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Cmd::Replay(ack))
            .await
            .map_err(|_| AuditError::WriterStopped)?;
        done.await.map_err(|_| AuditError::WriterStopped)?
    }

    /// Stops the actor after the appends already queued; later appends fail with
    /// `WriterStopped`.
    pub async fn shutdown(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

struct Actor {
    pool: PgPool,
    spool: Arc<Mutex<Spool>>,
    partitions: PartitionCache,
    heads: HeadCache,
    /// The connection batches are stored on while the writer is busy (given back to the pool
    /// when it idles, so a quiet writer holds none).
    conn: HeldConn,
    /// Size of the previous batch (how many callers are likely to come back).
    last_batch: usize,
    config: WriterConfig,
    /// When a spooling writer last tried the database (it retries once per retry_interval,
    /// not per batch, so an outage costs requests one fsync, not one connect timeout).
    last_attempt: Option<std::time::Instant>,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        loop {
            let first = if self.spool_is_empty() {
                // A writer idle for a while gives its connection back; a pool of one connection
                // cannot spare it at all (reading chain heads needs a second one).
                if self.pool.options().get_max_connections() < 2 {
                    self.conn.release();
                }
                match tokio::time::timeout(CONN_IDLE, rx.recv()).await {
                    Ok(c) => c,
                    Err(_) => {
                        self.conn.release();
                        rx.recv().await
                    }
                }
            } else {
                match tokio::time::timeout(self.config.retry_interval, rx.recv()).await {
                    Ok(c) => c,
                    Err(_) => {
                        if let Err(e) = self.replay().await {
                            tracing::debug!(error = %e, "audit spool replay deferred");
                        }
                        continue;
                    }
                }
            };
            let Some(first) = first else { break };
            let cmds = self.gather(first, &mut rx).await;
            self.last_batch = cmds.len();
            let mut appends = Vec::with_capacity(cmds.len());
            let mut controls = Vec::new();
            for c in cmds {
                match c {
                    Cmd::Append(p, ack) => appends.push((*p, ack)),
                    other => controls.push(other),
                }
            }
            if !appends.is_empty() {
                self.commit(appends).await;
            }
            for c in controls {
                match c {
                    Cmd::Replay(ack) => {
                        let r = match self.replay().await {
                            Ok(()) => Ok(self.spool_is_empty()),
                            Err(e) if e.is_unreachable() => Ok(false),
                            Err(e) => Err(e),
                        };
                        let _ = ack.send(r);
                    }
                    Cmd::Shutdown(ack) => {
                        let _ = ack.send(());
                        return;
                    }
                    Cmd::Append(..) => {}
                }
            }
        }
    }

    /// The batch that starts with `first`: everything already queued, and then, while it is
    /// smaller than the previous batch, what arrives within `batch_wait`. The callers of the
    /// previous batch come back a moment after their acks; committing without them would
    /// split one group into a small commit and a large one waiting a whole flush behind it.
    /// A lone caller (previous batch of 1) never waits.
    async fn gather(&self, first: Cmd, rx: &mut mpsc::Receiver<Cmd>) -> Vec<Cmd> {
        let max = self.config.max_batch.max(1);
        let target = self.last_batch.clamp(1, max);
        let deadline = tokio::time::Instant::now() + self.config.batch_wait;
        let mut cmds = vec![first];
        while cmds.len() < max {
            match rx.try_recv() {
                Ok(c) => cmds.push(c),
                Err(_) if cmds.len() >= target => break,
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(c)) => cmds.push(c),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        cmds
    }

    fn spool_is_empty(&self) -> bool {
        self.spool.lock().map(|s| s.is_empty()).unwrap_or(false)
    }

    fn retry_due(&self) -> bool {
        self.last_attempt
            .is_none_or(|t| t.elapsed() >= self.config.retry_interval)
    }

    async fn commit(&mut self, appends: Vec<(Pending, Ack)>) {
        if !self.spool_is_empty() && self.retry_due() {
            let _ = self.replay().await;
        }
        if self.spool_is_empty() {
            match self.insert(&appends).await {
                Ok(chained) => {
                    for ((p, ack), c) in appends.into_iter().zip(chained) {
                        let r = p.record;
                        let durability = Durability::Database {
                            seq: c.seq,
                            hash: c.hash,
                        };
                        let _ = ack.send(Ok(AuditReceipt {
                            record_id: r.record_id,
                            tenant: r.tenant,
                            durability,
                        }));
                    }
                    return;
                }
                Err(e) if e.is_unreachable() => {
                    tracing::warn!(error = %e, records = appends.len(), "database unreachable; spooling audit records");
                }
                Err(e) => return fail_all(appends, e),
            }
        }
        let records: Vec<AuditRecord> = appends.iter().map(|(p, _)| p.record.clone()).collect();
        let spool = self.spool.clone();
        let written = tokio::task::spawn_blocking(move || {
            let refs: Vec<&AuditRecord> = records.iter().collect();
            let mut s = spool.lock().map_err(|_| AuditError::WriterStopped)?;
            s.append(&refs)
        })
        .await
        .unwrap_or(Err(AuditError::WriterStopped));
        match written {
            Ok(()) => {
                for (p, ack) in appends {
                    let r = p.record;
                    let _ = ack.send(Ok(AuditReceipt {
                        record_id: r.record_id,
                        tenant: r.tenant,
                        durability: Durability::Spooled,
                    }));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit records could be stored neither in the database nor in the spool");
                fail_all(appends, e);
            }
        }
    }

    async fn insert(&mut self, appends: &[(Pending, Ack)]) -> Result<Vec<db::Chained>, AuditError> {
        let prepared: Vec<&Prepared> = appends.iter().map(|(p, _)| &p.prepared).collect();
        let timeout = self.config.db_timeout;
        let result = tokio::time::timeout(
            timeout,
            db::insert_batch(
                &self.pool,
                &mut self.conn,
                &mut self.partitions,
                &mut self.heads,
                &prepared,
            ),
        )
        .await;
        self.attempted(result)
    }

    /// Flattens a timed-out database attempt into an "unreachable" error and notes the time.
    fn attempted<T>(
        &mut self,
        r: Result<Result<T, AuditError>, tokio::time::error::Elapsed>,
    ) -> Result<T, AuditError> {
        let r = r.unwrap_or(Err(AuditError::Database {
            context: "waiting for the database",
            source: sqlx::Error::PoolTimedOut,
        }));
        if r.is_err() {
            // A timed-out attempt leaves its connection mid-statement.
            self.conn.discard();
        }
        self.last_attempt = match &r {
            Err(e) if e.is_unreachable() => Some(std::time::Instant::now()),
            _ => None,
        };
        r
    }

    /// Moves everything in the spool into the database, in order, then empties the spool.
    async fn replay(&mut self) -> Result<(), AuditError> {
        loop {
            let spool = self.spool.clone();
            let max = self.config.max_batch;
            let (records, pos) = tokio::task::spawn_blocking(move || {
                spool
                    .lock()
                    .map_err(|_| AuditError::WriterStopped)?
                    .read_batch(max)
            })
            .await
            .unwrap_or(Err(AuditError::WriterStopped))?;
            if records.is_empty() {
                let spool = self.spool.clone();
                return tokio::task::spawn_blocking(move || {
                    spool.lock().map_err(|_| AuditError::WriterStopped)?.clear()
                })
                .await
                .unwrap_or(Err(AuditError::WriterStopped));
            }
            let ids: Vec<Uuid> = records.iter().map(|r| r.record_id).collect();
            let timeout = self.config.db_timeout;
            let stored = tokio::time::timeout(timeout, db::existing_ids(&self.pool, &ids)).await;
            let stored = self.attempted(stored)?;
            let todo = records
                .iter()
                .filter(|r| !stored.contains(&r.record_id))
                .map(Prepared::new)
                .collect::<Result<Vec<_>, _>>()?;
            if !todo.is_empty() {
                let done = tokio::time::timeout(
                    timeout,
                    db::insert_batch(
                        &self.pool,
                        &mut self.conn,
                        &mut self.partitions,
                        &mut self.heads,
                        &todo.iter().collect::<Vec<_>>(),
                    ),
                )
                .await;
                self.attempted(done)?;
                tracing::info!(records = todo.len(), "replayed spooled audit records");
            }
            if let Ok(mut s) = self.spool.lock() {
                s.mark_replayed(pos);
            }
        }
    }
}

fn fail_all<T>(appends: Vec<(T, Ack)>, e: AuditError) {
    tracing::error!(error = %e, records = appends.len(), "audit batch refused");
    let reason = e.to_string();
    let mut first = Some(e);
    for (_, ack) in appends {
        let err = first.take().unwrap_or_else(|| AuditError::BatchFailed {
            reason: reason.clone(),
        });
        let _ = ack.send(Err(err));
    }
}
