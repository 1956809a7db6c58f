//! Activation quantization. The scalar functions here follow ggml's `quantize_row_q8_0_ref` /
//! `quantize_row_q8_1_ref` operation by operation (d = amax/127 in f32, id = 1/d, `roundf`
//! = round half away from zero, s = f16(sum * d) with the unrounded d) and are the oracle the
//! matmul paths are checked against.

use half::f16;

use crate::blocks::{BlockQ8_0, BlockQ8_1, QK};
use crate::dispatch::KernelLevel;
use crate::error::{KernelError, check_len};

/// (d as f32 before f16 rounding, codes, sum of codes) for one block of 32.
#[inline]
pub(crate) fn quantize_block(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let mut amax = 0.0f32;
    for &v in x {
        // ggml: amax = MAX(amax, fabsf(v)) with MAX(a,b) = ((a) > (b) ? (a) : (b)).
        let a = v.abs();
        amax = if amax > a { amax } else { a };
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (o, &v) in q.iter_mut().zip(x) {
        let c = (v * id).round() as i8;
        *o = c;
        sum += c as i32;
    }
    (d, sum)
}

#[inline]
fn quantize_block_at(level: KernelLevel, x: &[f32], q: &mut [i8]) -> (f32, i32) {
    #[cfg(target_arch = "x86_64")]
    if level == KernelLevel::Avx2 {
        // SAFETY: the Avx2 level is only used on CPUs with AVX2; blocks hold 32 values.
        return unsafe { crate::quantize_avx2::quantize_block(x, q) };
    }
    let _ = level;
    quantize_block(x, q)
}

/// ggml `quantize_row_q8_0`: `x.len()` must equal `out.len() * 32`.
pub fn quantize_row_q8_0(x: &[f32], out: &mut [BlockQ8_0]) -> Result<(), KernelError> {
    check_len("quantize_row_q8_0 input", out.len() * QK, x.len())?;
    for (blk, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let (d, _) = quantize_block(xs, &mut blk.qs);
        blk.d = f16::from_f32(d);
    }
    Ok(())
}

/// ggml `quantize_row_q8_1`: `x.len()` must equal `out.len() * 32`.
pub fn quantize_row_q8_1(x: &[f32], out: &mut [BlockQ8_1]) -> Result<(), KernelError> {
    check_len("quantize_row_q8_1 input", out.len() * QK, x.len())?;
    for (blk, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let (d, sum) = quantize_block(xs, &mut blk.qs);
        blk.d = f16::from_f32(d);
        blk.s = f16::from_f32(sum as f32 * d);
    }
    Ok(())
}

/// Quantized activations of a batch of token rows, struct-of-arrays so the kernels read
/// scales as f32 without conversion. Q8_0 and Q8_1 share codes and `d`; `s` is Q8_1's
/// f16 `d * sum`, `isum` the exact integer sum used to fold Q4_0/Q5_0's offsets into integers.
#[derive(Debug, Default)]
pub struct QuantActs {
    pub(crate) cols: usize,
    pub(crate) tokens: usize,
    pub(crate) qs: Vec<i8>,
    pub(crate) d: Vec<f32>,
    pub(crate) s: Vec<f32>,
    pub(crate) isum: Vec<i32>,
}

impl QuantActs {
    /// Quantizes `tokens` rows of `cols` values (cols % 32 == 0, checked by the caller).
    pub(crate) fn quantize(&mut self, level: KernelLevel, x: &[f32], tokens: usize, cols: usize) {
        let nb = cols / QK;
        self.cols = cols;
        self.tokens = tokens;
        resize(&mut self.qs, tokens * cols, 0);
        resize(&mut self.d, tokens * nb, 0.0);
        resize(&mut self.s, tokens * nb, 0.0);
        resize(&mut self.isum, tokens * nb, 0);
        let x = &x[..tokens * cols];
        let row = |(((xr, qr), (dr, sr)), ir): RowParts<'_>| {
            for (b, xs) in xr.chunks_exact(QK).enumerate() {
                let (dd, sum) = quantize_block_at(level, xs, &mut qr[b * QK..(b + 1) * QK]);
                dr[b] = f16::from_f32(dd).to_f32();
                sr[b] = f16::from_f32(sum as f32 * dd).to_f32();
                ir[b] = sum;
            }
        };
        if tokens >= 8 && tokens * cols >= 1 << 15 {
            use rayon::prelude::*;
            x.par_chunks(cols)
                .zip(self.qs.par_chunks_mut(cols))
                .zip(self.d.par_chunks_mut(nb).zip(self.s.par_chunks_mut(nb)))
                .zip(self.isum.par_chunks_mut(nb))
                .for_each(row);
        } else {
            x.chunks_exact(cols)
                .zip(self.qs.chunks_exact_mut(cols))
                .zip(self.d.chunks_exact_mut(nb).zip(self.s.chunks_exact_mut(nb)))
                .zip(self.isum.chunks_exact_mut(nb))
                .for_each(row);
        }
    }

    pub(crate) fn token_qs(&self, t: usize) -> &[i8] {
        &self.qs[t * self.cols..(t + 1) * self.cols]
    }
}

/// One token's input and output slices, as the zipped iterators yield them.
type RowParts<'a> = (
    ((&'a [f32], &'a mut [i8]), (&'a mut [f32], &'a mut [f32])),
    &'a mut [i32],
);

fn resize<T: Copy>(v: &mut Vec<T>, n: usize, fill: T) {
    if v.len() != n {
        v.resize(n, fill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_rounds_half_away_from_zero_and_scales_by_amax() {
        let mut x = [0f32; 32];
        x[0] = 127.0; // d = 1.0
        x[1] = 2.5;
        x[2] = -2.5;
        x[3] = -0.5;
        let mut out = [BlockQ8_0::default()];
        quantize_row_q8_0(&x, &mut out).expect("sizes match");
        assert_eq!(out[0].d.to_f32(), 1.0);
        assert_eq!(&out[0].qs[..4], &[127, 3, -3, -1]);
    }

    #[test]
    fn q8_1_sum_uses_unrounded_d() {
        let x: Vec<f32> = (0..32).map(|i| (i as f32 - 10.3) * 0.013).collect();
        let mut out = [BlockQ8_1::default()];
        quantize_row_q8_1(&x, &mut out).expect("sizes match");
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let sum: i32 = out[0].qs.iter().map(|&q| q as i32).sum();
        assert_eq!(out[0].s, f16::from_f32(sum as f32 * d));
        assert_eq!(out[0].d, f16::from_f32(d));
    }

    #[test]
    fn all_zero_block_quantizes_to_zero() {
        let mut out = [BlockQ8_1::default()];
        quantize_row_q8_1(&[0.0; 32], &mut out).expect("sizes match");
        assert_eq!(out[0].qs, [0; 32]);
        assert_eq!(out[0].d.to_f32(), 0.0);
    }

    #[test]
    fn simd_block_quantization_is_bit_identical() {
        // Ties (x.5 after scaling), zeros, negative values, tiny and huge magnitudes.
        let mut state = 99u32;
        for case in 0..2000 {
            let x: Vec<f32> = (0..32)
                .map(|j| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let u = (state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
                    match case % 4 {
                        0 => u,
                        1 => (u * 254.0).round() / 2.0, // many exact .5 ties with amax 127
                        2 => u * 1e-30,
                        _ => {
                            if j == 3 {
                                0.0
                            } else {
                                u * 3e4
                            }
                        }
                    }
                })
                .collect();
            let mut want = [0i8; 32];
            let expected = quantize_block(&x, &mut want);
            for level in crate::dispatch::available_levels() {
                let mut got = [0i8; 32];
                let r = quantize_block_at(level, &x, &mut got);
                assert_eq!(
                    (r.0.to_bits(), r.1, got),
                    (expected.0.to_bits(), expected.1, want),
                    "case {case} {level:?}"
                );
            }
        }
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let mut out = [BlockQ8_0::default(); 2];
        assert!(matches!(
            quantize_row_q8_0(&[0.0; 32], &mut out),
            Err(KernelError::Length { .. })
        ));
    }
}
