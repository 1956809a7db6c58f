//! AVX2/FMA/F16C attention sums, bit-identical to `reference` (same chains, same reductions).
//! Scores load a key once and reuse it for every query row (a GQA group times a tile of query
//! tokens); weighted sums keep one register per chain and 8 output values.

use std::arch::x86_64::*;

use half::f16;

use super::F16DotOrder;
use crate::ops::avx2::hsum;

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load_h(p: *const f16) -> __m256 {
    // SAFETY: the caller guarantees 8 readable f16 values at p.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
}

/// ggml's `GGML_F32x8_REDUCE` of 4 accumulators, then its `_mm_hadd_ps` finish.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn reduce4(a: [__m256; 4]) -> f32 {
    let x = _mm256_add_ps(_mm256_add_ps(a[0], a[2]), _mm256_add_ps(a[1], a[3]));
    let t0 = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
    let t1 = _mm_hadd_ps(t0, t0);
    _mm_cvtss_f32(_mm_hadd_ps(t1, t1))
}

/// # Safety
/// AVX2, FMA and F16C are available; every key holds `d` values, `queries` holds whole rows of
/// `d`, `out` holds `rows * keys.len()` values.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn scores(
    order: F16DotOrder,
    keys: &[&[f16]],
    queries: &[f32],
    d: usize,
    scale: f32,
    out: &mut [f32],
) {
    let nk = keys.len();
    let batch = order == F16DotOrder::Batch && d % 8 == 0;
    if d == 0 || (!batch && d % 32 != 0) || d > 256 {
        super::reference::scores(order, keys, queries, d, scale, out);
        return;
    }
    let chunks = d / 8;
    let mut kv = [_mm256_setzero_ps(); 32];
    for (p, k) in keys.iter().enumerate() {
        for (c, slot) in kv.iter_mut().enumerate().take(chunks) {
            // SAFETY: c * 8 + 8 <= d = k.len().
            *slot = unsafe { load_h(k.as_ptr().add(c * 8)) };
        }
        for (j, q) in queries.chunks_exact(d).enumerate() {
            let qp = q.as_ptr();
            let v = if batch {
                let mut acc = _mm256_setzero_ps();
                for (c, kc) in kv.iter().enumerate().take(chunks) {
                    // SAFETY: c * 8 + 8 <= d = q.len().
                    acc = _mm256_fmadd_ps(*kc, unsafe { _mm256_loadu_ps(qp.add(c * 8)) }, acc);
                }
                hsum(acc)
            } else {
                let mut acc = [_mm256_setzero_ps(); 4];
                for (c, kc) in kv.iter().enumerate().take(chunks) {
                    // SAFETY: as above.
                    acc[c % 4] = _mm256_fmadd_ps(*kc, unsafe { _mm256_loadu_ps(qp.add(c * 8)) }, acc[c % 4]);
                }
                // No leftovers: d is a multiple of 32; the f64 round trip is exact.
                reduce4(acc)
            };
            out[j * nk + p] = v * scale;
        }
    }
}

/// # Safety
/// AVX2, FMA and F16C are available; `values` and `probs` have the same length, every value row
/// holds `out.len()` values, and `out.len()` is a multiple of 8.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn weighted_sum(order: F16DotOrder, probs: &[f32], values: &[&[f16]], out: &mut [f32]) {
    let n = probs.len().min(values.len());
    for c in (0..out.len()).step_by(8) {
        let r = match order {
            F16DotOrder::Batch => {
                let mut a = [_mm256_setzero_ps(); 8];
                // SAFETY: n rows of at least c + 8 values (out.len() per row).
                unsafe { chains::<8>(&mut a, 0, probs, values, n, c) };
                let lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
                let hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
                _mm256_add_ps(lo, hi)
            }
            F16DotOrder::Single => {
                // 32 chains, 8 at a time (the ones for i mod 32 in 8j..8j+8).
                let mut a = [[_mm256_setzero_ps(); 8]; 4];
                for (j, aj) in a.iter_mut().enumerate() {
                    // SAFETY: as above.
                    unsafe { chains::<32>(aj, 8 * j, probs, values, n, c) };
                }
                let s: [__m256; 8] = std::array::from_fn(|l| {
                    _mm256_add_ps(_mm256_add_ps(a[0][l], a[2][l]), _mm256_add_ps(a[1][l], a[3][l]))
                });
                let t: [__m256; 4] = std::array::from_fn(|i| _mm256_add_ps(s[i], s[i + 4]));
                _mm256_add_ps(_mm256_add_ps(t[0], t[1]), _mm256_add_ps(t[2], t[3]))
            }
        };
        // SAFETY: c + 8 <= out.len().
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(c), r) };
    }
}

/// For i ≡ first + l (mod PERIOD), l in 0..8: `a[l] = fma(values[i][c..c+8], probs[i], a[l])`
/// in increasing i.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn chains<const PERIOD: usize>(
    a: &mut [__m256; 8],
    first: usize,
    probs: &[f32],
    values: &[&[f16]],
    n: usize,
    c: usize,
) {
    let mut base = first;
    while base < n {
        let end = (base + 8).min(n);
        for (l, i) in (base..end).enumerate() {
            // SAFETY: i < n; value rows hold at least c + 8 values.
            let v = unsafe { load_h(values[i].as_ptr().add(c)) };
            a[l] = _mm256_fmadd_ps(v, _mm256_set1_ps(probs[i]), a[l]);
        }
        base += PERIOD;
    }
}
