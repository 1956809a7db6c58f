//! `enclave bench lora`: aggregate decode throughput at 16 concurrent sequences with 0 (base),
//! 1, 4 and 16 distinct adapters (rank 16 on all seven projections by default), the ratio of
//! each to the base figure, and the cold-load time of one adapter (read its files, parse,
//! validate, make resident), for adapter files in f32 and in bf16.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use enclave_model_core::adapters::synthetic::{self, FileDtype};
use enclave_model_core::adapters::{AdapterLease, Target};
use enclave_model_core::engine::{
    Engine, GenerateRequest, GenerationStream, PromptInput, RequestOptions,
};
use enclave_model_core::sampling::RawSamplingParams;

use super::streams::{aggregate_rate, median};
use super::{emit, peak_rss_mib};
use crate::cli::{AdapterPrecisionArg, ModelArgs};

/// Precision of the generated adapter files (the engine keeps it, unless `--adapter-precision`
/// says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    fn file(self) -> FileDtype {
        match self {
            Dtype::F32 => FileDtype::F32,
            Dtype::F16 => FileDtype::F16,
            Dtype::Bf16 => FileDtype::BF16,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }
}

#[derive(Args, Debug)]
pub struct LoraBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Concurrent sequences in the decode measurements.
    #[arg(long, default_value_t = 16)]
    pub sequences: usize,
    /// Numbers of distinct adapters shared round-robin by the sequences (0 = base model).
    #[arg(long, value_delimiter = ',', default_value = "0,1,4,16")]
    pub adapters: Vec<usize>,
    /// LoRA rank of every adapter (all seven projections of every layer).
    #[arg(long, default_value_t = 16)]
    pub rank: usize,
    /// Precisions of the adapter files to measure.
    #[arg(long, value_delimiter = ',', default_value = "f32,bf16")]
    pub dtypes: Vec<Dtype>,
    /// Tokens generated per sequence.
    #[arg(long, default_value_t = 32)]
    pub decode_tokens: u32,
    /// Repetitions of each measurement; the median is printed.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

fn greedy() -> RawSamplingParams {
    RawSamplingParams {
        temperature: Some(0.0),
        ignore_eos: Some(true),
        ..Default::default()
    }
}

fn submit(
    engine: &Engine,
    i: usize,
    adapter: Option<&AdapterLease>,
    tokens: u32,
) -> anyhow::Result<GenerationStream> {
    let prompt = format!(
        "Request {i}: write a detailed report about the history of the printing press in Europe."
    );
    let req = GenerateRequest {
        prompt: PromptInput::Text(prompt),
        sampling: greedy(),
        max_tokens: Some(tokens),
    };
    let options = RequestOptions {
        adapter: adapter.cloned(),
        ..Default::default()
    };
    Ok(engine.submit(engine.prepare_with(req, options)?)?)
}

/// Aggregate decode tokens/s of `n` sequences, sequence `i` on `leases[i % len]` (none when
/// empty), between the moment every sequence has its first token and the last one finishing.
fn decode_rate(
    engine: &Engine,
    n: usize,
    leases: &[AdapterLease],
    tokens: u32,
) -> anyhow::Result<f64> {
    let streams = (0..n)
        .map(|i| {
            let lease = (!leases.is_empty()).then(|| &leases[i % leases.len()]);
            submit(engine, i, lease, tokens)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    aggregate_rate(streams)
}

/// Writes adapter `i` in `dtype` as a PEFT directory under `dir`.
fn write_adapter(
    engine: &Engine,
    dir: &Path,
    i: usize,
    rank: usize,
    dtype: Dtype,
) -> anyhow::Result<PathBuf> {
    let (config, weights) = synthetic::random_peft_as(
        engine.model_config(),
        &Target::ALL,
        rank,
        2.0 * rank as f32,
        0.02,
        i as u64 + 1,
        dtype.file(),
    );
    let d = dir.join(format!("{}-adapter-{i}", dtype.name()));
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join("adapter_config.json"), config)?;
    std::fs::write(d.join("adapter_model.safetensors"), weights)?;
    Ok(d)
}

fn load(engine: &Engine, id: &str, dir: &Path) -> anyhow::Result<AdapterLease> {
    let lease = engine.acquire_adapter(id, || {
        Ok((
            std::fs::read(dir.join("adapter_config.json"))?,
            std::fs::read(dir.join("adapter_model.safetensors"))?,
        ))
    })?;
    Ok(lease)
}

pub fn run(args: LoraBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.sequences > 0, "--sequences must be at least 1");
    let mut cfg = args.model.engine_config();
    // A bound, not an allocation: room for every adapter of every dtype plus the cold loads.
    cfg.adapter_memory_bytes = cfg.adapter_memory_bytes.max(8 << 30);
    let engine = Engine::load(&args.model.model, cfg)
        .with_context(|| format!("loading {}", args.model.model.display()))?;
    let tmp = std::env::temp_dir().join(format!("enclave-bench-lora-{}", std::process::id()));
    let result = bench(&engine, &args, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn bench(engine: &Engine, args: &LoraBenchArgs, tmp: &Path) -> anyhow::Result<()> {
    let most = args.adapters.iter().copied().max().unwrap_or(0).max(1);
    let runs = args.runs.max(1);
    for &dtype in &args.dtypes {
        // Figures name the file precision, and the resident one when it differs.
        let dt = match args.model.adapter_precision {
            AdapterPrecisionArg::Bf16 if dtype == Dtype::F32 => "f32_as_bf16",
            _ => dtype.name(),
        };
        let dirs = (0..most)
            .map(|i| write_adapter(engine, tmp, i, args.rank, dtype))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Cold loads: each a version never seen by the engine (files in the page cache).
        let mut cold = Vec::new();
        let mut bytes = 0;
        for run in 0..runs {
            let t = Instant::now();
            let lease = load(engine, &format!("cold-{dt}-{run}"), &dirs[0])?;
            cold.push(t.elapsed().as_secs_f64() * 1000.0);
            bytes = lease.version().size_bytes();
        }
        emit("lora", &format!("adapter_bytes_{dt}"), bytes as f64, "B");
        emit(
            "lora",
            &format!("cold_load_r{}_{dt}", args.rank),
            median(cold),
            "ms",
        );
        let leases = dirs
            .iter()
            .enumerate()
            .map(|(i, d)| load(engine, &format!("{dt}-adapter-{i}"), d))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Warm-up: sizes the scratch buffers and touches the weights.
        decode_rate(engine, args.sequences, &leases[..1], 4)?;
        // Runs go round-robin over the adapter counts, and each ratio is the median of the
        // ratios within a round: on a shared machine whose speed drifts from second to second,
        // a ratio compares runs made a second apart rather than minutes apart.
        let mut rates = vec![Vec::with_capacity(runs); args.adapters.len()];
        for _ in 0..runs {
            for (j, &k) in args.adapters.iter().enumerate() {
                let leases = &leases[..k.min(leases.len())];
                rates[j].push(decode_rate(
                    engine,
                    args.sequences,
                    leases,
                    args.decode_tokens,
                )?);
            }
        }
        let base = args.adapters.iter().position(|&k| k == 0);
        let n = args.sequences;
        for (j, &k) in args.adapters.iter().enumerate() {
            emit(
                "lora",
                &format!("decode_x{n}_adapters_{k}_{dt}"),
                median(rates[j].clone()),
                "tok/s",
            );
            if let Some(b) = base.filter(|&b| b != j) {
                let ratios = rates[j].iter().zip(&rates[b]).map(|(r, b)| r / b).collect();
                emit(
                    "lora",
                    &format!("ratio_adapters_{k}_{dt}_vs_base"),
                    median(ratios),
                    "x",
                );
            }
        }
    }
    if let Some(rss) = peak_rss_mib() {
        emit("lora", "peak_rss", rss, "MiB");
    }
    Ok(())
}
