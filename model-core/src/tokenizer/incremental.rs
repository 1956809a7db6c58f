//! Streaming detokenisation that never emits half a UTF-8 sequence.

use std::sync::Arc;

use super::Tokenizer;

/// Turns a stream of token ids into text chunks.
///
/// Token bytes are appended to a small pending buffer; each [`push`](Self::push) returns the
/// longest prefix that is complete UTF-8 and holds back a trailing incomplete sequence (at most
/// 3 bytes) until later tokens complete it. Bytes that can never become valid are replaced by
/// U+FFFD exactly as [`String::from_utf8_lossy`] does on the whole output, so the chunks
/// concatenate to [`Tokenizer::decode`] of the whole sequence.
///
/// It shares the tokenizer's byte table (no borrow), so a sequence can own one.
#[derive(Debug, Clone)]
pub struct IncrementalDecoder {
    token_bytes: Arc<[Vec<u8>]>,
    strip_leading_space: bool,
    pending: Vec<u8>,
    /// Nothing has been emitted yet (the SentencePiece leading space is still to be dropped).
    at_start: bool,
}

impl IncrementalDecoder {
    pub fn new(tokenizer: &Tokenizer) -> Self {
        Self {
            token_bytes: tokenizer.shared_token_bytes(),
            strip_leading_space: tokenizer.strips_leading_space(),
            pending: Vec::with_capacity(8),
            at_start: true,
        }
    }

    /// Adds one token; returns the text it completes (possibly empty). An id outside the
    /// vocabulary contributes nothing: the engine only produces ids from the model's logits.
    pub fn push(&mut self, id: u32) -> String {
        if let Some(bytes) = self.token_bytes.get(id as usize) {
            self.pending.extend_from_slice(bytes);
        }
        let mut out = String::new();
        let mut consumed = 0;
        loop {
            match std::str::from_utf8(&self.pending[consumed..]) {
                Ok(valid) => {
                    out.push_str(valid);
                    consumed = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid_end = consumed + e.valid_up_to();
                    // from_utf8 vouched for these bytes, so the lossy conversion copies them as is.
                    out.push_str(&String::from_utf8_lossy(&self.pending[consumed..valid_end]));
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            consumed = valid_end + bad;
                        }
                        // Incomplete sequence at the end: wait for the next token.
                        None => {
                            consumed = valid_end;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..consumed);
        self.emit(out)
    }

    /// Flushes what is left; an incomplete tail becomes U+FFFD.
    pub fn finish(mut self) -> String {
        let tail = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.emit(tail)
    }

    fn emit(&mut self, mut text: String) -> String {
        if self.at_start && !text.is_empty() {
            self.at_start = false;
            if self.strip_leading_space && text.starts_with(' ') {
                text.remove(0);
            }
        }
        text
    }
}
