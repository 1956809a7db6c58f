//! AVX-512 versions of the LoRA row update (16 lanes). With sixteen distinct adapters in a step
//! every row streams its own factors, so the loops are shaped for memory-level parallelism:
//! the shrink takes four rank rows per pass over `x` (four independent accumulators, `x` loaded
//! once per four rows), the expand takes eight rank rows per pass over `y` (half the `y`
//! round trips of four), and the next stretch of every stream is prefetched ahead of use.
//! The f32 arithmetic per lane is the AVX2 version's (exact widening of f16/bf16, f32 FMAs).

use std::arch::x86_64::*;

use half::{bf16, f16};

use crate::lora::reference::Elem;

/// How far ahead each factor stream is prefetched, in bytes. Measured on a Zen 5 VM under load
/// (16 distinct bf16 adapters): no prefetch 20–23 ms of CPU per step, 512 bytes ahead ~18.5,
/// 2 KiB ahead ~17.6; the hardware prefetcher alone ramps up too slowly on these short rows
/// (1–3 KiB each) and does not cross 4 KiB pages.
const AHEAD_BYTES: usize = 2048;

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn load_f32(p: *const f32) -> __m512 {
    // SAFETY (callers): 16 readable elements at `p`.
    unsafe { _mm512_loadu_ps(p) }
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn load_f16(p: *const f16) -> __m512 {
    // SAFETY (callers): 16 readable elements at `p`.
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
}

/// bf16 is the top half of an f32: widen by a 16-bit shift (exact).
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn load_bf16(p: *const bf16) -> __m512 {
    // SAFETY (callers): 16 readable elements at `p`.
    unsafe {
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(
            _mm256_loadu_si256(p.cast()),
        )))
    }
}

/// Prefetches the cache line holding `p` (a hint: any address is allowed, none is read).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    // SAFETY: prefetch never faults and reads nothing architecturally.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
}

macro_rules! lora_impl {
    ($name:ident, $t:ty, $load:ident) => {
        /// SAFETY (callers): AVX-512F/BW present; `a` is `(xa.len(), x.len())`, `bt` is
        /// `(xa.len(), y.len())` (checked by the dispatcher).
        #[target_feature(enable = "avx512f,avx512bw")]
        pub(crate) unsafe fn $name(
            a: &[$t],
            bt: &[$t],
            scale: f32,
            x: &[f32],
            y: &mut [f32],
            xa: &mut [f32],
        ) {
            let (w, n, rank) = (x.len(), y.len(), xa.len());
            let ah = AHEAD_BYTES / size_of::<$t>();
            let body = w - w % 16;
            // Shrink: xa[k] = scale · A[k]·x, four rank rows per pass.
            let mut k = 0;
            while k < rank {
                let m = (rank - k).min(4);
                let rows: [&[$t]; 4] =
                    std::array::from_fn(|j| &a[(k + j.min(m - 1)) * w..(k + j.min(m - 1) + 1) * w]);
                let mut s = [_mm512_setzero_ps(); 4];
                let mut i = 0;
                // SAFETY: i + 16 <= body <= w bounds every load of the rows and of `x`; the
                // prefetches are hints.
                unsafe {
                    while i < body {
                        let xv = _mm512_loadu_ps(x.as_ptr().add(i));
                        for j in 0..4 {
                            if (i * size_of::<$t>()) % 64 == 0 {
                                prefetch(rows[j].as_ptr().wrapping_add(i + ah));
                            }
                            s[j] = _mm512_fmadd_ps($load(rows[j].as_ptr().add(i)), xv, s[j]);
                        }
                        i += 16;
                    }
                }
                for j in 0..m {
                    let mut v = _mm512_reduce_add_ps(s[j]);
                    for t in body..w {
                        v += rows[j][t].f() * x[t];
                    }
                    xa[k + j] = scale * v;
                }
                k += m;
            }
            // The expand's first rows are needed next: start fetching them now.
            for off in (0..(8 * n).min(bt.len())).step_by(64 / size_of::<$t>()) {
                prefetch(bt.as_ptr().wrapping_add(off));
            }
            // Expand: eight rank rows per pass, so `y` is loaded and stored once per eight.
            let nb = n - n % 16;
            let mut k = 0;
            while k < rank {
                let m = (rank - k).min(8);
                let rows: [&[$t]; 8] = std::array::from_fn(|j| {
                    &bt[(k + j.min(m - 1)) * n..(k + j.min(m - 1) + 1) * n]
                });
                let c: [f32; 8] = std::array::from_fn(|j| if j < m { xa[k + j] } else { 0.0 });
                let cv: [__m512; 8] = std::array::from_fn(|j| _mm512_set1_ps(c[j]));
                let mut i = 0;
                // SAFETY: i + 16 <= nb <= n = the length of `y` and of every row; prefetches
                // are hints.
                unsafe {
                    while i < nb {
                        let yp = y.as_mut_ptr().add(i);
                        let mut acc0 = _mm512_loadu_ps(yp);
                        let mut acc1 = _mm512_setzero_ps();
                        for j in (0..8).step_by(2) {
                            if (i * size_of::<$t>()) % 64 == 0 {
                                prefetch(rows[j].as_ptr().wrapping_add(i + ah));
                                prefetch(rows[j + 1].as_ptr().wrapping_add(i + ah));
                            }
                            acc0 = _mm512_fmadd_ps(cv[j], $load(rows[j].as_ptr().add(i)), acc0);
                            acc1 = _mm512_fmadd_ps(
                                cv[j + 1],
                                $load(rows[j + 1].as_ptr().add(i)),
                                acc1,
                            );
                        }
                        _mm512_storeu_ps(yp, _mm512_add_ps(acc0, acc1));
                        i += 16;
                    }
                }
                for i in nb..n {
                    for j in 0..m {
                        y[i] += c[j] * rows[j][i].f();
                    }
                }
                k += m;
            }
        }
    };
}

lora_impl!(lora_row_f32, f32, load_f32);
lora_impl!(lora_row_f16, f16, load_f16);
lora_impl!(lora_row_bf16, bf16, load_bf16);
