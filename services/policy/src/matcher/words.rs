//! Word lists: one leftmost-longest Aho-Corasick automaton over the separator-skipping view,
//! plus a sorted word list for "could this suffix still grow into a word?" questions.

use std::collections::HashMap;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

use super::CategoryInfo;
use crate::error::PolicyError;
use crate::normalize::normalize;
use crate::normalize::separators::{SeparatorSet, SeparatorView};

/// Normalises a listed word exactly as text is normalised for word matching.
pub(crate) fn normalize_word(word: &str, separators: &SeparatorSet) -> String {
    let a = normalize(word);
    let a = a.trim();
    if separators.is_empty() {
        return a.to_owned();
    }
    let mut view = SeparatorView::default();
    view.advance(a, separators, true);
    view.text
}

pub(crate) struct WordMatcher {
    ac: AhoCorasick,
    /// Per automaton pattern: owning category and the normalised word.
    owners: Vec<(u16, Arc<str>)>,
    pub(crate) sorted: Vec<Arc<str>>,
    pub(crate) max_len: usize,
}

/// Above this many bytes of patterns the DFA gets too large; use the contiguous NFA instead.
const DFA_MAX_PATTERN_BYTES: usize = 400_000;

impl WordMatcher {
    pub(crate) fn build<'a>(
        words: impl Iterator<Item = (u16, &'a str)>,
        categories: &[CategoryInfo],
        separators: &SeparatorSet,
    ) -> Result<Option<Self>, PolicyError> {
        let mut index: HashMap<Arc<str>, usize> = HashMap::new();
        let mut owners: Vec<(u16, Arc<str>)> = Vec::new();
        for (cat, w) in words {
            let n: Arc<str> = normalize_word(w, separators).into();
            if n.is_empty() {
                continue;
            }
            match index.get(&n) {
                // The same word in two categories: the stronger action (then the earlier category) owns it.
                Some(&i) => {
                    let cur = owners[i].0;
                    let key = |c: u16| (categories[c as usize].action.rank(), c);
                    if key(cat) < key(cur) {
                        owners[i].0 = cat;
                    }
                }
                None => {
                    index.insert(n.clone(), owners.len());
                    owners.push((cat, n));
                }
            }
        }
        if owners.is_empty() {
            return Ok(None);
        }
        let total: usize = owners.iter().map(|(_, w)| w.len()).sum();
        let kind = if total <= DFA_MAX_PATTERN_BYTES {
            AhoCorasickKind::DFA
        } else {
            AhoCorasickKind::ContiguousNFA
        };
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(kind))
            .build(owners.iter().map(|(_, w)| w.as_bytes()))
            .map_err(PolicyError::WordMatcher)?;
        let mut sorted: Vec<Arc<str>> = owners.iter().map(|(_, w)| w.clone()).collect();
        sorted.sort_unstable();
        let max_len = sorted.iter().map(|w| w.len()).max().unwrap_or(0);
        Ok(Some(WordMatcher {
            ac,
            owners,
            sorted,
            max_len,
        }))
    }

    /// Leftmost-longest match starting at or after `from`: (start, end, category, word).
    pub(crate) fn find(&self, hay: &str, from: usize) -> Option<(usize, usize, u16, &Arc<str>)> {
        let m = self.ac.find(Input::new(hay).range(from..))?;
        let (cat, word) = self.owners.get(m.pattern().as_usize())?;
        Some((m.start(), m.end(), *cat, word))
    }

    /// Whether `s` is a prefix of (or equal to) some listed word.
    pub(crate) fn is_prefix(&self, s: &str) -> bool {
        let i = self.sorted.partition_point(|w| w.as_bytes() < s.as_bytes());
        self.sorted.get(i).is_some_and(|w| w.starts_with(s))
    }

    pub(crate) fn len(&self) -> usize {
        self.owners.len()
    }
}
