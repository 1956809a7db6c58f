//! The crate's one error type.

use crate::WeightFormat;

/// Everything the kernels can refuse. Shapes come from model files, so a mismatch is bad
/// input, reported with the numbers involved rather than a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    #[error("{format:?} matrix of {rows}x{cols}: expected {expected} bytes, got {actual}")]
    ByteLength {
        format: WeightFormat,
        rows: usize,
        cols: usize,
        expected: usize,
        actual: usize,
    },
    #[error("{format:?} needs cols to be a multiple of {block}, got {cols}")]
    ColsNotBlockMultiple {
        format: WeightFormat,
        cols: usize,
        block: usize,
    },
    #[error("matrix of {rows}x{cols} is too large to address")]
    TooLarge { rows: usize, cols: usize },
    #[error("{what}: expected {expected} elements, got {actual}")]
    Length {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("row {row} out of range for a matrix of {rows} rows")]
    RowOutOfRange { row: usize, rows: usize },
    #[error("ENCLAVE_KERNELS={requested}: {reason}")]
    UnsupportedLevel {
        requested: String,
        reason: &'static str,
    },
}

/// Checks that a buffer holds exactly `expected` elements.
pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), KernelError> {
    if expected == actual {
        Ok(())
    } else {
        Err(KernelError::Length {
            what,
            expected,
            actual,
        })
    }
}
