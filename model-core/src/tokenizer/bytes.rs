//! The raw bytes each token stands for, precomputed once per tokenizer.
//!
//! Streaming detokenisation and constrained decoding work on bytes, not on token strings:
//! byte-level BPE stores bytes as printable stand-in chars, SentencePiece stores spaces as `▁`
//! and raw bytes as `<0xXX>` pieces.

use std::collections::HashMap;

/// How a vocabulary spells the bytes of its ordinary tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteEncoding {
    /// GPT-2 byte-level BPE: every byte is one printable char.
    ByteLevel,
    /// SentencePiece: `▁` is a space, `<0xXX>` is one raw byte.
    SentencePiece,
    /// Token text is the text.
    Raw,
}

/// GPT-2's `bytes_to_unicode` inverted: stand-in char → byte.
pub(crate) fn byte_level_decoder() -> HashMap<char, u8> {
    let mut printable: Vec<u8> = (b'!'..=b'~').collect();
    printable.extend(0xA1u8..=0xAC);
    printable.extend(0xAEu8..=0xFF);
    let mut table = HashMap::with_capacity(256);
    let mut next_extra = 256u32;
    for byte in 0u8..=255 {
        let ch = if printable.contains(&byte) {
            char::from(byte)
        } else {
            let ch = char::from_u32(next_extra);
            next_extra += 1;
            // INVARIANT: 256..=323 are all valid scalar values.
            ch.unwrap_or(char::REPLACEMENT_CHARACTER)
        };
        table.insert(ch, byte);
    }
    table
}

/// Bytes of a byte-level token: each stand-in char back to its byte; a char outside the table
/// (not produced by a byte-level converter) keeps its UTF-8 bytes.
pub(crate) fn byte_level_bytes(table: &HashMap<char, u8>, token: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len());
    for ch in token.chars() {
        match table.get(&ch) {
            Some(b) => out.push(*b),
            None => out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

/// `<0xXX>` → the byte, for SentencePiece byte pieces.
pub(crate) fn parse_byte_piece(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Bytes of an ordinary SentencePiece piece: `▁` is a space.
pub(crate) fn sentencepiece_bytes(token: &str) -> Vec<u8> {
    token.replace('\u{2581}', " ").into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_table_is_a_bijection_over_all_bytes() {
        let table = byte_level_decoder();
        assert_eq!(table.len(), 256);
        let mut bytes: Vec<u8> = table.values().copied().collect();
        bytes.sort_unstable();
        assert_eq!(bytes, (0u8..=255).collect::<Vec<_>>());
        assert_eq!(table[&'Ġ'], b' ');
        assert_eq!(table[&'Ċ'], b'\n');
        assert_eq!(table[&'A'], b'A');
    }

    #[test]
    fn byte_pieces_parse_only_in_exact_form() {
        assert_eq!(parse_byte_piece("<0x0A>"), Some(0x0A));
        assert_eq!(parse_byte_piece("<0xff>"), Some(0xFF));
        assert_eq!(parse_byte_piece("<0x0A"), None);
        assert_eq!(parse_byte_piece("<0x0AB>"), None);
        assert_eq!(parse_byte_piece("<0xZZ>"), None);
    }
}
