//! The LoRA low-rank update of one token row: `y += scale · B·(A·x)`, i.e. a shrink to `rank`
//! values (`xa = scale · A·x`, A is `(rank, in)`) and an expand back to the projection's width
//! (`y += Σ_k xa[k] · Bt[k]`, Bt is `(rank, out)`, B stored transposed so the expand streams
//! contiguous rows). Per token this is `rank·(in + out)` multiply-adds: a few percent of the base
//! projection, but the factors of distinct adapters are read from memory for each token, so the
//! loops are written to stream them once at full vector width.

use half::{bf16, f16};

use crate::dispatch::{KernelLevel, active_level};
use crate::error::{KernelError, check_len};

/// One projection's factors, kept in the precision the adapter was saved in (f16/bf16 files
/// stay 2 bytes per value: exact, and half the memory traffic of f32). `a` is `(rank, in)`,
/// `bt` is B transposed, `(rank, out)`.
#[derive(Debug, Clone, Copy)]
pub enum LoraFactors<'a> {
    F32 { a: &'a [f32], bt: &'a [f32] },
    F16 { a: &'a [f16], bt: &'a [f16] },
    BF16 { a: &'a [bf16], bt: &'a [bf16] },
}

impl LoraFactors<'_> {
    fn lens(&self) -> (usize, usize) {
        match self {
            LoraFactors::F32 { a, bt } => (a.len(), bt.len()),
            LoraFactors::F16 { a, bt } => (a.len(), bt.len()),
            LoraFactors::BF16 { a, bt } => (a.len(), bt.len()),
        }
    }
}

/// One row's update: `y += Σ_k xa[k]·Bt[k]` with `xa = scale·A·x`. `xa`: at least `rank` long.
pub fn lora_row(
    f: LoraFactors<'_>,
    rank: usize,
    scale: f32,
    x: &[f32],
    y: &mut [f32],
    xa: &mut [f32],
) -> Result<(), KernelError> {
    lora_row_at(active_level(), f, rank, scale, x, y, xa)
}

/// [`lora_row`] at a given level (tests compare levels).
pub fn lora_row_at(
    level: KernelLevel,
    f: LoraFactors<'_>,
    rank: usize,
    scale: f32,
    x: &[f32],
    y: &mut [f32],
    xa: &mut [f32],
) -> Result<(), KernelError> {
    let (a_len, bt_len) = f.lens();
    check_len("lora A", rank * x.len(), a_len)?;
    check_len("lora B", rank * y.len(), bt_len)?;
    if xa.len() < rank {
        check_len("lora scratch", rank, xa.len())?;
    }
    let xa = &mut xa[..rank];
    #[cfg(target_arch = "x86_64")]
    if level == KernelLevel::Avx2 && level.is_supported() {
        if avx512_supported() {
            // SAFETY: AVX-512F and AVX-512BW were detected at run time.
            unsafe {
                match f {
                    LoraFactors::F32 { a, bt } => avx512::lora_row_f32(a, bt, scale, x, y, xa),
                    LoraFactors::F16 { a, bt } => avx512::lora_row_f16(a, bt, scale, x, y, xa),
                    LoraFactors::BF16 { a, bt } => avx512::lora_row_bf16(a, bt, scale, x, y, xa),
                }
            }
            return Ok(());
        }
        // SAFETY: the Avx2 level is supported only when the CPU has AVX2, FMA and F16C.
        unsafe {
            match f {
                LoraFactors::F32 { a, bt } => avx2::lora_row_f32(a, bt, scale, x, y, xa),
                LoraFactors::F16 { a, bt } => avx2::lora_row_f16(a, bt, scale, x, y, xa),
                LoraFactors::BF16 { a, bt } => avx2::lora_row_bf16(a, bt, scale, x, y, xa),
            }
        }
        return Ok(());
    }
    let _ = level;
    match f {
        LoraFactors::F32 { a, bt } => reference::lora_row(a, bt, scale, x, y, xa),
        LoraFactors::F16 { a, bt } => reference::lora_row(a, bt, scale, x, y, xa),
        LoraFactors::BF16 { a, bt } => reference::lora_row(a, bt, scale, x, y, xa),
    }
    Ok(())
}

/// Whether the AVX-512 row update can run (the Avx2 level uses it when present: same
/// arithmetic per lane, 16 lanes, shaped for streaming the factors of many adapters).
#[cfg(target_arch = "x86_64")]
fn avx512_supported() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

#[cfg(target_arch = "x86_64")]
use crate::lora_avx512 as avx512;

pub mod reference {
    use half::{bf16, f16};

    /// A factor element: f32, or a 2-byte float widened exactly.
    pub trait Elem: Copy {
        fn f(self) -> f32;
    }
    impl Elem for f32 {
        fn f(self) -> f32 {
            self
        }
    }
    impl Elem for f16 {
        fn f(self) -> f32 {
            self.to_f32()
        }
    }
    impl Elem for bf16 {
        fn f(self) -> f32 {
            self.to_f32()
        }
    }

    /// Scalar oracle of [`super::lora_row`] (lengths already checked).
    pub fn lora_row<T: Elem>(
        a: &[T],
        bt: &[T],
        scale: f32,
        x: &[f32],
        y: &mut [f32],
        xa: &mut [f32],
    ) {
        for (k, v) in xa.iter_mut().enumerate() {
            let row = &a[k * x.len()..(k + 1) * x.len()];
            *v = scale * row.iter().zip(x).map(|(p, q)| p.f() * q).sum::<f32>();
        }
        let n = y.len();
        for (k, &v) in xa.iter().enumerate() {
            for (yo, b) in y.iter_mut().zip(&bt[k * n..(k + 1) * n]) {
                *yo += v * b.f();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use half::{bf16, f16};

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// 8 lanes from `p` widened to f32. SAFETY (callers): 8 readable elements at `p`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load_f32(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load_f16(p: *const f16) -> __m256 {
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }

    /// bf16 is the top half of an f32: widen by a 16-bit shift (exact).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load_bf16(p: *const bf16) -> __m256 {
        unsafe {
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(
                _mm_loadu_si128(p.cast()),
            )))
        }
    }

    macro_rules! lora_impl {
        ($name:ident, $t:ty, $load:ident) => {
            /// SAFETY (callers): AVX2+FMA+F16C present; `a` is `(xa.len(), x.len())`, `bt` is
            /// `(xa.len(), y.len())` (checked by the dispatcher).
            #[target_feature(enable = "avx2,fma,f16c")]
            pub(super) unsafe fn $name(
                a: &[$t],
                bt: &[$t],
                scale: f32,
                x: &[f32],
                y: &mut [f32],
                xa: &mut [f32],
            ) {
                use super::reference::Elem;
                let (w, n, rank) = (x.len(), y.len(), xa.len());
                // Shrink: xa[k] = scale · A[k]·x, two accumulators per row.
                for (k, v) in xa.iter_mut().enumerate() {
                    let row = &a[k * w..(k + 1) * w];
                    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                    let mut i = 0;
                    // SAFETY: i + 16 <= w (resp. i + 8) bounds every load of `row` and `x`.
                    unsafe {
                        while i + 16 <= w {
                            s0 = _mm256_fmadd_ps(
                                $load(row.as_ptr().add(i)),
                                _mm256_loadu_ps(x.as_ptr().add(i)),
                                s0,
                            );
                            s1 = _mm256_fmadd_ps(
                                $load(row.as_ptr().add(i + 8)),
                                _mm256_loadu_ps(x.as_ptr().add(i + 8)),
                                s1,
                            );
                            i += 16;
                        }
                        while i + 8 <= w {
                            s0 = _mm256_fmadd_ps(
                                $load(row.as_ptr().add(i)),
                                _mm256_loadu_ps(x.as_ptr().add(i)),
                                s0,
                            );
                            i += 8;
                        }
                    }
                    let mut s = hsum(_mm256_add_ps(s0, s1));
                    while i < w {
                        s += row[i].f() * x[i];
                        i += 1;
                    }
                    *v = scale * s;
                }
                // Expand: four rank rows per pass, so `y` is loaded and stored once per four.
                let mut k = 0;
                while k < rank {
                    let m = (rank - k).min(4);
                    let rows: [&[$t]; 4] = std::array::from_fn(|j| {
                        if j < m {
                            &bt[(k + j) * n..(k + j + 1) * n]
                        } else {
                            &bt[k * n..(k + 1) * n]
                        }
                    });
                    let c: [f32; 4] = std::array::from_fn(|j| if j < m { xa[k + j] } else { 0.0 });
                    let cv = [
                        _mm256_set1_ps(c[0]),
                        _mm256_set1_ps(c[1]),
                        _mm256_set1_ps(c[2]),
                        _mm256_set1_ps(c[3]),
                    ];
                    let mut i = 0;
                    // SAFETY: i + 8 <= n = the length of `y` and of every row.
                    unsafe {
                        while i + 8 <= n {
                            let yp = y.as_mut_ptr().add(i);
                            let mut acc = _mm256_loadu_ps(yp);
                            for j in 0..m {
                                acc = _mm256_fmadd_ps(cv[j], $load(rows[j].as_ptr().add(i)), acc);
                            }
                            _mm256_storeu_ps(yp, acc);
                            i += 8;
                        }
                    }
                    while i < n {
                        for j in 0..m {
                            y[i] += c[j] * rows[j][i].f();
                        }
                        i += 1;
                    }
                    k += m;
                }
            }
        };
    }

    lora_impl!(lora_row_f32, f32, load_f32);
    lora_impl!(lora_row_f16, f16, load_f16);
    lora_impl!(lora_row_bf16, bf16, load_bf16);
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};

    use super::*;

    #[test]
    fn simd_and_reference_agree_for_ranks_and_odd_widths() {
        let mut seed = 7u32;
        let mut rnd = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for &(rank, w_in, w_out) in &[(1, 64, 64), (3, 37, 19), (16, 576, 192), (128, 100, 13)] {
            let a: Vec<f32> = (0..rank * w_in).map(|_| rnd()).collect();
            let bt: Vec<f32> = (0..rank * w_out).map(|_| rnd()).collect();
            let x: Vec<f32> = (0..w_in).map(|_| rnd()).collect();
            let y0: Vec<f32> = (0..w_out).map(|_| rnd()).collect();
            let mut xa = vec![0.0; rank];
            let mut want = y0.clone();
            lora_row_at(
                KernelLevel::Reference,
                LoraFactors::F32 { a: &a, bt: &bt },
                rank,
                0.5,
                &x,
                &mut want,
                &mut xa,
            )
            .expect("reference");
            let mut got = y0.clone();
            lora_row(
                LoraFactors::F32 { a: &a, bt: &bt },
                rank,
                0.5,
                &x,
                &mut got,
                &mut xa,
            )
            .expect("dispatched");
            let (a16, b16): (Vec<f16>, Vec<f16>) = (
                a.iter().map(|&v| f16::from_f32(v)).collect(),
                bt.iter().map(|&v| f16::from_f32(v)).collect(),
            );
            let (ab, bb): (Vec<bf16>, Vec<bf16>) = (
                a.iter().map(|&v| bf16::from_f32(v)).collect(),
                bt.iter().map(|&v| bf16::from_f32(v)).collect(),
            );
            for f in [
                LoraFactors::F16 { a: &a16, bt: &b16 },
                LoraFactors::BF16 { a: &ab, bt: &bb },
            ] {
                let (mut r, mut d) = (y0.clone(), y0.clone());
                lora_row_at(KernelLevel::Reference, f, rank, 0.5, &x, &mut r, &mut xa)
                    .expect("reference");
                lora_row(f, rank, 0.5, &x, &mut d, &mut xa).expect("dispatched");
                for (g, w) in d.iter().zip(&r) {
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "rank {rank} {f:?}: {g} vs {w}"
                    );
                }
            }
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "rank {rank}: {g} vs {w}"
                );
            }
        }
    }

    /// Both x86 versions (AVX2, and AVX-512 where the CPU has it) against the scalar oracle, for
    /// every dtype, ranks that leave partial shrink (4) and expand (8) passes, and widths with
    /// tails.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn each_x86_version_matches_the_reference() {
        if !KernelLevel::Avx2.is_supported() {
            return;
        }
        let mut seed = 11u32;
        let mut rnd = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let shapes = [
            (1, 16, 16),
            (5, 33, 47),
            (9, 576, 192),
            (16, 1536, 576),
            (13, 7, 5),
        ];
        for &(rank, w_in, w_out) in &shapes {
            let a: Vec<f32> = (0..rank * w_in).map(|_| rnd()).collect();
            let bt: Vec<f32> = (0..rank * w_out).map(|_| rnd()).collect();
            let x: Vec<f32> = (0..w_in).map(|_| rnd()).collect();
            let y0: Vec<f32> = (0..w_out).map(|_| rnd()).collect();
            let a16: Vec<f16> = a.iter().map(|&v| f16::from_f32(v)).collect();
            let b16: Vec<f16> = bt.iter().map(|&v| f16::from_f32(v)).collect();
            let ab: Vec<bf16> = a.iter().map(|&v| bf16::from_f32(v)).collect();
            let bb: Vec<bf16> = bt.iter().map(|&v| bf16::from_f32(v)).collect();
            let mut xa = vec![0.0; rank];
            let run = |which: &str, y: &mut [f32], xa: &mut [f32], dt: usize| {
                // SAFETY: AVX2 (checked above) / AVX-512 (checked below); shapes match.
                unsafe {
                    match (which, dt) {
                        ("ref", 0) => reference::lora_row(&a, &bt, 0.5, &x, y, xa),
                        ("ref", 1) => reference::lora_row(&a16, &b16, 0.5, &x, y, xa),
                        ("ref", _) => reference::lora_row(&ab, &bb, 0.5, &x, y, xa),
                        ("avx2", 0) => avx2::lora_row_f32(&a, &bt, 0.5, &x, y, xa),
                        ("avx2", 1) => avx2::lora_row_f16(&a16, &b16, 0.5, &x, y, xa),
                        ("avx2", _) => avx2::lora_row_bf16(&ab, &bb, 0.5, &x, y, xa),
                        (_, 0) => avx512::lora_row_f32(&a, &bt, 0.5, &x, y, xa),
                        (_, 1) => avx512::lora_row_f16(&a16, &b16, 0.5, &x, y, xa),
                        _ => avx512::lora_row_bf16(&ab, &bb, 0.5, &x, y, xa),
                    }
                }
            };
            let mut versions = vec!["avx2"];
            if avx512_supported() {
                versions.push("avx512");
            }
            for dt in 0..3 {
                let mut want = y0.clone();
                run("ref", &mut want, &mut xa, dt);
                for v in &versions {
                    let mut got = y0.clone();
                    run(v, &mut got, &mut xa, dt);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                            "{v} dtype {dt} rank {rank} {w_in}->{w_out} [{i}]: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn wrong_factor_sizes_are_errors() {
        let mut y = vec![0.0; 4];
        let mut xa = vec![0.0; 2];
        assert!(
            lora_row(
                LoraFactors::F32 {
                    a: &[0.0; 7],
                    bt: &[0.0; 8]
                },
                2,
                1.0,
                &[0.0; 4],
                &mut y,
                &mut xa
            )
            .is_err()
        );
        assert!(
            lora_row(
                LoraFactors::F32 {
                    a: &[0.0; 8],
                    bt: &[0.0; 7]
                },
                2,
                1.0,
                &[0.0; 4],
                &mut y,
                &mut xa
            )
            .is_err()
        );
    }
}
