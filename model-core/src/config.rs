//! Model hyper-parameters resolved from GGUF metadata or a Hugging Face `config.json`.
//! Every field is concrete: the loaders decide defaults once, here, so model code never guesses.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use serde::Deserialize;

use crate::error::LoadError;

/// Architectures served by the Llama decoder code (they differ only in the knobs below).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 2/3, Mistral, DeepSeek-LLM, SmolLM2 (GGUF `llama`, HF `LlamaForCausalLM`/`MistralForCausalLM`).
    Llama,
    /// Qwen2: Llama with q/k/v biases (GGUF `qwen2`, HF `Qwen2ForCausalLM`).
    Qwen2,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
        }
    }
}

/// How rotary embeddings pair up the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(x[2i], x[2i+1])`: llama.cpp's layout for GGUF Llama, whose q/k rows were
    /// permuted at conversion.
    Interleaved,
    /// Halves `(x[i], x[i + d/2])`: the Hugging Face layout (and GGUF Qwen2).
    Halves,
}

/// RoPE frequency scaling variants found in the supported configs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    None,
    /// Position interpolation: positions divided by `factor`.
    Linear {
        factor: f32,
    },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub name: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_eps: f32,
    pub rope_theta: f32,
    pub rope_style: RopeStyle,
    pub rope_scaling: RopeScaling,
    pub context_length: usize,
    /// Attention only looks back this many positions (Mistral); `None` = full causal attention.
    pub sliding_window: Option<usize>,
    pub attention_bias: bool,
}

impl ModelConfig {
    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    fn check(self) -> Result<Self, LoadError> {
        let bad = |what: String| Err(LoadError::InvalidConfig(what));
        if self.num_heads == 0 || self.num_kv_heads == 0 || self.num_layers == 0 {
            return bad("heads, kv heads and layers must be non-zero".into());
        }
        if self.num_heads % self.num_kv_heads != 0 {
            return bad(format!(
                "{} attention heads are not a multiple of {} kv heads",
                self.num_heads, self.num_kv_heads
            ));
        }
        if self.head_dim == 0 || self.head_dim % 2 != 0 {
            return bad(format!(
                "head dimension {} must be even and non-zero",
                self.head_dim
            ));
        }
        if self.hidden_size == 0 || self.vocab_size == 0 || self.context_length == 0 {
            return bad("hidden size, vocabulary and context length must be non-zero".into());
        }
        Ok(self)
    }

    /// Reads `<arch>.*` keys of a GGUF file.
    pub fn from_gguf(md: &HashMap<String, Value>) -> Result<Self, LoadError> {
        let arch_name = gguf_str(md, "general.architecture")?;
        let (architecture, rope_style) = match arch_name.as_str() {
            "llama" => (Architecture::Llama, RopeStyle::Interleaved),
            "qwen2" => (Architecture::Qwen2, RopeStyle::Halves),
            other => return Err(LoadError::UnsupportedArchitecture(other.to_string())),
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let hidden_size = gguf_usize(md, &key("embedding_length"))?;
        let num_heads = gguf_usize(md, &key("attention.head_count"))?;
        let num_kv_heads =
            gguf_usize_opt(md, &key("attention.head_count_kv"))?.unwrap_or(num_heads);
        let head_dim = match gguf_usize_opt(md, &key("attention.key_length"))? {
            Some(d) => d,
            None if num_heads > 0 => hidden_size / num_heads,
            None => 0,
        };
        let vocab_size = match gguf_usize_opt(md, &key("vocab_size"))? {
            Some(v) => v,
            None => match md.get("tokenizer.ggml.tokens") {
                Some(Value::Array(tokens)) => tokens.len(),
                _ => return Err(LoadError::MissingMetadata(key("vocab_size"))),
            },
        };
        let rope_scaling = match gguf_str_opt(md, &key("rope.scaling.type"))?.as_deref() {
            None | Some("none") => RopeScaling::None,
            Some("linear") => RopeScaling::Linear {
                factor: gguf_f32(md, &key("rope.scaling.factor"))?,
            },
            Some(other) => {
                return Err(LoadError::InvalidConfig(format!(
                    "unsupported rope scaling type `{other}`"
                )));
            }
        };
        ModelConfig {
            architecture,
            name: gguf_str_opt(md, "general.name")?.unwrap_or_else(|| arch_name.clone()),
            vocab_size,
            hidden_size,
            intermediate_size: gguf_usize(md, &key("feed_forward_length"))?,
            num_layers: gguf_usize(md, &key("block_count"))?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_eps: gguf_f32(md, &key("attention.layer_norm_rms_epsilon"))?,
            rope_theta: gguf_f32_opt(md, &key("rope.freq_base"))?.unwrap_or(10_000.0),
            rope_style,
            rope_scaling,
            context_length: gguf_usize(md, &key("context_length"))?,
            sliding_window: gguf_usize_opt(md, &key("attention.sliding_window"))?,
            attention_bias: architecture == Architecture::Qwen2,
        }
        .check()
    }

    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_json(text: &str) -> Result<Self, LoadError> {
        let raw: HfConfig = serde_json::from_str(text)
            .map_err(|e| LoadError::InvalidConfig(format!("config.json: {e}")))?;
        let arch_name = raw.architectures.first().cloned().unwrap_or_default();
        let architecture = match arch_name.as_str() {
            "LlamaForCausalLM" | "MistralForCausalLM" => Architecture::Llama,
            "Qwen2ForCausalLM" => Architecture::Qwen2,
            other => return Err(LoadError::UnsupportedArchitecture(other.to_string())),
        };
        if let Some(act) = raw.hidden_act.as_deref().filter(|a| *a != "silu") {
            return Err(LoadError::InvalidConfig(format!(
                "activation `{act}` is not supported (only silu)"
            )));
        }
        let num_kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        let head_dim = raw
            .head_dim
            .unwrap_or(raw.hidden_size / raw.num_attention_heads.max(1));
        let rope_scaling = match raw.rope_scaling {
            None => RopeScaling::None,
            Some(s) => match s.kind.as_deref() {
                Some("linear") => RopeScaling::Linear {
                    factor: s.factor.unwrap_or(1.0),
                },
                Some("llama3") => RopeScaling::Llama3 {
                    factor: s.factor.unwrap_or(8.0),
                    low_freq_factor: s.low_freq_factor.unwrap_or(1.0),
                    high_freq_factor: s.high_freq_factor.unwrap_or(4.0),
                    original_max_position: s.original_max_position_embeddings.unwrap_or(8192),
                },
                Some("default") | None => RopeScaling::None,
                Some(other) => {
                    return Err(LoadError::InvalidConfig(format!(
                        "unsupported rope_scaling type `{other}`"
                    )));
                }
            },
        };
        // Qwen2 configs carry a sliding_window value but only use it when use_sliding_window is set.
        let sliding_window = match architecture {
            Architecture::Qwen2 if !raw.use_sliding_window.unwrap_or(false) => None,
            _ => raw.sliding_window,
        };
        ModelConfig {
            architecture,
            name: raw.name_or_path.unwrap_or_else(|| arch_name.clone()),
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            num_kv_heads,
            head_dim,
            rms_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta: raw.rope_theta.unwrap_or(10_000.0),
            rope_style: RopeStyle::Halves,
            rope_scaling,
            context_length: raw.max_position_embeddings.unwrap_or(4096),
            sliding_window,
            attention_bias: architecture == Architecture::Qwen2
                || raw.attention_bias.unwrap_or(false),
        }
        .check()
    }
}

#[derive(Deserialize)]
struct HfRopeScaling {
    #[serde(alias = "type", rename = "rope_type")]
    kind: Option<String>,
    factor: Option<f32>,
    low_freq_factor: Option<f32>,
    high_freq_factor: Option<f32>,
    original_max_position_embeddings: Option<usize>,
}

#[derive(Deserialize)]
struct HfConfig {
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(rename = "_name_or_path")]
    name_or_path: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f32>,
    rope_theta: Option<f32>,
    rope_scaling: Option<HfRopeScaling>,
    max_position_embeddings: Option<usize>,
    sliding_window: Option<usize>,
    use_sliding_window: Option<bool>,
    attention_bias: Option<bool>,
    hidden_act: Option<String>,
}

fn missing(key: &str) -> LoadError {
    LoadError::MissingMetadata(key.to_string())
}

fn wrong_type(key: &str) -> LoadError {
    LoadError::InvalidConfig(format!("metadata `{key}` has an unexpected type"))
}

pub(crate) fn gguf_str(md: &HashMap<String, Value>, key: &str) -> Result<String, LoadError> {
    gguf_str_opt(md, key)?.ok_or_else(|| missing(key))
}

pub(crate) fn gguf_str_opt(
    md: &HashMap<String, Value>,
    key: &str,
) -> Result<Option<String>, LoadError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrong_type(key)),
    }
}

fn gguf_usize_opt(md: &HashMap<String, Value>, key: &str) -> Result<Option<usize>, LoadError> {
    let v = match md.get(key) {
        None => return Ok(None),
        Some(v) => v,
    };
    let n: u64 = match v {
        Value::U8(x) => u64::from(*x),
        Value::U16(x) => u64::from(*x),
        Value::U32(x) => u64::from(*x),
        Value::U64(x) => *x,
        Value::I8(x) => u64::try_from(*x).map_err(|_| wrong_type(key))?,
        Value::I16(x) => u64::try_from(*x).map_err(|_| wrong_type(key))?,
        Value::I32(x) => u64::try_from(*x).map_err(|_| wrong_type(key))?,
        Value::I64(x) => u64::try_from(*x).map_err(|_| wrong_type(key))?,
        _ => return Err(wrong_type(key)),
    };
    usize::try_from(n).map(Some).map_err(|_| wrong_type(key))
}

fn gguf_usize(md: &HashMap<String, Value>, key: &str) -> Result<usize, LoadError> {
    gguf_usize_opt(md, key)?.ok_or_else(|| missing(key))
}

fn gguf_f32_opt(md: &HashMap<String, Value>, key: &str) -> Result<Option<f32>, LoadError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::F32(x)) => Ok(Some(*x)),
        Some(Value::F64(x)) => Ok(Some(*x as f32)),
        Some(_) => Err(wrong_type(key)),
    }
}

fn gguf_f32(md: &HashMap<String, Value>, key: &str) -> Result<f32, LoadError> {
    gguf_f32_opt(md, key)?.ok_or_else(|| missing(key))
}
