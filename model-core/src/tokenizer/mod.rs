//! Text ↔ token ids for every model the engine serves.
//!
//! One [`Tokenizer`] type, built either from a Hugging Face directory (`tokenizer.json` +
//! `tokenizer_config.json`) or from the metadata embedded in a GGUF file. The GGUF path follows
//! llama.cpp's vocabulary loader so that prompt ids match what llama.cpp feeds the same model.
//! Streaming output goes through [`IncrementalDecoder`], which never splits a UTF-8 sequence.

mod bytes;
mod error;
mod from_gguf;
mod gguf_meta;
mod hf_dir;
mod incremental;
mod pretok;
mod specials;

use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::gguf_file::Content;

pub use error::TokenizerError;
pub use incremental::IncrementalDecoder;

/// A model's tokenizer: encoding, decoding, token bytes, special ids and the chat template.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    /// Control tokens written in the text become their single ids.
    parse_special: tokenizers::Tokenizer,
    /// Control tokens written in the text are ordinary text (user-defined ones still match).
    plain: tokenizers::Tokenizer,
    token_bytes: Arc<[Vec<u8>]>,
    bos: Option<u32>,
    eos: Option<u32>,
    bos_text: Option<String>,
    eos_text: Option<String>,
    eog: Vec<u32>,
    add_bos: bool,
    /// SentencePiece with a space prefix: decoded text drops the one leading space the
    /// encoder added.
    strip_leading_space: bool,
    chat_template: Option<String>,
}

/// What the format-specific builders hand to [`Tokenizer::from_parts`].
pub(crate) struct Parts {
    pub inner: tokenizers::Tokenizer,
    pub token_bytes: Vec<Vec<u8>>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eog: Vec<u32>,
    pub add_bos: bool,
    pub strip_leading_space: bool,
    pub chat_template: Option<String>,
}

impl Tokenizer {
    /// Builds the tokenizer described by a GGUF file's `tokenizer.*` metadata.
    ///
    /// Supports `tokenizer.ggml.model` `gpt2` (byte-level BPE; the `tokenizer.ggml.pre` value
    /// picks the pre-tokenizer regexes, unknown values are refused) and `llama` (SentencePiece
    /// BPE with byte fallback).
    pub fn from_gguf(content: &Content) -> Result<Self, TokenizerError> {
        let vocab = gguf_meta::GgufVocab::read(content)?;
        Ok(Self::from_parts(from_gguf::build(vocab)?))
    }

    /// Loads `tokenizer.json` and, when present, `tokenizer_config.json` and
    /// `generation_config.json` from a Hugging Face model directory.
    pub fn from_hf_dir(dir: &Path) -> Result<Self, TokenizerError> {
        Ok(Self::from_parts(hf_dir::build(dir)?))
    }

    fn from_parts(parts: Parts) -> Self {
        let Parts {
            inner,
            token_bytes,
            bos,
            eos,
            eog,
            add_bos,
            strip_leading_space,
            chat_template,
        } = parts;
        let text = |id: Option<u32>| {
            let bytes = token_bytes.get(id? as usize)?;
            Some(String::from_utf8_lossy(bytes).into_owned())
        };
        let (bos_text, eos_text) = (text(bos), text(eos));
        let mut plain = inner.clone();
        plain.set_encode_special_tokens(true);
        Self {
            parse_special: inner,
            plain,
            token_bytes: token_bytes.into(),
            bos,
            eos,
            bos_text,
            eos_text,
            eog,
            add_bos,
            strip_leading_space,
            chat_template,
        }
    }

    /// Token ids of `text`, without BOS. With `parse_special`, control tokens written in the
    /// text (e.g. `<|im_start|>`) become their single ids; without it they are plain text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, TokenizerError> {
        let inner = if parse_special {
            &self.parse_special
        } else {
            &self.plain
        };
        let encoding = inner
            .encode_fast(text, false)
            .map_err(TokenizerError::backend("encoding text"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Token ids of a whole prompt: BOS first when the model asks for it.
    pub fn encode_prompt(
        &self,
        text: &str,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::new();
        if self.add_bos
            && let Some(bos) = self.bos
        {
            ids.push(bos);
        }
        ids.extend(self.encode(text, parse_special)?);
        Ok(ids)
    }

    /// Text of `ids`, special tokens included; invalid UTF-8 becomes U+FFFD.
    ///
    /// Built on [`Self::token_bytes`] so that it agrees byte for byte with
    /// [`IncrementalDecoder`] and with llama.cpp's piece-by-piece rendering.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let piece = self
                .token_bytes(id)
                .ok_or(TokenizerError::TokenOutOfRange {
                    id,
                    vocab_size: self.vocab_size(),
                })?;
            bytes.extend_from_slice(piece);
        }
        let text = String::from_utf8_lossy(&bytes);
        let text = match text.strip_prefix(' ') {
            Some(rest) if self.strip_leading_space => rest,
            _ => &text,
        };
        Ok(text.to_owned())
    }

    /// The raw bytes token `id` stands for (byte-level BPE unmapped, SentencePiece `▁` as a
    /// space and `<0xXX>` as the byte, control tokens as their text); `None` outside the vocab.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.token_bytes.get(id as usize).map(Vec::as_slice)
    }

    /// Number of token ids (including added tokens); every id below it has token bytes.
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// The declared end-of-sequence id (see [`Self::eos_ids`] for the full stop set).
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// Ids that end generation: EOS plus end-of-turn tokens the vocabulary contains
    /// (`<|im_end|>`, `<|eot_id|>`, `<|endoftext|>`, ...), like llama.cpp's EOG set. Sorted.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eog
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// Whether [`Self::encode_prompt`] starts with BOS.
    pub fn adds_bos(&self) -> bool {
        self.add_bos && self.bos.is_some()
    }

    /// Id of a token given its vocabulary text (as stored, e.g. `Ġthe` or `▁the`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.parse_special.token_to_id(token)
    }

    /// The model's Jinja chat template, if it ships one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Text of the BOS token (for chat templates that write `{{ bos_token }}`).
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_text.as_deref()
    }

    /// Text of the EOS token.
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_text.as_deref()
    }

    /// The tokenizer in Hugging Face `tokenizer.json` form (for llguidance's token tables).
    pub fn hf_tokenizer_json(&self) -> Result<String, TokenizerError> {
        self.parse_special
            .to_string(false)
            .map_err(TokenizerError::backend("serialising tokenizer.json"))
    }

    pub(crate) fn strips_leading_space(&self) -> bool {
        self.strip_leading_space
    }

    pub(crate) fn shared_token_bytes(&self) -> Arc<[Vec<u8>]> {
        Arc::clone(&self.token_bytes)
    }
}
