//! Behaviour of the sampling module as the engine and gateway use it: parameter validation,
//! the sampler's processors and truncation, determinism, and streaming stop matching.
//! Shared helpers live here; the cases are in `sampling/`.

use enclave_model_core::sampling::{RawSamplingParams, SamplingLimits, SamplingParams};

#[path = "sampling/distributions.rs"]
mod distributions;
#[path = "sampling/params.rs"]
mod params;
#[path = "sampling/processors.rs"]
mod processors;
#[path = "sampling/sampler.rs"]
mod sampler;
#[path = "sampling/stop.rs"]
mod stop;

pub const LIMITS: SamplingLimits = SamplingLimits {
    vocab_size: 50,
    max_stop_sequences: 4,
    max_logprobs: 20,
};

pub fn parse(raw: RawSamplingParams) -> SamplingParams {
    SamplingParams::parse(raw, &LIMITS).expect("test parameters are valid")
}

pub fn seeded(raw: RawSamplingParams, seed: u64) -> SamplingParams {
    parse(RawSamplingParams {
        seed: Some(seed),
        ..raw
    })
}

/// Deterministic pseudo-random logits (SplitMix64-style hash), independent of the sampler's PRNG.
pub fn test_logits(n: usize, salt: u64) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let mut z = (i ^ (salt << 20)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z ^= z >> 32;
            (z % 20_000) as f32 / 1000.0 - 10.0
        })
        .collect()
}

pub fn manual_argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}
