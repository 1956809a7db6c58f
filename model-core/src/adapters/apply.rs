//! The low-rank update of one projection for a group of token rows.

use super::LoraWeights;

/// `y[rows] += scale · (x[rows] · Aᵀ) · Bᵀ` for rows `row_range` of a `(tokens, in)` input and a
/// `(tokens, y_stride)` output whose projection occupies columns `col..col + out`.
/// Two skinny products (rank ≤ 128) in f32: a few percent of the base matmul's cost.
pub fn apply_lora(
    w: &LoraWeights,
    x: &[f32],
    in_features: usize,
    rows: std::ops::Range<usize>,
    y: &mut [f32],
    y_stride: usize,
    col: usize,
    xa: &mut Vec<f32>,
) {
    let r = w.rank;
    let out = w.b.len() / r;
    xa.resize(r, 0.0);
    for t in rows {
        let xt = &x[t * in_features..(t + 1) * in_features];
        for (k, a_row) in w.a.chunks_exact(in_features).enumerate() {
            xa[k] = enclave_kernels::dot_f32(a_row, xt) * w.scale;
        }
        let yt = &mut y[t * y_stride + col..t * y_stride + col + out];
        for (o, b_row) in w.b.chunks_exact(r).enumerate() {
            yt[o] += enclave_kernels::dot_f32(b_row, xa);
        }
    }
}
