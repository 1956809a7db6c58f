//! The low-rank updates of one layer's projections for the rows of a step.

use enclave_kernels::KernelError;
use rayon::prelude::*;

use super::{LoraAdapter, Target};

/// For each token row `t` with an adapter `row_adapters[t]`, adds `scale·(x_t·Aᵀ)·Bᵀ` of each
/// `(target, first output column)` in `parts` to row `t` of `y` (`(tokens, y_stride)`); rows
/// without an adapter, and targets an adapter does not have, keep the base output. Rows run in
/// parallel; neighbouring rows of one adapter share its factors through the cache, and rows of
/// different adapters each stream their own.
#[allow(clippy::too_many_arguments)]
pub fn apply_lora(
    row_adapters: &[Option<&LoraAdapter>],
    layer: usize,
    parts: &[(Target, usize)],
    x: &[f32],
    in_features: usize,
    y: &mut [f32],
    y_stride: usize,
) -> Result<(), KernelError> {
    if row_adapters.iter().all(Option::is_none) {
        return Ok(());
    }
    y.par_chunks_mut(y_stride)
        .zip(x.par_chunks(in_features))
        .zip(row_adapters.par_iter())
        .try_for_each_init(Vec::new, |xa: &mut Vec<f32>, ((yr, xr), adapter)| {
            let Some(adapter) = adapter else {
                return Ok(());
            };
            for &(target, col) in parts {
                if let Some(w) = adapter.get(layer, target) {
                    xa.resize(w.rank, 0.0);
                    let out = w.out_features();
                    let yr = yr.get_mut(col..col + out).ok_or(KernelError::Length {
                        what: "lora output",
                        expected: col + out,
                        actual: y_stride,
                    })?;
                    enclave_kernels::lora_row(w.view(), w.rank, w.scale, xr, yr, xa)?;
                }
            }
            Ok(())
        })
}
