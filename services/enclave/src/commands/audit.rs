//! `enclave audit ...`: verify the audit trail (database or export file), export it, prune it
//! (privileged retention), sign checkpoints. Same database selection as `enclave serve`:
//! DATABASE_URL, or the embedded cluster under the data directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use enclave_audit::ops;
use enclave_audit::{AuditWriter, ExportFormat, SeqRange, WriterConfig};
use enclave_domain::TenantId;
use enclave_gateway::Settings;
use enclave_store::OWNER_ROLE;
use sqlx::postgres::PgPoolOptions;

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[arg(long, env = "ENCLAVE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Local state (the embedded PostgreSQL cluster, keys, spool files).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// An external PostgreSQL server instead of the embedded one.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// The Ed25519 audit signing key (PKCS#8 PEM; created on first use, public key at
    /// `<key>.pub`). Default: `<data dir>/keys/audit-signing.pem`.
    #[arg(long, env = "ENCLAVE_AUDIT_KEY", global = true)]
    pub key: Option<PathBuf>,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chains in the database (or an export file); names the first record that
    /// is altered, missing, inserted or reordered. Exits non-zero on any finding.
    Verify(VerifyArgs),
    /// Stream a tenant's records to a file with a signed manifest (`<file>.manifest.json`).
    Export(ExportArgs),
    /// Drop whole monthly partitions: older than a date, or past every tenant's retention
    /// (`--retention`); writes its own audit record first. `--dry-run` lists what would go.
    Prune(PruneArgs),
    /// Sign every chain head that moved since the last checkpoint.
    Checkpoint,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// One tenant's chain (default: every chain).
    #[arg(long)]
    pub tenant: Option<String>,
    /// First seq to check (default: the chain's start).
    #[arg(long)]
    pub from: Option<u64>,
    /// Last seq to check (default: the chain head).
    #[arg(long)]
    pub to: Option<u64>,
    /// Verify this export file offline instead of the database.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// The export's manifest (default: `<file>.manifest.json`).
    #[arg(long, requires = "export")]
    pub manifest: Option<PathBuf>,
    /// The exporter's public key (default: `<key>.pub`).
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// Print the full reports as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[arg(long)]
    pub tenant: String,
    /// Start of the range (stored at or after; YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    pub from: String,
    /// End of the range (stored before).
    #[arg(long)]
    pub to: String,
    #[arg(long, default_value = "jsonl")]
    pub format: String,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Drop partitions whose month ends at or before this date.
    #[arg(
        long,
        required_unless_present = "retention",
        conflicts_with = "retention"
    )]
    pub before: Option<String>,
    /// Derive what goes from each tenant's retention (`PUT /v1/audit/settings`): the oldest
    /// months, up to the first one holding records of a tenant not past its retention or
    /// without one (kept forever).
    #[arg(long)]
    pub retention: bool,
    /// List the partitions that would be dropped (and why the next one is kept); change
    /// nothing, write no record.
    #[arg(long)]
    pub dry_run: bool,
    /// Who runs the prune (recorded in the audit trail; default: $USER).
    #[arg(long)]
    pub operator: Option<String>,
}

pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let mut settings = Settings::load(args.config.as_deref())?;
    if let Some(dir) = &args.data_dir {
        settings.database.data_dir = dir.clone();
    }
    let key_path = args
        .key
        .clone()
        .unwrap_or_else(|| settings.database.data_dir.join("keys/audit-signing.pem"));
    if let AuditCommand::Verify(v) = &args.command
        && let Some(file) = &v.export
    {
        // Offline: no database involved.
        let public = v
            .public_key
            .clone()
            .unwrap_or_else(|| ops::public_key_path(&key_path));
        let key = ops::load_public_key(&public)?;
        let report = ops::verify_export_file(file, v.manifest.as_deref(), &key)?;
        return print_reports(&[report], v.json);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let url = args.database_url.clone().or_else(|| {
            settings
                .database
                .url
                .as_ref()
                .map(|s| s.expose().to_owned())
        });
        let adopted = url.is_none() && embedded_running(&settings.database.data_dir);
        let mut db = super::serve::open_database(&settings, url.as_deref()).await?;
        let owner_url = match (&url, &db.embedded) {
            (Some(u), _) => u.clone(),
            (None, Some(pg)) => pg.urls().owner,
            (None, None) => bail!("no database"),
        };
        let result = dispatch(&args, &settings, &key_path, db.store.pool(), &owner_url).await;
        db.store.pool().close().await;
        if let Some(pg) = db.embedded.take() {
            if adopted {
                // The cluster belongs to a running `enclave serve`: leave it running.
                std::mem::forget(pg);
            } else {
                drop(pg);
            }
        }
        result
    })
}

/// True when a PostgreSQL server already runs on the embedded cluster (a live `enclave serve`).
fn embedded_running(data_dir: &Path) -> bool {
    data_dir.join("postgres/data/postmaster.pid").exists()
}

async fn dispatch(
    args: &AuditArgs,
    settings: &Settings,
    key_path: &Path,
    pool: &sqlx::PgPool,
    owner_url: &str,
) -> anyhow::Result<()> {
    match &args.command {
        AuditCommand::Verify(v) => {
            let tenant = v.tenant.as_deref().map(parse_tenant).transpose()?;
            let public = v
                .public_key
                .clone()
                .unwrap_or_else(|| ops::public_key_path(key_path));
            let trusted = if public.exists() {
                vec![ops::load_public_key(&public)?]
            } else {
                Vec::new()
            };
            let range = SeqRange {
                from: v.from,
                to: v.to,
            };
            let reports = ops::verify_chains(pool, tenant, range, &trusted).await?;
            print_reports(&reports, v.json)
        }
        AuditCommand::Export(e) => {
            let tenant = parse_tenant(&e.tenant)?;
            let from = ops::parse_time("from", &e.from)?;
            let to = ops::parse_time("to", &e.to)?;
            let format: ExportFormat = e.format.parse()?;
            let key = ops::load_or_create_key(key_path)?;
            let m = ops::export_file(pool, &tenant, from, to, format, &key, &e.out).await?;
            println!(
                "exported {} records (seq {:?}..={:?}) to {}; manifest {} signed by {}",
                m.count,
                m.first_seq,
                m.last_seq,
                e.out.display(),
                ops::manifest_path(&e.out).display(),
                m.key_id
            );
            Ok(())
        }
        AuditCommand::Prune(p) => prune(p, settings, pool, owner_url).await,
        AuditCommand::Checkpoint => {
            let key = ops::load_or_create_key(key_path)?;
            let signed = enclave_audit::checkpoint_heads(pool, &key).await?;
            for c in &signed {
                println!(
                    "tenant {}: seq {} hash {} signed by {}",
                    c.tenant, c.seq, c.hash, c.key_id
                );
            }
            println!("{} checkpoint(s) signed", signed.len());
            Ok(())
        }
    }
}

fn parse_tenant(s: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(s).with_context(|| format!("--tenant must be a tenant id (UUID), got {s:?}"))
}

fn print_reports(reports: &[enclave_audit::VerifyReport], json: bool) -> anyhow::Result<()> {
    let mut failed = 0;
    for r in reports {
        if json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            println!("{r}");
            for f in r.findings.iter().skip(1).take(9) {
                println!("  also: {f}");
            }
        }
        failed += usize::from(!r.is_ok());
    }
    if failed > 0 {
        bail!(
            "audit verification failed for {failed} of {} chain(s)",
            reports.len()
        );
    }
    Ok(())
}

async fn prune(
    p: &PruneArgs,
    settings: &Settings,
    pool: &sqlx::PgPool,
    owner_url: &str,
) -> anyhow::Result<()> {
    let owner = PgPoolOptions::new()
        .max_connections(1)
        .connect(owner_url)
        .await
        .with_context(|| format!("connecting as {OWNER_ROLE} (prune needs the schema owner)"))?;
    let plan = match &p.before {
        Some(before) => {
            let cutoff = ops::parse_time("before", before)?;
            enclave_audit::plan_before(&owner, cutoff).await
        }
        None => enclave_audit::plan_retention(&owner, std::time::SystemTime::now().into()).await,
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            owner.close().await;
            return Err(e.into());
        }
    };
    let verb = if p.dry_run { "would drop" } else { "dropping" };
    for part in &plan.partitions {
        println!(
            "{verb} {} ({} records, {} chain(s))",
            part.name,
            part.rows,
            part.chains.len()
        );
    }
    if let Some(k) = &plan.kept {
        match (k.retention_days, k.droppable_from) {
            (Some(days), Some(from)) => println!(
                "keeping {} and later: tenant {} keeps records {days} days (droppable from {from})",
                k.name, k.tenant
            ),
            _ => println!(
                "keeping {} and later: tenant {} has no retention set (kept forever)",
                k.name, k.tenant
            ),
        }
    }
    if p.dry_run {
        owner.close().await;
        println!(
            "dry run: {} partition(s) would be dropped",
            plan.partitions.len()
        );
        return Ok(());
    }
    let operator = p
        .operator
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".to_owned());
    let spool = settings.database.data_dir.join("audit/maintenance.spool");
    let writer = AuditWriter::start(pool.clone(), WriterConfig::new(spool)).await?;
    let dropped = enclave_audit::prune_planned(&owner, &writer, &operator, &plan).await;
    writer.shutdown().await;
    owner.close().await;
    let dropped = dropped?;
    for d in &dropped {
        println!("dropped {} ({} records)", d.name, d.rows);
    }
    match plan.cutoff {
        Some(cutoff) => println!(
            "pruned {} partition(s) ending at or before {cutoff}",
            dropped.len()
        ),
        None => println!("pruned nothing"),
    }
    Ok(())
}
