//! `QMatrix`: a weight matrix repacked at load into the layout the kernels stream.
//!
//! Layout: rows are taken in groups of 8 (the last group padded with zero rows), and within a
//! group the 8 rows are interleaved so that one 256-bit vector holds the same 4 columns of all
//! 8 rows. Each vector lane then accumulates one output row on its own, in the same order as
//! the scalar reference, which makes every SIMD level bit-identical to the reference and each
//! token's result independent of how many tokens share the call (batch invariance).
//!
//! Block formats, per (group g, block b):
//!  - `d[g][b][lane]` (and `m[g][b][lane]` for Q4_1/Q5_1) as f16;
//!  - Q4_*: 128 bytes = 4 chunks of 32; chunk j, lane r, byte i holds ggml's `qs[4j+i]` of row r
//!    (low nibble = element 4j+i, high nibble = element 16+4j+i);
//!  - Q5_*/Q8_0: 256 bytes = 8 chunks of 32; chunk k, lane r, byte i = code of element 4k+i.
//!
//! Float formats: `[g][col][lane]`.

use half::{bf16, f16};

use crate::blocks::{QK, WeightFormat};
use crate::error::KernelError;
use crate::ggml::{RawBlock, decode_block, dequantize_block};

/// Rows per interleaved group.
pub(crate) const GROUP: usize = 8;

#[derive(Debug, Clone)]
pub(crate) struct PackedQ {
    pub d: Vec<f16>,
    pub m: Vec<f16>,
    pub qs: Vec<u8>,
    /// Bytes of `qs` per (group, block): 128 for Q4_*, 256 otherwise.
    pub bpb: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Repr {
    Quant(PackedQ),
    F32(Vec<f32>),
    /// f16 or bf16 bits.
    Half(Vec<u16>),
}

/// A `rows x cols` weight matrix (row r = the weights of output r).
#[derive(Debug, Clone)]
pub struct QMatrix {
    pub(crate) format: WeightFormat,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) repr: Repr,
}

impl QMatrix {
    /// Builds from bytes exactly as a GGUF tensor stores them (ne0 = cols contiguous).
    pub fn from_ggml_bytes(
        format: WeightFormat,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<Self, KernelError> {
        validate(format, rows, cols, bytes.len())?;
        let groups = rows.div_ceil(GROUP);
        groups
            .checked_mul(GROUP)
            .and_then(|r| r.checked_mul(cols))
            .ok_or(KernelError::TooLarge { rows, cols })?;
        let repr = match format {
            WeightFormat::F32 => Repr::F32(interleave(rows, cols, |r, c| {
                let at = (r * cols + c) * 4;
                f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
            })),
            WeightFormat::F16 | WeightFormat::BF16 => Repr::Half(interleave(rows, cols, |r, c| {
                let at = (r * cols + c) * 2;
                u16::from_le_bytes([bytes[at], bytes[at + 1]])
            })),
            _ => Repr::Quant(pack_quant(format, rows, cols, bytes)),
        };
        Ok(QMatrix {
            format,
            rows,
            cols,
            repr,
        })
    }

    /// An f32 matrix from row-major values.
    pub fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Result<Self, KernelError> {
        let n = rows
            .checked_mul(cols)
            .ok_or(KernelError::TooLarge { rows, cols })?;
        crate::error::check_len("QMatrix::from_f32 values", n, values.len())?;
        Ok(QMatrix {
            format: WeightFormat::F32,
            rows,
            cols,
            repr: Repr::F32(interleave(rows, cols, |r, c| values[r * cols + c])),
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Bytes held in memory (the repacked layout, padding included).
    pub fn size_bytes(&self) -> usize {
        match &self.repr {
            Repr::Quant(p) => p.d.len() * 2 + p.m.len() * 2 + p.qs.len(),
            Repr::F32(v) => v.len() * 4,
            Repr::Half(v) => v.len() * 2,
        }
    }

    /// Writes row `r` as f32 (ggml's dequantization for block formats).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<(), KernelError> {
        if r >= self.rows {
            return Err(KernelError::RowOutOfRange {
                row: r,
                rows: self.rows,
            });
        }
        crate::error::check_len("dequantize_row output", self.cols, out.len())?;
        let (g, lane) = (r / GROUP, r % GROUP);
        match &self.repr {
            Repr::F32(v) => {
                for (c, o) in out.iter_mut().enumerate() {
                    *o = v[(g * self.cols + c) * GROUP + lane];
                }
            }
            Repr::Half(v) => {
                for (c, o) in out.iter_mut().enumerate() {
                    *o = half_to_f32(self.format, v[(g * self.cols + c) * GROUP + lane]);
                }
            }
            Repr::Quant(p) => {
                for (b, o) in out.chunks_exact_mut(QK).enumerate() {
                    let blk = self.raw_block(p, r, b);
                    dequantize_block(self.format, &blk, o);
                }
            }
        }
        Ok(())
    }

    /// Number of 8-row groups (rows padded up).
    pub(crate) fn groups(&self) -> usize {
        self.rows.div_ceil(GROUP)
    }

    /// Reads block `b` of row `r` back out of the packed layout.
    pub(crate) fn raw_block(&self, p: &PackedQ, r: usize, b: usize) -> RawBlock {
        let nb = self.cols / QK;
        let (g, lane) = (r / GROUP, r % GROUP);
        let gb = g * nb + b;
        let d = p.d[gb * GROUP + lane];
        let m = if p.m.is_empty() {
            f16::ZERO
        } else {
            p.m[gb * GROUP + lane]
        };
        let base = &p.qs[gb * p.bpb..(gb + 1) * p.bpb];
        let mut q = [0u8; 32];
        if p.bpb == 128 {
            for j in 0..4 {
                for i in 0..4 {
                    let byte = base[j * 32 + lane * 4 + i];
                    q[4 * j + i] = byte & 0x0F;
                    q[16 + 4 * j + i] = byte >> 4;
                }
            }
        } else {
            for k in 0..8 {
                q[4 * k..4 * k + 4]
                    .copy_from_slice(&base[k * 32 + lane * 4..k * 32 + lane * 4 + 4]);
            }
        }
        RawBlock { d, m, q }
    }
}

/// Checks cols against the block size and the byte length; returns the expected length.
pub(crate) fn validate(
    format: WeightFormat,
    rows: usize,
    cols: usize,
    len: usize,
) -> Result<usize, KernelError> {
    let block = format.block_elems();
    if !cols.is_multiple_of(block) || (block > 1 && cols == 0) {
        return Err(KernelError::ColsNotBlockMultiple {
            format,
            cols,
            block,
        });
    }
    let expected = format
        .ggml_bytes(rows, cols)
        .ok_or(KernelError::TooLarge { rows, cols })?;
    if len != expected {
        return Err(KernelError::ByteLength {
            format,
            rows,
            cols,
            expected,
            actual: len,
        });
    }
    Ok(expected)
}

pub(crate) fn half_to_f32(format: WeightFormat, bits: u16) -> f32 {
    if format == WeightFormat::BF16 {
        bf16::from_bits(bits).to_f32()
    } else {
        f16::from_bits(bits).to_f32()
    }
}

/// `[g][col][lane]` from an element accessor; padding rows are zero.
fn interleave<T: Copy + Default>(
    rows: usize,
    cols: usize,
    at: impl Fn(usize, usize) -> T,
) -> Vec<T> {
    let groups = rows.div_ceil(GROUP);
    let mut v = vec![T::default(); groups * cols * GROUP];
    for r in 0..rows {
        let (g, lane) = (r / GROUP, r % GROUP);
        for c in 0..cols {
            v[(g * cols + c) * GROUP + lane] = at(r, c);
        }
    }
    v
}

fn pack_quant(format: WeightFormat, rows: usize, cols: usize, bytes: &[u8]) -> PackedQ {
    use rayon::prelude::*;
    let nb = cols / QK;
    let groups = rows.div_ceil(GROUP);
    let has_min = matches!(format, WeightFormat::Q4_1 | WeightFormat::Q5_1);
    let bpb = if matches!(format, WeightFormat::Q4_0 | WeightFormat::Q4_1) {
        128
    } else {
        256
    };
    let mut p = PackedQ {
        d: vec![f16::ZERO; groups * nb * GROUP],
        m: vec![f16::ZERO; groups * nb * GROUP],
        qs: vec![0u8; groups * nb * bpb],
        bpb,
    };
    // Padding rows keep d = 0 and code 0; for Q4_0/Q5_0 code 0 means -8/-16, harmless since
    // d = 0 (and their outputs are never written). Groups pack independently, in parallel:
    // large models repack billions of blocks at load.
    let per_group = nb * GROUP;
    p.d.par_chunks_mut(per_group.max(1))
        .zip(p.m.par_chunks_mut(per_group.max(1)))
        .zip(p.qs.par_chunks_mut((nb * bpb).max(1)))
        .enumerate()
        .for_each(|(g, ((d, m), qs))| pack_group(format, g, rows, nb, bpb, bytes, d, m, qs));
    if !has_min {
        p.m = Vec::new();
    }
    p
}

/// Packs the rows of group `g` into its slices of `d`, `m` and `qs`.
#[allow(clippy::too_many_arguments)]
fn pack_group(
    format: WeightFormat,
    g: usize,
    rows: usize,
    nb: usize,
    bpb: usize,
    bytes: &[u8],
    d: &mut [f16],
    m: &mut [f16],
    qs: &mut [u8],
) {
    let bb = format.block_bytes();
    for lane in 0..GROUP {
        let r = g * GROUP + lane;
        if r >= rows {
            break;
        }
        for b in 0..nb {
            let at = (r * nb + b) * bb;
            let blk = decode_block(format, &bytes[at..at + bb]);
            d[b * GROUP + lane] = blk.d;
            m[b * GROUP + lane] = blk.m;
            let base = &mut qs[b * bpb..(b + 1) * bpb];
            if bpb == 128 {
                for j in 0..4 {
                    for i in 0..4 {
                        base[j * 32 + lane * 4 + i] =
                            blk.q[4 * j + i] | (blk.q[16 + 4 * j + i] << 4);
                    }
                }
            } else {
                for k in 0..8 {
                    base[k * 32 + lane * 4..k * 32 + lane * 4 + 4]
                        .copy_from_slice(&blk.q[4 * k..4 * k + 4]);
                }
            }
        }
    }
}
