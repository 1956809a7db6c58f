//! Request-level sampling parameters: the raw form a caller sends and the validated form the
//! engine runs. A [`SamplingParams`] can only be built by [`SamplingParams::parse`], so a sampler
//! never sees an out-of-range value.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::error::SamplingError;

/// Upper bound of `temperature` (OpenAI's range).
pub const TEMPERATURE_MAX: f32 = 2.0;
/// Bounds of `frequency_penalty` and `presence_penalty` (OpenAI's range).
pub const PENALTY_MIN: f32 = -2.0;
pub const PENALTY_MAX: f32 = 2.0;
/// Bounds of each `logit_bias` value (OpenAI's range).
pub const LOGIT_BIAS_MIN: f32 = -100.0;
pub const LOGIT_BIAS_MAX: f32 = 100.0;
/// Temperatures below this sample greedily, as in vLLM: dividing by a vanishing temperature
/// only adds overflow risk, and the result is the argmax either way.
pub const GREEDY_TEMPERATURE_EPS: f32 = 1e-5;
/// Longest accepted stop sequence. Stop matching holds back up to this many bytes of output and
/// its worst case grows with the square of it, so it is bounded.
pub const MAX_STOP_SEQUENCE_BYTES: usize = 256;

/// Sampling parameters as a caller sends them (JSON body, CLI flags). `None` means "the default".
/// Field names follow the OpenAI API where one exists.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RawSamplingParams {
    /// 0 to 2; 0 means greedy. Default 1.
    pub temperature: Option<f32>,
    /// Keep only the k most likely tokens; 0 (the default) turns it off.
    pub top_k: Option<u32>,
    /// Nucleus sampling mass, greater than 0 and at most 1. Default 1 (off).
    pub top_p: Option<f32>,
    /// Drop tokens whose probability is below `min_p` times the most likely one's; 0 to 1. Default 0 (off).
    pub min_p: Option<f32>,
    /// Greater than 0; 1 (the default) is off. Divides positive logits and multiplies negative
    /// ones of every token seen in the prompt and the output (or the last `repeat_last_n` of them).
    pub repetition_penalty: Option<f32>,
    /// Window of `repetition_penalty` in tokens, counted back from the newest; 0 turns the
    /// penalty off. Default: the whole prompt and output.
    pub repeat_last_n: Option<u32>,
    /// -2 to 2; subtracted once per occurrence of a token in the output. Default 0.
    pub frequency_penalty: Option<f32>,
    /// -2 to 2; subtracted once from every token that occurs in the output. Default 0.
    pub presence_penalty: Option<f32>,
    /// Token id → bias added to its logit, -100 to 100. JSON object keys are the ids as strings.
    pub logit_bias: Option<BTreeMap<u32, f32>>,
    /// Same seed and same request give the same output on the same build. Default: a random seed.
    pub seed: Option<u64>,
    /// Stop sequences: a string or an array of strings; never part of the output.
    #[serde(deserialize_with = "string_or_seq")]
    pub stop: Option<Vec<String>>,
    /// Report the sampled token's log-probability and this many most likely alternatives.
    pub logprobs: Option<u8>,
    /// Keep generating after the end-of-sequence token. Default false.
    pub ignore_eos: Option<bool>,
}

/// What a request is checked against; set by the engine from the loaded model and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplingLimits {
    pub vocab_size: usize,
    pub max_stop_sequences: usize,
    pub max_logprobs: u8,
}

/// Validated, immutable sampling parameters. Build with [`SamplingParams::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    temperature: f32,
    top_k: u32,
    top_p: f32,
    min_p: f32,
    repetition_penalty: f32,
    repeat_last_n: Option<u32>,
    frequency_penalty: f32,
    presence_penalty: f32,
    logit_bias: Vec<(u32, f32)>,
    seed: Option<u64>,
    stop: Vec<String>,
    logprobs: Option<u8>,
    ignore_eos: bool,
}

impl Default for SamplingParams {
    /// Every knob at its default: temperature 1, no truncation, no penalties, random seed.
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            repeat_last_n: None,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            logit_bias: Vec::new(),
            seed: None,
            stop: Vec::new(),
            logprobs: None,
            ignore_eos: false,
        }
    }
}

impl SamplingParams {
    /// Checks every field of `raw` against its range and `limits`; the first bad field is reported.
    pub fn parse(raw: RawSamplingParams, limits: &SamplingLimits) -> Result<Self, SamplingError> {
        let d = SamplingParams::default();
        let temperature = check(raw.temperature, d.temperature, |v| {
            (0.0..=TEMPERATURE_MAX).contains(&v)
        })
        .map_err(|value| SamplingError::Temperature { value })?;
        let top_p = check(raw.top_p, d.top_p, |v| v > 0.0 && v <= 1.0)
            .map_err(|value| SamplingError::TopP { value })?;
        let min_p = check(raw.min_p, d.min_p, |v| (0.0..=1.0).contains(&v))
            .map_err(|value| SamplingError::MinP { value })?;
        let repetition_penalty = check(raw.repetition_penalty, d.repetition_penalty, |v| v > 0.0)
            .map_err(|value| SamplingError::RepetitionPenalty { value })?;
        let in_penalty_range = |v: f32| (PENALTY_MIN..=PENALTY_MAX).contains(&v);
        let frequency_penalty = check(raw.frequency_penalty, d.frequency_penalty, in_penalty_range)
            .map_err(|value| SamplingError::FrequencyPenalty { value })?;
        let presence_penalty = check(raw.presence_penalty, d.presence_penalty, in_penalty_range)
            .map_err(|value| SamplingError::PresencePenalty { value })?;
        let logit_bias = parse_logit_bias(raw.logit_bias.unwrap_or_default(), limits.vocab_size)?;
        let stop = parse_stop(raw.stop.unwrap_or_default(), limits.max_stop_sequences)?;
        if let Some(requested) = raw.logprobs
            && requested > limits.max_logprobs
        {
            return Err(SamplingError::TooManyLogprobs {
                requested,
                max: limits.max_logprobs,
            });
        }
        Ok(SamplingParams {
            temperature,
            top_k: raw.top_k.unwrap_or(d.top_k),
            top_p,
            min_p,
            repetition_penalty,
            repeat_last_n: raw.repeat_last_n,
            frequency_penalty,
            presence_penalty,
            logit_bias,
            seed: raw.seed,
            stop,
            logprobs: raw.logprobs,
            ignore_eos: raw.ignore_eos.unwrap_or(d.ignore_eos),
        })
    }

    /// Deterministic argmax decoding with no penalties; what reference tests and `--greedy` use.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        }
    }

    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// True when the sampler takes the argmax (temperature below [`GREEDY_TEMPERATURE_EPS`]).
    pub fn is_greedy(&self) -> bool {
        self.temperature < GREEDY_TEMPERATURE_EPS
    }

    /// 0 means off.
    pub fn top_k(&self) -> u32 {
        self.top_k
    }

    pub fn top_p(&self) -> f32 {
        self.top_p
    }

    pub fn min_p(&self) -> f32 {
        self.min_p
    }

    pub fn repetition_penalty(&self) -> f32 {
        self.repetition_penalty
    }

    /// `None`: the whole prompt and output; `Some(0)`: the penalty is off.
    pub fn repeat_last_n(&self) -> Option<u32> {
        self.repeat_last_n
    }

    pub fn frequency_penalty(&self) -> f32 {
        self.frequency_penalty
    }

    pub fn presence_penalty(&self) -> f32 {
        self.presence_penalty
    }

    /// `(token id, bias)` sorted by id; every id is below the vocabulary size it was parsed against.
    pub fn logit_bias(&self) -> &[(u32, f32)] {
        &self.logit_bias
    }

    /// The requested seed; the seed actually used is [`super::Sampler::seed_used`].
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// Non-empty stop sequences, at most [`MAX_STOP_SEQUENCE_BYTES`] each.
    pub fn stop(&self) -> &[String] {
        &self.stop
    }

    /// `Some(n)`: report the sampled token's log-probability and the `n` most likely alternatives.
    pub fn logprobs(&self) -> Option<u8> {
        self.logprobs
    }

    /// The engine keeps generating after EOS when set; sampling itself does not change.
    pub fn ignore_eos(&self) -> bool {
        self.ignore_eos
    }

    /// True when any of the history-based penalties is active.
    pub(crate) fn has_penalties(&self) -> bool {
        self.has_repetition_penalty()
            || self.frequency_penalty != 0.0
            || self.presence_penalty != 0.0
    }

    pub(crate) fn has_repetition_penalty(&self) -> bool {
        self.repetition_penalty != 1.0 && self.repeat_last_n != Some(0)
    }
}

/// `Ok(default)` when absent, `Ok(v)` when finite and `in_range`, else `Err(v)` for the message.
fn check(value: Option<f32>, default: f32, in_range: impl Fn(f32) -> bool) -> Result<f32, f32> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && in_range(v) => Ok(v),
        Some(v) => Err(v),
    }
}

fn parse_logit_bias(
    raw: BTreeMap<u32, f32>,
    vocab_size: usize,
) -> Result<Vec<(u32, f32)>, SamplingError> {
    let mut out = Vec::with_capacity(raw.len());
    for (id, value) in raw {
        if usize::try_from(id).map_or(true, |i| i >= vocab_size) {
            return Err(SamplingError::LogitBiasToken { id, vocab_size });
        }
        if !(value.is_finite() && (LOGIT_BIAS_MIN..=LOGIT_BIAS_MAX).contains(&value)) {
            return Err(SamplingError::LogitBiasValue { id, value });
        }
        // A zero bias is a no-op; dropping it keeps the per-token loop short.
        if value != 0.0 {
            out.push((id, value));
        }
    }
    Ok(out)
}

fn parse_stop(raw: Vec<String>, max: usize) -> Result<Vec<String>, SamplingError> {
    if raw.len() > max {
        return Err(SamplingError::TooManyStops {
            count: raw.len(),
            max,
        });
    }
    for (index, s) in raw.iter().enumerate() {
        if s.is_empty() {
            return Err(SamplingError::EmptyStop { index });
        }
        if s.len() > MAX_STOP_SEQUENCE_BYTES {
            return Err(SamplingError::StopTooLong {
                index,
                len: s.len(),
            });
        }
    }
    Ok(raw)
}

/// OpenAI's `stop` is a string, an array of strings, or null.
fn string_or_seq<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}
