//! Scalar versions of the per-layer helpers: the oracle for the SIMD ones and the fallback.

use half::f16;

use crate::numerics::Numerics;

/// ggml `rms_norm` then `mul`: squares in f32 summed in f64, scale = 1/sqrt(mean + eps),
/// `out = (x * scale) * weight`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len().max(1) as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = (v * scale) * w;
    }
}

/// llama.cpp's `ggml_v_expf` (AVX2/FMA build) for one lane: ARM's optimized-routines expf
/// (range reduction by a shifted round, degree-5 polynomial, max error ~1.5 ulp), operation by
/// operation with the same fused multiply-adds, so it is bit-identical to the 8-lane version.
/// -inf gives 0, large inputs overflow to inf as llama.cpp does.
pub fn expf_ggml(x: f32) -> f32 {
    let f = f32::from_bits;
    let r = f(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(f(0x3fb8_aa3b), r); // log2(e)
    let n = z - r;
    // fnmadd(a, b, c) = c - a*b with one rounding.
    let b = (-n).mul_add(f(0x35bf_be8e), (-n).mul_add(f(0x3f31_7200), x));
    let e = z.to_bits() << 23;
    let k = f(e.wrapping_add(1f32.to_bits()));
    let u = b * b;
    let j = f(0x3c07_2010)
        .mul_add(b, f(0x3d2b_9f17))
        .mul_add(u, f(0x3e2a_af33).mul_add(b, f(0x3eff_fedb)))
        .mul_add(u, f(0x3f7f_fff6) * b);
    if n.abs() <= 126.0 || n.is_nan() {
        return j.mul_add(k, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f(g.wrapping_add(0x7f00_0000));
    let s2 = f(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

/// llama.cpp's `ggml_v_expf` in its AVX-512 build for one lane: the same range reduction as
/// [`expf_ggml`], but the polynomial adds the 1 itself and the result is `vscalefps(j, n)`
/// (`j · 2^n`, one rounding, subnormals kept); `|n| > 192` saturates to 0 or inf.
pub fn expf_ggml512(x: f32) -> f32 {
    let f = f32::from_bits;
    let r = f(0x4b40_0000);
    let z = x.mul_add(f(0x3fb8_aa3b), r);
    let n = z - r;
    let b = (-n).mul_add(f(0x35bf_be8e), (-n).mul_add(f(0x3f31_7200), x));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let j = f(0x3c07_2010)
        .mul_add(b, f(0x3d2b_9f17))
        .mul_add(u, f(0x3e2a_af33).mul_add(b, f(0x3eff_fedb)))
        .mul_add(u, f(0x3f7f_fff6).mul_add(b, 1.0));
    scalef(j, n)
}

/// `vscalefps` for an integral `n` with `|n| <= 192`: the product is exact in f64, so the one
/// rounding is the conversion to f32.
pub(crate) fn scalef(j: f32, n: f32) -> f32 {
    (f64::from(j) * 2f64.powi(n as i32)) as f32
}

/// One lane of the build's vector `expf`.
pub fn expf_for(numerics: Numerics, x: f32) -> f32 {
    match numerics {
        Numerics::Avx2 => expf_ggml(x),
        Numerics::Avx512 => expf_ggml512(x),
    }
}

/// Lanes handled by llama.cpp's vector loops; the rest go through libm like its scalar tail.
pub(crate) fn simd_prefix(numerics: Numerics, n: usize) -> usize {
    n - n % numerics.lanes()
}

/// llama.cpp's `ggml_vec_swiglu_f32`: `gate = gate / (1 + e^(0 - gate)) * up` with the build's
/// vector expf over whole vectors, then `x / (1 + expf(-x)) * g` (libm) for the tail.
pub fn silu_mul(numerics: Numerics, gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let m = simd_prefix(numerics, n);
    for (g, &u) in gate[..m].iter_mut().zip(&up[..m]) {
        *g = *g / (1.0 + expf_for(numerics, 0.0 - *g)) * u;
    }
    for (g, &u) in gate[m..n].iter_mut().zip(&up[m..n]) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `_mm512_reduce_add_ps` as GCC builds it: halves added (lane i + lane i+8), then the 8-lane
/// [`hsum8`] order on the result.
pub fn hsum16(l: &[f32; 16]) -> f32 {
    hsum8(&std::array::from_fn(|i| l[i] + l[i + 8]))
}

/// The build's horizontal sum of one vector register (`lanes.len()` is 8 or 16).
pub fn hsum_for(lanes: &[f32]) -> f32 {
    match lanes.len() {
        16 => hsum16(&std::array::from_fn(|i| lanes[i])),
        _ => hsum8(&std::array::from_fn(|i| {
            lanes.get(i).copied().unwrap_or(0.0)
        })),
    }
}

/// The horizontal sum of llama.cpp's AVX2 8-lane reductions (`hsum` in llamafile's sgemm, the
/// softmax and `hsum_float_8`): (hi + lo), then pairs two apart, then neighbours.
pub fn hsum8(l: &[f32; 8]) -> f32 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// `a += b`.
pub fn add_inplace(a: &mut [f32], b: &[f32]) {
    for (x, &y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// llama.cpp's `ggml_compute_forward_soft_max_f32` on one row (no scale, no mask): max, then
/// the build's vector expf over whole vectors whose horizontal sums ([`hsum8`] / [`hsum16`])
/// accumulate in f64, libm `expf` for the tail, and every value scaled by `(1 / sum) as f32`.
/// An all -inf row is left unchanged.
pub fn softmax_inplace(numerics: Numerics, x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return;
    }
    let m = simd_prefix(numerics, x.len());
    let mut sum = 0f64;
    for chunk in x[..m].chunks_exact_mut(numerics.lanes()) {
        let mut l = [0f32; 16];
        for (o, v) in l.iter_mut().zip(chunk.iter_mut()) {
            *v = expf_for(numerics, *v - max);
            *o = *v;
        }
        sum += f64::from(hsum_for(&l[..chunk.len()]));
    }
    for v in &mut x[m..] {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn f32_to_f16_row(x: &[f32], out: &mut [f16]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f16::from_f32(v);
    }
}

pub fn dot_f16_f32(a: &[f16], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x.to_f32() * y).sum()
}

pub fn axpy_f16_f32(alpha: f32, x: &[f16], y: &mut [f32]) {
    for (o, v) in y.iter_mut().zip(x) {
        *o += alpha * v.to_f32();
    }
}
