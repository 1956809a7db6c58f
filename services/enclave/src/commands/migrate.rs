//! `enclave migrate`: applies pending database migrations and exits.

use clap::Args;
use enclave_gateway::Settings;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    #[arg(long, env = "ENCLAVE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let mut settings = Settings::load(args.config.as_deref())?;
    if let Some(dir) = args.data_dir {
        settings.database.data_dir = dir;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut db = super::serve::open_database(&settings, args.database_url.as_deref()).await?;
        println!("migrations applied");
        if let Some(pg) = db.embedded.as_mut() {
            pg.stop()?;
        }
        Ok(())
    })
}
