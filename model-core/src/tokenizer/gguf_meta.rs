//! Reads the tokenizer part of GGUF metadata into plain Rust values.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::{Content, Value};

use super::TokenizerError;

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
    Undefined,
}

impl TokenType {
    fn from_raw(raw: i64) -> Self {
        match raw {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Undefined,
        }
    }
}

/// The tokenizer metadata of one GGUF file.
#[derive(Debug)]
pub(crate) struct GgufVocab {
    pub model: String,
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub types: Vec<TokenType>,
    pub scores: Option<Vec<f32>>,
    pub merges: Option<Vec<String>>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    /// Other ids named in metadata that end generation (eot, eom, fim pad/rep/sep).
    pub extra_eog: Vec<u32>,
    pub add_bos: Option<bool>,
    pub add_space_prefix: Option<bool>,
    pub chat_template: Option<String>,
}

impl GgufVocab {
    pub(crate) fn read(content: &Content) -> Result<Self, TokenizerError> {
        let md = &content.metadata;
        let model =
            string(md, "tokenizer.ggml.model")?.ok_or_else(|| missing("tokenizer.ggml.model"))?;
        let tokens = string_array(md, "tokenizer.ggml.tokens")?
            .ok_or_else(|| missing("tokenizer.ggml.tokens"))?;
        let n = tokens.len();
        let types = match int_array(md, "tokenizer.ggml.token_type")? {
            Some(raw) if raw.len() == n => raw.into_iter().map(TokenType::from_raw).collect(),
            Some(raw) => {
                return Err(TokenizerError::InvalidVocab(format!(
                    "{} token types for {n} tokens",
                    raw.len()
                )));
            }
            None => vec![TokenType::Normal; n],
        };
        let scores = float_array(md, "tokenizer.ggml.scores")?;
        if let Some(s) = &scores
            && s.len() != n
        {
            return Err(TokenizerError::InvalidVocab(format!(
                "{} scores for {n} tokens",
                s.len()
            )));
        }
        let id = |key: &str| token_id(md, key, n);
        let mut extra_eog = Vec::new();
        for key in [
            "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.eom_token_id",
            "tokenizer.ggml.fim_pad_token_id",
            "tokenizer.ggml.fim_rep_token_id",
            "tokenizer.ggml.fim_sep_token_id",
        ] {
            extra_eog.extend(id(key)?);
        }
        Ok(Self {
            pre: string(md, "tokenizer.ggml.pre")?,
            merges: string_array(md, "tokenizer.ggml.merges")?,
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            extra_eog,
            add_bos: boolean(md, "tokenizer.ggml.add_bos_token")?,
            add_space_prefix: boolean(md, "tokenizer.ggml.add_space_prefix")?,
            chat_template: string(md, "tokenizer.chat_template")?,
            model,
            tokens,
            types,
            scores,
        })
    }
}

type Metadata = HashMap<String, Value>;

fn missing(key: &str) -> TokenizerError {
    TokenizerError::MissingMetadata {
        key: key.to_owned(),
    }
}

fn wrong_type(key: &str, expected: &'static str) -> TokenizerError {
    TokenizerError::MetadataType {
        key: key.to_owned(),
        expected,
    }
}

fn string(md: &Metadata, key: &str) -> Result<Option<String>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrong_type(key, "string")),
    }
}

fn boolean(md: &Metadata, key: &str) -> Result<Option<bool>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(wrong_type(key, "bool")),
    }
}

fn as_int(value: &Value) -> Option<i64> {
    Some(match value {
        Value::U8(v) => i64::from(*v),
        Value::I8(v) => i64::from(*v),
        Value::U16(v) => i64::from(*v),
        Value::I16(v) => i64::from(*v),
        Value::U32(v) => i64::from(*v),
        Value::I32(v) => i64::from(*v),
        Value::U64(v) => i64::try_from(*v).ok()?,
        Value::I64(v) => *v,
        _ => return None,
    })
}

/// A token id key; ids outside the vocabulary are ignored like llama.cpp does (it warns and
/// keeps its default), negative values mean "none".
fn token_id(md: &Metadata, key: &str, n_tokens: usize) -> Result<Option<u32>, TokenizerError> {
    let Some(value) = md.get(key) else {
        return Ok(None);
    };
    let raw = as_int(value).ok_or_else(|| wrong_type(key, "integer"))?;
    match u32::try_from(raw) {
        Ok(id) if (id as usize) < n_tokens => Ok(Some(id)),
        _ => {
            tracing::warn!(
                key,
                value = raw,
                n_tokens,
                "GGUF token id out of range; ignored"
            );
            Ok(None)
        }
    }
}

fn array<'a>(md: &'a Metadata, key: &str) -> Result<Option<&'a [Value]>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(wrong_type(key, "array")),
    }
}

fn string_array(md: &Metadata, key: &str) -> Result<Option<Vec<String>>, TokenizerError> {
    let Some(items) = array(md, key)? else {
        return Ok(None);
    };
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(wrong_type(key, "array of strings")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn int_array(md: &Metadata, key: &str) -> Result<Option<Vec<i64>>, TokenizerError> {
    let Some(items) = array(md, key)? else {
        return Ok(None);
    };
    items
        .iter()
        .map(|v| as_int(v).ok_or_else(|| wrong_type(key, "array of integers")))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn float_array(md: &Metadata, key: &str) -> Result<Option<Vec<f32>>, TokenizerError> {
    let Some(items) = array(md, key)? else {
        return Ok(None);
    };
    items
        .iter()
        .map(|v| match v {
            Value::F32(f) => Ok(*f),
            // Scores only rank merges; f32 is the precision GGUF writers use.
            Value::F64(f) => Ok(*f as f32),
            _ => Err(wrong_type(key, "array of floats")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
