//! `enclave bench audit`: durable appends/s at 1, 16 and 64 concurrent writers, export rows/s,
//! verify rows/s. Figures are JSON lines `{"bench":"audit","metric":...,"value":...,"unit":...}`.

use std::time::{Duration, Instant};

use chrono::Utc;
use enclave_domain::TenantId;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use crate::{
    AuditActor, AuditError, AuditRecord, AuditSigningKey, AuditWriter, ExportFormat, SeqRange,
    WriterConfig, export, verify_db,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchFigure {
    pub bench: &'static str,
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
}

impl BenchFigure {
    fn new(metric: impl Into<String>, value: f64, unit: &'static str) -> Self {
        BenchFigure {
            bench: "audit",
            metric: metric.into(),
            value,
            unit,
        }
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Options: how long each concurrency level runs, where the writer spools.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub duration_per_level: Duration,
    pub concurrency: Vec<usize>,
    pub spool_path: std::path::PathBuf,
}

impl BenchOptions {
    pub fn new(spool_path: impl Into<std::path::PathBuf>) -> Self {
        BenchOptions {
            duration_per_level: Duration::from_secs(3),
            concurrency: vec![1, 16, 64],
            spool_path: spool_path.into(),
        }
    }
}

fn sample(tenant: TenantId, i: u64) -> AuditRecord {
    let mut r = AuditRecord::new(
        tenant,
        AuditActor::System { id: "bench".into() },
        "chat.completions.create",
        json!({"model": "demo", "messages": [{"role": "user", "content": format!("benchmark prompt number {i}, with some text")}], "max_tokens": 64}),
    );
    r.model = Some("demo".into());
    r.latency_ms = 12;
    r.response = Some(crate::AuditResponse {
        body: json!("a benchmark answer of moderate length, about as long as a short reply"),
        finish_reason: Some("stop".into()),
        usage: Some(crate::Usage {
            prompt_tokens: 20,
            completion_tokens: 14,
            total_tokens: 34,
        }),
    });
    r
}

/// Runs the audit benchmark against `pool` (application role) in a fresh bench tenant chain.
pub async fn run(
    pool: &PgPool,
    opts: &BenchOptions,
    sink: &mut dyn FnMut(BenchFigure),
) -> Result<(), AuditError> {
    let tenant = TenantId::new();
    let writer = AuditWriter::start(pool.clone(), WriterConfig::new(&opts.spool_path)).await?;
    for &n in &opts.concurrency {
        let deadline = Instant::now() + opts.duration_per_level;
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|w| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        writer
                            .append(sample(tenant, w as u64 * 1_000_000 + done))
                            .await?;
                        done += 1;
                    }
                    Ok::<u64, AuditError>(done)
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.map_err(|_| AuditError::WriterStopped)??;
        }
        let secs = start.elapsed().as_secs_f64();
        sink(BenchFigure::new(
            format!("durable_appends_{n}_writers"),
            total as f64 / secs,
            "records/s",
        ));
    }
    writer.shutdown().await;
    let key = AuditSigningKey::generate("bench")?;
    let start = Instant::now();
    let mut sinkw = tokio::io::sink();
    let m = export(
        pool,
        &tenant,
        Utc::now() - chrono::Duration::days(1),
        Utc::now() + chrono::Duration::days(1),
        ExportFormat::Jsonl,
        &key,
        &mut sinkw,
    )
    .await?;
    sink(BenchFigure::new(
        "export_jsonl",
        m.count as f64 / start.elapsed().as_secs_f64(),
        "rows/s",
    ));
    let start = Instant::now();
    let report = verify_db(pool, &tenant, SeqRange::default(), &[]).await?;
    sink(BenchFigure::new(
        "verify_db",
        report.checked as f64 / start.elapsed().as_secs_f64(),
        "rows/s",
    ));
    if !report.is_ok() {
        return Err(AuditError::InvalidRecord {
            field: "bench chain",
            reason: format!("did not verify: {:?}", report.first_finding()),
        });
    }
    Ok(())
}
