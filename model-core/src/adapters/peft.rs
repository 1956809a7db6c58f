//! PEFT LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`): parsing and strict
//! validation against the base model. Anything we cannot apply exactly is refused with a specific
//! error; an adapter is never loaded partially and never silently replaced by the base model.

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use super::error::AdapterError;
use crate::config::{ModelConfig, RopeStyle};

/// The projections an adapter may target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::Q,
        Target::K,
        Target::V,
        Target::O,
        Target::Gate,
        Target::Up,
        Target::Down,
    ];

    pub fn module_name(self) -> &'static str {
        match self {
            Target::Q => "q_proj",
            Target::K => "k_proj",
            Target::V => "v_proj",
            Target::O => "o_proj",
            Target::Gate => "gate_proj",
            Target::Up => "up_proj",
            Target::Down => "down_proj",
        }
    }

    fn parent(self) -> &'static str {
        match self {
            Target::Q | Target::K | Target::V | Target::O => "self_attn",
            Target::Gate | Target::Up | Target::Down => "mlp",
        }
    }

    fn from_module(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.module_name() == name)
    }

    /// `(out_features, in_features)` of the projection in the base model.
    pub fn shape(self, cfg: &ModelConfig) -> (usize, usize) {
        let (h, ff) = (cfg.hidden_size, cfg.intermediate_size);
        match self {
            Target::Q => (cfg.q_dim(), h),
            Target::K | Target::V => (cfg.kv_dim(), h),
            Target::O => (h, cfg.q_dim()),
            Target::Gate | Target::Up => (ff, h),
            Target::Down => (h, ff),
        }
    }
}

/// The factors of one projection in the base model's row order, kept in the precision the file
/// stored them in (f16/bf16 stay 2 bytes per value: exact, and half the memory traffic).
#[derive(Debug, Clone)]
pub enum Factors {
    F32 {
        a: Vec<f32>,
        bt: Vec<f32>,
    },
    F16 {
        a: Vec<half::f16>,
        bt: Vec<half::f16>,
    },
    BF16 {
        a: Vec<half::bf16>,
        bt: Vec<half::bf16>,
    },
}

/// The low-rank factors of one projection.
#[derive(Debug, Clone)]
pub struct LoraWeights {
    pub rank: usize,
    /// `alpha / r` (or `alpha / sqrt(r)` with rsLoRA).
    pub scale: f32,
    /// A `(rank, in_features)` and B transposed `(rank, out_features)`, so the expand step
    /// streams contiguous rows.
    pub factors: Factors,
}

impl LoraWeights {
    /// Weights from f32 factors: `a` is `(rank, in)`, `bt` is `(rank, out)`.
    pub fn from_f32(rank: usize, scale: f32, a: Vec<f32>, bt: Vec<f32>) -> Self {
        LoraWeights {
            rank,
            scale,
            factors: Factors::F32 { a, bt },
        }
    }

    pub fn view(&self) -> enclave_kernels::LoraFactors<'_> {
        use enclave_kernels::LoraFactors as V;
        match &self.factors {
            Factors::F32 { a, bt } => V::F32 { a, bt },
            Factors::F16 { a, bt } => V::F16 { a, bt },
            Factors::BF16 { a, bt } => V::BF16 { a, bt },
        }
    }

    /// `(elements of A, elements of Bᵀ, bytes per element)`.
    fn lens(&self) -> (usize, usize, usize) {
        match &self.factors {
            Factors::F32 { a, bt } => (a.len(), bt.len(), 4),
            Factors::F16 { a, bt } => (a.len(), bt.len(), 2),
            Factors::BF16 { a, bt } => (a.len(), bt.len(), 2),
        }
    }

    /// Output width of the projection.
    pub fn out_features(&self) -> usize {
        self.lens().1 / self.rank.max(1)
    }

    pub fn size_bytes(&self) -> usize {
        let (a, b, e) = self.lens();
        (a + b) * e
    }
}

/// A validated adapter: factors for some `(layer, target)` pairs.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    pub layers: Vec<BTreeMap<Target, LoraWeights>>,
    /// Non-fatal findings (e.g. the declared base model name differs) reported to the uploader.
    pub warnings: Vec<String>,
    pub max_rank: usize,
}

impl LoraAdapter {
    /// Whether every factor has the shape `base` needs (an adapter validated for another base
    /// model must not reach its forward pass).
    pub fn fits(&self, base: &ModelConfig) -> bool {
        self.layers.len() == base.num_layers
            && self.layers.iter().all(|m| {
                m.iter().all(|(t, w)| {
                    let (out, inp) = t.shape(base);
                    let (a, b, _) = w.lens();
                    w.rank > 0 && a == w.rank * inp && b == w.rank * out
                })
            })
    }

    pub fn get(&self, layer: usize, target: Target) -> Option<&LoraWeights> {
        self.layers.get(layer).and_then(|m| m.get(&target))
    }

    /// Bytes the factors occupy in memory (for the resident-set budget).
    pub fn size_bytes(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|m| m.values())
            .map(LoraWeights::size_bytes)
            .sum()
    }
}

/// How the engine keeps a resident adapter's factors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdapterPrecision {
    /// The file's precision: f32 stays f32 (exact: the merged-weights reference to 1e-4),
    /// f16/bf16 stay 2 bytes per value.
    #[default]
    AsStored,
    /// f32 factors rounded to bf16 when made resident (f16/bf16 files unchanged): half the memory
    /// and half the per-step memory traffic when many distinct adapters share a batch, at bf16
    /// accuracy of the low-rank update (vLLM and LoRAX compute adapters in the model's 16-bit
    /// type too). Uploads are validated and stored as sent either way.
    Bf16,
}

impl LoraAdapter {
    /// The adapter with its factors kept in `precision`.
    pub fn with_precision(mut self, precision: AdapterPrecision) -> Self {
        if precision == AdapterPrecision::Bf16 {
            for w in self.layers.iter_mut().flat_map(|m| m.values_mut()) {
                if let Factors::F32 { a, bt } = &w.factors {
                    w.factors = Factors::BF16 {
                        a: a.iter().copied().map(half::bf16::from_f32).collect(),
                        bt: bt.iter().copied().map(half::bf16::from_f32).collect(),
                    };
                }
            }
        }
        self
    }
}

/// Limits checked at upload.
#[derive(Debug, Clone, Copy)]
pub struct AdapterLimits {
    pub max_rank: usize,
    pub max_file_bytes: usize,
}

impl Default for AdapterLimits {
    fn default() -> Self {
        AdapterLimits {
            max_rank: 128,
            max_file_bytes: 512 << 20,
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    peft_type: Option<String>,
    r: Option<usize>,
    lora_alpha: Option<f32>,
    target_modules: Option<TargetModules>,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    bias: Option<String>,
    modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    rank_pattern: BTreeMap<String, usize>,
    #[serde(default)]
    alpha_pattern: BTreeMap<String, f32>,
    layers_to_transform: Option<serde_json::Value>,
    base_model_name_or_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TargetModules {
    List(Vec<String>),
    Pattern(String),
}

/// PEFT matches a pattern key `k` against a module path with the regex `(.*\.)?k$`: the key is a
/// dotted suffix of the path. Keys are accepted only when they are plain dotted names (a regex key
/// we would not match like PEFT could silently give a wrong alpha).
fn pattern_matches(key: &str, path: &str) -> bool {
    path == key
        || path
            .strip_suffix(key)
            .is_some_and(|head| head.ends_with('.'))
}

fn check_pattern_keys(keys: impl Iterator<Item = String>, field: &str) -> Result<(), AdapterError> {
    for k in keys {
        let plain = !k.is_empty()
            && k.split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        if !plain {
            return Err(AdapterError::Unsupported(format!(
                "{field} key `{k}` is not a plain module name"
            )));
        }
    }
    Ok(())
}

/// The value of the one pattern key matching `path`. Several keys matching with different values
/// are refused: PEFT takes the first in file order, which is too fragile to reproduce.
fn pattern_value<T: Copy + PartialEq>(
    pattern: &BTreeMap<String, T>,
    path: &str,
    field: &str,
) -> Result<Option<T>, AdapterError> {
    let mut hits = pattern.iter().filter(|(k, _)| pattern_matches(k, path));
    let Some((_, &first)) = hits.next() else {
        return Ok(None);
    };
    if hits.any(|(_, v)| *v != first) {
        return Err(AdapterError::Unsupported(format!(
            "{field}: several keys with different values match {path}"
        )));
    }
    Ok(Some(first))
}

/// Rank and alpha for one module, honouring `rank_pattern` / `alpha_pattern`.
fn rank_alpha(
    cfg: &RawConfig,
    path: &str,
    r: usize,
    alpha: f32,
) -> Result<(usize, f32), AdapterError> {
    let rank = pattern_value(&cfg.rank_pattern, path, "rank_pattern")?.unwrap_or(r);
    let alpha = pattern_value(&cfg.alpha_pattern, path, "alpha_pattern")?.unwrap_or(alpha);
    Ok((rank, alpha))
}

fn parse_config(json: &[u8]) -> Result<RawConfig, AdapterError> {
    let cfg: RawConfig =
        serde_json::from_slice(json).map_err(|e| AdapterError::InvalidConfig(e.to_string()))?;
    match cfg.peft_type.as_deref() {
        Some("LORA") => {}
        other => {
            return Err(AdapterError::NotLora(
                other.unwrap_or("(missing)").to_string(),
            ));
        }
    }
    if cfg.use_dora {
        return Err(AdapterError::Unsupported("use_dora (DoRA)".into()));
    }
    if cfg.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(AdapterError::Unsupported("modules_to_save".into()));
    }
    if cfg.bias.as_deref().is_some_and(|b| b != "none") {
        return Err(AdapterError::Unsupported(format!(
            "bias = {:?} (trained biases)",
            cfg.bias.as_deref().unwrap_or("")
        )));
    }
    if cfg
        .layers_to_transform
        .as_ref()
        .is_some_and(|v| !v.is_null())
    {
        return Err(AdapterError::Unsupported("layers_to_transform".into()));
    }
    check_pattern_keys(cfg.rank_pattern.keys().cloned(), "rank_pattern")?;
    check_pattern_keys(cfg.alpha_pattern.keys().cloned(), "alpha_pattern")?;
    Ok(cfg)
}

/// Parses `path` like `base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight`.
fn parse_tensor_name(name: &str) -> Result<(usize, Target, bool), AdapterError> {
    let unexpected = || AdapterError::UnexpectedTensor(name.to_string());
    let rest = name
        .strip_prefix("base_model.model.")
        .ok_or_else(unexpected)?;
    let rest = rest.strip_prefix("model.").unwrap_or(rest);
    if rest.starts_with("embed_tokens") || rest.starts_with("lm_head") {
        return Err(AdapterError::Unsupported(format!(
            "targets the embedding or lm_head ({name})"
        )));
    }
    let rest = rest.strip_prefix("layers.").ok_or_else(unexpected)?;
    let (layer, rest) = rest.split_once('.').ok_or_else(unexpected)?;
    let layer: usize = layer.parse().map_err(|_| unexpected())?;
    let (parent, rest) = rest.split_once('.').ok_or_else(unexpected)?;
    let (module, rest) = rest.split_once('.').ok_or_else(unexpected)?;
    let is_a = match rest {
        "lora_A.weight" => true,
        "lora_B.weight" => false,
        r if r.contains("lora_magnitude") => {
            return Err(AdapterError::Unsupported("use_dora (DoRA)".into()));
        }
        _ => return Err(unexpected()),
    };
    let target = Target::from_module(module)
        .ok_or_else(|| AdapterError::UnknownTarget(module.to_string()))?;
    if target.parent() != parent {
        return Err(unexpected());
    }
    Ok((layer, target, is_a))
}

fn to_f32(
    name: &str,
    view: &safetensors::tensor::TensorView<'_>,
) -> Result<Vec<f32>, AdapterError> {
    let b = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(AdapterError::Dtype {
                tensor: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(AdapterError::NonFinite {
            tensor: name.to_string(),
            index: i,
        });
    }
    Ok(values)
}

fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// llama.cpp's converter permutes q/k rows per head from halves to interleaved pairs; B's rows
/// must follow the same permutation to apply to GGUF weights (ARCHITECTURE.md gotcha).
fn permute_rows_for_interleaved_rope(
    b: &[f32],
    heads: usize,
    head_dim: usize,
    rank: usize,
) -> Vec<f32> {
    let half = head_dim / 2;
    let mut out = vec![0.0; b.len()];
    for h in 0..heads {
        for i in 0..half {
            for t in 0..2 {
                let new = h * head_dim + 2 * i + t;
                let old = h * head_dim + t * half + i;
                out[new * rank..(new + 1) * rank].copy_from_slice(&b[old * rank..(old + 1) * rank]);
            }
        }
    }
    out
}

/// Parses and validates an adapter for `base`. `expected_base_name` (the served model's name) only
/// produces a warning when it differs from the adapter's declared base.
pub fn load_peft(
    config_json: &[u8],
    weights: &[u8],
    base: &ModelConfig,
    limits: &AdapterLimits,
) -> Result<LoraAdapter, AdapterError> {
    if weights.len() > limits.max_file_bytes {
        return Err(AdapterError::TooLarge {
            bytes: weights.len(),
            limit: limits.max_file_bytes,
        });
    }
    let cfg = parse_config(config_json)?;
    let r = cfg
        .r
        .ok_or_else(|| AdapterError::InvalidConfig("missing `r`".into()))?;
    let alpha = cfg.lora_alpha.unwrap_or(r as f32);
    let declared: Vec<String> = match &cfg.target_modules {
        Some(TargetModules::List(v)) => v.clone(),
        Some(TargetModules::Pattern(p)) => {
            return Err(AdapterError::Unsupported(format!(
                "target_modules as a regex ({p}); list the modules"
            )));
        }
        None => {
            return Err(AdapterError::InvalidConfig(
                "missing `target_modules`".into(),
            ));
        }
    };
    for m in &declared {
        if Target::from_module(m).is_none() {
            return Err(AdapterError::UnknownTarget(m.clone()));
        }
    }
    let st = SafeTensors::deserialize(weights)
        .map_err(|e| AdapterError::InvalidWeights(e.to_string()))?;
    // Group A and B per (layer, target).
    let mut pairs: BTreeMap<(usize, Target), (Option<String>, Option<String>)> = BTreeMap::new();
    for name in st.names() {
        let (layer, target, is_a) = parse_tensor_name(name)?;
        if layer >= base.num_layers {
            return Err(AdapterError::BaseMismatch(format!(
                "tensor {name} is for layer {layer}, the base model has {} layers",
                base.num_layers
            )));
        }
        if !declared.iter().any(|m| m == target.module_name()) {
            return Err(AdapterError::UnexpectedTensor(name.to_string()));
        }
        let slot = pairs.entry((layer, target)).or_default();
        if is_a {
            slot.0 = Some(name.to_string())
        } else {
            slot.1 = Some(name.to_string())
        }
    }
    if pairs.is_empty() {
        return Err(AdapterError::InvalidWeights(
            "the adapter has no LoRA tensors".into(),
        ));
    }
    for m in &declared {
        if !pairs.keys().any(|(_, t)| t.module_name() == m) {
            return Err(AdapterError::MissingTensor(format!(
                "no tensors for declared target module {m}"
            )));
        }
    }
    let mut layers: Vec<BTreeMap<Target, LoraWeights>> = vec![BTreeMap::new(); base.num_layers];
    let mut max_rank = 0;
    for ((layer, target), (a_name, b_name)) in pairs {
        let path = format!(
            "model.layers.{layer}.{}.{}",
            target.parent(),
            target.module_name()
        );
        let a_name =
            a_name.ok_or_else(|| AdapterError::MissingTensor(format!("{path}.lora_A.weight")))?;
        let b_name =
            b_name.ok_or_else(|| AdapterError::MissingTensor(format!("{path}.lora_B.weight")))?;
        let (rank, alpha) = rank_alpha(&cfg, &path, r, alpha)?;
        if rank == 0 || rank > limits.max_rank {
            return Err(AdapterError::RankOutOfRange {
                rank,
                max: limits.max_rank,
            });
        }
        let (out_f, in_f) = target.shape(base);
        let view = |n: &str| {
            st.tensor(n)
                .map_err(|e| AdapterError::InvalidWeights(e.to_string()))
        };
        let (av, bv) = (view(&a_name)?, view(&b_name)?);
        // fan_in_fan_out stores A as (in, r) and B as (r, out) (Conv1D layout).
        let (a_shape, b_shape) = if cfg.fan_in_fan_out {
            ([in_f, rank], [rank, out_f])
        } else {
            ([rank, in_f], [out_f, rank])
        };
        for (n, v, want) in [(&a_name, &av, a_shape), (&b_name, &bv, b_shape)] {
            if v.shape() != want {
                return Err(AdapterError::Shape {
                    tensor: n.clone(),
                    expected: want.to_vec(),
                    actual: v.shape().to_vec(),
                });
            }
        }
        let mut a = to_f32(&a_name, &av)?;
        let mut b = to_f32(&b_name, &bv)?;
        if cfg.fan_in_fan_out {
            a = transpose(&a, in_f, rank);
            b = transpose(&b, rank, out_f);
        }
        if base.rope_style == RopeStyle::Interleaved {
            match target {
                Target::Q => {
                    b = permute_rows_for_interleaved_rope(&b, base.num_heads, base.head_dim, rank)
                }
                Target::K => {
                    b = permute_rows_for_interleaved_rope(
                        &b,
                        base.num_kv_heads,
                        base.head_dim,
                        rank,
                    )
                }
                _ => {}
            }
        }
        let scale = if cfg.use_rslora {
            alpha / (rank as f32).sqrt()
        } else {
            alpha / rank as f32
        };
        max_rank = max_rank.max(rank);
        let bt = transpose(&b, out_f, rank);
        // Values read from f16/bf16 convert back exactly.
        let factors = match (av.dtype(), bv.dtype()) {
            (Dtype::F16, Dtype::F16) => Factors::F16 {
                a: a.into_iter().map(half::f16::from_f32).collect(),
                bt: bt.into_iter().map(half::f16::from_f32).collect(),
            },
            (Dtype::BF16, Dtype::BF16) => Factors::BF16 {
                a: a.into_iter().map(half::bf16::from_f32).collect(),
                bt: bt.into_iter().map(half::bf16::from_f32).collect(),
            },
            _ => Factors::F32 { a, bt },
        };
        layers[layer].insert(
            target,
            LoraWeights {
                rank,
                scale,
                factors,
            },
        );
    }
    let mut warnings = Vec::new();
    if let Some(declared) = cfg
        .base_model_name_or_path
        .as_deref()
        .filter(|d| !d.is_empty())
    {
        let tail = declared
            .rsplit('/')
            .next()
            .unwrap_or(declared)
            .to_lowercase();
        if !base.name.to_lowercase().contains(&tail) && !tail.contains(&base.name.to_lowercase()) {
            warnings.push(format!(
                "adapter declares base model `{declared}`; serving base is `{}`",
                base.name
            ));
        }
    }
    Ok(LoraAdapter {
        layers,
        warnings,
        max_rank,
    })
}
