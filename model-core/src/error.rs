//! Errors of loading a model. Request-time errors live with the engine types.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("model path {0} does not exist")]
    NotFound(PathBuf),
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid GGUF file: {reason}")]
    InvalidGguf { path: PathBuf, reason: String },
    #[error(
        "tensor `{tensor}` needs {needed} bytes at offset {offset} but the file has {available}: the file is truncated"
    )]
    Truncated {
        tensor: String,
        needed: u64,
        offset: u64,
        available: u64,
    },
    #[error(
        "architecture `{0}` is not supported (supported: llama, qwen2 and their Hugging Face equivalents)"
    )]
    UnsupportedArchitecture(String),
    #[error("tensor `{tensor}` uses quantization {dtype}, which is not supported")]
    UnsupportedQuantization { tensor: String, dtype: String },
    #[error("required tensor `{0}` is missing")]
    MissingTensor(String),
    #[error("tensor `{tensor}` has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        tensor: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("required metadata `{0}` is missing")]
    MissingMetadata(String),
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("weights of `{tensor}`: {reason}")]
    Weights { tensor: String, reason: String },
    #[error("cannot start the engine thread")]
    Thread(#[source] std::io::Error),
}

impl LoadError {
    /// Stable code for the CLI and the gateway's readiness reporting.
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::NotFound(_) => "model_not_found",
            LoadError::Io { .. } => "io_error",
            LoadError::InvalidGguf { .. } => "invalid_gguf",
            LoadError::Truncated { .. } => "truncated_file",
            LoadError::UnsupportedArchitecture(_) => "unsupported_architecture",
            LoadError::UnsupportedQuantization { .. } => "unsupported_quantization",
            LoadError::MissingTensor(_) => "missing_tensor",
            LoadError::ShapeMismatch { .. } => "shape_mismatch",
            LoadError::MissingMetadata(_) => "missing_metadata",
            LoadError::InvalidConfig(_) => "invalid_config",
            LoadError::Tokenizer(_) => "tokenizer_error",
            LoadError::Weights { .. } => "invalid_weights",
            LoadError::Thread(_) => "thread_error",
        }
    }
}
