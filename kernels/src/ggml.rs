//! Decoding of ggml's block bytes into (scale, min, codes). Shared by the repacker and the
//! byte-level reference oracle; its own unit tests pin it to ggml's `dequantize_row_*` semantics.

use half::f16;

use crate::WeightFormat;

/// One block as stored by ggml, with the 4/5-bit codes unpacked to one byte each.
/// For Q8_0 the codes are the `i8` quants reinterpreted as `u8`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawBlock {
    pub d: f16,
    /// Zero for formats without a min.
    pub m: f16,
    pub q: [u8; 32],
}

fn half_at(b: &[u8], at: usize) -> f16 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Decodes one block; `b` is exactly `format.block_bytes()` long (callers slice it).
pub(crate) fn decode_block(format: WeightFormat, b: &[u8]) -> RawBlock {
    let mut q = [0u8; 32];
    match format {
        WeightFormat::Q4_0 | WeightFormat::Q4_1 => {
            let (d, m, qs) = if format == WeightFormat::Q4_0 {
                (half_at(b, 0), f16::ZERO, &b[2..18])
            } else {
                (half_at(b, 0), half_at(b, 2), &b[4..20])
            };
            for j in 0..16 {
                q[j] = qs[j] & 0x0F;
                q[j + 16] = qs[j] >> 4;
            }
            RawBlock { d, m, q }
        }
        WeightFormat::Q5_0 | WeightFormat::Q5_1 => {
            let (d, m, rest) = if format == WeightFormat::Q5_0 {
                (half_at(b, 0), f16::ZERO, &b[2..22])
            } else {
                (half_at(b, 0), half_at(b, 2), &b[4..24])
            };
            let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let qs = &rest[4..20];
            for j in 0..16 {
                // ggml: xh_0 = ((qh >> j) << 4) & 0x10; xh_1 = (qh >> (j + 12)) & 0x10.
                let h0 = (((qh >> j) << 4) & 0x10) as u8;
                let h1 = ((qh >> (j + 12)) & 0x10) as u8;
                q[j] = (qs[j] & 0x0F) | h0;
                q[j + 16] = (qs[j] >> 4) | h1;
            }
            RawBlock { d, m, q }
        }
        WeightFormat::Q8_0 => {
            q.copy_from_slice(&b[2..34]);
            RawBlock {
                d: half_at(b, 0),
                m: f16::ZERO,
                q,
            }
        }
        // INVARIANT: callers only pass block formats; float formats never reach here.
        WeightFormat::F32 | WeightFormat::F16 | WeightFormat::BF16 => RawBlock {
            d: f16::ZERO,
            m: f16::ZERO,
            q,
        },
    }
}

/// The integer a code stands for before scaling (ggml's `x0` in `dequantize_row_*`).
#[inline]
pub(crate) fn code_value(format: WeightFormat, code: u8) -> i32 {
    match format {
        WeightFormat::Q4_0 => code as i32 - 8,
        WeightFormat::Q5_0 => code as i32 - 16,
        WeightFormat::Q8_0 => code as i8 as i32,
        _ => code as i32,
    }
}

/// ggml's dequantization of one block: `x0 * d` or `x0 * d + m`.
pub(crate) fn dequantize_block(format: WeightFormat, blk: &RawBlock, out: &mut [f32]) {
    let d = blk.d.to_f32();
    let m = blk.m.to_f32();
    let has_min = matches!(format, WeightFormat::Q4_1 | WeightFormat::Q5_1);
    for (o, &c) in out.iter_mut().zip(blk.q.iter()) {
        let v = code_value(format, c) as f32 * d;
        *o = if has_min { v + m } else { v };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_nibble_order_and_offset() {
        let mut b = vec![0u8; 18];
        b[..2].copy_from_slice(&f16::from_f32(0.5).to_bits().to_le_bytes());
        b[2] = 0xA3; // element 0 = 3, element 16 = 10
        let blk = decode_block(WeightFormat::Q4_0, &b);
        let mut out = [0f32; 32];
        dequantize_block(WeightFormat::Q4_0, &blk, &mut out);
        assert_eq!(out[0], (3 - 8) as f32 * 0.5);
        assert_eq!(out[16], (10 - 8) as f32 * 0.5);
        assert_eq!(out[1], -4.0);
    }

    #[test]
    fn q5_high_bits_come_from_qh() {
        let mut b = vec![0u8; 24];
        b[..2].copy_from_slice(&f16::from_f32(1.0).to_bits().to_le_bytes());
        b[2..4].copy_from_slice(&f16::from_f32(-2.0).to_bits().to_le_bytes());
        // qh bit 1 -> element 1 gets +16; bit 17 -> element 17 gets +16.
        b[4..8].copy_from_slice(&((1u32 << 1) | (1u32 << 17)).to_le_bytes());
        b[8 + 1] = 0x52; // element 1 low nibble 2, element 17 high nibble 5
        let blk = decode_block(WeightFormat::Q5_1, &b);
        assert_eq!(blk.q[1], 18);
        assert_eq!(blk.q[17], 21);
        assert_eq!(blk.q[0], 0);
        let mut out = [0f32; 32];
        dequantize_block(WeightFormat::Q5_1, &blk, &mut out);
        assert_eq!(out[1], 16.0);
        assert_eq!(out[17], 19.0);
        assert_eq!(out[0], -2.0);
    }

    #[test]
    fn q8_0_is_signed() {
        let mut b = vec![0u8; 34];
        b[..2].copy_from_slice(&f16::from_f32(0.25).to_bits().to_le_bytes());
        b[2] = (-100i8) as u8;
        let blk = decode_block(WeightFormat::Q8_0, &b);
        let mut out = [0f32; 32];
        dequantize_block(WeightFormat::Q8_0, &blk, &mut out);
        assert_eq!(out[0], -25.0);
    }
}
