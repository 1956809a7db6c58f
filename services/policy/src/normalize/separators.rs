//! View "B": the normalised text with evasion separators removed.
//!
//! A run of 1..=`max_run` separator characters (after normalisation) is removed when the characters
//! on both sides are *eligible*: a CJK character, or a letter/digit that stands alone (its other
//! neighbour is not a non-CJK letter/digit). So `b.a.d`, `b a d`, `坏 词` and `坏*b*a*d` collapse to
//! `bad` / `坏词` / `坏bad`, while `hello world` keeps its space (no false word across the gap).
//! Word lists go through the same rule, so a listed phrase `bad word` still matches `bad word`.
//!
//! The decision about one run needs up to two characters after it, so the view is built
//! incrementally and stops before a run that cannot be decided yet; `decided()` tells how far.

use super::is_cjk;
use super::offsets::OffsetMap;

/// Which (normalised) characters may be skipped and how many in a row.
#[derive(Clone, Debug)]
pub(crate) struct SeparatorSet {
    ascii: [bool; 128],
    /// Per byte: 1 = ASCII separator, 2 = lead byte of some non-ASCII separator.
    scan: [u8; 256],
    other: Vec<char>,
    pub(crate) max_run: usize,
}

impl SeparatorSet {
    pub(crate) fn new(chars: impl IntoIterator<Item = char>, max_run: usize) -> Self {
        let mut ascii = [false; 128];
        let mut other = Vec::new();
        for c in chars {
            if c.is_ascii() {
                ascii[c as usize] = true;
            } else if !other.contains(&c) {
                other.push(c);
            }
        }
        other.sort_unstable();
        let mut scan = [0u8; 256];
        for (b, &yes) in ascii.iter().enumerate() {
            if yes {
                scan[b] = 1;
            }
        }
        for c in &other {
            let mut buf = [0u8; 4];
            scan[c.encode_utf8(&mut buf).as_bytes()[0] as usize] = 2;
        }
        SeparatorSet {
            ascii,
            scan,
            other,
            max_run,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.other.is_empty() && !self.ascii.iter().any(|&b| b)
    }

    fn contains(&self, c: char) -> bool {
        if c.is_ascii() {
            self.ascii[c as usize]
        } else {
            self.other.binary_search(&c).is_ok()
        }
    }

    /// Byte offset of the next separator at or after `from`.
    fn find(&self, a: &str, from: usize) -> Option<usize> {
        let bytes = a.as_bytes();
        let mut i = from;
        while i < bytes.len() {
            match self.scan[bytes[i] as usize] {
                0 => i += 1,
                1 => return Some(i),
                _ => {
                    let c = a[i..].chars().next()?;
                    if self.contains(c) {
                        return Some(i);
                    }
                    i += c.len_utf8();
                }
            }
        }
        None
    }

    fn at(&self, a: &str, i: usize) -> Option<usize> {
        let c = a.get(i..)?.chars().next()?;
        self.contains(c).then(|| c.len_utf8())
    }
}

fn is_plain_alnum(c: char) -> bool {
    c.is_alphanumeric() && !is_cjk(c)
}

fn eligible(c: char, other_neighbour: Option<char>) -> bool {
    is_cjk(c) || (c.is_alphanumeric() && !other_neighbour.is_some_and(is_plain_alnum))
}

#[derive(Default, Debug)]
pub(crate) struct SeparatorView {
    pub(crate) text: String,
    /// Offsets of this view into view A.
    pub(crate) map: OffsetMap,
    scan: usize,
}

enum Run {
    Keep(usize),
    Remove(usize),
    Undecided,
}

impl SeparatorView {
    /// Extends the view over the new part of `a` (view A), which only ever grows.
    pub(crate) fn advance(&mut self, a: &str, set: &SeparatorSet, finished: bool) {
        let mut copy_from = self.scan;
        let mut i = self.scan;
        loop {
            let Some(p) = set.find(a, i) else {
                self.copy(a, copy_from, a.len());
                self.scan = a.len();
                return;
            };
            match classify_run(a, p, set, finished) {
                Run::Keep(q) => i = q,
                Run::Remove(q) => {
                    self.copy(a, copy_from, p);
                    copy_from = q;
                    i = q;
                }
                Run::Undecided => {
                    self.copy(a, copy_from, p);
                    self.scan = p;
                    return;
                }
            }
        }
    }

    fn copy(&mut self, a: &str, from: usize, to: usize) {
        if to > from {
            self.text.push_str(&a[from..to]);
            self.map.push(from, to - from, to - from, true);
        }
    }
}

fn classify_run(a: &str, p: usize, set: &SeparatorSet, finished: bool) -> Run {
    let mut q = p;
    let mut count = 0;
    while let Some(len) = set.at(a, q) {
        q += len;
        count += 1;
    }
    if q == a.len() && !finished {
        return Run::Undecided;
    }
    if count > set.max_run {
        return Run::Keep(q);
    }
    // Fast path for prose: a multi-letter ASCII word on either side is never eligible.
    let bytes = a.as_bytes();
    let ascii_word = |i: usize, j: usize| {
        bytes.get(i).is_some_and(u8::is_ascii_alphanumeric)
            && bytes.get(j).is_some_and(u8::is_ascii_alphanumeric)
    };
    if (p >= 2 && ascii_word(p - 1, p - 2)) || ascii_word(q, q + 1) {
        return Run::Keep(q);
    }
    let mut before = a[..p].chars().rev();
    let Some(x) = before.next() else {
        return Run::Keep(q);
    };
    if !eligible(x, before.next()) {
        return Run::Keep(q);
    }
    let mut after = a[q..].chars();
    let Some(y) = after.next() else {
        return Run::Keep(q);
    };
    let next_y = after.next();
    if next_y.is_none() && !finished {
        return Run::Undecided;
    }
    if eligible(y, next_y) {
        Run::Remove(q)
    } else {
        Run::Keep(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(a: &str) -> String {
        let set = SeparatorSet::new(" .-*".chars(), 2);
        let mut v = SeparatorView::default();
        v.advance(a, &set, true);
        v.text
    }

    #[test]
    fn removes_only_between_isolated_letters_or_cjk() {
        assert_eq!(view("b.a.d"), "bad");
        assert_eq!(view("b a d word"), "bad word");
        assert_eq!(view("坏 词"), "坏词");
        assert_eq!(view("坏*b*a*d"), "坏bad");
        assert_eq!(view("hello world"), "hello world");
        assert_eq!(view("b...a"), "b...a", "runs longer than max_run stay");
        assert_eq!(view(". a.b ."), ". ab .");
    }

    #[test]
    fn incremental_equals_whole() {
        let set = SeparatorSet::new(" .".chars(), 2);
        let a = "x b.a.d 坏 词 ok. b . c";
        let mut whole = SeparatorView::default();
        whole.advance(a, &set, true);
        for (i, _) in a.char_indices() {
            let mut v = SeparatorView::default();
            v.advance(&a[..i], &set, false);
            assert!(
                whole.text.starts_with(&v.text),
                "split at {i}: {:?}",
                v.text
            );
            v.advance(a, &set, true);
            assert_eq!(v.text, whole.text);
        }
    }
}
