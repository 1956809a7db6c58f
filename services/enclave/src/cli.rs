//! Command-line definition. Each subcommand's work lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::telemetry::LogFormat;

#[derive(Parser, Debug)]
#[command(
    name = "enclave",
    version,
    about = "Private-deployment multi-tenant LLM platform"
)]
pub struct Cli {
    /// Log output format: `auto` is text on a terminal, JSON lines otherwise.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto, env = "ENCLAVE_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the platform: gateway, engine and (unless DATABASE_URL is set) its own PostgreSQL.
    Serve(commands::serve::ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(commands::migrate::MigrateArgs),
    /// Generate text from a prompt and stream it to stdout.
    Generate(commands::generate::GenerateArgs),
    /// Bootstrap: create the first platform admin and tenants, rotate the signing key.
    Admin(commands::admin::AdminArgs),
    /// Measure performance; prints JSON lines.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Audit trail: verify, export, prune (retention), checkpoint.
    Audit(commands::audit::AuditArgs),
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Prefill and decode throughput of the inference engine.
    Engine(commands::bench::engine::EngineBenchArgs),
    /// Decode throughput free vs JSON schema / regex / XML constrained; schema compile time.
    Format(commands::bench::format::FormatBenchArgs),
    /// Gateway requests/s and p50/p99 of an authenticated route; overhead on a 1-token completion.
    Gateway(commands::bench::gateway::GatewayBenchArgs),
    /// Sensitive-word matching throughput, streaming overhead and compile time.
    Policy,
    /// Durable audit records/s, append latency, export and verify rows/s, export peak RSS.
    Audit(commands::bench::audit::AuditBenchArgs),
    /// Decode tok/s at 16 sequences with 0/1/4/16 distinct LoRA adapters; adapter cold-load time.
    Lora(commands::bench::lora::LoraBenchArgs),
}

/// Options shared by commands that load a model.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A GGUF file or a Hugging Face model directory.
    #[arg(
        long,
        env = "ENCLAVE_MODEL",
        default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    )]
    pub model: PathBuf,
    /// Compute threads (default: all cores).
    #[arg(long, env = "ENCLAVE_THREADS")]
    pub threads: Option<usize>,
    /// KV cache size in MiB.
    #[arg(long, default_value_t = 512)]
    pub kv_cache_mib: usize,
    /// Context length cap (default: the model's).
    #[arg(long)]
    pub max_context: Option<usize>,
    /// `f32` dequantizes every matrix at load (reference precision: 4 bytes per weight, slower,
    /// reproduces an f32 implementation token for token); `as-stored` is the fast path.
    #[arg(long, value_enum, default_value_t = Precision::AsStored)]
    pub precision: Precision,
    /// Resident LoRA factors: `as-stored` (f32 files stay f32, exact) or `bf16` (f32 factors
    /// rounded to bf16: half the memory traffic of batches mixing many distinct adapters).
    #[arg(long, value_enum, default_value_t = AdapterPrecisionArg::AsStored)]
    pub adapter_precision: AdapterPrecisionArg,
}

/// `--adapter-precision` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterPrecisionArg {
    AsStored,
    Bf16,
}

/// `--precision` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Precision {
    AsStored,
    F32,
}

impl ModelArgs {
    pub fn engine_config(&self) -> enclave_model_core::engine::EngineConfig {
        enclave_model_core::engine::EngineConfig {
            kv_cache_bytes: self.kv_cache_mib << 20,
            threads: self.threads,
            max_context: self.max_context,
            precision: match self.precision {
                Precision::AsStored => enclave_model_core::loader::ModelPrecision::AsStored,
                Precision::F32 => enclave_model_core::loader::ModelPrecision::F32,
            },
            adapter_precision: match self.adapter_precision {
                AdapterPrecisionArg::AsStored => {
                    enclave_model_core::adapters::AdapterPrecision::AsStored
                }
                AdapterPrecisionArg::Bf16 => enclave_model_core::adapters::AdapterPrecision::Bf16,
            },
            ..Default::default()
        }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => commands::serve::run(args),
        Command::Migrate(args) => commands::migrate::run(args),
        Command::Admin(args) => commands::admin::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Bench(BenchCommand::Engine(args)) => commands::bench::engine::run(args),
        Command::Bench(BenchCommand::Format(args)) => commands::bench::format::run(args),
        Command::Bench(BenchCommand::Audit(args)) => commands::bench::audit::run_bench(args),
        Command::Audit(args) => commands::audit::run(args),
        Command::Bench(BenchCommand::Gateway(args)) => commands::bench::gateway::run(args),
        Command::Bench(BenchCommand::Lora(args)) => commands::bench::lora::run(args),
        Command::Bench(BenchCommand::Policy) => {
            enclave_policy::bench::run(&mut |f| {
                commands::bench::emit(f.bench, &f.metric, f.value, f.unit)
            });
            Ok(())
        }
    }
}
