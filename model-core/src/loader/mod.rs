//! Weight files → typed matrices. A [`WeightSource`] hides whether weights come from a GGUF file
//! or a Hugging Face safetensors directory; model code asks for logical tensors by [`TensorName`].

mod dequantized;
mod gguf;
mod memory;
mod names;
mod safetensors;

use std::borrow::Cow;
use std::path::Path;

use enclave_kernels::{QMatrix, WeightFormat};

pub use dequantized::{Dequantized, ModelPrecision};
pub use gguf::GgufSource;
pub use memory::MemorySource;
pub use names::TensorName;
pub use safetensors::HfSource;

use crate::config::ModelConfig;
use crate::error::LoadError;

/// A matrix as stored: `rows` outputs × `cols` inputs in `format`, bytes in ggml/row-major order.
pub struct RawMatrix<'a> {
    pub format: WeightFormat,
    pub rows: usize,
    pub cols: usize,
    pub bytes: Cow<'a, [u8]>,
}

impl RawMatrix<'_> {
    pub fn into_qmatrix(self, name: &TensorName) -> Result<QMatrix, LoadError> {
        QMatrix::from_ggml_bytes(self.format, self.rows, self.cols, &self.bytes).map_err(|e| {
            LoadError::Weights {
                tensor: name.to_string(),
                reason: e.to_string(),
            }
        })
    }
}

/// Where a model's weights come from.
pub trait WeightSource {
    fn config(&self) -> &ModelConfig;
    fn has(&self, name: &TensorName) -> bool;
    /// The matrix `name`, checked to be exactly `rows × cols`.
    fn matrix(
        &self,
        name: &TensorName,
        rows: usize,
        cols: usize,
    ) -> Result<RawMatrix<'_>, LoadError>;
    /// A 1-D tensor of `len` values as f32 (norm weights, biases).
    fn vector(&self, name: &TensorName, len: usize) -> Result<Vec<f32>, LoadError>;
}

/// Loads several matrices with the same input size as one matrix with their rows stacked, so
/// q/k/v (and gate/up) run as one matmul per step. Falls back to `None` when formats differ.
pub fn stacked_matrix(
    src: &dyn WeightSource,
    parts: &[(TensorName, usize)],
    cols: usize,
) -> Result<Option<QMatrix>, LoadError> {
    let mut raws = Vec::with_capacity(parts.len());
    for (name, rows) in parts {
        raws.push(src.matrix(name, *rows, cols)?);
    }
    let format = raws[0].format;
    if raws.iter().any(|r| r.format != format) {
        return Ok(None);
    }
    let total_rows = raws.iter().map(|r| r.rows).sum();
    let mut bytes = Vec::with_capacity(raws.iter().map(|r| r.bytes.len()).sum());
    for r in &raws {
        bytes.extend_from_slice(&r.bytes);
    }
    let stacked = RawMatrix {
        format,
        rows: total_rows,
        cols,
        bytes: Cow::Owned(bytes),
    };
    stacked.into_qmatrix(&parts[0].0).map(Some)
}

/// Opens a GGUF file or a Hugging Face model directory.
pub fn open(path: &Path) -> Result<Box<dyn WeightSourceWithTokenizer>, LoadError> {
    if !path.exists() {
        return Err(LoadError::NotFound(path.to_path_buf()));
    }
    if path.is_dir() {
        Ok(Box::new(HfSource::open(path)?))
    } else {
        Ok(Box::new(GgufSource::open(path)?))
    }
}

/// A weight source that also knows how to build the model's tokenizer and chat template.
pub trait WeightSourceWithTokenizer: WeightSource {
    fn tokenizer(&self) -> Result<crate::tokenizer::Tokenizer, LoadError>;
    fn as_weights(&self) -> &dyn WeightSource;
}
