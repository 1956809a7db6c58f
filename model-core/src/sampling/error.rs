//! Errors of the sampling module: [`SamplingError`] for caller faults in request parameters (4xx),
//! [`SampleError`] for logits that cannot be sampled from (an engine fault or a constraint that
//! allows nothing).

use super::params::{
    LOGIT_BIAS_MAX, LOGIT_BIAS_MIN, MAX_STOP_SEQUENCE_BYTES, PENALTY_MAX, PENALTY_MIN,
    TEMPERATURE_MAX,
};

/// A sampling parameter outside its documented range. Every variant is a caller fault; the
/// message names the field and the limit so it can be shown to the caller as is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    #[error("temperature must be a finite number from 0 to {TEMPERATURE_MAX}, got {value}")]
    Temperature { value: f32 },
    #[error("top_p must be a finite number greater than 0 and at most 1, got {value}")]
    TopP { value: f32 },
    #[error("min_p must be a finite number from 0 to 1, got {value}")]
    MinP { value: f32 },
    #[error("repetition_penalty must be a finite number greater than 0, got {value}")]
    RepetitionPenalty { value: f32 },
    #[error(
        "frequency_penalty must be a finite number from {PENALTY_MIN} to {PENALTY_MAX}, got {value}"
    )]
    FrequencyPenalty { value: f32 },
    #[error(
        "presence_penalty must be a finite number from {PENALTY_MIN} to {PENALTY_MAX}, got {value}"
    )]
    PresencePenalty { value: f32 },
    #[error("logit_bias token id {id} is outside the vocabulary of {vocab_size} tokens")]
    LogitBiasToken { id: u32, vocab_size: usize },
    #[error(
        "logit_bias for token {id} must be a finite number from {LOGIT_BIAS_MIN} to {LOGIT_BIAS_MAX}, got {value}"
    )]
    LogitBiasValue { id: u32, value: f32 },
    #[error("stop has {count} sequences; at most {max} are allowed")]
    TooManyStops { count: usize, max: usize },
    #[error("stop sequence {index} is empty")]
    EmptyStop { index: usize },
    #[error(
        "stop sequence {index} is {len} bytes long; at most {MAX_STOP_SEQUENCE_BYTES} bytes are allowed"
    )]
    StopTooLong { index: usize, len: usize },
    #[error("logprobs asks for {requested} alternatives; at most {max} are allowed")]
    TooManyLogprobs { requested: u8, max: u8 },
}

impl SamplingError {
    /// The request field the error is about (the name used in the OpenAI-compatible API).
    pub fn field(&self) -> &'static str {
        match self {
            SamplingError::Temperature { .. } => "temperature",
            SamplingError::TopP { .. } => "top_p",
            SamplingError::MinP { .. } => "min_p",
            SamplingError::RepetitionPenalty { .. } => "repetition_penalty",
            SamplingError::FrequencyPenalty { .. } => "frequency_penalty",
            SamplingError::PresencePenalty { .. } => "presence_penalty",
            SamplingError::LogitBiasToken { .. } | SamplingError::LogitBiasValue { .. } => {
                "logit_bias"
            }
            SamplingError::TooManyStops { .. }
            | SamplingError::EmptyStop { .. }
            | SamplingError::StopTooLong { .. } => "stop",
            SamplingError::TooManyLogprobs { .. } => "logprobs",
        }
    }

    /// Stable machine-readable code for API error bodies; never changes once released.
    pub fn code(&self) -> &'static str {
        match self {
            SamplingError::Temperature { .. } => "invalid_temperature",
            SamplingError::TopP { .. } => "invalid_top_p",
            SamplingError::MinP { .. } => "invalid_min_p",
            SamplingError::RepetitionPenalty { .. } => "invalid_repetition_penalty",
            SamplingError::FrequencyPenalty { .. } => "invalid_frequency_penalty",
            SamplingError::PresencePenalty { .. } => "invalid_presence_penalty",
            SamplingError::LogitBiasToken { .. } | SamplingError::LogitBiasValue { .. } => {
                "invalid_logit_bias"
            }
            SamplingError::TooManyStops { .. }
            | SamplingError::EmptyStop { .. }
            | SamplingError::StopTooLong { .. } => "invalid_stop",
            SamplingError::TooManyLogprobs { .. } => "invalid_logprobs",
        }
    }
}

/// Logits that no token can be drawn from. Not a caller fault: either the model produced
/// non-finite values, or a constraint mask left no token allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    #[error("logit of token {id} is {value}; the model produced a non-finite value")]
    NonFiniteLogit { id: u32, value: f32 },
    #[error("no token can be sampled: all {vocab_size} logits are -inf after masking and biases")]
    NoCandidates { vocab_size: usize },
}
