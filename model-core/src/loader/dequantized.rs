//! Reference precision: any weight source with every matrix dequantized to f32 at load.
//!
//! Serving a quantized file this way costs memory (4 bytes per weight) and speed, and buys
//! arithmetic that an independent f32 implementation (e.g. `transformers` on the same dequantized
//! file) reproduces token for token. Operators use it to check a deployment's numerics; the
//! test suite uses it as the exact reference for the quantized fast path.

use std::borrow::Cow;

use enclave_kernels::WeightFormat;

use super::{RawMatrix, TensorName, WeightSource};
use crate::config::ModelConfig;
use crate::error::LoadError;

/// How the engine holds a model's matrices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ModelPrecision {
    /// As the file stores them (quantized GGUF stays quantized): the fast path.
    #[default]
    AsStored,
    /// Every matrix dequantized to f32 at load: the reference path.
    F32,
}

/// Wraps a source; `matrix` answers f32 rows whatever the file stores.
pub struct Dequantized<'a>(pub &'a dyn WeightSource);

impl WeightSource for Dequantized<'_> {
    fn config(&self) -> &ModelConfig {
        self.0.config()
    }

    fn has(&self, name: &TensorName) -> bool {
        self.0.has(name)
    }

    fn matrix(
        &self,
        name: &TensorName,
        rows: usize,
        cols: usize,
    ) -> Result<RawMatrix<'_>, LoadError> {
        let raw = self.0.matrix(name, rows, cols)?;
        if raw.format == WeightFormat::F32 {
            return Ok(raw);
        }
        let q = raw.into_qmatrix(name)?;
        let mut bytes = Vec::with_capacity(rows * cols * 4);
        let mut row = vec![0.0f32; cols];
        for r in 0..rows {
            q.dequantize_row(r, &mut row)
                .map_err(|e| LoadError::Weights {
                    tensor: name.to_string(),
                    reason: e.to_string(),
                })?;
            bytes.extend(row.iter().flat_map(|v| v.to_le_bytes()));
        }
        Ok(RawMatrix {
            format: WeightFormat::F32,
            rows,
            cols,
            bytes: Cow::Owned(bytes),
        })
    }

    fn vector(&self, name: &TensorName, len: usize) -> Result<Vec<f32>, LoadError> {
        self.0.vector(name, len)
    }
}
