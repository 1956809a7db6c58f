//! Scalar attention sums in llama.cpp's orders: the oracle for the AVX2 level.

use half::f16;

use super::F16DotOrder;
use crate::numerics::Numerics;
use crate::ops::reference::hsum_for;

/// ggml's `GGML_F32x8_REDUCE` of 4 accumulators × 8 lanes (chain `8j + l` = accumulator j,
/// lane l), as `ggml_vec_dot_f16` ends in the AVX2 build: `(x0 + x2) + (x1 + x3)`, then the
/// 8 lanes through two `_mm_hadd_ps`.
pub fn reduce32(a: &[f32; 32]) -> f32 {
    let s: [f32; 8] = std::array::from_fn(|l| (a[l] + a[16 + l]) + (a[8 + l] + a[24 + l]));
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]))
}

/// The AVX-512 build's `GGML_F32x16_REDUCE` of 4 accumulators × 16 lanes (chain `16j + l`):
/// `(x0 + x2) + (x1 + x3)`, then `_mm512_reduce_add_ps`.
pub fn reduce64(a: &[f32; 64]) -> f32 {
    let s: [f32; 16] = std::array::from_fn(|l| (a[l] + a[32 + l]) + (a[16 + l] + a[48 + l]));
    hsum_for(&s)
}

/// Chains of `ggml_vec_dot_f16`: 4 accumulators of the build's lanes.
pub fn single_period(numerics: Numerics) -> usize {
    4 * numerics.lanes()
}

fn reduce_single(numerics: Numerics, a: &[f32; 64]) -> f32 {
    match numerics {
        Numerics::Avx2 => reduce32(&std::array::from_fn(|i| a[i])),
        Numerics::Avx512 => reduce64(a),
    }
}

/// One f16 · f32 dot product in `order` (the f32 side holds f16 values).
pub fn dot(numerics: Numerics, order: F16DotOrder, k: &[f16], q: &[f32]) -> f32 {
    let d = q.len().min(k.len());
    let w = numerics.lanes();
    if order == F16DotOrder::Batch && d.is_multiple_of(w) {
        let mut l = [0f32; 16];
        for i in 0..d {
            l[i % w] = k[i].to_f32().mul_add(q[i], l[i % w]);
        }
        return hsum_for(&l[..w]);
    }
    let p = single_period(numerics);
    let np = d - d % p;
    let mut a = [0f32; 64];
    for i in 0..np {
        a[i % p] = k[i].to_f32().mul_add(q[i], a[i % p]);
    }
    let mut sum = f64::from(reduce_single(numerics, &a));
    for i in np..d {
        sum += f64::from(k[i].to_f32() * q[i]);
    }
    sum as f32
}

pub fn scores(
    numerics: Numerics,
    order: F16DotOrder,
    keys: &[&[f16]],
    queries: &[f32],
    d: usize,
    scale: f32,
    out: &mut [f32],
) {
    let nk = keys.len();
    for (j, q) in queries.chunks_exact(d.max(1)).enumerate() {
        for (p, k) in keys.iter().enumerate() {
            out[j * nk + p] = dot(numerics, order, k, q) * scale;
        }
    }
}

/// `out = Σ probs[i] · values[i]`, chain `i mod lanes` (Batch) or `i mod 4·lanes` (Single) per
/// output element; llama.cpp's cache length is a multiple of 256, so it has no leftovers here.
pub fn weighted_sum(
    numerics: Numerics,
    order: F16DotOrder,
    probs: &[f32],
    values: &[&[f16]],
    out: &mut [f32],
) {
    let w = numerics.lanes();
    let period = match order {
        F16DotOrder::Batch => w,
        F16DotOrder::Single => single_period(numerics),
    };
    for (c, o) in out.iter_mut().enumerate() {
        let mut a = [0f32; 64];
        for (i, (&p, v)) in probs.iter().zip(values).enumerate() {
            a[i % period] = v[c].to_f32().mul_add(p, a[i % period]);
        }
        *o = match order {
            F16DotOrder::Batch => hsum_for(&a[..w]),
            F16DotOrder::Single => reduce_single(numerics, &a),
        };
    }
}
