//! ggml's quantized block types, byte-identical to `ggml-common.h`, and the weight formats.

use half::f16;

/// Elements per quantization block in every format this crate handles.
pub const QK: usize = 32;

/// `block_q4_0`: 32 weights `d * (q - 8)`, low nibble = element j, high nibble = element j + 16.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; 16],
}

/// `block_q4_1`: 32 weights `d * q + m`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; 16],
}

/// `block_q5_0`: 32 weights `d * (q - 16)`; bit 4 of element j is bit j of `qh` (little-endian u32).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

/// `block_q5_1`: 32 weights `d * q + m`, 5-bit q as in [`BlockQ5_0`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

/// `block_q8_0`: 32 values `d * q`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; 32],
}

/// `block_q8_1`: 32 values `d * q`, with `s = d * sum(q)` (used for the `m` term of Q4_1/Q5_1).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; 32],
}

impl Default for BlockQ8_0 {
    fn default() -> Self {
        BlockQ8_0 {
            d: f16::ZERO,
            qs: [0; 32],
        }
    }
}

impl Default for BlockQ8_1 {
    fn default() -> Self {
        BlockQ8_1 {
            d: f16::ZERO,
            s: f16::ZERO,
            qs: [0; 32],
        }
    }
}

/// Storage format of a weight matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
}

impl WeightFormat {
    /// Elements per block (1 for the float formats).
    pub fn block_elems(self) -> usize {
        match self {
            WeightFormat::F32 | WeightFormat::F16 | WeightFormat::BF16 => 1,
            _ => QK,
        }
    }

    /// Bytes per block as ggml stores it.
    pub fn block_bytes(self) -> usize {
        match self {
            WeightFormat::F32 => 4,
            WeightFormat::F16 | WeightFormat::BF16 => 2,
            WeightFormat::Q4_0 => size_of::<BlockQ4_0>(),
            WeightFormat::Q4_1 => size_of::<BlockQ4_1>(),
            WeightFormat::Q5_0 => size_of::<BlockQ5_0>(),
            WeightFormat::Q5_1 => size_of::<BlockQ5_1>(),
            WeightFormat::Q8_0 => size_of::<BlockQ8_0>(),
        }
    }

    /// Bytes of a `rows x cols` matrix in ggml's layout, or `None` on overflow.
    pub fn ggml_bytes(self, rows: usize, cols: usize) -> Option<usize> {
        rows.checked_mul(cols / self.block_elems())?
            .checked_mul(self.block_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_ggml() {
        // Sizes from ggml-common.h static_asserts.
        assert_eq!(size_of::<BlockQ4_0>(), 18);
        assert_eq!(size_of::<BlockQ4_1>(), 20);
        assert_eq!(size_of::<BlockQ5_0>(), 22);
        assert_eq!(size_of::<BlockQ5_1>(), 24);
        assert_eq!(size_of::<BlockQ8_0>(), 34);
        assert_eq!(size_of::<BlockQ8_1>(), 36);
    }
}
