//! `enclave bench format`: aggregate decode tokens/s at 1 and 16 sequences, free text against
//! JSON schema, regex and XML constrained output (and the ratio to free text), the decode rate of
//! free-text sequences sharing a batch with JSON-schema constrained ones (against the same
//! sequences in an all-free-text batch), plus the compile time of each schema of a corpus.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use enclave_model_core::constraints::ResponseFormat;
use enclave_model_core::engine::{
    Engine, GenerateRequest, GenerationStream, PromptInput, RequestOptions,
};
use enclave_model_core::sampling::RawSamplingParams;
use serde_json::{Value, json};

use super::emit;
use super::streams::{aggregate_rate, median, read_concurrently, read_to_end};
use crate::cli::ModelArgs;

#[derive(Args, Debug)]
pub struct FormatBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Tokens generated per sequence (a structure still open at the end is cut there).
    #[arg(long, default_value_t = 64)]
    pub decode_tokens: u32,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub concurrency: Vec<usize>,
    /// Repetitions of each measurement; the median is printed.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Sequences of the mixed batch: the first half free text, the second half JSON-schema
    /// constrained (0: skip the mixed-batch measurement).
    #[arg(long, default_value_t = 16)]
    pub mixed: usize,
    /// Directory of JSON schema files whose compile time is measured.
    #[arg(long, default_value = "model-core/tests/data/json_schemas")]
    pub schemas: PathBuf,
}

/// The measured formats: long enough that a sequence rarely ends before `decode_tokens`, so each
/// kind produces a comparable number of tokens.
fn formats() -> anyhow::Result<Vec<(&'static str, Option<ResponseFormat>)>> {
    let parse = |v: Value| ResponseFormat::from_json(&v).map_err(|e| anyhow::anyhow!("{e}"));
    Ok(vec![
        ("text", None),
        (
            "json_schema",
            Some(parse(
                json!({"type": "json_schema", "json_schema": {"name": "report", "schema": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "items": {"type": "array", "minItems": 12, "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "count": {"type": "integer"}},
                        "required": ["name", "count"], "additionalProperties": false}}
                },
                "required": ["title", "items"], "additionalProperties": false}}}),
            )?),
        ),
        (
            "regex",
            Some(parse(
                json!({"type": "regex", "regex": {"pattern": "([A-Z][a-z]{2,12} ){40}[a-z]+\\."}}),
            )?),
        ),
        (
            "xml",
            Some(parse(json!({"type": "xml", "xml": {"root": "report"}}))?),
        ),
    ])
}

fn request(engine: &Engine, salt: usize, tokens: u32) -> anyhow::Result<GenerateRequest> {
    let text = format!("Report {salt}: list the items in the warehouse with their counts.");
    let ids = engine
        .tokenizer()
        .encode(&text, true)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut sampling = RawSamplingParams::default();
    sampling.temperature = Some(0.0);
    Ok(GenerateRequest {
        prompt: PromptInput::Tokens(ids),
        sampling,
        max_tokens: Some(tokens),
    })
}

/// Aggregate decode tokens/s of `n` sequences of one format.
fn decode_rate(
    engine: &Engine,
    format: Option<&ResponseFormat>,
    n: usize,
    tokens: u32,
) -> anyhow::Result<f64> {
    let streams = (0..n)
        .map(|i| {
            let options = RequestOptions {
                response_format: format.cloned(),
                ..RequestOptions::default()
            };
            let prepared = engine.prepare_with(request(engine, i, tokens)?, options)?;
            Ok(engine.submit(prepared)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    aggregate_rate(streams)
}

/// Reads a stream to its end; returns the arrival time of every token.
fn token_times(stream: GenerationStream) -> anyhow::Result<Vec<Instant>> {
    let mut times = Vec::new();
    read_to_end(stream, |t| times.push(t))?;
    Ok(times)
}

/// One batch of `n` sequences where those from `first_constrained` on run under `format`:
/// the decode tokens/s of the first `measured` sequences (free text, EOS ignored so they run
/// as long as the constrained ones), counted over the window in which all `n` sequences are decoding
/// together (from the last first token to the first last token), so the batch is the same in
/// every run. With `first_constrained == n` the whole batch is free text, which gives the
/// baseline for the same sequences.
fn free_rate_in_batch(
    engine: &Engine,
    format: &ResponseFormat,
    n: usize,
    first_constrained: usize,
    measured: usize,
    tokens: u32,
) -> anyhow::Result<f64> {
    let streams = (0..n)
        .map(|i| {
            let constrained = i >= first_constrained;
            let options = RequestOptions {
                response_format: constrained.then(|| format.clone()),
                ..RequestOptions::default()
            };
            let mut req = request(engine, i, tokens)?;
            req.sampling.ignore_eos = Some(!constrained);
            let prepared = engine.prepare_with(req, options)?;
            Ok(engine.submit(prepared)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let times = read_concurrently(streams, token_times)?;
    let start = times
        .iter()
        .filter_map(|t| t.first())
        .max()
        .context("no tokens")?;
    let end = times
        .iter()
        .filter_map(|t| t.last())
        .min()
        .context("no tokens")?;
    anyhow::ensure!(
        end > start,
        "the sequences never decoded together; raise --decode-tokens"
    );
    let free = times[..measured.min(first_constrained).min(n)]
        .iter()
        .flatten()
        .filter(|&t| t > start && t <= end)
        .count();
    Ok(free as f64 / end.duration_since(*start).as_secs_f64())
}

/// Acceptance: free-text sequences are not slowed down by constrained ones in the same batch.
/// Runs alternate between the all-free and the mixed batch so load drift hits both alike; the
/// ratio is the median of the per-run ratios.
fn mixed_batch(
    engine: &Engine,
    format: &ResponseFormat,
    n: usize,
    runs: usize,
    tokens: u32,
) -> anyhow::Result<()> {
    let half = n / 2;
    let (mut all_free, mut mixed, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        // The same `half` free-text sequences, next to free text and next to constrained ones.
        let base = free_rate_in_batch(engine, format, n, n, half, tokens)?;
        let with = free_rate_in_batch(engine, format, n, half, half, tokens)?;
        all_free.push(base);
        mixed.push(with);
        ratios.push(with / base);
    }
    let what = format!("{half}text_{}json_x{n}", n - half);
    emit(
        "format",
        &format!("decode_text_of_all_text_x{n}"),
        median(all_free),
        "tok/s",
    );
    emit(
        "format",
        &format!("decode_text_of_{what}"),
        median(mixed),
        "tok/s",
    );
    emit(
        "format",
        &format!("ratio_text_{what}"),
        median(ratios),
        "x_all_text",
    );
    Ok(())
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

/// Compile time of every schema in `dir` (each compiled once: the engine caches by grammar).
fn compile_times(engine: &Engine, dir: &Path) -> anyhow::Result<Vec<f64>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut ms = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path)?)
            .with_context(|| format!("parsing {}", path.display()))?;
        let wire = json!({"type": "json_schema", "json_schema": {"name": format!("s{i}"), "schema": schema}});
        let Ok(format) = ResponseFormat::from_json(&wire) else {
            continue;
        };
        let t = Instant::now();
        if engine.check_format(&format).is_ok() {
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(ms)
}

pub fn run(args: FormatBenchArgs) -> anyhow::Result<()> {
    let engine = Engine::load(&args.model.model, args.model.engine_config())
        .with_context(|| format!("loading {}", args.model.model.display()))?;
    let formats = formats()?;
    // Warm-up: weights paged in, every format compiled once (compile time is reported apart).
    for (_, f) in &formats {
        decode_rate(&engine, f.as_ref(), 1, 4)?;
    }
    // Runs go round-robin over the formats and each ratio is the median of the per-round ratios
    // to free text: on a shared machine whose speed drifts, a ratio compares runs made seconds
    // apart rather than a minute apart.
    for &n in &args.concurrency {
        let mut rates = vec![Vec::new(); formats.len()];
        for _ in 0..args.runs.max(1) {
            for ((_, f), r) in formats.iter().zip(&mut rates) {
                r.push(decode_rate(&engine, f.as_ref(), n, args.decode_tokens)?);
            }
        }
        for (j, (name, _)) in formats.iter().enumerate() {
            emit(
                "format",
                &format!("decode_{name}_x{n}"),
                median(rates[j].clone()),
                "tok/s",
            );
            if j > 0 {
                let ratios = rates[j].iter().zip(&rates[0]).map(|(r, t)| r / t).collect();
                emit(
                    "format",
                    &format!("ratio_{name}_x{n}"),
                    median(ratios),
                    "x_text",
                );
            }
        }
    }
    if args.mixed >= 2 {
        let json = formats
            .iter()
            .find(|(name, _)| *name == "json_schema")
            .and_then(|(_, f)| f.as_ref())
            .context("the json_schema format")?;
        mixed_batch(&engine, json, args.mixed, args.runs, args.decode_tokens)?;
    }
    let ms = compile_times(&engine, &args.schemas)?;
    emit("format", "schemas_compiled", ms.len() as f64, "count");
    emit("format", "compile_p50", median(ms.clone()), "ms");
    emit("format", "compile_p95", percentile(ms.clone(), 0.95), "ms");
    emit(
        "format",
        "compile_max",
        ms.iter().copied().fold(0.0, f64::max),
        "ms",
    );
    Ok(())
}
