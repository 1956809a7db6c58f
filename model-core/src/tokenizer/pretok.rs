//! Pre-tokenizer regexes per GGUF `tokenizer.ggml.pre` value.
//!
//! The table follows llama.cpp's `llm_tokenizer_bpe` (llama-vocab.cpp): each `pre` value maps to
//! a list of regexes applied one after the other, every regex splitting the pieces left by the
//! previous one into matches and the gaps between them (tokenizers' `Split` with `Isolated`).
//! A `pre` value outside this table is an error: guessing produces plausible but wrong ids.

use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior};

use super::TokenizerError;

/// GPT-2's regex, in the form tokenizers' ByteLevel uses (llama.cpp's hand-written matcher for
/// it also ends with the `\s+` alternative).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama 3's regex with the case-insensitive group spelled out, as llama.cpp adapted it
/// (`(?i:...)` would also fold characters such as U+017F LONG S).
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

// DeepSeek's classes are spelled as code points: several of their characters have canonical
// equivalents (U+1FD3 vs U+0390, U+212A vs K) that editors silently normalise, which breaks ranges.
const DEEPSEEK_LLM: &[&str] = &[
    r"[\r\n]",
    r"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+",
    r"\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+",
    r"\s+$",
    r"[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+",
    r"\p{N}+",
];

const DEEPSEEK_CODER: &[&str] = &[
    r"[\r\n]",
    r"\s?\p{L}+",
    r"\s?\p{P}+",
    r"[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+",
    r"\p{N}",
];

const DEEPSEEK_V3: &[&str] = &[
    r"\p{N}{1,3}",
    r"[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+",
    r"[!\x22#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];

const DEFAULT: &[&str] = &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"];
const FALCON: &[&str] = &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"];
const DIGITS_THEN_GPT2: &[&str] = &[r"\p{N}", GPT2];

/// What a `tokenizer.ggml.pre` value asks of the byte-level BPE pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BpePre {
    pub regexes: &'static [&'static str],
    /// A whole pre-token found in the vocabulary is emitted as is, without merging.
    pub ignore_merges: bool,
    /// llama.cpp's default for `add_bos` when the GGUF does not say.
    pub add_bos_default: bool,
}

impl BpePre {
    /// Looks up a `tokenizer.ggml.pre` value; an unknown value is a typed error.
    pub(crate) fn from_gguf(pre: &str) -> Result<Self, TokenizerError> {
        let plain = |regexes| Self {
            regexes,
            ignore_merges: false,
            add_bos_default: false,
        };
        Ok(match pre {
            "default" => plain(DEFAULT),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" => Self {
                regexes: &[LLAMA3],
                ignore_merges: true,
                add_bos_default: true,
            },
            "dbrx" | "smaug-bpe" | "glm4" | "chatglm-bpe" => plain(&[LLAMA3]),
            "deepseek-llm" => plain(DEEPSEEK_LLM),
            "deepseek-coder" => plain(DEEPSEEK_CODER),
            "deepseek-v3" | "hunyuan-dense" => plain(DEEPSEEK_V3),
            "falcon" => plain(FALCON),
            "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone"
            | "minerva-7b" => plain(DIGITS_THEN_GPT2),
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "mpt" | "olmo" | "jais" | "trillion"
            | "exaone4" => plain(&[GPT2]),
            "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "hunyuan" | "megrez" => plain(&[QWEN2]),
            other => return Err(TokenizerError::UnsupportedPreTokenizer(other.to_owned())),
        })
    }

    /// The tokenizers pre-tokenizer: the regex splits, then the byte-to-char mapping.
    pub(crate) fn pre_tokenizer(&self) -> Result<PreTokenizerWrapper, TokenizerError> {
        let mut steps = Vec::with_capacity(self.regexes.len() + 1);
        for regex in self.regexes {
            let split = Split::new(
                SplitPattern::Regex((*regex).to_owned()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(TokenizerError::backend("compiling a pre-tokenizer regex"))?;
            steps.push(PreTokenizerWrapper::Split(split));
        }
        // The regexes already split the text; ByteLevel only maps bytes to its printable chars.
        steps.push(PreTokenizerWrapper::ByteLevel(ByteLevel::new(
            false, false, false,
        )));
        Ok(PreTokenizerWrapper::Sequence(Sequence::new(steps)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_known_pre_value_compiles() {
        for pre in [
            "default",
            "llama-bpe",
            "dbrx",
            "deepseek-llm",
            "deepseek-coder",
            "deepseek-v3",
            "falcon",
            "smollm",
            "gpt-2",
            "qwen2",
        ] {
            let spec = BpePre::from_gguf(pre).unwrap_or_else(|e| panic!("{pre}: {e}"));
            spec.pre_tokenizer()
                .unwrap_or_else(|e| panic!("{pre}: {e}: {:?}", std::error::Error::source(&e)));
        }
    }

    #[test]
    fn unknown_pre_value_is_named_in_the_error() {
        let err = BpePre::from_gguf("made-up-pre").unwrap_err();
        assert!(
            matches!(&err, TokenizerError::UnsupportedPreTokenizer(p) if p == "made-up-pre"),
            "{err:?}"
        );
        assert!(err.to_string().contains("made-up-pre"));
    }
}
