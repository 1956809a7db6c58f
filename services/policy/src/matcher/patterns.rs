//! Regex rules and PII detectors of one scope, compiled together.
//!
//! * `multi`: one leftmost-first multi-pattern regex; the leftmost match wins and at the same
//!   start the rule listed first wins (user rules in category order, then PII detectors in
//!   [`PiiKind::ALL`] order). One pass over the text for all patterns.
//! * `singles`: one anchored regex per rule, used only when a PII candidate fails validation,
//!   to give the other rules a chance at the same start position.
//! * `live`: a lazy DFA over all patterns with `MatchKind::All`, run anchored, which tells the
//!   streaming filter whether a match could still start at a position (any thread alive).

use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::start;
use regex_automata::{Anchored, Input, MatchKind, meta};
use regex_syntax::hir::Hir;

use super::RuleId;
use crate::document::CategorySpec;
use crate::error::PolicyError;
use crate::limits::Limits;
use crate::patterns::compile_hir;
use crate::pii::PiiKind;

pub(crate) struct PatternRule {
    pub(crate) category: u16,
    pub(crate) rule: RuleId,
    pub(crate) pii: Option<PiiKind>,
}

pub(crate) struct PatternMatcher {
    multi: meta::Regex,
    singles: Vec<meta::Regex>,
    live: DFA,
    pub(crate) rules: Vec<PatternRule>,
}

/// A match of rule `rule` (index into `rules`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PatternHit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) rule: usize,
}

impl PatternMatcher {
    pub(crate) fn build<'a>(
        categories: impl Iterator<Item = (u16, &'a CategorySpec)> + Clone,
        limits: &Limits,
    ) -> Result<Option<Self>, PolicyError> {
        let mut rules = Vec::new();
        let mut hirs: Vec<Hir> = Vec::new();
        for (cat, spec) in categories.clone() {
            for p in &spec.patterns {
                rules.push(PatternRule {
                    category: cat,
                    rule: RuleId::Regex(p.name_arc()),
                    pii: None,
                });
                hirs.push(p.hir.clone());
            }
        }
        for kind in PiiKind::ALL {
            for (cat, spec) in categories.clone() {
                if spec.pii.contains(&kind) {
                    let hir = compile_hir(kind.pattern(), limits)
                        .map_err(|p| p.into_error(spec.name.as_str(), kind.as_str(), limits))?;
                    rules.push(PatternRule {
                        category: cat,
                        rule: RuleId::Pii(kind),
                        pii: Some(kind),
                    });
                    hirs.push(hir);
                }
            }
        }
        if rules.is_empty() {
            return Ok(None);
        }
        let too_large = || PolicyError::PatternsTooLarge {
            limit: limits.combined_regex_size_limit,
        };
        let build_err = |e: meta::BuildError| match e.size_limit() {
            Some(_) => too_large(),
            None => PolicyError::PatternMatcher {
                message: e.to_string(),
            },
        };
        let config = meta::Config::new()
            .match_kind(MatchKind::LeftmostFirst)
            .nfa_size_limit(Some(limits.combined_regex_size_limit))
            .dfa_size_limit(Some(limits.combined_regex_size_limit))
            .which_captures(thompson::WhichCaptures::Implicit);
        let multi = meta::Builder::new()
            .configure(config.clone())
            .build_many_from_hir(&hirs)
            .map_err(build_err)?;
        let singles = hirs
            .iter()
            .map(|h| {
                meta::Builder::new()
                    .configure(config.clone())
                    .build_from_hir(h)
                    .map_err(build_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .nfa_size_limit(Some(limits.combined_regex_size_limit))
                    .which_captures(thompson::WhichCaptures::None),
            )
            .build_many_from_hir(&hirs)
            .map_err(|_| too_large())?;
        let live = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .cache_capacity(4 * 1024 * 1024),
            )
            .build_from_nfa(nfa)
            .map_err(|e| PolicyError::PatternMatcher {
                message: e.to_string(),
            })?;
        Ok(Some(PatternMatcher {
            multi,
            singles,
            live,
            rules,
        }))
    }

    /// The next match at or after `from` whose validator (if any) accepts it. A rejected PII
    /// candidate gives the remaining rules a chance at the same start; if none takes it, the search
    /// continues one character later. Returns the hit and where the next search starts.
    pub(crate) fn find(&self, hay: &str, from: usize) -> Option<PatternHit> {
        let mut pos = from;
        loop {
            let m = self.multi.search(&Input::new(hay).range(pos..))?;
            let (start, end, rule) = (m.start(), m.end(), m.pattern().as_usize());
            if self.accepts(rule, &hay[start..end]) {
                return Some(PatternHit { start, end, rule });
            }
            for other in rule + 1..self.rules.len() {
                let input = Input::new(hay).range(start..).anchored(Anchored::Yes);
                if let Some(m2) = self.singles.get(other).and_then(|r| r.search(&input))
                    && self.accepts(other, &hay[start..m2.end()])
                {
                    return Some(PatternHit {
                        start,
                        end: m2.end(),
                        rule: other,
                    });
                }
            }
            pos = start + hay[start..].chars().next().map_or(1, char::len_utf8);
            if pos > hay.len() {
                return None;
            }
        }
    }

    fn accepts(&self, rule: usize, text: &str) -> bool {
        match self.rules.get(rule).and_then(|r| r.pii) {
            Some(kind) => kind.validate(text),
            None => true,
        }
    }

    pub(crate) fn new_cache(&self) -> Cache {
        self.live.create_cache()
    }

    /// Starts the anchored liveness automaton at `at` (look-behind from the byte before it).
    pub(crate) fn live_start(
        &self,
        cache: &mut Cache,
        hay: &[u8],
        at: usize,
    ) -> Option<LazyStateID> {
        let before = at.checked_sub(1).and_then(|i| hay.get(i)).copied();
        let config = start::Config::new()
            .anchored(Anchored::Yes)
            .look_behind(before);
        self.live.start_state(cache, &config).ok()
    }

    /// One transition of the liveness automaton; `None` when it cannot tell (treated as alive).
    pub(crate) fn live_next(
        &self,
        cache: &mut Cache,
        sid: LazyStateID,
        byte: u8,
    ) -> Option<LazyStateID> {
        self.live.next_state(cache, sid, byte).ok()
    }
}
