//! AVX2/FMA/F16C versions of the helpers whose cost grows with tokens × width: the exp-based
//! ones (silu, softmax) and the f16 KV-cache loops. Each function: the CPU supports
//! AVX2+FMA+F16C (callers check), slices already trimmed to a common length.

use std::arch::x86_64::*;

use half::f16;

/// e^x for 8 lanes (Cephes expf: range reduction by ln2 in two parts, degree-6 polynomial),
/// within ~2 ulp of `f32::exp`; inputs below -87.3 give 0 and above 88.37 saturate.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn exp8(x: __m256) -> __m256 {
    let hi = _mm256_set1_ps(88.376_26);
    let lo = _mm256_set1_ps(-87.336_55);
    let underflow = _mm256_cmp_ps::<_CMP_LT_OQ>(x, lo);
    let xc = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
    let fx = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        xc,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693_359_4), xc);
    let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let y = _mm256_add_ps(
        _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
        _mm256_set1_ps(1.0),
    );
    // 2^fx: fx in [-126, 128]; at 128 split the scaling in two to avoid an infinite exponent.
    let n = _mm256_cvtps_epi32(fx);
    let half_n = _mm256_srai_epi32::<1>(n);
    let s1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        half_n,
        _mm256_set1_epi32(127),
    )));
    let s2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_sub_epi32(n, half_n),
        _mm256_set1_epi32(127),
    )));
    _mm256_andnot_ps(underflow, _mm256_mul_ps(_mm256_mul_ps(y, s1), s2))
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn silu_mul(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let one = _mm256_set1_ps(1.0);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n for both slices.
        unsafe {
            let g = _mm256_loadu_ps(gate.as_ptr().add(i));
            let u = _mm256_loadu_ps(up.as_ptr().add(i));
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
            let s = _mm256_div_ps(g, _mm256_add_ps(one, e));
            _mm256_storeu_ps(gate.as_mut_ptr().add(i), _mm256_mul_ps(s, u));
        }
        i += 8;
    }
    super::reference::silu_mul(&mut gate[i..n], &up[i..n]);
}

#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn softmax_inplace(x: &mut [f32]) {
    let n = x.len();
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return;
    }
    let mv = _mm256_set1_ps(max);
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        unsafe {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), mv));
            _mm256_storeu_ps(x.as_mut_ptr().add(i), e);
            acc = _mm256_add_ps(acc, e);
        }
        i += 8;
    }
    let mut sum = hsum(acc);
    for v in &mut x[i..] {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
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
