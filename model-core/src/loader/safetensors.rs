//! Hugging Face model directories: `config.json`, one or more `*.safetensors` shards (with
//! `model.safetensors.index.json` when sharded), `tokenizer.json`, `tokenizer_config.json`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use enclave_kernels::WeightFormat;
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::{RawMatrix, TensorName, WeightSource, WeightSourceWithTokenizer};
use crate::config::ModelConfig;
use crate::error::LoadError;

pub struct HfSource {
    dir: PathBuf,
    shards: Vec<Mmap>,
    /// Tensor name → index into `shards`.
    index: HashMap<String, usize>,
    config: ModelConfig,
}

impl HfSource {
    pub fn open(dir: &Path) -> Result<Self, LoadError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| LoadError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let config = ModelConfig::from_hf_json(&read(&dir.join("config.json"))?)?;
        let mut files: Vec<PathBuf> = Vec::new();
        let index_path = dir.join("model.safetensors.index.json");
        if index_path.exists() {
            let index: serde_json::Value = serde_json::from_str(&read(&index_path)?)
                .map_err(|e| LoadError::InvalidConfig(format!("{}: {e}", index_path.display())))?;
            let map = index
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| {
                    LoadError::InvalidConfig("safetensors index has no weight_map".into())
                })?;
            for file in map.values().filter_map(|v| v.as_str()) {
                let p = dir.join(file);
                if !files.contains(&p) {
                    files.push(p);
                }
            }
        } else {
            files.push(dir.join("model.safetensors"));
        }
        let mut shards = Vec::with_capacity(files.len());
        let mut index = HashMap::new();
        for (i, path) in files.iter().enumerate() {
            let io = |source| LoadError::Io {
                path: path.clone(),
                source,
            };
            let file = File::open(path).map_err(io)?;
            // SAFETY: read-only mapping of a weights file, see GgufSource::open.
            let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
            let st = SafeTensors::deserialize(&mmap).map_err(|e| LoadError::Weights {
                tensor: path.display().to_string(),
                reason: e.to_string(),
            })?;
            for name in st.names() {
                index.insert(name.to_string(), i);
            }
            shards.push(mmap);
        }
        Ok(HfSource {
            dir: dir.to_path_buf(),
            shards,
            index,
            config,
        })
    }

    fn view(
        &self,
        name: &TensorName,
    ) -> Result<(safetensors::tensor::TensorView<'_>, String), LoadError> {
        let key = name.hf();
        let shard = *self
            .index
            .get(&key)
            .ok_or_else(|| LoadError::MissingTensor(key.clone()))?;
        let st = SafeTensors::deserialize(&self.shards[shard]).map_err(|e| LoadError::Weights {
            tensor: key.clone(),
            reason: e.to_string(),
        })?;
        let view = st.tensor(&key).map_err(|e| LoadError::Weights {
            tensor: key.clone(),
            reason: e.to_string(),
        })?;
        Ok((view, key))
    }
}

fn format_of(dtype: Dtype, key: &str) -> Result<WeightFormat, LoadError> {
    match dtype {
        Dtype::F32 => Ok(WeightFormat::F32),
        Dtype::F16 => Ok(WeightFormat::F16),
        Dtype::BF16 => Ok(WeightFormat::BF16),
        other => Err(LoadError::UnsupportedQuantization {
            tensor: key.to_string(),
            dtype: format!("{other:?}"),
        }),
    }
}

impl WeightSource for HfSource {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn has(&self, name: &TensorName) -> bool {
        self.index.contains_key(&name.hf())
    }

    fn matrix(
        &self,
        name: &TensorName,
        rows: usize,
        cols: usize,
    ) -> Result<RawMatrix<'_>, LoadError> {
        let (view, key) = self.view(name)?;
        if view.shape() != [rows, cols] {
            return Err(LoadError::ShapeMismatch {
                tensor: key,
                expected: vec![rows, cols],
                actual: view.shape().to_vec(),
            });
        }
        let format = format_of(view.dtype(), &key)?;
        Ok(RawMatrix {
            format,
            rows,
            cols,
            bytes: Cow::Borrowed(view.data()),
        })
    }

    fn vector(&self, name: &TensorName, len: usize) -> Result<Vec<f32>, LoadError> {
        let (view, key) = self.view(name)?;
        if view.shape() != [len] {
            return Err(LoadError::ShapeMismatch {
                tensor: key,
                expected: vec![len],
                actual: view.shape().to_vec(),
            });
        }
        let b = view.data();
        Ok(match format_of(view.dtype(), &key)? {
            WeightFormat::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            WeightFormat::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        })
    }
}

impl WeightSourceWithTokenizer for HfSource {
    fn tokenizer(&self) -> Result<crate::tokenizer::Tokenizer, LoadError> {
        crate::tokenizer::Tokenizer::from_hf_dir(&self.dir)
            .map_err(|e| LoadError::Tokenizer(e.to_string()))
    }

    fn as_weights(&self) -> &dyn WeightSource {
        self
    }
}
