//! A projection: quantized or float base weights plus an optional bias. LoRA deltas attach here.

use enclave_kernels::{KernelError, QMatrix};

pub struct Linear {
    pub weight: QMatrix,
    pub bias: Option<Vec<f32>>,
}

impl Linear {
    pub fn new(weight: QMatrix, bias: Option<Vec<f32>>) -> Self {
        Linear { weight, bias }
    }

    pub fn out_features(&self) -> usize {
        self.weight.rows()
    }

    pub fn in_features(&self) -> usize {
        self.weight.cols()
    }

    /// `y (tokens, out) = x (tokens, in) · Wᵀ + b`.
    pub fn forward(&self, x: &[f32], tokens: usize, y: &mut [f32]) -> Result<(), KernelError> {
        enclave_kernels::matmul(&self.weight, x, tokens, y)?;
        if let Some(b) = &self.bias {
            for row in y.chunks_exact_mut(b.len()) {
                enclave_kernels::add_inplace(row, b)?;
            }
        }
        Ok(())
    }
}
