//! Random PEFT adapters in their on-disk form, for benchmarks and tests that need adapters of a
//! given rank and target set for any base model (no trained adapter ships with the platform).

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use super::Target;
use crate::config::ModelConfig;

/// Precision of the factors written to a synthetic `adapter_model.safetensors` (PEFT saves in
/// the training dtype; the engine keeps the file's precision, so it changes decode cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileDtype {
    F32,
    F16,
    BF16,
}

impl FileDtype {
    fn safetensors(self) -> Dtype {
        match self {
            FileDtype::F32 => Dtype::F32,
            FileDtype::F16 => Dtype::F16,
            FileDtype::BF16 => Dtype::BF16,
        }
    }

    fn encode(self, v: f32) -> Vec<u8> {
        match self {
            FileDtype::F32 => v.to_le_bytes().to_vec(),
            FileDtype::F16 => half::f16::from_f32(v).to_le_bytes().to_vec(),
            FileDtype::BF16 => half::bf16::from_f32(v).to_le_bytes().to_vec(),
        }
    }
}

/// `adapter_config.json` and `adapter_model.safetensors` bytes of a LoRA with `rank` and
/// `alpha` on `targets` of every layer: A and B uniform in ±`magnitude`, f32, seeded.
pub fn random_peft(
    cfg: &ModelConfig,
    targets: &[Target],
    rank: usize,
    alpha: f32,
    magnitude: f32,
    seed: u64,
) -> (Vec<u8>, Vec<u8>) {
    random_peft_as(cfg, targets, rank, alpha, magnitude, seed, FileDtype::F32)
}

/// [`random_peft`] with the factors stored as `dtype` (the same random values, rounded).
pub fn random_peft_as(
    cfg: &ModelConfig,
    targets: &[Target],
    rank: usize,
    alpha: f32,
    magnitude: f32,
    seed: u64,
    dtype: FileDtype,
) -> (Vec<u8>, Vec<u8>) {
    let mut state = seed;
    let mut next = move || {
        // SplitMix64: deterministic across platforms.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * magnitude
    };
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for l in 0..cfg.num_layers {
        for &t in targets {
            let (out, inp) = t.shape(cfg);
            let parent = if matches!(t, Target::Gate | Target::Up | Target::Down) {
                "mlp"
            } else {
                "self_attn"
            };
            let path = format!(
                "base_model.model.model.layers.{l}.{parent}.{}",
                t.module_name()
            );
            let a: Vec<u8> = (0..rank * inp).flat_map(|_| dtype.encode(next())).collect();
            let b: Vec<u8> = (0..out * rank).flat_map(|_| dtype.encode(next())).collect();
            owned.push((format!("{path}.lora_A.weight"), vec![rank, inp], a));
            owned.push((format!("{path}.lora_B.weight"), vec![out, rank], b));
        }
    }
    // INVARIANT: shapes and byte lengths agree by construction.
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                TensorView::new(dtype.safetensors(), s.clone(), d).expect("consistent tensor view"),
            )
        })
        .collect();
    // INVARIANT: serialising well-formed views into memory cannot fail.
    let weights = safetensors::serialize(views, None).expect("in-memory safetensors");
    let modules: Vec<&str> = targets.iter().map(|t| t.module_name()).collect();
    let config = serde_json::json!({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": alpha,
        "target_modules": modules, "bias": "none", "fan_in_fan_out": false, "lora_dropout": 0.0,
        "base_model_name_or_path": cfg.name,
    });
    (config.to_string().into_bytes(), weights)
}
