//! Enclave's hot CPU ops: quantized matmul over ggml block formats and the per-layer f32
//! helpers. Each op has a scalar reference version (the test oracle); faster versions are
//! chosen at run time by CPU feature (`is_x86_feature_detected!`), never by build flags, so one
//! binary runs on any x86-64 (and builds on aarch64). `ENCLAVE_KERNELS=reference|avx2` forces
//! a level.

mod blocks;
mod dispatch;
mod error;
mod ggml;
mod lora;
#[cfg(target_arch = "x86_64")]
mod lora_avx512;
mod matmul;
mod ops;
mod qmatrix;
mod quantize;
#[cfg(target_arch = "x86_64")]
mod quantize_avx2;

pub use blocks::{
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK, WeightFormat,
};
pub use dispatch::{
    KernelLevel, active_level, available_levels, best_level, cpu_features, level_override_error,
};
pub use error::KernelError;
pub use lora::{LoraFactors, lora_row, lora_row_at};
pub use matmul::{MatmulScratch, matmul, matmul_at, matmul_into_with_scratch};
pub use ops::{
    add_inplace, axpy_f16_f32, axpy_f16_f32_at, dot_f16_f32, dot_f16_f32_at, dot_f32, dot_f32_at,
    f32_to_f16_row, f32_to_f16_row_at, rms_norm, silu_mul, silu_mul_at, softmax_inplace,
    softmax_inplace_at,
};
pub use qmatrix::QMatrix;
pub use quantize::{quantize_row_q8_0, quantize_row_q8_1};

/// Scalar oracles, public for tests and benches.
pub mod reference {
    pub use crate::lora::reference::lora_row;
    pub use crate::matmul::reference::{dequantize_ggml, matmul_ggml};
    pub use crate::ops::reference::*;
}
