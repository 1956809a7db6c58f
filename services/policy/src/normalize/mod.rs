//! Text normalisation for matching, with offsets mapped back to the original text.
//!
//! Every original character is normalised on its own (no context), which makes the result
//! independent of how a stream is cut into chunks:
//!
//! 1. Invisible characters are removed: zero-width space/joiners (U+200B–U+200D), word joiner and
//!    invisible operators (U+2060–U+2064), bidi controls (U+200E/F, U+202A–U+202E, U+2066–U+2069,
//!    U+061C), BOM (U+FEFF), soft hyphen (U+00AD), combining grapheme joiner (U+034F), variation
//!    selectors (U+FE00–U+FE0F, U+E0100–U+E01EF), Mongolian selectors (U+180B–U+180F), Hangul
//!    fillers, tag characters (U+E0000–U+E007F) and other default-ignorable code points.
//! 2. Compatibility decomposition (NFKD): full-width → half-width, ligatures, circled and
//!    mathematical letters, CJK compatibility ideographs → unified ideographs.
//! 3. Combining marks (general category M) are dropped, so `b̶a̶d̶` and `bàd` read as `bad`. This is
//!    deliberately lossy (accents and Indic vowel signs are ignored); word lists go through the same
//!    function, so it never loses a match, it can only merge words that differ by marks.
//! 4. Full Unicode lowercase (`char::to_lowercase`, context-free: final sigma is not special-cased),
//!    followed by another decomposition pass for the few lowercase forms that decompose.
//!
//! Precomposed Hangul syllables are kept as they are (not split into jamo), so the result equals
//! NFKC for Hangul, CJK and ASCII text. The result differs from textbook NFKC only in that marks
//! are gone, which is what makes composition unnecessary.
//!
//! Separator skipping is a second view built on top (see [`separators`]).

pub(crate) mod offsets;
pub(crate) mod separators;

use std::sync::OnceLock;

use offsets::OffsetMap;
use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// Normalises a whole string (convenience for word lists, separators and tests).
pub fn normalize(text: &str) -> String {
    let mut n = Normalizer::default();
    n.push(text);
    n.text
}

/// Incremental normaliser: view "A" of the matching pipeline.
#[derive(Default, Debug)]
pub(crate) struct Normalizer {
    pub(crate) text: String,
    pub(crate) map: OffsetMap,
    /// Original bytes consumed so far.
    consumed: usize,
}

impl Normalizer {
    /// Appends the normalisation of `chunk`, which continues the original text.
    ///
    /// Fast path: maximal runs of ASCII and of characters that normalise to themselves are copied
    /// at once (ASCII lowercased in place) and recorded as one linear offset segment.
    pub(crate) fn push(&mut self, chunk: &str) {
        let base = self.consumed;
        let bytes = chunk.as_bytes();
        let table = bmp_table();
        self.text.reserve(chunk.len());
        let mut run = 0;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 {
                i += 1;
                continue;
            }
            let (cp, len) = decode(bytes, i);
            if cp < 0x1_0000 && table.kind[cp as usize] == 0 {
                i += len;
                continue;
            }
            self.push_linear(&chunk[run..i], base + run);
            if let Some(c) = char::from_u32(cp) {
                self.push_char(c, base + i, len);
            }
            i += len;
            run = i;
        }
        self.push_linear(&chunk[run..], base + run);
        self.consumed += chunk.len();
        self.map.skip_to(self.consumed);
    }

    fn push_linear(&mut self, run: &str, src: usize) {
        if run.is_empty() {
            return;
        }
        let start = self.text.len();
        self.text.push_str(run);
        if let Some(tail) = self.text.get_mut(start..) {
            tail.make_ascii_lowercase();
        }
        self.map.push(src, run.len(), run.len(), true);
    }

    fn push_char(&mut self, c: char, src: usize, len: usize) {
        match classify(c) {
            Class::Identity => {
                self.text.push(c);
                self.map.push(src, len, len, true);
            }
            Class::Removed => self.map.skip_to(src + len),
            Class::Replace(s) => {
                if s.is_empty() {
                    self.map.skip_to(src + len);
                } else {
                    self.text.push_str(s);
                    self.map.push(src, len, s.len(), false);
                }
            }
        }
    }
}

enum Class<'a> {
    Identity,
    Removed,
    Replace(&'a str),
}

/// Table for the Basic Multilingual Plane: 0 = identity, 1 = removed, n + 2 = replacement n.
struct BmpTable {
    kind: Vec<u32>,
    replacements: Vec<Box<str>>,
}

fn bmp_table() -> &'static BmpTable {
    static TABLE: OnceLock<BmpTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut kind = vec![0u32; 0x1_0000];
        let mut replacements = Vec::new();
        for (cp, slot) in kind.iter_mut().enumerate() {
            let Some(c) = char::from_u32(cp as u32) else {
                continue;
            };
            if c.is_ascii() {
                continue;
            }
            *slot = match compute(c) {
                Computed::Identity => 0,
                Computed::Removed => 1,
                Computed::Replace(s) => {
                    replacements.push(s.into_boxed_str());
                    (replacements.len() + 1) as u32
                }
            };
        }
        BmpTable { kind, replacements }
    })
}

/// Decodes the (valid UTF-8) character starting at `i`, which is not ASCII.
fn decode(b: &[u8], i: usize) -> (u32, usize) {
    let at = |k: usize| u32::from(b.get(i + k).copied().unwrap_or(0) & 0x3F);
    let b0 = u32::from(b[i]);
    if b0 < 0xE0 {
        (((b0 & 0x1F) << 6) | at(1), 2)
    } else if b0 < 0xF0 {
        (((b0 & 0x0F) << 12) | (at(1) << 6) | at(2), 3)
    } else {
        (
            ((b0 & 0x07) << 18) | (at(1) << 12) | (at(2) << 6) | at(3),
            4,
        )
    }
}

fn classify(c: char) -> Class<'static> {
    let cp = c as u32;
    if cp < 0x1_0000 {
        let t = bmp_table();
        return match t.kind[cp as usize] {
            0 => Class::Identity,
            1 => Class::Removed,
            n => t
                .replacements
                .get((n - 2) as usize)
                .map_or(Class::Identity, |s| Class::Replace(s)),
        };
    }
    match compute(c) {
        Computed::Identity => Class::Identity,
        Computed::Removed => Class::Removed,
        // Astral characters that change (mathematical alphanumerics, enclosed letters) are rare;
        // leaking one String per call is not acceptable, so intern them.
        Computed::Replace(s) => Class::Replace(intern(s)),
    }
}

fn intern(s: String) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static POOL: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let pool = POOL.get_or_init(|| Mutex::new(HashSet::new()));
    let mut guard = match pool.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(existing) = guard.get(s.as_str()) {
        return existing;
    }
    // The set of distinct astral replacements is finite (bounded by Unicode), so this leak is bounded.
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    guard.insert(leaked);
    leaked
}

enum Computed {
    Identity,
    Removed,
    Replace(String),
}

fn compute(c: char) -> Computed {
    if is_invisible(c) || is_combining_mark(c) {
        return Computed::Removed;
    }
    if ('\u{AC00}'..='\u{D7A3}').contains(&c) {
        return Computed::Identity;
    }
    let mut out = String::new();
    decompose_compatible(c, |d| {
        if is_combining_mark(d) || is_invisible(d) {
            return;
        }
        for l in d.to_lowercase() {
            decompose_compatible(l, |e| {
                if !is_combining_mark(e) && !is_invisible(e) {
                    out.push(e);
                }
            });
        }
    });
    let mut one = [0u8; 4];
    if out == *c.encode_utf8(&mut one) {
        Computed::Identity
    } else if out.is_empty() {
        Computed::Removed
    } else {
        Computed::Replace(out)
    }
}

/// Default-ignorable and formatting characters used to hide text from matchers.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// Han ideographs, kana and Hangul: scripts written without spaces between words.
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}' | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}'
        | '\u{AC00}'..='\u{D7A3}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{3134F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_width_case_marks_and_invisibles() {
        assert_eq!(normalize("ＢＡＤ"), "bad");
        assert_eq!(normalize("BaD"), "bad");
        assert_eq!(normalize("b\u{200B}a\u{200D}d"), "bad");
        assert_eq!(normalize("b\u{0336}a\u{0336}d\u{0336}"), "bad");
        assert_eq!(normalize("ﬁne"), "fine");
        assert_eq!(normalize("坏词"), "坏词");
        assert_eq!(normalize("𝐛𝐚𝐝"), "bad");
        assert_eq!(normalize("İ"), "i");
        assert_eq!(normalize("한국"), "한국");
    }

    #[test]
    fn chunking_does_not_change_result() {
        let text = "ＡｂC\u{200B}d\u{0301}e 坏\u{FE0F}词 ﬁ";
        let whole = normalize(text);
        for (i, _) in text.char_indices() {
            let mut n = Normalizer::default();
            n.push(&text[..i]);
            n.push(&text[i..]);
            assert_eq!(n.text, whole);
        }
    }

    #[test]
    fn offsets_map_back_to_original() {
        let text = "xＢ\u{200B}ａd!";
        let mut n = Normalizer::default();
        n.push(text);
        assert_eq!(n.text, "xbad!");
        let s = n.map.start_of(1);
        let e = n.map.end_of(4);
        assert_eq!(&text[s..e], "Ｂ\u{200B}ａd");
    }
}
