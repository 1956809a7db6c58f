//! Scalar attention sums in llama.cpp's orders: the oracle for the AVX2 level.

use half::f16;

use super::F16DotOrder;
use crate::ops::reference::hsum8;

/// ggml's `GGML_F32x8_REDUCE` of 4 accumulators × 8 lanes (chain `8j + l` = accumulator j,
/// lane l), as `ggml_vec_dot_f16` ends.
pub fn reduce32(a: &[f32; 32]) -> f32 {
    let s: [f32; 8] = std::array::from_fn(|l| (a[l] + a[16 + l]) + (a[8 + l] + a[24 + l]));
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]))
}

/// One f16 · f32 dot product in `order` (the f32 side holds f16 values).
pub fn dot(order: F16DotOrder, k: &[f16], q: &[f32]) -> f32 {
    let d = q.len().min(k.len());
    if order == F16DotOrder::Batch && d % 8 == 0 {
        let mut l = [0f32; 8];
        for i in 0..d {
            l[i % 8] = k[i].to_f32().mul_add(q[i], l[i % 8]);
        }
        return hsum8(&l);
    }
    let np = d - d % 32;
    let mut a = [0f32; 32];
    for i in 0..np {
        a[i % 32] = k[i].to_f32().mul_add(q[i], a[i % 32]);
    }
    let mut sum = f64::from(reduce32(&a));
    for i in np..d {
        sum += f64::from(k[i].to_f32() * q[i]);
    }
    sum as f32
}

pub fn scores(order: F16DotOrder, keys: &[&[f16]], queries: &[f32], d: usize, scale: f32, out: &mut [f32]) {
    let nk = keys.len();
    for (j, q) in queries.chunks_exact(d.max(1)).enumerate() {
        for (p, k) in keys.iter().enumerate() {
            out[j * nk + p] = dot(order, k, q) * scale;
        }
    }
}

/// `out = Σ probs[i] · values[i]`, chain `i mod 8` (Batch) or `i mod 32` (Single) per output
/// element; llama.cpp's cache length is a multiple of 32, so it has no leftovers here.
pub fn weighted_sum(order: F16DotOrder, probs: &[f32], values: &[&[f16]], out: &mut [f32]) {
    let lanes = match order {
        F16DotOrder::Batch => 8,
        F16DotOrder::Single => 32,
    };
    for (c, o) in out.iter_mut().enumerate() {
        let mut a = [0f32; 32];
        for (i, (&p, v)) in probs.iter().zip(values).enumerate() {
            a[i % lanes] = v[c].to_f32().mul_add(p, a[i % lanes]);
        }
        *o = match order {
            F16DotOrder::Batch => hsum8(&std::array::from_fn(|l| a[l])),
            F16DotOrder::Single => reduce32(&a),
        };
    }
}
