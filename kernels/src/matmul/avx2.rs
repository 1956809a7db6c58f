//! AVX2 + FMA + F16C kernels over the 8-row interleaved layout (see `qmatrix`): vector lane r
//! accumulates output row r, so no horizontal sums, and the per-lane f32 operations are the
//! reference's. Integer dot products use `vpmaddubsw` (unsigned weight codes × signed
//! activations) with exact i16 partial sums: Q4 pairs are ≤ 2·15·127, eight of them fit i16;
//! 5-bit pairs ≤ 2·31·127, four fit; Q8_0 uses ggml's sign trick and widens every product.

use std::arch::x86_64::*;

use super::{Input, Out, blocks_per_row};
use crate::blocks::WeightFormat;
use crate::qmatrix::{GROUP, PackedQ, QMatrix, Repr};
use crate::quantize::QuantActs;

/// Tokens per register tile.
const TILE: usize = 4;

/// # Safety
/// The CPU supports AVX2, FMA and F16C; `g0..g1` are groups of `w` owned by this task.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn run_groups(w: &QMatrix, input: &Input<'_>, g0: usize, g1: usize, out: Out) {
    let cx = Ctx {
        rows: w.rows,
        cols: w.cols,
        nb: blocks_per_row(w),
        out,
    };
    // SAFETY (all arms): features enabled on this function; layouts built by `qmatrix`.
    unsafe {
        match (&w.repr, input) {
            (Repr::Quant(p), Input::Quant(a)) => match w.format {
                WeightFormat::Q4_0 => quant::<true, 8, false, false>(&cx, p, a, g0, g1),
                WeightFormat::Q4_1 => quant::<true, 0, false, true>(&cx, p, a, g0, g1),
                WeightFormat::Q5_0 => quant::<false, 16, false, false>(&cx, p, a, g0, g1),
                WeightFormat::Q5_1 => quant::<false, 0, false, true>(&cx, p, a, g0, g1),
                WeightFormat::Q8_0 => quant::<false, 0, true, false>(&cx, p, a, g0, g1),
                _ => {}
            },
            (Repr::F32(d), Input::Float { x, tokens }) => {
                float::<0>(&cx, d.as_ptr().cast(), x, *tokens, g0, g1)
            }
            (Repr::Half(d), Input::Float { x, tokens }) => {
                if w.format == WeightFormat::BF16 {
                    float::<2>(&cx, d.as_ptr().cast(), x, *tokens, g0, g1)
                } else {
                    float::<1>(&cx, d.as_ptr().cast(), x, *tokens, g0, g1)
                }
            }
            _ => {}
        }
    }
}

struct Ctx {
    rows: usize,
    cols: usize,
    nb: usize,
    out: Out,
}

impl Ctx {
    /// Stores the 8 lanes of a group's result for token t, skipping padding rows.
    #[inline(always)]
    unsafe fn store(&self, g: usize, t: usize, v: __m256) {
        let mut lanes = [0f32; GROUP];
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        for (lane, &x) in lanes.iter().enumerate() {
            let r = g * GROUP + lane;
            if r < self.rows {
                // SAFETY: r < rows, t < tokens, group owned by this task.
                unsafe { self.out.write(t, r, x) };
            }
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quant<const NIB: bool, const OFF: i32, const SIGNED: bool, const MIN: bool>(
    cx: &Ctx,
    p: &PackedQ,
    a: &QuantActs,
    g0: usize,
    g1: usize,
) {
    for g in g0..g1 {
        let mut t = 0;
        // SAFETY (all calls): t + T <= tokens, g < groups.
        unsafe {
            while t + TILE <= a.tokens {
                quant_tile::<NIB, OFF, SIGNED, MIN, TILE>(cx, p, a, g, t);
                t += TILE;
            }
            match a.tokens - t {
                3 => quant_tile::<NIB, OFF, SIGNED, MIN, 3>(cx, p, a, g, t),
                2 => quant_tile::<NIB, OFF, SIGNED, MIN, 2>(cx, p, a, g, t),
                1 => quant_tile::<NIB, OFF, SIGNED, MIN, 1>(cx, p, a, g, t),
                _ => {}
            }
        }
    }
}

/// Broadcasts activation bytes `4k..4k+4` of a block to every lane.
#[inline(always)]
unsafe fn bcast4(xb: *const i8, k: usize) -> __m256i {
    // SAFETY: the caller's block holds 32 bytes; k < 8.
    unsafe { _mm256_set1_epi32(std::ptr::read_unaligned(xb.add(4 * k).cast::<i32>())) }
}

/// One 8-row group × T tokens.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn quant_tile<
    const NIB: bool,
    const OFF: i32,
    const SIGNED: bool,
    const MIN: bool,
    const T: usize,
>(
    cx: &Ctx,
    p: &PackedQ,
    a: &QuantActs,
    g: usize,
    t0: usize,
) {
    let nb = cx.nb;
    let ones = _mm256_set1_epi16(1);
    let low = _mm256_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); T];
    // SAFETY: all pointers stay inside the group's blocks and the tile's tokens, by construction
    // of the packed layout (groups*nb blocks) and of QuantActs (tokens*cols codes).
    unsafe {
        let dptr = p.d.as_ptr().add(g * nb * GROUP).cast::<__m128i>();
        let qptr = p.qs.as_ptr().add(g * nb * p.bpb);
        let xq: [*const i8; T] = std::array::from_fn(|i| a.qs.as_ptr().add((t0 + i) * cx.cols));
        for b in 0..nb {
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(dptr.add(b)));
            let wq = qptr.add(b * if NIB { 128 } else { 256 });
            let mut w = [_mm256_setzero_si256(); 8];
            if NIB {
                for j in 0..4 {
                    let v = _mm256_loadu_si256(wq.add(32 * j).cast());
                    w[j] = _mm256_and_si256(v, low);
                    w[j + 4] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
                }
            } else {
                for (k, wk) in w.iter_mut().enumerate() {
                    *wk = _mm256_loadu_si256(wq.add(32 * k).cast());
                }
            }
            let wabs: [__m256i; 8] = if SIGNED {
                std::array::from_fn(|k| _mm256_abs_epi8(w[k]))
            } else {
                w
            };
            for i in 0..T {
                let xb = xq[i].add(b * 32);
                let sumi = if NIB {
                    let mut s = _mm256_maddubs_epi16(w[0], bcast4(xb, 0));
                    for (k, wk) in w.iter().enumerate().skip(1) {
                        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(*wk, bcast4(xb, k)));
                    }
                    _mm256_madd_epi16(s, ones)
                } else if SIGNED {
                    let mut s = _mm256_setzero_si256();
                    for k in 0..8 {
                        let xs = _mm256_sign_epi8(bcast4(xb, k), w[k]);
                        s = _mm256_add_epi32(
                            s,
                            _mm256_madd_epi16(_mm256_maddubs_epi16(wabs[k], xs), ones),
                        );
                    }
                    s
                } else {
                    let mut lo = _mm256_maddubs_epi16(w[0], bcast4(xb, 0));
                    let mut hi = _mm256_maddubs_epi16(w[4], bcast4(xb, 4));
                    for k in 1..4 {
                        lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(w[k], bcast4(xb, k)));
                        hi =
                            _mm256_add_epi16(hi, _mm256_maddubs_epi16(w[k + 4], bcast4(xb, k + 4)));
                    }
                    _mm256_add_epi32(_mm256_madd_epi16(lo, ones), _mm256_madd_epi16(hi, ones))
                };
                let ab = (t0 + i) * nb + b;
                let sumi = if OFF != 0 {
                    _mm256_sub_epi32(sumi, _mm256_set1_epi32(OFF * *a.isum.get_unchecked(ab)))
                } else {
                    sumi
                };
                let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*a.d.get_unchecked(ab)));
                acc[i] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sumi), acc[i]);
            }
        }
        if MIN {
            let mptr = p.m.as_ptr().add(g * nb * GROUP).cast::<__m128i>();
            let mut acc2 = [_mm256_setzero_ps(); T];
            for b in 0..nb {
                let mw = _mm256_cvtph_ps(_mm_loadu_si128(mptr.add(b)));
                for (i, a2) in acc2.iter_mut().enumerate() {
                    *a2 = _mm256_fmadd_ps(
                        mw,
                        _mm256_set1_ps(*a.s.get_unchecked((t0 + i) * nb + b)),
                        *a2,
                    );
                }
            }
            for i in 0..T {
                acc[i] = _mm256_add_ps(acc[i], acc2[i]);
            }
        }
        for (i, v) in acc.iter().enumerate() {
            cx.store(g, t0 + i, *v);
        }
    }
}

/// Float weights; KIND 0 = f32, 1 = f16, 2 = bf16.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn float<const KIND: u8>(
    cx: &Ctx,
    data: *const u8,
    x: &[f32],
    tokens: usize,
    g0: usize,
    g1: usize,
) {
    // Each (group, token) accumulator is one serial FMA chain over the columns; tiles keep
    // about 8 chains in flight (FMA latency 4, two ports), taking more groups when a call has
    // few tokens. The per-lane operation order is unchanged, so results stay bit-identical.
    let mut g = g0;
    while g < g1 {
        let gs = if g1 - g >= 4 { 4 } else { 1 };
        let mut t = 0;
        // SAFETY (all calls): t + T <= tokens, g + G <= g1 <= groups.
        unsafe {
            if gs == 4 {
                while t + 2 <= tokens {
                    float_tile::<KIND, 4, 2>(cx, data, x, g, t);
                    t += 2;
                }
                if t < tokens {
                    float_tile::<KIND, 4, 1>(cx, data, x, g, t);
                }
            } else {
                while t + TILE <= tokens {
                    float_tile::<KIND, 1, TILE>(cx, data, x, g, t);
                    t += TILE;
                }
                match tokens - t {
                    3 => float_tile::<KIND, 1, 3>(cx, data, x, g, t),
                    2 => float_tile::<KIND, 1, 2>(cx, data, x, g, t),
                    1 => float_tile::<KIND, 1, 1>(cx, data, x, g, t),
                    _ => {}
                }
            }
        }
        g += gs;
    }
}

/// Groups `g..g+G` × tokens `t0..t0+T`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn float_tile<const KIND: u8, const G: usize, const T: usize>(
    cx: &Ctx,
    data: *const u8,
    x: &[f32],
    g: usize,
    t0: usize,
) {
    let cols = cx.cols;
    let esize = if KIND == 0 { 4 } else { 2 };
    let mut acc = [[_mm256_setzero_ps(); T]; G];
    // SAFETY: each group holds cols*8 elements; x holds tokens*cols values.
    unsafe {
        let base: [*const u8; G] =
            std::array::from_fn(|j| data.add((g + j) * cols * GROUP * esize));
        let xp: [*const f32; T] = std::array::from_fn(|i| x.as_ptr().add((t0 + i) * cols));
        for c in 0..cols {
            let xv: [__m256; T] = std::array::from_fn(|i| _mm256_set1_ps(*xp[i].add(c)));
            for (j, accj) in acc.iter_mut().enumerate() {
                let at = base[j].add(c * GROUP * esize);
                let wv = match KIND {
                    0 => _mm256_loadu_ps(at.cast()),
                    1 => _mm256_cvtph_ps(_mm_loadu_si128(at.cast())),
                    _ => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(
                        _mm_loadu_si128(at.cast()),
                    ))),
                };
                for i in 0..T {
                    accj[i] = _mm256_fmadd_ps(wv, xv[i], accj[i]);
                }
            }
        }
        for (j, accj) in acc.iter().enumerate() {
            for (i, v) in accj.iter().enumerate() {
                cx.store(g + j, t0 + i, *v);
            }
        }
    }
}
