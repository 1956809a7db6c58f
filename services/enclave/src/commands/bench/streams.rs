//! What the engine-driving benches share: reading generation streams to their end and turning
//! concurrent streams into an aggregate decode rate.

use std::time::{Duration, Instant};

use anyhow::Context;
use enclave_model_core::engine::{GenerationEvent, GenerationStream};

/// Reads a stream to its end, calling `on_token` with each token's arrival time; returns the
/// time of the final event.
pub fn read_to_end(
    mut stream: GenerationStream,
    mut on_token: impl FnMut(Instant),
) -> anyhow::Result<Instant> {
    while let Some(ev) = stream.blocking_next() {
        match ev {
            GenerationEvent::Token { .. } => on_token(Instant::now()),
            GenerationEvent::Finished { .. } => return Ok(Instant::now()),
            GenerationEvent::Failed { message } => anyhow::bail!("generation failed: {message}"),
        }
    }
    anyhow::bail!("stream ended without a final event")
}

/// Reads a stream to its end; returns (time of first token, time of last event, tokens).
pub fn drain(stream: GenerationStream) -> anyhow::Result<(Instant, Instant, u32)> {
    let (mut first, mut n) = (None, 0);
    let end = read_to_end(stream, |t| {
        n += 1;
        first.get_or_insert(t);
    })?;
    Ok((first.unwrap_or(end), end, n))
}

/// Reads every stream on its own thread with `read`; the results in stream order.
pub fn read_concurrently<T: Send + 'static>(
    streams: Vec<GenerationStream>,
    read: fn(GenerationStream) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<T>> {
    let handles: Vec<_> = streams
        .into_iter()
        .map(|s| std::thread::spawn(move || read(s)))
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        results.push(
            h.join()
                .map_err(|_| anyhow::anyhow!("reader thread panicked"))??,
        );
    }
    Ok(results)
}

/// Aggregate decode tokens/s of concurrent streams, each read on its own thread, measured from
/// the moment every sequence has its first token (prefill excluded) to the last one finishing.
pub fn aggregate_rate(streams: Vec<GenerationStream>) -> anyhow::Result<f64> {
    let results = read_concurrently(streams, drain)?;
    let start = results.iter().map(|r| r.0).max().context("no results")?;
    let end = results.iter().map(|r| r.1).max().context("no results")?;
    // Tokens after the last sequence's first one: all but roughly the first of each.
    let produced: u32 = results.iter().map(|r| r.2.saturating_sub(1)).sum();
    let secs = end
        .duration_since(start)
        .max(Duration::from_micros(1))
        .as_secs_f64();
    Ok(f64::from(produced) / secs)
}

/// The median of measurements (NaN when there are none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
