//! `enclave bench engine`: prefill throughput on a 512-token prompt, aggregate decode throughput
//! at several concurrency levels, time to first token and peak RSS.

use std::time::Instant;

use anyhow::Context;
use clap::Args;
use enclave_model_core::engine::{Engine, GenerateRequest, GenerationStream, PromptInput};
use enclave_model_core::sampling::RawSamplingParams;

use super::streams::{aggregate_rate, drain, median};
use super::{emit, peak_rss_mib};
use crate::cli::ModelArgs;

#[derive(Args, Debug)]
pub struct EngineBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt length for the prefill measurement.
    #[arg(long, default_value_t = 512)]
    pub prefill_tokens: usize,
    /// Tokens generated per sequence in the decode measurements.
    #[arg(long, default_value_t = 64)]
    pub decode_tokens: u32,
    /// Concurrency levels for decode.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16,64")]
    pub concurrency: Vec<usize>,
    /// Repetitions of each measurement; the median is printed.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

const TEXT: &str = "The quick brown fox jumps over the lazy dog while the committee reviews the quarterly \
report on renewable energy, supply chains, and the history of mathematics in medieval libraries. ";

fn prompt_ids(engine: &Engine, n: usize, salt: usize) -> anyhow::Result<Vec<u32>> {
    let text = format!("{salt} {}", TEXT.repeat(n / 20 + 2));
    let mut ids = engine
        .tokenizer()
        .encode(&text, false)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(ids.len() >= n, "bench text too short");
    ids.truncate(n);
    Ok(ids)
}

fn greedy(ignore_eos: bool) -> RawSamplingParams {
    let mut raw = RawSamplingParams::default();
    raw.temperature = Some(0.0);
    raw.ignore_eos = Some(ignore_eos);
    raw
}

fn submit(engine: &Engine, ids: Vec<u32>, max_tokens: u32) -> anyhow::Result<GenerationStream> {
    let req = engine.prepare(GenerateRequest {
        prompt: PromptInput::Tokens(ids),
        sampling: greedy(true),
        max_tokens: Some(max_tokens),
    })?;
    Ok(engine.submit(req)?)
}

/// Aggregate decode tokens/s with `n` concurrent sequences, measured between the moment every
/// sequence has its first token and the moment the last one finishes.
fn decode_rate(engine: &Engine, n: usize, tokens: u32) -> anyhow::Result<f64> {
    let streams: Vec<GenerationStream> = (0..n)
        .map(|i| submit(engine, prompt_ids(engine, 16, i)?, tokens))
        .collect::<anyhow::Result<_>>()?;
    aggregate_rate(streams)
}

pub fn run(args: EngineBenchArgs) -> anyhow::Result<()> {
    let cfg = args.model.engine_config();
    let t = Instant::now();
    let engine = Engine::load(&args.model.model, cfg)
        .with_context(|| format!("loading {}", args.model.model.display()))?;
    emit(
        "engine",
        "load_time",
        t.elapsed().as_secs_f64() * 1000.0,
        "ms",
    );
    // Warm-up: touches every weight page and sizes the scratch buffers.
    drain(submit(&engine, prompt_ids(&engine, 32, 999)?, 4)?)?;

    let mut prefill = Vec::new();
    let mut ttft = Vec::new();
    for run in 0..args.runs {
        let ids = prompt_ids(&engine, args.prefill_tokens, run)?;
        let t0 = Instant::now();
        let (first, _, _) = drain(submit(&engine, ids, 1)?)?;
        let secs = first.duration_since(t0).as_secs_f64();
        prefill.push(args.prefill_tokens as f64 / secs);
        ttft.push(secs * 1000.0);
    }
    emit(
        "engine",
        &format!("prefill_{}", args.prefill_tokens),
        median(prefill),
        "tok/s",
    );
    emit(
        "engine",
        &format!("ttft_{}", args.prefill_tokens),
        median(ttft),
        "ms",
    );

    let mut short_ttft = Vec::new();
    for run in 0..args.runs {
        let t0 = Instant::now();
        let (first, _, _) = drain(submit(&engine, prompt_ids(&engine, 16, 100 + run)?, 1)?)?;
        short_ttft.push(first.duration_since(t0).as_secs_f64() * 1000.0);
    }
    emit("engine", "ttft_16", median(short_ttft), "ms");

    for &n in &args.concurrency {
        let rates = (0..args.runs)
            .map(|_| decode_rate(&engine, n, args.decode_tokens))
            .collect::<anyhow::Result<Vec<_>>>()?;
        emit("engine", &format!("decode_x{n}"), median(rates), "tok/s");
    }
    if let Some(rss) = peak_rss_mib() {
        emit("engine", "peak_rss", rss, "MiB");
    }
    Ok(())
}
