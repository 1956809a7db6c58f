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
    WriterConfig, verify_db,
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

/// Options: how long each concurrency level runs, where the writer spools and the export goes.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub duration_per_level: Duration,
    pub concurrency: Vec<usize>,
    /// A scratch directory: the writer's spool and the export file (deleted afterwards).
    pub work_dir: std::path::PathBuf,
    /// Records the exported chain holds at least (topped up before the export; 1,000,000 is
    /// the acceptance size).
    pub export_rows: u64,
}

impl BenchOptions {
    pub fn new(work_dir: impl Into<std::path::PathBuf>) -> Self {
        BenchOptions {
            duration_per_level: Duration::from_secs(3),
            concurrency: vec![1, 16, 64],
            work_dir: work_dir.into(),
            export_rows: 100_000,
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

/// Peak resident set of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Current resident set of this process in MiB (Linux `VmRSS`).
pub fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets `VmHWM` to the current RSS (Linux `clear_refs` 5), so a later [`peak_rss_mib`]
/// measures one phase; false where that is not possible.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// `n` concurrent appenders until `deadline` (or until `stop_after` records in all); returns
/// every append's latency.
async fn load(
    writer: &AuditWriter,
    tenant: TenantId,
    n: usize,
    deadline: Instant,
    stop_after: u64,
) -> Result<Vec<Duration>, AuditError> {
    let per_task = stop_after.div_ceil(n as u64);
    let tasks: Vec<_> = (0..n)
        .map(|w| {
            let writer = writer.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut done = 0u64;
                while Instant::now() < deadline && done < per_task {
                    let r = sample(tenant, w as u64 * 1_000_000_000 + done);
                    let t = Instant::now();
                    writer.append(r).await?;
                    lat.push(t.elapsed());
                    done += 1;
                }
                Ok::<_, AuditError>(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|_| AuditError::WriterStopped)??);
    }
    Ok(all)
}

/// Runs the audit benchmark against `pool` (application role) in a fresh bench tenant chain.
pub async fn run(
    pool: &PgPool,
    opts: &BenchOptions,
    sink: &mut dyn FnMut(BenchFigure),
) -> Result<(), AuditError> {
    let tenant = TenantId::new();
    std::fs::create_dir_all(&opts.work_dir).map_err(AuditError::io("creating the bench dir"))?;
    let writer = AuditWriter::start(
        pool.clone(),
        WriterConfig::new(opts.work_dir.join("bench.spool")),
    )
    .await?;
    let mut written = 0u64;
    for &n in &opts.concurrency {
        let start = Instant::now();
        let mut lat = load(
            &writer,
            tenant,
            n,
            start + opts.duration_per_level,
            u64::MAX,
        )
        .await?;
        let secs = start.elapsed().as_secs_f64();
        written += lat.len() as u64;
        lat.sort_unstable();
        sink(BenchFigure::new(
            format!("durable_appends_{n}_writers"),
            lat.len() as f64 / secs,
            "records/s",
        ));
        sink(BenchFigure::new(
            format!("append_latency_p50_{n}_writers"),
            percentile(&lat, 0.50),
            "ms",
        ));
        sink(BenchFigure::new(
            format!("append_latency_p99_{n}_writers"),
            percentile(&lat, 0.99),
            "ms",
        ));
    }
    if written < opts.export_rows {
        let fill = opts.export_rows - written;
        let far = Instant::now() + Duration::from_secs(24 * 3600);
        written += load(&writer, tenant, 256, far, fill).await?.len() as u64;
    }
    writer.shutdown().await;
    sink(BenchFigure::new("chain_records", written as f64, "records"));
    export_and_verify(pool, tenant, opts, sink).await
}

async fn export_and_verify(
    pool: &PgPool,
    tenant: TenantId,
    opts: &BenchOptions,
    sink: &mut dyn FnMut(BenchFigure),
) -> Result<(), AuditError> {
    let key = AuditSigningKey::generate("bench")?;
    let path = opts.work_dir.join("bench-export.jsonl");
    let rss_reset = reset_peak_rss();
    if let (true, Some(rss)) = (rss_reset, rss_mib()) {
        sink(BenchFigure::new("export_rss_before", rss, "MiB"));
    }
    let start = Instant::now();
    let m = crate::ops::export_file(
        pool,
        &tenant,
        Utc::now() - chrono::Duration::days(1),
        Utc::now() + chrono::Duration::days(1),
        ExportFormat::Jsonl,
        &key,
        &path,
    )
    .await?;
    sink(BenchFigure::new(
        "export_jsonl",
        m.count as f64 / start.elapsed().as_secs_f64(),
        "rows/s",
    ));
    sink(BenchFigure::new("export_rows", m.count as f64, "rows"));
    if let Ok(meta) = std::fs::metadata(&path) {
        sink(BenchFigure::new(
            "export_file_size",
            meta.len() as f64 / (1024.0 * 1024.0),
            "MiB",
        ));
    }
    if let (true, Some(peak)) = (rss_reset, peak_rss_mib()) {
        sink(BenchFigure::new("export_peak_rss", peak, "MiB"));
    }
    let start = Instant::now();
    let offline = tokio::task::block_in_place(|| crate::verify_export(&path, &m, &key.public()))?;
    sink(BenchFigure::new(
        "verify_export",
        offline.checked as f64 / start.elapsed().as_secs_f64(),
        "rows/s",
    ));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(crate::ops::manifest_path(&path));
    let start = Instant::now();
    let report = verify_db(pool, &tenant, SeqRange::default(), &[]).await?;
    sink(BenchFigure::new(
        "verify_db",
        report.checked as f64 / start.elapsed().as_secs_f64(),
        "rows/s",
    ));
    for (what, r) in [("database", &report), ("export", &offline)] {
        if !r.is_ok() || r.checked != m.count {
            return Err(AuditError::InvalidRecord {
                field: "bench chain",
                reason: format!("{what} did not verify: {r}"),
            });
        }
    }
    Ok(())
}
