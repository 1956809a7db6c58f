//! `enclave serve`: the platform on one machine. Without a database URL it runs and supervises
//! its own PostgreSQL cluster under the data directory (the embedded default).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use enclave_auth::Authenticator;
use enclave_gateway::{AppState, Server, Settings};
use enclave_model_core::engine::Engine;
use enclave_store::{DbUrls, EmbeddedOptions, EmbeddedPostgres, Store};

use crate::cli::ModelArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Configuration file (TOML); `ENCLAVE_*` variables override it (`ENCLAVE_SERVER__BIND=...`).
    #[arg(long, env = "ENCLAVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Local state: the embedded PostgreSQL cluster, keys, spool files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (overrides the configuration).
    #[arg(long)]
    pub bind: Option<std::net::SocketAddr>,
    /// An external PostgreSQL server instead of the embedded one.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// The database the platform runs on: an embedded cluster it owns, or an external server.
pub struct Database {
    pub store: Store,
    /// Kept alive for as long as the server runs; dropping it stops the cluster.
    pub embedded: Option<EmbeddedPostgres>,
}

/// Starts (or connects to) the database and applies pending migrations.
pub async fn open_database(settings: &Settings, url: Option<&str>) -> anyhow::Result<Database> {
    if let Some(url) = url {
        let urls = DbUrls {
            owner: url.to_owned(),
            app: url.to_owned(),
        };
        let store = Store::connect_and_migrate(&urls)
            .await
            .context("connecting to DATABASE_URL")?;
        return Ok(Database {
            store,
            embedded: None,
        });
    }
    let root = settings.database.data_dir.join("postgres");
    std::fs::create_dir_all(&settings.database.data_dir)
        .with_context(|| format!("creating {}", settings.database.data_dir.display()))?;
    let mut opts = EmbeddedOptions::new(&root);
    // Port 0 would change on every start; a fixed loopback port keeps external tools simple.
    opts.port = 54329;
    let pg = EmbeddedPostgres::start(opts)
        .await
        .context("starting the embedded PostgreSQL cluster")?;
    let store = Store::connect_and_migrate(&pg.urls())
        .await
        .context("migrating the embedded database")?;
    Ok(Database {
        store,
        embedded: Some(pg),
    })
}

fn settings(args: &ServeArgs) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(args.config.as_deref())?;
    if let Some(dir) = &args.data_dir {
        settings.database.data_dir = dir.clone();
    }
    if let Some(bind) = args.bind {
        settings.server.bind = bind;
    }
    settings.model.path = Some(args.model.model.clone());
    settings.validate()?;
    Ok(settings)
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = settings(&args)?;
    let mut engine_config = args.model.engine_config();
    engine_config.adapter_memory_bytes = settings.adapters.cache_bytes;
    engine_config.adapter_limits = settings.adapters.limits();
    engine_config.adapter_precision = settings.adapters.precision;
    let engine = Engine::load(&args.model.model, engine_config)
        .with_context(|| format!("loading {}", args.model.model.display()))?;
    tracing::info!(model = %engine.info().id, context = engine.info().context_length, "model loaded");
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
        let mut db = open_database(&settings, url.as_deref()).await?;
        // The signing-key ring lives in the database: created on the first start, reused after.
        let auth = Authenticator::new(db.store.clone(), settings.auth.to_auth_config())
            .await
            .context("loading the JWT signing keys")?;
        // Every API call is recorded; the spool and the export signing key live in the data dir.
        let audit = enclave_gateway::audit::AuditLog::start(
            db.store.pool().clone(),
            &settings.database.data_dir,
        )
        .await
        .context("starting the audit writer")?;
        let state = AppState::builder(settings)
            .engine(engine.clone())
            .store(db.store.clone())
            .auth(auth)
            .audit(audit.clone())
            .build();
        let server = Server::start(state)?;
        println!("enclave listening on http://{}", server.addr);
        server.run_until_signal().await?;
        audit.shutdown().await;
        engine.shutdown();
        if let Some(pg) = db.embedded.as_mut() {
            pg.stop()
                .context("stopping the embedded PostgreSQL cluster")?;
        }
        Ok(())
    })
}
