//! Typed failures of tokenizer construction and use.

use std::path::PathBuf;

/// Everything that can go wrong while building or using a [`super::Tokenizer`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    #[error("GGUF metadata key `{key}` is missing")]
    MissingMetadata { key: String },
    #[error("GGUF metadata key `{key}` has the wrong type: expected {expected}")]
    MetadataType { key: String, expected: &'static str },
    #[error("unsupported tokenizer model `{0}` (supported: gpt2, llama)")]
    UnsupportedModel(String),
    #[error(
        "unsupported pre-tokenizer `{0}` in tokenizer.ggml.pre; refusing to guess because a wrong \
         pre-tokenizer silently changes token ids"
    )]
    UnsupportedPreTokenizer(String),
    #[error("GGUF vocabulary is inconsistent: {0}")]
    InvalidVocab(String),
    #[error("token id {id} is outside the vocabulary (size {vocab_size})")]
    TokenOutOfRange { id: u32, vocab_size: usize },
    #[error("tokenizer backend failed while {context}")]
    Backend {
        context: &'static str,
        #[source]
        source: tokenizers::Error,
    },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: field `{field}` is invalid: {reason}")]
    Config {
        path: PathBuf,
        field: &'static str,
        reason: String,
    },
}

impl TokenizerError {
    pub(crate) fn backend(context: &'static str) -> impl FnOnce(tokenizers::Error) -> Self {
        move |source| Self::Backend { context, source }
    }
}
