//! Scalar matmul: the oracle. Per output it performs the exact f32 operation sequence the SIMD
//! lanes perform (per block: `acc = fma(d_w*d_x, sumi, acc)`, and for Q4_1/Q5_1 a second chain
//! `acc2 = fma(m_w, s_x, acc2)` added at the end; float formats: `acc = fma(w, x, acc)` over
//! columns), which is llama.cpp's per-block formula with a fixed summation order.

use super::{Input, Out, blocks_per_row};
use crate::blocks::{BlockQ8_1, QK, WeightFormat};
use crate::error::{KernelError, check_len};
use crate::ggml::{RawBlock, code_value, decode_block};
use crate::qmatrix::{GROUP, QMatrix, Repr, half_to_f32};
use crate::quantize::{QuantActs, quantize_row_q8_1};

pub(super) fn run_groups(w: &QMatrix, input: &Input<'_>, g0: usize, g1: usize, out: Out) {
    let rows_end = (g1 * GROUP).min(w.rows);
    for r in g0 * GROUP..rows_end {
        match (&w.repr, input) {
            (Repr::Quant(p), Input::Quant(a)) => {
                for t in 0..a.tokens {
                    let v = dot_quant(
                        w.format,
                        blocks_per_row(w),
                        |b| w.raw_block(p, r, b),
                        &ActView::Soa(a, t),
                    );
                    // SAFETY: r < rows, t < tokens; this task owns rows of groups g0..g1.
                    unsafe { out.write(t, r, v) };
                }
            }
            (repr, Input::Float { x, tokens }) => {
                let (g, lane) = (r / GROUP, r % GROUP);
                let at = |c: usize| (g * w.cols + c) * GROUP + lane;
                for t in 0..*tokens {
                    let xt = &x[t * w.cols..(t + 1) * w.cols];
                    let v = match repr {
                        Repr::F32(d) => dot_float(xt, |c| d[at(c)]),
                        Repr::Half(d) => dot_float(xt, |c| half_to_f32(w.format, d[at(c)])),
                        Repr::Quant(_) => 0.0, // INVARIANT: unreachable, see `run`.
                    };
                    // SAFETY: as above.
                    unsafe { out.write(t, r, v) };
                }
            }
            // INVARIANT: `run` pairs quantized matrices with quantized input and float with float.
            (_, Input::Quant(_)) => {}
        }
    }
}

/// One token's quantized activations, either the kernels' struct-of-arrays or ggml blocks.
enum ActView<'a> {
    Soa(&'a QuantActs, usize),
    Blocks(&'a [BlockQ8_1]),
}

impl ActView<'_> {
    /// (codes, d, s) of block b.
    fn block(&self, b: usize) -> (&[i8], f32, f32) {
        match self {
            ActView::Soa(a, t) => {
                let nb = a.cols / QK;
                (
                    &a.token_qs(*t)[b * QK..(b + 1) * QK],
                    a.d[t * nb + b],
                    a.s[t * nb + b],
                )
            }
            ActView::Blocks(bl) => (&bl[b].qs, bl[b].d.to_f32(), bl[b].s.to_f32()),
        }
    }
}

fn dot_quant(
    format: WeightFormat,
    nb: usize,
    block: impl Fn(usize) -> RawBlock,
    x: &ActView<'_>,
) -> f32 {
    let has_min = matches!(format, WeightFormat::Q4_1 | WeightFormat::Q5_1);
    let (mut acc, mut acc2) = (0f32, 0f32);
    for b in 0..nb {
        let blk = block(b);
        let (xq, dx, sx) = x.block(b);
        let sumi: i32 = blk
            .q
            .iter()
            .zip(xq)
            .map(|(&c, &q)| code_value(format, c) * q as i32)
            .sum();
        acc = (blk.d.to_f32() * dx).mul_add(sumi as f32, acc);
        if has_min {
            acc2 = blk.m.to_f32().mul_add(sx, acc2);
        }
    }
    if has_min { acc + acc2 } else { acc }
}

fn dot_float(x: &[f32], w: impl Fn(usize) -> f32) -> f32 {
    let mut acc = 0f32;
    for (c, &xv) in x.iter().enumerate() {
        acc = w(c).mul_add(xv, acc);
    }
    acc
}

/// The oracle straight from ggml bytes, independent of the repacked layout: activations go
/// through the public [`quantize_row_q8_1`] blocks and weights through ggml block decoding.
pub fn matmul_ggml(
    format: WeightFormat,
    rows: usize,
    cols: usize,
    bytes: &[u8],
    x: &[f32],
    tokens: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let expected = crate::qmatrix::validate(format, rows, cols, bytes.len())?;
    check_len("matmul_ggml input", tokens * cols, x.len())?;
    check_len("matmul_ggml output", tokens * rows, out.len())?;
    let row_bytes = expected / rows.max(1);
    let bb = format.block_bytes();
    for t in 0..tokens {
        let xt = &x[t * cols..(t + 1) * cols];
        let mut acts = vec![BlockQ8_1::default(); cols / QK];
        if format.block_elems() > 1 {
            quantize_row_q8_1(xt, &mut acts)?;
        }
        for r in 0..rows {
            let rb = &bytes[r * row_bytes..(r + 1) * row_bytes];
            out[t * rows + r] = match format {
                WeightFormat::F32 => dot_float(xt, |c| {
                    f32::from_le_bytes([rb[4 * c], rb[4 * c + 1], rb[4 * c + 2], rb[4 * c + 3]])
                }),
                WeightFormat::F16 | WeightFormat::BF16 => dot_float(xt, |c| {
                    half_to_f32(format, u16::from_le_bytes([rb[2 * c], rb[2 * c + 1]]))
                }),
                _ => dot_quant(
                    format,
                    cols / QK,
                    |b| decode_block(format, &rb[b * bb..(b + 1) * bb]),
                    &ActView::Blocks(&acts),
                ),
            };
        }
    }
    Ok(())
}

/// Dequantizes a whole ggml-layout matrix to f32 (row-major) with ggml's per-block formulas,
/// independent of the repacked layout.
pub fn dequantize_ggml(
    format: WeightFormat,
    rows: usize,
    cols: usize,
    bytes: &[u8],
) -> Result<Vec<f32>, KernelError> {
    crate::qmatrix::validate(format, rows, cols, bytes.len())?;
    let mut out = vec![0f32; rows * cols];
    match format {
        WeightFormat::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        WeightFormat::F16 | WeightFormat::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half_to_f32(format, u16::from_le_bytes([c[0], c[1]]));
            }
        }
        _ => {
            for (o, b) in out
                .chunks_exact_mut(QK)
                .zip(bytes.chunks_exact(format.block_bytes()))
            {
                crate::ggml::dequantize_block(format, &decode_block(format, b), o);
            }
        }
    }
    Ok(out)
}
