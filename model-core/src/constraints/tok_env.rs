//! The token table llguidance matches against, built from our own [`Tokenizer`].
//!
//! Built from [`Tokenizer::token_bytes`] rather than by re-parsing `tokenizer.json`, so the
//! constraint reasons about exactly the bytes the detokenizer emits. Control tokens (the
//! `special` added tokens of the tokenizer and the end-of-generation set) get toktrie's
//! special-token marker byte, which keeps grammars from spelling `<|im_end|>` as text; the
//! end-of-generation ids become the trie's EOS set, so a mask allows them exactly when the
//! grammar is complete.

use std::sync::Arc;

use serde::Deserialize;
use toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie};

use super::error::ConstraintError;
use crate::tokenizer::Tokenizer;

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    #[serde(default)]
    special: bool,
}

#[derive(Deserialize)]
struct TokenizerJson {
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
}

/// Builds the shared token environment for one model's tokenizer.
pub(crate) fn build(tokenizer: &Tokenizer) -> Result<TokEnv, ConstraintError> {
    let vocab_size = tokenizer.vocab_size();
    let vocab_u32 = u32::try_from(vocab_size).map_err(|_| table_err("vocabulary too large"))?;
    let eos = tokenizer.eos_ids();
    let Some(&first_eos) = eos.first() else {
        return Err(table_err(
            "the tokenizer declares no end-of-generation token, so a constraint could never end",
        ));
    };

    let mut words: Vec<Vec<u8>> = (0..vocab_u32)
        .map(|id| {
            tokenizer
                .token_bytes(id)
                .map(<[u8]>::to_vec)
                .unwrap_or_default()
        })
        .collect();
    let json = tokenizer
        .hf_tokenizer_json()
        .map_err(|e| table_err(format!("serialising the tokenizer: {e}")))?;
    let parsed: TokenizerJson =
        serde_json::from_str(&json).map_err(|e| table_err(format!("reading added tokens: {e}")))?;
    let specials = parsed
        .added_tokens
        .iter()
        .filter(|t| t.special)
        .map(|t| t.id)
        .chain(eos.iter().copied());
    for id in specials {
        if let Some(word) = words.get_mut(id as usize)
            && word.first() != Some(&TokTrie::SPECIAL_TOKEN_MARKER)
        {
            word.insert(0, TokTrie::SPECIAL_TOKEN_MARKER);
        }
    }

    let info = TokRxInfo::new(vocab_u32, first_eos);
    // toktrie asserts on inconsistent input; the table above is consistent by construction
    // (one word per id, EOS ids inside the vocabulary), and a panic is still turned into a
    // typed error rather than taking the engine thread down.
    let trie = std::panic::catch_unwind(|| TokTrie::from(&info, &words).with_eos_tokens(eos))
        .map_err(|_| table_err("toktrie rejected the token table"))?;
    Ok(Arc::new(ApproximateTokEnv::new(trie)))
}

fn table_err(message: impl Into<String>) -> ConstraintError {
    ConstraintError::TokenTable {
        message: message.into(),
    }
}
