//! The incremental scanner behind both `Policy::apply` and `StreamFilter`.
//!
//! Original text is appended chunk by chunk. Normalisation is per character (view A) and the
//! separator-skipping view (B) only appends decided characters, so both views only grow. Each
//! matcher iterates from a resume point and reports a *hold*: the earliest original offset at
//! which a match could still begin or change. A match is final when it starts before the hold and
//! its last character is followed by another kept character (so trailing invisible characters or
//! combining marks are known). Final candidates are resolved greedily in the order
//!
//!   earliest start → longest → strongest action (block > mask > flag) → word lists before
//!   patterns → earlier category → earlier rule,
//!
//! keeping a candidate only if it does not overlap the previous kept one. Text before
//! `max(hold, end of last kept match)` can no longer change and is released. With one chunk and
//! `finished`, this is the non-streamed scan, so streamed and whole-text results are identical by
//! construction (and the leak tests check it for every split).

use std::sync::Arc;

use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::Cache;

use crate::document::{Action, MaskStyle};
use crate::matcher::{RuleId, ScopedMatcher};
use crate::normalize::Normalizer;
use crate::normalize::separators::SeparatorView;
use crate::policy::{BlockReason, Match};

#[derive(Clone, Debug)]
struct Cand {
    start: usize,
    end: usize,
    category: u16,
    source: u8,
    rule: RuleId,
}

/// What one step produced.
#[derive(Default)]
pub(crate) struct Step {
    pub(crate) emit: String,
    pub(crate) matches: Vec<Match>,
    pub(crate) blocked: Option<BlockReason>,
}

pub(crate) struct Scanner {
    m: Arc<ScopedMatcher>,
    stop_on_block: bool,
    orig: String,
    a: Normalizer,
    b: Option<SeparatorView>,
    word_resume: usize,
    prefix_from: usize,
    pat_resume: usize,
    live_from: usize,
    live_state: Option<(LazyStateID, usize, usize)>,
    cache: Option<Cache>,
    cands: Vec<Cand>,
    last_end: usize,
    emitted: usize,
    blocked: bool,
}

impl Scanner {
    pub(crate) fn new(m: Arc<ScopedMatcher>, stop_on_block: bool) -> Self {
        let b = m.skips_separators().then(SeparatorView::default);
        Scanner {
            m,
            stop_on_block,
            orig: String::new(),
            a: Normalizer::default(),
            b,
            word_resume: 0,
            prefix_from: 0,
            pat_resume: 0,
            live_from: 0,
            live_state: None,
            cache: None,
            cands: Vec::new(),
            last_end: 0,
            emitted: 0,
            blocked: false,
        }
    }

    pub(crate) fn step(&mut self, chunk: &str, finished: bool) -> Step {
        if self.blocked {
            return Step::default();
        }
        self.orig.push_str(chunk);
        self.a.push(chunk);
        if let Some(b) = &mut self.b {
            b.text.reserve(chunk.len());
        }
        if let Some(b) = &mut self.b {
            b.advance(&self.a.text, &self.m.separators, finished);
        }
        let word_hold = self.scan_words(finished);
        let pat_hold = self.scan_patterns(finished);
        let hold = if finished {
            self.orig.len()
        } else {
            word_hold.min(pat_hold)
        };
        self.resolve(hold, finished)
    }

    /// Maps a word-view offset to view A (identity without separator skipping).
    fn word_to_a(&self, p: usize, end: bool) -> usize {
        match &self.b {
            Some(b) if end => b.map.end_of(p),
            Some(b) => b.map.start_of(p),
            None => p,
        }
    }

    fn a_to_orig(&self, p: usize, end: bool) -> usize {
        if end {
            self.a.map.end_of(p)
        } else {
            self.a.map.start_of(p)
        }
    }

    fn scan_words(&mut self, finished: bool) -> usize {
        let Some(words) = &self.m.words else {
            return usize::MAX;
        };
        let view: &str = match &self.b {
            Some(b) => &b.text,
            None => &self.a.text,
        };
        let vlen = view.len();
        let mut hold = if finished {
            vlen
        } else {
            prefix_hold(view, words, self.prefix_from.max(self.word_resume))
        };
        self.prefix_from = hold;
        let mut pos = self.word_resume;
        let mut found = Vec::new();
        while let Some((s, e, cat, word)) = words.find(view, pos) {
            if !finished && (s >= hold || e >= vlen) {
                hold = hold.min(s);
                break;
            }
            found.push((s, e, cat, word.clone()));
            pos = e;
        }
        self.word_resume = pos.max(hold);
        for (s, e, category, word) in found {
            let start = self.a_to_orig(self.word_to_a(s, false), false);
            let end = self.a_to_orig(self.word_to_a(e, true), true);
            self.cands.push(Cand {
                start,
                end,
                category,
                source: 0,
                rule: RuleId::Word(word),
            });
        }
        self.a_to_orig(self.word_to_a(hold, false), false)
    }

    fn scan_patterns(&mut self, finished: bool) -> usize {
        let m = Arc::clone(&self.m);
        let Some(pats) = m.patterns.as_ref() else {
            return usize::MAX;
        };
        let alen = self.a.text.len();
        let mut hold = if finished { alen } else { self.live_hold() };
        let mut pos = self.pat_resume;
        let mut search = pats.search();
        while let Some(hit) = search.find(&self.a.text, pos) {
            if !finished && (hit.start >= hold || hit.end >= alen) {
                hold = hold.min(hit.start);
                break;
            }
            let rule = &pats.rules[hit.rule];
            let start = self.a_to_orig(hit.start, false);
            let end = self.a_to_orig(hit.end, true);
            self.cands.push(Cand {
                start,
                end,
                category: rule.category,
                source: 1,
                rule: rule.rule.clone(),
            });
            pos = hit.end;
        }
        self.pat_resume = pos.max(hold);
        self.a_to_orig(hold, false)
    }

    /// Earliest view-A start (≥ the resume point) from which some pattern is still alive.
    fn live_hold(&mut self) -> usize {
        let Some(pats) = self.m.patterns.as_ref() else {
            return usize::MAX;
        };
        let hay = self.a.text.as_bytes();
        let cache = self.cache.get_or_insert_with(|| pats.new_cache());
        let mut at = self.live_from.max(self.pat_resume);
        loop {
            if at >= hay.len() {
                self.live_from = at;
                self.live_state = None;
                return hay.len();
            }
            let clears = cache.clear_count();
            let resumed = match self.live_state.take() {
                Some((sid, pos, c)) if c == clears && self.live_from == at => Some((sid, pos)),
                _ => pats.live_start(cache, hay, at).map(|sid| (sid, at)),
            };
            let Some((mut sid, mut pos)) = resumed else {
                break;
            };
            let mut dead = false;
            let mut unknown = false;
            while pos < hay.len() {
                match pats.live_next(cache, sid, hay[pos]) {
                    Some(next) => sid = next,
                    None => {
                        unknown = true;
                        break;
                    }
                }
                pos += 1;
                if sid.is_dead() {
                    dead = true;
                    break;
                }
                if sid.is_quit() {
                    unknown = true;
                    break;
                }
            }
            if dead {
                at += self.a.text[at..].chars().next().map_or(1, char::len_utf8);
                continue;
            }
            self.live_from = at;
            if !unknown && cache.clear_count() == clears {
                self.live_state = Some((sid, pos, clears));
            }
            return at;
        }
        self.live_from = at;
        at
    }

    fn resolve(&mut self, hold: usize, finished: bool) -> Step {
        let mut ready: Vec<Cand> = Vec::new();
        self.cands.retain(|c| {
            let take = finished || c.start < hold;
            if take {
                ready.push(c.clone());
            }
            !take
        });
        let cats = &self.m.categories;
        ready.sort_by(|x, y| {
            let key = |c: &Cand| {
                (
                    c.start,
                    std::cmp::Reverse(c.end),
                    cats[c.category as usize].action.rank(),
                    c.source,
                    c.category,
                )
            };
            key(x)
                .cmp(&key(y))
                .then_with(|| x.rule.to_string().cmp(&y.rule.to_string()))
        });
        let mut step = Step::default();
        let mut cursor = self.emitted;
        for c in ready {
            if c.start < self.last_end {
                continue;
            }
            self.last_end = c.end;
            let info = &cats[c.category as usize];
            let m = Match {
                category: info.name.clone(),
                rule: c.rule,
                action: info.action,
                span: c.start..c.end,
                matched: self.orig[c.start..c.end].to_owned(),
            };
            match info.action {
                Action::Block if self.stop_on_block => {
                    step.emit.push_str(&self.orig[cursor..c.start]);
                    step.blocked = Some(BlockReason {
                        category: info.name.clone(),
                        rule: m.rule.clone(),
                        span: m.span.clone(),
                    });
                    step.matches.push(m);
                    self.emitted = c.start;
                    self.blocked = true;
                    return step;
                }
                Action::Mask => {
                    step.emit.push_str(&self.orig[cursor..c.start]);
                    mask_into(
                        &mut step.emit,
                        &info.mask,
                        info.name.as_str(),
                        &self.orig[c.start..c.end],
                    );
                    cursor = c.end;
                }
                Action::Block | Action::Flag => {}
            }
            step.matches.push(m);
        }
        let commit = if finished {
            self.orig.len()
        } else {
            hold.max(self.last_end).min(self.orig.len())
        };
        if commit > cursor {
            step.emit.push_str(&self.orig[cursor..commit]);
        }
        self.emitted = commit.max(cursor);
        step
    }

    pub(crate) fn emitted(&self) -> usize {
        self.emitted
    }
}

/// Earliest start ≥ `from` whose suffix of `view` is still a prefix of some word.
fn prefix_hold(view: &str, words: &crate::matcher::words::WordMatcher, from: usize) -> usize {
    let vlen = view.len();
    let mut s = from.max(vlen.saturating_sub(words.max_len.saturating_sub(1)));
    while s < vlen && !view.is_char_boundary(s) {
        s += 1;
    }
    while s < vlen {
        if words.is_prefix(&view[s..]) {
            return s;
        }
        s += view[s..].chars().next().map_or(1, char::len_utf8);
    }
    vlen
}

pub(crate) fn mask_into(out: &mut String, style: &MaskStyle, category: &str, original: &str) {
    match style {
        MaskStyle::Fixed(t) => out.push_str(t),
        MaskStyle::PerChar => out.extend(std::iter::repeat_n('*', original.chars().count())),
        MaskStyle::Label => {
            out.push_str("[REDACTED:");
            out.push_str(category);
            out.push(']');
        }
    }
}

/// The matching stage alone over prepared views (normalised text and its separator-skipping
/// view), for the benchmark figure "throughput after normalisation".
pub(crate) struct MatchViews {
    m: Arc<ScopedMatcher>,
    a: String,
    b: Option<String>,
}

impl MatchViews {
    pub(crate) fn prepare(policy: &crate::Policy, text: &str, scope: crate::Scope) -> Self {
        let m = policy.matcher(scope);
        let mut a = Normalizer::default();
        a.push(text);
        let b = m.skips_separators().then(|| {
            let mut b = SeparatorView::default();
            b.advance(&a.text, &m.separators, true);
            b.text
        });
        MatchViews { m, a: a.text, b }
    }

    /// Runs every word list and pattern over the views; returns the number of hits.
    pub(crate) fn count_hits(&self) -> usize {
        let mut hits = 0;
        if let Some(words) = &self.m.words {
            let view = self.b.as_deref().unwrap_or(&self.a);
            let mut pos = 0;
            while let Some((_, e, _, _)) = words.find(view, pos) {
                pos = e;
                hits += 1;
            }
        }
        if let Some(pats) = &self.m.patterns {
            let mut search = pats.search();
            let mut pos = 0;
            while let Some(hit) = search.find(&self.a, pos) {
                pos = hit.end;
                hits += 1;
            }
        }
        hits
    }
}
