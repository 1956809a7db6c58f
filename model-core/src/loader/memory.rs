//! In-memory f32 weights: tiny random models for tests, and the merged-weights oracle of the
//! LoRA exactness tests.

use std::borrow::Cow;
use std::collections::HashMap;

use enclave_kernels::WeightFormat;

use super::{RawMatrix, TensorName, WeightSource};
use crate::config::{Architecture, ModelConfig, RopeScaling, RopeStyle};
use crate::error::LoadError;

pub struct MemorySource {
    config: ModelConfig,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// A small deterministic generator (SplitMix64) so random models are identical on every run.
struct SplitMix(u64);

impl SplitMix {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

impl MemorySource {
    /// A small Llama-shaped config for tests.
    pub fn tiny_config() -> ModelConfig {
        ModelConfig {
            architecture: Architecture::Llama,
            name: "tiny-random".into(),
            vocab_size: 96,
            hidden_size: 64,
            intermediate_size: 128,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 16,
            rms_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_style: RopeStyle::Halves,
            rope_scaling: RopeScaling::None,
            context_length: 256,
            sliding_window: None,
            attention_bias: false,
        }
    }

    /// Random weights for `config` (uniform in ±scale), norms near 1.
    pub fn random(config: ModelConfig, seed: u64) -> Self {
        let mut rng = SplitMix(seed);
        let mut tensors = HashMap::new();
        let (h, v, ff) = (
            config.hidden_size,
            config.vocab_size,
            config.intermediate_size,
        );
        let (qd, kvd) = (config.q_dim(), config.kv_dim());
        let mut mat = |name: TensorName, rows: usize, cols: usize, scale: f32| {
            let data = (0..rows * cols).map(|_| rng.next_f32() * scale).collect();
            (name.hf(), (vec![rows, cols], data))
        };
        let mut entries = vec![mat(TensorName::TokenEmbedding, v, h, 1.0)];
        let w = 1.0 / (h as f32).sqrt();
        for l in 0..config.num_layers {
            entries.push(mat(TensorName::Q(l), qd, h, w));
            entries.push(mat(TensorName::K(l), kvd, h, w));
            entries.push(mat(TensorName::V(l), kvd, h, w));
            entries.push(mat(TensorName::O(l), h, qd, w));
            entries.push(mat(TensorName::Gate(l), ff, h, w));
            entries.push(mat(TensorName::Up(l), ff, h, w));
            entries.push(mat(TensorName::Down(l), h, ff, 1.0 / (ff as f32).sqrt()));
        }
        tensors.extend(entries);
        let mut vec1 = |name: TensorName, len: usize| {
            let data = (0..len).map(|_| 1.0 + 0.1 * rng.next_f32()).collect();
            (name.hf(), (vec![len], data))
        };
        let mut norms = vec![vec1(TensorName::OutputNorm, h)];
        for l in 0..config.num_layers {
            norms.push(vec1(TensorName::AttnNorm(l), h));
            norms.push(vec1(TensorName::FfnNorm(l), h));
        }
        tensors.extend(norms);
        MemorySource { config, tensors }
    }

    /// Mutable access to a tensor's values (tests merge LoRA deltas into it).
    pub fn tensor_mut(&mut self, name: &TensorName) -> Option<&mut Vec<f32>> {
        self.tensors.get_mut(&name.hf()).map(|(_, d)| d)
    }
}

impl WeightSource for MemorySource {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn has(&self, name: &TensorName) -> bool {
        self.tensors.contains_key(&name.hf())
    }

    fn matrix(
        &self,
        name: &TensorName,
        rows: usize,
        cols: usize,
    ) -> Result<RawMatrix<'_>, LoadError> {
        let key = name.hf();
        let (shape, data) = self
            .tensors
            .get(&key)
            .ok_or_else(|| LoadError::MissingTensor(key.clone()))?;
        if shape != &[rows, cols] {
            return Err(LoadError::ShapeMismatch {
                tensor: key,
                expected: vec![rows, cols],
                actual: shape.clone(),
            });
        }
        let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        Ok(RawMatrix {
            format: WeightFormat::F32,
            rows,
            cols,
            bytes: Cow::Owned(bytes),
        })
    }

    fn vector(&self, name: &TensorName, len: usize) -> Result<Vec<f32>, LoadError> {
        let key = name.hf();
        let (shape, data) = self
            .tensors
            .get(&key)
            .ok_or_else(|| LoadError::MissingTensor(key.clone()))?;
        if shape != &[len] {
            return Err(LoadError::ShapeMismatch {
                tensor: key,
                expected: vec![len],
                actual: shape.clone(),
            });
        }
        Ok(data.clone())
    }
}
