//! Attention over an f16 KV cache with llama.cpp's exact summation orders (its CPU path without
//! flash attention): q·k scores, and probability-weighted sums of value rows. Which order applies
//! depends on how many tokens llama.cpp multiplies at once, see [`F16DotOrder`]. Both levels are
//! bit-identical; the reference is the oracle.
//!
//! Index `i` of a key/value/probability list stands for a cache cell whose position is `i`
//! modulo [`CHAIN_ALIGN`]: llama.cpp's chains run over cache cells from cell 0, so callers start
//! the lists at a position that is a multiple of it (masked positions get probability 0, which
//! adds exactly nothing). The lane counts follow [`crate::numerics`].

#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod reference;

use half::f16;

use crate::dispatch::{KernelLevel, active_level};
use crate::error::{KernelError, check_len};
use crate::numerics::{Numerics, numerics};

/// Start key/value lists at a cache position that is a multiple of this (the longest chain
/// period of any arithmetic: 4 accumulators × 16 lanes).
pub const CHAIN_ALIGN: usize = 64;

/// Pad softmax rows to a multiple of this (the widest vector of any arithmetic).
pub const ROW_PAD: usize = 16;

/// Which of llama.cpp's f16 dot products a sum follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum F16DotOrder {
    /// `ggml_vec_dot_f16`: 4 accumulators of the build's lanes (AVX2: 8, runs of 32; AVX-512:
    /// 16, runs of 64; index mod run picks the chain), reduced `(a0 + a2) + (a1 + a3)`, then the
    /// lanes (AVX2: `((l0+l4) + (l1+l5)) + ((l2+l6) + (l3+l7))`; AVX-512:
    /// `_mm512_reduce_add_ps`), leftovers past the last full run added in f64. llama.cpp uses it
    /// when a batch has one token (decode).
    Single,
    /// llamafile's `tinyBLAS<8, __m256>` / `tinyBLAS<16, __m512>`: one accumulator (index mod
    /// lanes), reduced by its `hsum` (`((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7))`, for 16 lanes
    /// after adding the halves). llama.cpp uses it for batches of two or more tokens when the
    /// length is a multiple of the lanes (else it falls back to `Single`).
    Batch,
}

impl F16DotOrder {
    /// The order llama.cpp's attention uses for a batch of `tokens` query tokens.
    pub fn for_batch(tokens: usize) -> Self {
        if tokens >= 2 {
            F16DotOrder::Batch
        } else {
            F16DotOrder::Single
        }
    }
}

/// `out[j * keys.len() + p] = scale * (keys[p] · queries[j])` for each query row of `d` values
/// (already rounded to f16, as llama.cpp converts its queries before the product) and each key.
pub fn attn_scores(
    order: F16DotOrder,
    keys: &[&[f16]],
    queries: &[f32],
    d: usize,
    scale: f32,
    out: &mut [f32],
) -> Result<(), KernelError> {
    attn_scores_at(
        active_level(),
        numerics(),
        order,
        keys,
        queries,
        d,
        scale,
        out,
    )
}

/// [`attn_scores`] at a given level and arithmetic (tests).
#[allow(clippy::too_many_arguments)]
pub fn attn_scores_at(
    level: KernelLevel,
    numerics: Numerics,
    order: F16DotOrder,
    keys: &[&[f16]],
    queries: &[f32],
    d: usize,
    scale: f32,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let nq = if d == 0 { 0 } else { queries.len() / d };
    check_len("attn_scores queries", nq * d, queries.len())?;
    check_len("attn_scores output", nq * keys.len(), out.len())?;
    for k in keys {
        check_len("attn_scores key", d, k.len())?;
    }
    if !level.is_supported() {
        return Err(unsupported(level));
    }
    #[cfg(target_arch = "x86_64")]
    if level == KernelLevel::Avx2 {
        // SAFETY: the Avx2 level is supported (checked above): AVX2, FMA and F16C.
        unsafe { avx2::scores(numerics, order, keys, queries, d, scale, out) };
        return Ok(());
    }
    reference::scores(numerics, order, keys, queries, d, scale, out);
    Ok(())
}

/// llama.cpp's attention softmax of one score row: [`crate::softmax_inplace`] (its
/// `ggml_vec_soft_max_f32`), then each probability rounded to f16 as llama.cpp does before the
/// product with the values. `-inf` entries (masked) become 0. The row's start must sit at a
/// position that is a multiple of [`ROW_PAD`], and its length be a multiple of it (pad with
/// `-inf`), so the vector runs fall where llama.cpp's do.
pub fn attn_softmax_f16(scores: &mut [f32]) -> Result<(), KernelError> {
    attn_softmax_f16_at(active_level(), numerics(), scores)
}

/// [`attn_softmax_f16`] at a given level and arithmetic (tests).
pub fn attn_softmax_f16_at(
    level: KernelLevel,
    numerics: Numerics,
    scores: &mut [f32],
) -> Result<(), KernelError> {
    check_len(
        "attn_softmax_f16 row (padded to 16)",
        scores.len().next_multiple_of(ROW_PAD),
        scores.len(),
    )?;
    crate::ops::softmax_inplace_at(level, numerics, scores);
    for s in scores.iter_mut() {
        *s = f16::from_f32(*s).to_f32();
    }
    Ok(())
}

/// `out = Σ_i probs[i] · values[i]` (each value row `out.len()` long) in `order`.
pub fn attn_weighted_sum(
    order: F16DotOrder,
    probs: &[f32],
    values: &[&[f16]],
    out: &mut [f32],
) -> Result<(), KernelError> {
    attn_weighted_sum_at(active_level(), numerics(), order, probs, values, out)
}

/// [`attn_weighted_sum`] at a given level and arithmetic (tests).
pub fn attn_weighted_sum_at(
    level: KernelLevel,
    numerics: Numerics,
    order: F16DotOrder,
    probs: &[f32],
    values: &[&[f16]],
    out: &mut [f32],
) -> Result<(), KernelError> {
    check_len("attn_weighted_sum values", probs.len(), values.len())?;
    for v in values {
        check_len("attn_weighted_sum value row", out.len(), v.len())?;
    }
    if !level.is_supported() {
        return Err(unsupported(level));
    }
    #[cfg(target_arch = "x86_64")]
    if level == KernelLevel::Avx2 && out.len() % 8 == 0 {
        // SAFETY: the Avx2 level is supported (checked above); rows hold out.len() values.
        unsafe { avx2::weighted_sum(numerics, order, probs, values, out) };
        return Ok(());
    }
    reference::weighted_sum(numerics, order, probs, values, out);
    Ok(())
}

fn unsupported(level: KernelLevel) -> KernelError {
    KernelError::UnsupportedLevel {
        requested: level.name().to_owned(),
        reason: "this CPU lacks the instructions",
    }
}
