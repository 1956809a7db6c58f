//! Sampling: request parameters ([`SamplingParams`]), per-sequence token history with running
//! counts ([`TokenHistory`]), the per-step sampler ([`Sampler`]) with logit bias, penalties, a
//! constraint mask hook ([`TokenMask`]), temperature, top-k/top-p/min-p and a seeded PRNG, and
//! streaming stop-sequence matching ([`StopMatcher`]).
//!
//! Determinism: the PRNG (xoshiro256**) and `exp` are written out in this module with plain IEEE
//! arithmetic, so the same seed and request give the same tokens on every platform and release
//! (given the same logits).

mod error;
mod fastmath;
mod history;
mod logprobs;
mod mask;
mod params;
mod rng;
mod sampler;
mod select;
mod stop;

pub use error::{SampleError, SamplingError};
pub use history::TokenHistory;
pub use mask::TokenMask;
pub use params::{
    GREEDY_TEMPERATURE_EPS, LOGIT_BIAS_MAX, LOGIT_BIAS_MIN, MAX_STOP_SEQUENCE_BYTES, PENALTY_MAX,
    PENALTY_MIN, RawSamplingParams, SamplingLimits, SamplingParams, TEMPERATURE_MAX,
};
pub use sampler::{SampledToken, Sampler};
pub use stop::{StopMatcher, StopStep};
