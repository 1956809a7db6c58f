//! AVX2/FMA/F16C attention sums, bit-identical to `reference` (same chains, same reductions).
//! A 16-lane register of the AVX-512 arithmetic is two 8-lane halves here: lane `l` of it is
//! lane `l % 8` of half `l / 8`. Scores load a key once and reuse it for every query row (a GQA
//! group times a tile of query tokens); weighted sums keep chains in registers, 8 output values
//! at a time.

use std::arch::x86_64::*;

use half::f16;

use super::F16DotOrder;
use crate::numerics::Numerics;
use crate::ops::avx2::hsum;

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load_h(p: *const f16) -> __m256 {
    // SAFETY: the caller guarantees 8 readable f16 values at p.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
}

/// The AVX2 build's `GGML_F32x8_REDUCE` finish: two `_mm_hadd_ps` over the 8 lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn hadd8(x: __m256) -> f32 {
    let t0 = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
    let t1 = _mm_hadd_ps(t0, t0);
    _mm_cvtss_f32(_mm_hadd_ps(t1, t1))
}

/// `ggml_vec_dot_f16`'s end over its chains held as 8-lane groups (group g = chains 8g..8g+8):
/// accumulators `(x0 + x2) + (x1 + x3)`, then the build's horizontal sum.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn reduce_single(numerics: Numerics, g: &[__m256; 8]) -> f32 {
    match numerics {
        // Accumulator j = group j.
        Numerics::Avx2 => hadd8(_mm256_add_ps(
            _mm256_add_ps(g[0], g[2]),
            _mm256_add_ps(g[1], g[3]),
        )),
        // Accumulator j = groups (2j, 2j + 1); then `_mm512_reduce_add_ps` = halves added, then
        // llama.cpp's 8-lane hsum.
        Numerics::Avx512 => {
            let lo = _mm256_add_ps(_mm256_add_ps(g[0], g[4]), _mm256_add_ps(g[2], g[6]));
            let hi = _mm256_add_ps(_mm256_add_ps(g[1], g[5]), _mm256_add_ps(g[3], g[7]));
            hsum(_mm256_add_ps(lo, hi))
        }
    }
}

/// # Safety
/// AVX2, FMA and F16C are available; every key holds `d` values, `queries` holds whole rows of
/// `d`, `out` holds `rows * keys.len()` values.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn scores(
    numerics: Numerics,
    order: F16DotOrder,
    keys: &[&[f16]],
    queries: &[f32],
    d: usize,
    scale: f32,
    out: &mut [f32],
) {
    let nk = keys.len();
    let w = numerics.lanes();
    let batch = order == F16DotOrder::Batch && d.is_multiple_of(w);
    if d == 0 || (!batch && !d.is_multiple_of(4 * w)) || d > 256 {
        super::reference::scores(numerics, order, keys, queries, d, scale, out);
        return;
    }
    let chunks = d / 8;
    let groups = 4 * w / 8;
    let mut kv = [_mm256_setzero_ps(); 32];
    for (p, k) in keys.iter().enumerate() {
        for (c, slot) in kv.iter_mut().enumerate().take(chunks) {
            // SAFETY: c * 8 + 8 <= d = k.len().
            *slot = unsafe { load_h(k.as_ptr().add(c * 8)) };
        }
        for (j, q) in queries.chunks_exact(d).enumerate() {
            let qp = q.as_ptr();
            let v = if batch {
                // Lane l of the build's register: half (c % (w / 8)) of chunk c.
                let mut acc = [_mm256_setzero_ps(); 2];
                for (c, kc) in kv.iter().enumerate().take(chunks) {
                    let h = c % (w / 8);
                    // SAFETY: c * 8 + 8 <= d = q.len().
                    acc[h] =
                        _mm256_fmadd_ps(*kc, unsafe { _mm256_loadu_ps(qp.add(c * 8)) }, acc[h]);
                }
                match numerics {
                    Numerics::Avx2 => hsum(acc[0]),
                    Numerics::Avx512 => hsum(_mm256_add_ps(acc[0], acc[1])),
                }
            } else {
                let mut g = [_mm256_setzero_ps(); 8];
                for (c, kc) in kv.iter().enumerate().take(chunks) {
                    let gi = c % groups;
                    // SAFETY: as above.
                    g[gi] = _mm256_fmadd_ps(*kc, unsafe { _mm256_loadu_ps(qp.add(c * 8)) }, g[gi]);
                }
                // No leftovers: d is a multiple of the period; the f64 round trip is exact.
                reduce_single(numerics, &g)
            };
            out[j * nk + p] = v * scale;
        }
    }
}

/// # Safety
/// AVX2, FMA and F16C are available; `values` and `probs` have the same length, every value row
/// holds `out.len()` values, and `out.len()` is a multiple of 8.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn weighted_sum(
    numerics: Numerics,
    order: F16DotOrder,
    probs: &[f32],
    values: &[&[f16]],
    out: &mut [f32],
) {
    let n = probs.len().min(values.len());
    let w = numerics.lanes();
    for c in (0..out.len()).step_by(8) {
        let r = match order {
            F16DotOrder::Batch => {
                // Chains i mod w; the build's horizontal sum across them, per output value.
                let mut a = [[_mm256_setzero_ps(); 8]; 2];
                for (h, ah) in a.iter_mut().enumerate().take(w / 8) {
                    // SAFETY: n rows of at least c + 8 values (out.len() per row).
                    unsafe { chains(ah, 8 * h, w, probs, values, n, c) };
                }
                let s: [__m256; 8] = match numerics {
                    Numerics::Avx2 => a[0],
                    Numerics::Avx512 => std::array::from_fn(|l| _mm256_add_ps(a[0][l], a[1][l])),
                };
                let lo = _mm256_add_ps(_mm256_add_ps(s[0], s[4]), _mm256_add_ps(s[2], s[6]));
                let hi = _mm256_add_ps(_mm256_add_ps(s[1], s[5]), _mm256_add_ps(s[3], s[7]));
                _mm256_add_ps(lo, hi)
            }
            F16DotOrder::Single => {
                // 4w chains, 8 at a time: a[g][l] is chain 8g + l.
                let period = 4 * w;
                let mut a = [[_mm256_setzero_ps(); 8]; 8];
                for (g, ag) in a.iter_mut().enumerate().take(period / 8) {
                    // SAFETY: as above.
                    unsafe { chains(ag, 8 * g, period, probs, values, n, c) };
                }
                // Chain index → (group, lane) = (i / 8, i % 8).
                let ch = |i: usize| a[i / 8][i % 8];
                let add = |x: __m256, y: __m256| _mm256_add_ps(x, y);
                // Accumulators (x0 + x2) + (x1 + x3) lane by lane (accumulator j = chains
                // w·j .. w·j + w), then the build's horizontal sum of the w lanes.
                let s: [__m256; 16] = std::array::from_fn(|l| {
                    if l < w {
                        add(add(ch(l), ch(2 * w + l)), add(ch(w + l), ch(3 * w + l)))
                    } else {
                        _mm256_setzero_ps()
                    }
                });
                match numerics {
                    Numerics::Avx2 => {
                        // Two hadds: ((s0+s4) + (s1+s5)) + ((s2+s6) + (s3+s7)).
                        let t: [__m256; 4] = std::array::from_fn(|i| add(s[i], s[i + 4]));
                        add(add(t[0], t[1]), add(t[2], t[3]))
                    }
                    Numerics::Avx512 => {
                        let u: [__m256; 8] = std::array::from_fn(|i| add(s[i], s[i + 8]));
                        add(
                            add(add(u[0], u[4]), add(u[2], u[6])),
                            add(add(u[1], u[5]), add(u[3], u[7])),
                        )
                    }
                }
            }
        };
        // SAFETY: c + 8 <= out.len().
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(c), r) };
    }
}

/// For i ≡ first + l (mod period), l in 0..8: `a[l] = fma(values[i][c..c+8], probs[i], a[l])`
/// in increasing i.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn chains(
    a: &mut [__m256; 8],
    first: usize,
    period: usize,
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
        base += period;
    }
}
