//! AVX2/FMA/F16C versions of the helpers whose cost grows with tokens × width: the exp-based
//! ones (silu, softmax; bit-identical to the reference, both llama.cpp's formulation) and the
//! f16 KV-cache loops. Each function: the CPU supports
//! AVX2+FMA+F16C (callers check), slices already trimmed to a common length.

use std::arch::x86_64::*;

use half::f16;

use crate::numerics::Numerics;

/// llama.cpp's `ggml_v_expf` for AVX2+FMA, instruction for instruction (see
/// [`super::reference::expf_ggml`], its one-lane twin).
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn exp8(x: __m256) -> __m256 {
    let c = |bits: u32| _mm256_castsi256_ps(_mm256_set1_epi32(bits as i32));
    let r = c(0x4b40_0000);
    let z = _mm256_fmadd_ps(x, c(0x3fb8_aa3b), r);
    let n = _mm256_sub_ps(z, r);
    let b = _mm256_fnmadd_ps(n, c(0x35bf_be8e), _mm256_fnmadd_ps(n, c(0x3f31_7200), x));
    let e = _mm256_slli_epi32::<23>(_mm256_castps_si256(z));
    let k = _mm256_castsi256_ps(_mm256_add_epi32(
        e,
        _mm256_castps_si256(_mm256_set1_ps(1.0)),
    ));
    let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    let big = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(126.0));
    let u = _mm256_mul_ps(b, b);
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)),
            u,
            _mm256_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb)),
        ),
        u,
        _mm256_mul_ps(c(0x3f7f_fff6), b),
    );
    if _mm256_movemask_ps(big) == 0 {
        return _mm256_fmadd_ps(j, k, k);
    }
    let g = _mm256_and_si256(
        _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_setzero_ps())),
        _mm256_set1_epi32(0x8200_0000u32 as i32),
    );
    let s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f00_0000)));
    let s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    let huge = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(192.0));
    _mm256_or_ps(
        _mm256_and_ps(huge, _mm256_mul_ps(s1, s1)),
        _mm256_andnot_ps(
            huge,
            _mm256_or_ps(
                _mm256_and_ps(big, _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
                _mm256_andnot_ps(big, _mm256_fmadd_ps(k, j, k)),
            ),
        ),
    )
}

/// llama.cpp's AVX-512 `ggml_v_expf` on 8 lanes (see [`super::reference::expf_ggml512`]):
/// `j · 2^n` is one exact-then-rounded product while `2^n` is a normal float (`|n| <= 126`);
/// lanes with `126 < |n| <= 192` (results near the float limits) take the scalar twin, and
/// `|n| > 192` saturates as llama.cpp does.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn exp8_512(x: __m256) -> __m256 {
    let c = |bits: u32| _mm256_castsi256_ps(_mm256_set1_epi32(bits as i32));
    let r = c(0x4b40_0000);
    let z = _mm256_fmadd_ps(x, c(0x3fb8_aa3b), r);
    let n = _mm256_sub_ps(z, r);
    let b = _mm256_fnmadd_ps(n, c(0x35bf_be8e), _mm256_fnmadd_ps(n, c(0x3f31_7200), x));
    let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    let big = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(126.0));
    let huge = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(192.0));
    if _mm256_movemask_ps(_mm256_andnot_ps(huge, big)) != 0 {
        let mut lanes = [0f32; 8];
        // SAFETY: lanes holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), x) };
        for v in &mut lanes {
            *v = super::reference::expf_ggml512(*v);
        }
        // SAFETY: as above.
        return unsafe { _mm256_loadu_ps(lanes.as_ptr()) };
    }
    let u = _mm256_mul_ps(b, b);
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)),
            u,
            _mm256_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb)),
        ),
        u,
        _mm256_fmadd_ps(c(0x3f7f_fff6), b, _mm256_set1_ps(1.0)),
    );
    let e = _mm256_slli_epi32::<23>(_mm256_castps_si256(z));
    let k = _mm256_castsi256_ps(_mm256_add_epi32(
        e,
        _mm256_castps_si256(_mm256_set1_ps(1.0)),
    ));
    let res = _mm256_mul_ps(j, k);
    if _mm256_movemask_ps(huge) == 0 {
        return res;
    }
    // Saturated lanes (e.g. -inf, a masked score): 0 where n <= 0, else inf.
    let nonpos = _mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_setzero_ps());
    let alt = _mm256_andnot_ps(nonpos, _mm256_set1_ps(f32::INFINITY));
    _mm256_blendv_ps(res, alt, huge)
}

/// The build's vector expf on 8 lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn exp8_for(numerics: Numerics, x: __m256) -> __m256 {
    match numerics {
        Numerics::Avx2 => exp8(x),
        Numerics::Avx512 => exp8_512(x),
    }
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn silu_mul(numerics: Numerics, gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let one = _mm256_set1_ps(1.0);
    // Elementwise, so 16-lane vectors are two 8-lane halves; only the scalar tail's start moves.
    let m = super::reference::simd_prefix(numerics, n);
    let mut i = 0;
    while i + 8 <= m {
        // SAFETY: i + 8 <= n for both slices.
        unsafe {
            let g = _mm256_loadu_ps(gate.as_ptr().add(i));
            let u = _mm256_loadu_ps(up.as_ptr().add(i));
            let e = exp8_for(numerics, _mm256_sub_ps(_mm256_setzero_ps(), g));
            let s = _mm256_div_ps(g, _mm256_add_ps(one, e));
            _mm256_storeu_ps(gate.as_mut_ptr().add(i), _mm256_mul_ps(s, u));
        }
        i += 8;
    }
    super::reference::silu_mul(numerics, &mut gate[i..n], &up[i..n]);
}

/// llama.cpp's 8-lane horizontal sum (see [`super::reference::hsum8`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn softmax_inplace(numerics: Numerics, x: &mut [f32]) {
    let n = x.len();
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return;
    }
    let mv = _mm256_set1_ps(max);
    let mut sum = 0f64;
    let mut i = 0;
    match numerics {
        Numerics::Avx2 => {
            while i + 8 <= n {
                // SAFETY: i + 8 <= n.
                unsafe {
                    let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), mv));
                    _mm256_storeu_ps(x.as_mut_ptr().add(i), e);
                    sum += f64::from(hsum(e));
                }
                i += 8;
            }
        }
        Numerics::Avx512 => {
            while i + 16 <= n {
                // SAFETY: i + 16 <= n.
                unsafe {
                    let lo = exp8_512(_mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), mv));
                    let hi = exp8_512(_mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i + 8)), mv));
                    _mm256_storeu_ps(x.as_mut_ptr().add(i), lo);
                    _mm256_storeu_ps(x.as_mut_ptr().add(i + 8), hi);
                    // _mm512_reduce_add_ps: halves first, then the 8-lane order.
                    sum += f64::from(hsum(_mm256_add_ps(lo, hi)));
                }
                i += 16;
            }
        }
    }
    for v in &mut x[i..] {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    let iv = _mm256_set1_ps(inv);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        unsafe {
            _mm256_storeu_ps(
                x.as_mut_ptr().add(i),
                _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(i)), iv),
            )
        };
        i += 8;
    }
    for v in &mut x[i..] {
        *v *= inv;
    }
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        unsafe {
            s0 = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(i)),
                _mm256_loadu_ps(b.as_ptr().add(i)),
                s0,
            );
            s1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(i + 8)),
                _mm256_loadu_ps(b.as_ptr().add(i + 8)),
                s1,
            );
        }
        i += 16;
    }
    hsum(_mm256_add_ps(s0, s1)) + super::reference::dot_f32(&a[i..n], &b[i..n])
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f32_to_f16_row(x: &[f32], out: &mut [f16]) {
    let n = x.len().min(out.len());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n; f16 is 2 bytes, 8 of them fill the 128-bit store.
        unsafe {
            let h = _mm256_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT }>(_mm256_loadu_ps(
                x.as_ptr().add(i),
            ));
            _mm_storeu_si128(out.as_mut_ptr().add(i).cast(), h);
        }
        i += 8;
    }
    super::reference::f32_to_f16_row(&x[i..n], &mut out[i..n]);
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_f16_f32(a: &[f16], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        unsafe {
            let h0 = _mm256_cvtph_ps(_mm_loadu_si128(a.as_ptr().add(i).cast()));
            let h1 = _mm256_cvtph_ps(_mm_loadu_si128(a.as_ptr().add(i + 8).cast()));
            s0 = _mm256_fmadd_ps(h0, _mm256_loadu_ps(b.as_ptr().add(i)), s0);
            s1 = _mm256_fmadd_ps(h1, _mm256_loadu_ps(b.as_ptr().add(i + 8)), s1);
        }
        i += 16;
    }
    if i + 8 <= n {
        // SAFETY: i + 8 <= n.
        unsafe {
            s0 = _mm256_fmadd_ps(
                _mm256_cvtph_ps(_mm_loadu_si128(a.as_ptr().add(i).cast())),
                _mm256_loadu_ps(b.as_ptr().add(i)),
                s0,
            )
        };
        i += 8;
    }
    hsum(_mm256_add_ps(s0, s1)) + super::reference::dot_f16_f32(&a[i..n], &b[i..n])
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn axpy_f16_f32(alpha: f32, x: &[f16], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let av = _mm256_set1_ps(alpha);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        unsafe {
            let h = _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().add(i).cast()));
            let p = y.as_mut_ptr().add(i);
            _mm256_storeu_ps(p, _mm256_fmadd_ps(av, h, _mm256_loadu_ps(p)));
        }
        i += 8;
    }
    super::reference::axpy_f16_f32(alpha, &x[i..n], &mut y[i..n]);
}
