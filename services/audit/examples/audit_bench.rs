//! Runs the audit benchmark on a durable (fsync on) embedded cluster in a temporary directory:
//! `cargo run --release -p enclave-audit --example audit_bench`. The CLI's `enclave bench audit`
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
    let bench_opts = enclave_audit::bench::BenchOptions::new(dir.path().join("audit.spool"));
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
