//! Integration tests against a real throwaway PostgreSQL (enclave-store's TestDb).

#![allow(clippy::unwrap_used)]

mod chain;
mod export;
mod ops;
mod prune;
mod query;
mod spool;
mod tamper;

use std::time::Duration;

use enclave_audit::{AuditActor, AuditRecord, AuditWriter, WriterConfig};
use enclave_domain::TenantId;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub fn record(tenant: TenantId, i: u64) -> AuditRecord {
    let mut r = AuditRecord::new(
        tenant,
        AuditActor::System { id: "test".into() },
        "chat.completions.create",
        json!({"messages": [{"role": "user", "content": format!("prompt {i}")}], "n": i}),
    );
    r.model = Some("demo".into());
    r.latency_ms = i;
    r
}

pub async fn start_writer(pool: &PgPool, dir: &tempfile::TempDir) -> AuditWriter {
    let mut cfg = WriterConfig::new(dir.path().join("audit.spool"));
    cfg.retry_interval = Duration::from_millis(100);
    AuditWriter::start(pool.clone(), cfg)
        .await
        .expect("writer starts")
}

/// A pool that points at a port nobody listens on.
pub fn unreachable_pool() -> PgPool {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(port)
        .username("enclave_app")
        .database("x");
    PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy_with(opts)
}
