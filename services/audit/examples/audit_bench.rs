//! Runs the audit benchmark on a durable (fsync on) embedded cluster in a temporary directory:
//! `cargo run --release -p enclave-audit --example audit_bench [export_rows] [seconds_per_level]`. The CLI's `enclave bench audit`
//! calls the same `enclave_audit::bench::run` against the configured database.

use enclave_store::{APP_ROLE, EmbeddedOptions, EmbeddedPostgres, OWNER_ROLE, migrate};
use sqlx::postgres::PgPoolOptions;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("enclave-audit-bench-")
        .tempdir()?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    }
    let mut opts = EmbeddedOptions::new(dir.path().join("pg"));
    opts.port = 15_000 + (std::process::id() % 5000) as u16;
    let mut pg = EmbeddedPostgres::start(opts).await?;
    let owner = PgPoolOptions::new()
        .max_connections(1)
        .connect(&pg.url(OWNER_ROLE, "enclave"))
        .await?;
    migrate(&owner).await?;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&pg.url(APP_ROLE, "enclave"))
        .await?;
    let mut bench_opts = enclave_audit::bench::BenchOptions::new(dir.path().join("work"));
    // `audit_bench [export_rows] [seconds_per_level]`
    let mut args = std::env::args().skip(1);
    if let Some(n) = args.next() {
        bench_opts.export_rows = n.parse()?;
    }
    if let Some(s) = args.next() {
        bench_opts.duration_per_level = std::time::Duration::from_secs_f64(s.parse()?);
    }
    let result = enclave_audit::bench::run(&pool, &bench_opts, &mut |f| {
        println!("{}", f.to_json_line())
    })
    .await;
    pool.close().await;
    owner.close().await;
    pg.stop()?;
    result?;
    Ok(())
}
