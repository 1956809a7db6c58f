//! Builds a tokenizers pipeline from GGUF metadata: byte-level BPE (`tokenizer.ggml.model =
//! gpt2`) with the regexes llama.cpp uses for the `pre` value, or SentencePiece BPE (`llama`)
//! with byte fallback and the `▁` space marker, shaped like Hugging Face's llama tokenizer.json.

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper};

use super::bytes::{byte_level_bytes, byte_level_decoder, parse_byte_piece, sentencepiece_bytes};
use super::gguf_meta::{GgufVocab, TokenType};
use super::pretok::BpePre;
use super::{Parts, TokenizerError, specials};

const SPACE_MARKER: &str = "\u{2581}";

/// How a GGUF token takes part in encoding and decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    /// Control and unknown tokens: matched in text only when special tokens are parsed.
    Special,
    /// Always matched in text, like llama.cpp's user-defined tokens.
    UserDefined,
    Byte,
    /// Unused / undefined: llama.cpp renders them as nothing.
    Silent,
}

fn kinds(v: &GgufVocab) -> Vec<Kind> {
    v.tokens
        .iter()
        .zip(&v.types)
        .map(|(text, ty)| match ty {
            TokenType::Control | TokenType::Unknown => Kind::Special,
            _ if specials::looks_like_control(text) => Kind::Special,
            TokenType::UserDefined => Kind::UserDefined,
            TokenType::Normal => Kind::Normal,
            TokenType::Byte => Kind::Byte,
            TokenType::Unused | TokenType::Undefined => Kind::Silent,
        })
        .collect()
}

pub(crate) fn build(v: GgufVocab) -> Result<Parts, TokenizerError> {
    match v.model.as_str() {
        "gpt2" => build_byte_level(v),
        "llama" => build_sentencepiece(v),
        other => Err(TokenizerError::UnsupportedModel(other.to_owned())),
    }
}

fn vocab_map(tokens: &[String]) -> Result<Vocab, TokenizerError> {
    let mut vocab = Vocab::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        let id = u32::try_from(id)
            .map_err(|_| TokenizerError::InvalidVocab("more than 2^32 tokens".into()))?;
        if vocab.insert(token.clone(), id).is_some() {
            return Err(TokenizerError::InvalidVocab(format!(
                "token {token:?} appears twice"
            )));
        }
    }
    Ok(vocab)
}

/// GGUF merges are "left right" strings; the split is the first space after the first byte,
/// as in llama.cpp. Merges naming tokens outside the vocabulary can never apply and are dropped.
fn parse_merges(raw: &[String], vocab: &Vocab) -> Result<Vec<(String, String)>, TokenizerError> {
    let mut merges = Vec::with_capacity(raw.len());
    let mut dropped = 0usize;
    for line in raw {
        let first = line.chars().next().map_or(0, char::len_utf8);
        let pos = line[first..]
            .find(' ')
            .map(|p| p + first)
            .ok_or_else(|| TokenizerError::InvalidVocab(format!("merge {line:?} has no space")))?;
        let (left, right) = (&line[..pos], &line[pos + 1..]);
        let joined = format!("{left}{right}");
        if vocab.contains_key(left) && vocab.contains_key(right) && vocab.contains_key(&joined) {
            merges.push((left.to_owned(), right.to_owned()));
        } else {
            dropped += 1;
        }
    }
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "GGUF merges naming tokens outside the vocabulary were dropped"
        );
    }
    Ok(merges)
}

fn build_byte_level(v: GgufVocab) -> Result<Parts, TokenizerError> {
    let pre_name = v.pre.clone().unwrap_or_else(|| {
        tracing::warn!("GGUF has no tokenizer.ggml.pre; using llama.cpp's `default` regexes");
        "default".to_owned()
    });
    let pre = BpePre::from_gguf(&pre_name)?;
    let raw_merges = v
        .merges
        .as_deref()
        .ok_or_else(|| TokenizerError::MissingMetadata {
            key: "tokenizer.ggml.merges".into(),
        })?;
    let vocab = vocab_map(&v.tokens)?;
    let merges = parse_merges(raw_merges, &vocab)?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre.ignore_merges)
        .build()
        .map_err(TokenizerError::backend("building the byte-level BPE model"))?;
    let mut inner = tokenizers::Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(pre.pre_tokenizer()?));
    inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevelDecoder::default())));

    let kinds = kinds(&v);
    add_added_tokens(&mut inner, &v.tokens, &kinds)?;
    let table = byte_level_decoder();
    let token_bytes = v
        .tokens
        .iter()
        .zip(&kinds)
        .map(|(text, kind)| match kind {
            Kind::Normal => byte_level_bytes(&table, text),
            Kind::Special | Kind::UserDefined => text.as_bytes().to_vec(),
            Kind::Byte | Kind::Silent => Vec::new(),
        })
        .collect();
    let add_bos = v.add_bos.unwrap_or(pre.add_bos_default);
    Ok(finish_parts(inner, token_bytes, &v, add_bos, false))
}

fn build_sentencepiece(v: GgufVocab) -> Result<Parts, TokenizerError> {
    let scores = v
        .scores
        .as_deref()
        .ok_or_else(|| TokenizerError::MissingMetadata {
            key: "tokenizer.ggml.scores".into(),
        })?;
    let kinds = kinds(&v);
    let vocab = vocab_map(&v.tokens)?;
    let merges = sentencepiece_merges(&v.tokens, scores, &vocab);
    let unk = v.unk.or_else(|| {
        let first_unknown = v.types.iter().position(|t| *t == TokenType::Unknown)?;
        u32::try_from(first_unknown).ok()
    });
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(v.tokens[unk as usize].clone());
    }
    let bpe = builder.build().map_err(TokenizerError::backend(
        "building the SentencePiece BPE model",
    ))?;
    let add_space_prefix = v.add_space_prefix.unwrap_or(true);

    let mut inner = tokenizers::Tokenizer::new(bpe);
    let mut normalizers = Vec::new();
    if add_space_prefix {
        normalizers.push(NormalizerWrapper::Prepend(Prepend::new(
            SPACE_MARKER.to_owned(),
        )));
    }
    normalizers.push(NormalizerWrapper::Replace(
        Replace::new(" ", SPACE_MARKER)
            .map_err(TokenizerError::backend("building a normalizer"))?,
    ));
    inner
        .with_normalizer(Some(NormalizerWrapper::Sequence(NormalizerSequence::new(
            normalizers,
        ))))
        .map_err(TokenizerError::backend("installing the normalizer"))?;
    let mut decoders = vec![
        DecoderWrapper::Replace(
            Replace::new(SPACE_MARKER, " ")
                .map_err(TokenizerError::backend("building a decoder"))?,
        ),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ];
    if add_space_prefix {
        decoders.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
    }
    inner.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(
        decoders,
    ))));

    add_added_tokens(&mut inner, &v.tokens, &kinds)?;
    let token_bytes = v
        .tokens
        .iter()
        .zip(&kinds)
        .map(|(text, kind)| match kind {
            Kind::Normal => sentencepiece_bytes(text),
            Kind::Special | Kind::UserDefined => text.as_bytes().to_vec(),
            Kind::Byte => parse_byte_piece(text).map(|b| vec![b]).unwrap_or_default(),
            Kind::Silent => Vec::new(),
        })
        .collect();
    let add_bos = v.add_bos.unwrap_or(true);
    Ok(finish_parts(
        inner,
        token_bytes,
        &v,
        add_bos,
        add_space_prefix,
    ))
}

/// Merges for a SentencePiece vocabulary the way Hugging Face's converter derives them: every
/// split of a piece into two vocabulary pieces is a merge, ranked by the score of the merged
/// piece (highest first, ties in vocabulary order), which reproduces SentencePiece's
/// highest-score-first merging.
fn sentencepiece_merges(tokens: &[String], scores: &[f32], vocab: &Vocab) -> Vec<(String, String)> {
    let mut ranked: Vec<(u32, u32, f32)> = Vec::new();
    for (piece, score) in tokens.iter().zip(scores) {
        let mut local: Vec<(u32, u32, f32)> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| {
                let (left, right) = piece.split_at(at);
                Some((*vocab.get(left)?, *vocab.get(right)?, *score))
            })
            .collect();
        local.sort_by_key(|&(l, r, _)| (l, r));
        ranked.extend(local);
    }
    ranked.sort_by(|a, b| b.2.total_cmp(&a.2));
    ranked
        .into_iter()
        .map(|(l, r, _)| (tokens[l as usize].clone(), tokens[r as usize].clone()))
        .collect()
}

fn add_added_tokens(
    inner: &mut tokenizers::Tokenizer,
    tokens: &[String],
    kinds: &[Kind],
) -> Result<(), TokenizerError> {
    let added = tokens
        .iter()
        .zip(kinds)
        .filter_map(|(text, kind)| match kind {
            _ if text.is_empty() => None,
            Kind::Special => Some(AddedToken::from(text.clone(), true).normalized(false)),
            Kind::UserDefined => Some(AddedToken::from(text.clone(), false).normalized(false)),
            _ => None,
        });
    let added: Vec<AddedToken> = added.collect();
    inner.add_tokens(added).map_err(TokenizerError::backend(
        "registering control and user-defined tokens",
    ))?;
    Ok(())
}

fn finish_parts(
    inner: tokenizers::Tokenizer,
    token_bytes: Vec<Vec<u8>>,
    v: &GgufVocab,
    add_bos: bool,
    strip_leading_space: bool,
) -> Parts {
    let index: HashMap<&str, u32> = v
        .tokens
        .iter()
        .enumerate()
        .filter_map(|(id, t)| Some((t.as_str(), u32::try_from(id).ok()?)))
        .collect();
    let mut named: Vec<u32> = v.eos.into_iter().collect();
    named.extend(&v.extra_eog);
    let eog = specials::eog_ids(&named, |t| index.get(t).copied());
    Parts {
        inner,
        token_bytes,
        bos: v.bos,
        eos: v.eos,
        eog,
        add_bos,
        strip_leading_space,
        chat_template: v.chat_template.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! SentencePiece path on a tiny vocabulary built in code (no Llama 2 GGUF is needed).

    use super::super::{IncrementalDecoder, Tokenizer};
    use super::*;

    const PIECES: &[(&str, f32)] = &[
        ("▁", -1.0),
        ("h", -2.0),
        ("e", -3.0),
        ("l", -4.0),
        ("o", -5.0),
        ("w", -6.0),
        ("r", -7.0),
        ("d", -8.0),
        ("ll", -9.0),
        ("▁h", -10.0),
        ("▁he", -11.0),
        ("llo", -12.0),
        ("▁hello", -13.0),
        ("▁w", -14.0),
        ("or", -15.0),
        ("▁wor", -16.0),
        ("ld", -17.0),
        ("▁world", -18.0),
    ];

    fn tiny_llama_vocab() -> GgufVocab {
        let mut tokens = vec!["<unk>".to_owned(), "<s>".to_owned(), "</s>".to_owned()];
        let mut types = vec![TokenType::Unknown, TokenType::Control, TokenType::Control];
        let mut scores = vec![0.0, 0.0, 0.0];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(TokenType::Byte);
            scores.push(0.0);
        }
        for (piece, score) in PIECES {
            tokens.push((*piece).to_owned());
            types.push(TokenType::Normal);
            scores.push(*score);
        }
        GgufVocab {
            model: "llama".into(),
            pre: None,
            tokens,
            types,
            scores: Some(scores),
            merges: None,
            bos: Some(1),
            eos: Some(2),
            unk: Some(0),
            extra_eog: Vec::new(),
            add_bos: None,
            add_space_prefix: None,
            chat_template: None,
        }
    }

    fn tiny() -> Tokenizer {
        Tokenizer::from_parts(build(tiny_llama_vocab()).expect("tiny SentencePiece vocab builds"))
    }

    fn id(tok: &Tokenizer, piece: &str) -> u32 {
        tok.token_to_id(piece)
            .unwrap_or_else(|| panic!("{piece} not in vocab"))
    }

    #[test]
    fn merges_follow_scores_and_spaces_become_markers() {
        let tok = tiny();
        let ids = tok.encode("hello world", false).unwrap();
        assert_eq!(ids, vec![id(&tok, "▁hello"), id(&tok, "▁world")]);
    }

    #[test]
    fn unknown_characters_fall_back_to_bytes() {
        let tok = tiny();
        let ids = tok.encode("héllo", false).unwrap();
        let expected = vec![
            id(&tok, "▁h"),
            id(&tok, "<0xC3>"),
            id(&tok, "<0xA9>"),
            id(&tok, "llo"),
        ];
        assert_eq!(ids, expected);
        assert_eq!(tok.decode(&ids).unwrap(), "héllo");
    }

    #[test]
    fn control_tokens_parse_only_when_asked_and_text_after_them_gets_a_space_prefix() {
        let tok = tiny();
        let parsed = tok.encode("<s>hello", true).unwrap();
        assert_eq!(parsed, vec![1, id(&tok, "▁hello")]);
        let plain = tok.encode("<s>hello", false).unwrap();
        assert!(!plain.contains(&1), "{plain:?}");
        assert_eq!(tok.decode(&plain).unwrap(), "<s>hello");
    }

    #[test]
    fn bos_is_added_by_default_and_eos_is_the_stop_set() {
        let tok = tiny();
        assert!(tok.adds_bos());
        assert_eq!(
            tok.encode_prompt("hello", false).unwrap(),
            vec![1, id(&tok, "▁hello")]
        );
        assert_eq!(tok.eos_ids(), &[2]);
        assert_eq!(
            (tok.bos_token(), tok.eos_token()),
            (Some("<s>"), Some("</s>"))
        );
    }

    #[test]
    fn token_bytes_unescape_markers_and_byte_pieces() {
        let tok = tiny();
        assert_eq!(tok.token_bytes(id(&tok, "▁hello")), Some(&b" hello"[..]));
        assert_eq!(tok.token_bytes(id(&tok, "<0x41>")), Some(&b"A"[..]));
        assert_eq!(tok.token_bytes(1), Some(&b"<s>"[..]));
    }

    #[test]
    fn decoding_drops_only_the_added_leading_space() {
        let tok = tiny();
        let ids = tok.encode("hello world", false).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), "hello world");
        let mut stream = IncrementalDecoder::new(&tok);
        let chunks: Vec<String> = ids.iter().map(|&i| stream.push(i)).collect();
        assert_eq!(chunks, vec!["hello".to_owned(), " world".to_owned()]);
        assert_eq!(stream.finish(), "");
        // Text that itself starts with a space keeps it (the encoder added a second one).
        let spaced = tok.encode(" hello", false).unwrap();
        assert_eq!(tok.decode(&spaced).unwrap(), " hello");
    }

    #[test]
    fn without_space_prefix_nothing_is_prepended_or_stripped() {
        let mut vocab = tiny_llama_vocab();
        vocab.add_space_prefix = Some(false);
        let tok = Tokenizer::from_parts(build(vocab).unwrap());
        let ids = tok.encode("hello", false).unwrap();
        assert_eq!(ids, vec![id(&tok, "h"), id(&tok, "e"), id(&tok, "llo")]);
        assert_eq!(tok.decode(&ids).unwrap(), "hello");
    }

    #[test]
    fn sentencepiece_needs_scores_and_rejects_duplicate_pieces() {
        let mut vocab = tiny_llama_vocab();
        vocab.scores = None;
        assert!(matches!(
            build(vocab),
            Err(TokenizerError::MissingMetadata { .. })
        ));
        let mut vocab = tiny_llama_vocab();
        vocab.tokens[260] = "▁".to_owned();
        assert!(matches!(build(vocab), Err(TokenizerError::InvalidVocab(_))));
    }

    #[test]
    fn byte_level_without_pre_metadata_uses_the_default_regexes() {
        let vocab = GgufVocab {
            model: "gpt2".into(),
            pre: None,
            tokens: vec!["a".into(), "b".into(), "ab".into()],
            types: vec![TokenType::Normal; 3],
            scores: None,
            merges: Some(vec!["a b".into(), "x y".into()]),
            bos: None,
            eos: None,
            unk: None,
            extra_eog: Vec::new(),
            add_bos: None,
            add_space_prefix: None,
            chat_template: None,
        };
        let tok = Tokenizer::from_parts(build(vocab).unwrap());
        assert_eq!(tok.encode("abab", false).unwrap(), vec![2, 2]);
        assert!(!tok.adds_bos());
        assert_eq!(tok.eos_ids(), &[] as &[u32]);
    }
}
