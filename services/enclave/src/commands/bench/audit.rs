//! `enclave bench audit`: durable audit records/s at 1, 16 and 64 concurrent writers (with
//! per-append latency percentiles), export rows/s and its peak RSS, offline and database verify
//! rows/s. Runs on a throwaway durable (fsync on) embedded cluster unless DATABASE_URL is given,
//! so a benchmark never writes bench chains into a real audit trail by accident.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use enclave_audit::bench::{BenchOptions, run};
use enclave_store::{APP_ROLE, EmbeddedOptions, EmbeddedPostgres, OWNER_ROLE, migrate};
use sqlx::postgres::PgPoolOptions;

use super::emit;

#[derive(Args, Debug)]
pub struct AuditBenchArgs {
    /// Seconds each concurrency level runs.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Concurrent writers per level.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// Records the exported chain holds at least (1000000 for the acceptance figure).
    #[arg(long, default_value_t = 100_000)]
    pub export_rows: u64,
    /// Scratch directory (default: a fresh temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Benchmark against this server instead of a throwaway embedded cluster (a bench tenant
    /// chain is written there).
    #[arg(long)]
    pub database_url: Option<String>,
}

pub fn run_bench(args: AuditBenchArgs) -> anyhow::Result<()> {
    let tmp = tempfile_dir()?;
    let work = args.work_dir.clone().unwrap_or_else(|| tmp.join("work"));
    let mut opts = BenchOptions::new(&work);
    opts.duration_per_level = Duration::from_secs_f64(args.seconds.max(0.1));
    opts.concurrency = args.concurrency.clone();
    opts.export_rows = args.export_rows;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let scratch = tmp.clone();
    let result = runtime.block_on(async move {
        let mut pg = None;
        let (owner_url, app_url) = match &args.database_url {
            Some(u) => (u.clone(), u.clone()),
            None => {
                let mut eo = EmbeddedOptions::new(scratch.join("pg"));
                eo.port = 15_000 + (std::process::id() % 5000) as u16;
                let p = EmbeddedPostgres::start(eo)
                    .await
                    .context("starting a bench PostgreSQL cluster")?;
                let urls = (p.url(OWNER_ROLE, "enclave"), p.url(APP_ROLE, "enclave"));
                pg = Some(p);
                urls
            }
        };
        let owner = PgPoolOptions::new()
            .max_connections(1)
            .connect(&owner_url)
            .await?;
        migrate(&owner).await?;
        owner.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&app_url)
            .await?;
        let r = run(&pool, &opts, &mut |f| {
            emit(f.bench, &f.metric, f.value, f.unit)
        })
        .await;
        pool.close().await;
        if let Some(mut p) = pg {
            p.stop()?;
        }
        r.map_err(anyhow::Error::from)
    });
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// A private scratch directory the embedded cluster can use (traversable by the `postgres`
/// user when running as root).
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("enclave-audit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
    Ok(dir)
}
