//! GGUF files: metadata and tensor directory parsed with candle's reader, tensor bytes taken
//! straight from a memory map (no copy for the formats our kernels run natively).

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, TensorInfo};
use enclave_kernels::WeightFormat;
use memmap2::Mmap;

use super::{RawMatrix, TensorName, WeightSource, WeightSourceWithTokenizer};
use crate::config::ModelConfig;
use crate::error::LoadError;

pub struct GgufSource {
    path: PathBuf,
    content: Content,
    mmap: Mmap,
    config: ModelConfig,
}

impl GgufSource {
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let io = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let content = Content::read(&mut file).map_err(|e| classify_read_error(path, e))?;
        // SAFETY: the file is opened read-only; a concurrent writer truncating a model file in
        // place is outside what we can defend against (same contract as llama.cpp's mmap).
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        let config = ModelConfig::from_gguf(&content.metadata)?;
        Ok(GgufSource {
            path: path.to_path_buf(),
            content,
            mmap,
            config,
        })
    }

    pub fn content(&self) -> &Content {
        &self.content
    }

    fn info(&self, name: &TensorName) -> Result<(&TensorInfo, String), LoadError> {
        let key = name.gguf();
        match self.content.tensor_infos.get(&key) {
            Some(info) => Ok((info, key)),
            None => Err(LoadError::MissingTensor(key)),
        }
    }

    /// The raw bytes of a tensor, bounds-checked against the file.
    fn bytes(&self, key: &str, info: &TensorInfo) -> Result<&[u8], LoadError> {
        let elems = info.shape.elem_count();
        let block = info.ggml_dtype.block_size();
        if elems % block != 0 {
            return Err(LoadError::Weights {
                tensor: key.to_string(),
                reason: format!("{elems} elements are not a multiple of the block size {block}"),
            });
        }
        let needed = (elems / block * info.ggml_dtype.type_size()) as u64;
        let offset = self.content.tensor_data_offset.saturating_add(info.offset);
        let available = self.mmap.len() as u64;
        if offset.saturating_add(needed) > available {
            return Err(LoadError::Truncated {
                tensor: key.to_string(),
                needed,
                offset,
                available: available.saturating_sub(offset),
            });
        }
        // INVARIANT: offset + needed <= mmap.len() was checked just above, and both fit in usize
        // because the mapping does.
        Ok(&self.mmap[offset as usize..(offset + needed) as usize])
    }

    /// Formats our kernels lack are dequantized to f16 (exact for every ggml type's values up to
    /// f16 rounding of the products, which is how ggml itself dequantizes them).
    fn dequantized_f16(&self, key: &str, info: &TensorInfo) -> Result<Vec<u8>, LoadError> {
        let weights_err = |e: candle_core::Error| LoadError::Weights {
            tensor: key.to_string(),
            reason: e.to_string(),
        };
        self.bytes(key, info)?;
        let mut file = File::open(&self.path).map_err(|source| LoadError::Io {
            path: self.path.clone(),
            source,
        })?;
        let q = info
            .read(
                &mut file,
                self.content.tensor_data_offset,
                &candle_core::Device::Cpu,
            )
            .map_err(weights_err)?;
        let t = q
            .dequantize_f16(&candle_core::Device::Cpu)
            .map_err(weights_err)?;
        let values = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<half::f16>())
            .map_err(weights_err)?;
        Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
}

fn classify_read_error(path: &Path, e: candle_core::Error) -> LoadError {
    let reason = e.to_string();
    if reason.contains("unknown dtype")
        || reason.contains("dtype") && reason.contains("unsupported")
    {
        return LoadError::UnsupportedQuantization {
            tensor: "(in tensor directory)".into(),
            dtype: reason,
        };
    }
    LoadError::InvalidGguf {
        path: path.to_path_buf(),
        reason,
    }
}

fn native_format(dtype: GgmlDType) -> Option<WeightFormat> {
    Some(match dtype {
        GgmlDType::F32 => WeightFormat::F32,
        GgmlDType::F16 => WeightFormat::F16,
        GgmlDType::BF16 => WeightFormat::BF16,
        GgmlDType::Q4_0 => WeightFormat::Q4_0,
        GgmlDType::Q4_1 => WeightFormat::Q4_1,
        GgmlDType::Q5_0 => WeightFormat::Q5_0,
        GgmlDType::Q5_1 => WeightFormat::Q5_1,
        GgmlDType::Q8_0 => WeightFormat::Q8_0,
        _ => return None,
    })
}

/// ggml types we accept by dequantizing at load (the K-quants).
fn dequantizable(dtype: GgmlDType) -> bool {
    matches!(
        dtype,
        GgmlDType::Q2K | GgmlDType::Q3K | GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K
    )
}

impl WeightSource for GgufSource {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn has(&self, name: &TensorName) -> bool {
        self.content.tensor_infos.contains_key(&name.gguf())
    }

    fn matrix(
        &self,
        name: &TensorName,
        rows: usize,
        cols: usize,
    ) -> Result<RawMatrix<'_>, LoadError> {
        let (info, key) = self.info(name)?;
        let dims = info.shape.dims();
        if dims != [rows, cols] {
            return Err(LoadError::ShapeMismatch {
                tensor: key,
                expected: vec![rows, cols],
                actual: dims.to_vec(),
            });
        }
        if let Some(format) = native_format(info.ggml_dtype) {
            let bytes = self.bytes(&key, info)?;
            return Ok(RawMatrix {
                format,
                rows,
                cols,
                bytes: Cow::Borrowed(bytes),
            });
        }
        if dequantizable(info.ggml_dtype) {
            let bytes = self.dequantized_f16(&key, info)?;
            return Ok(RawMatrix {
                format: WeightFormat::F16,
                rows,
                cols,
                bytes: Cow::Owned(bytes),
            });
        }
        Err(LoadError::UnsupportedQuantization {
            tensor: key,
            dtype: format!("{:?}", info.ggml_dtype),
        })
    }

    fn vector(&self, name: &TensorName, len: usize) -> Result<Vec<f32>, LoadError> {
        let (info, key) = self.info(name)?;
        let dims = info.shape.dims();
        if dims != [len] {
            return Err(LoadError::ShapeMismatch {
                tensor: key,
                expected: vec![len],
                actual: dims.to_vec(),
            });
        }
        let bytes = self.bytes(&key, info)?;
        match info.ggml_dtype {
            GgmlDType::F32 => Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            GgmlDType::F16 => Ok(bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()),
            GgmlDType::BF16 => Ok(bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()),
            other => Err(LoadError::UnsupportedQuantization {
                tensor: key,
                dtype: format!("{other:?} (for a vector)"),
            }),
        }
    }
}

impl WeightSourceWithTokenizer for GgufSource {
    fn tokenizer(&self) -> Result<crate::tokenizer::Tokenizer, LoadError> {
        crate::tokenizer::Tokenizer::from_gguf(&self.content)
            .map_err(|e| LoadError::Tokenizer(e.to_string()))
    }

    fn as_weights(&self) -> &dyn WeightSource {
        self
    }
}
