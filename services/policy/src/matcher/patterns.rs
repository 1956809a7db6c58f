//! Regex rules and PII detectors of one scope.
//!
//! * `lanes`: the rules split into a few leftmost-first multi-pattern regexes. All rules with a
//!   literal prefix share one lane (the regex engine then skips text with a literal prefilter);
//!   PII detectors and a few other rules get a lane each, which lets the engine use its per-pattern
//!   shortcuts (e.g. searching for `@` first), and any remaining rules share a last lane. A
//!   combined search takes the leftmost hit over all lanes and, at the same start, the rule listed
//!   first (user rules in category order, then PII detectors in [`PiiKind::ALL`] order): the same
//!   result as one leftmost-first regex over all rules, at several times the speed, because one
//!   regex over all rules falls back to a plain lazy DFA that cannot skip any text.
//! * `singles`: one anchored regex per rule, used only when a PII candidate fails validation,
//!   to give the other rules a chance at the same start position.
//! * `live`: a lazy DFA over all patterns with `MatchKind::All`, run anchored, which tells the
//!   streaming filter whether a match could still start at a position (any thread alive).

use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::prefilter::Prefilter;
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

/// One leftmost-first regex over a subset of the rules, in rule order.
struct Lane {
    regex: meta::Regex,
    /// Lane pattern index → index into `PatternMatcher::rules`.
    rules: Vec<usize>,
}

/// Rules without a literal prefix that get a lane of their own (PII detectors always do).
const SOLO_LANES: usize = 4;

pub(crate) struct PatternMatcher {
    lanes: Vec<Lane>,
    singles: Vec<meta::Regex>,
    live: DFA,
    pub(crate) rules: Vec<PatternRule>,
}

/// A match of rule `rule` (index into `rules`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        let lanes = lane_groups(&hirs, &rules)
            .into_iter()
            .map(|group| {
                let lane_hirs: Vec<&Hir> = group.iter().map(|&i| &hirs[i]).collect();
                let regex = meta::Builder::new()
                    .configure(config.clone())
                    .build_many_from_hir(&lane_hirs)
                    .map_err(build_err)?;
                Ok(Lane {
                    regex,
                    rules: group,
                })
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;
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
            lanes,
            singles,
            live,
            rules,
        }))
    }

    /// A search over one haystack with increasing start positions (see [`PatternSearch`]).
    pub(crate) fn search(&self) -> PatternSearch<'_> {
        PatternSearch {
            m: self,
            next: vec![None; self.lanes.len()],
        }
    }

    /// Leftmost hit at or after `from` over all lanes; at equal starts the earlier rule.
    fn leftmost(&self, next: &mut [Option<Next>], hay: &str, from: usize) -> Option<PatternHit> {
        let mut best: Option<PatternHit> = None;
        for (lane, slot) in self.lanes.iter().zip(next.iter_mut()) {
            // A lane's hit found from an earlier position stays the lane's leftmost hit for
            // every later position up to its start: nothing of that lane starts in between.
            let stale = match slot {
                Some(Next::Hit(h)) => h.start < from,
                Some(Next::None) => false,
                None => true,
            };
            if stale {
                *slot = Some(match lane.regex.search(&Input::new(hay).range(from..)) {
                    Some(m) => Next::Hit(PatternHit {
                        start: m.start(),
                        end: m.end(),
                        rule: lane.rules[m.pattern().as_usize()],
                    }),
                    None => Next::None,
                });
            }
            if let Some(Next::Hit(h)) = slot
                && best.is_none_or(|b| (h.start, h.rule) < (b.start, b.rule))
            {
                best = Some(*h);
            }
        }
        best
    }

    /// The next match at or after `from` whose validator (if any) accepts it. A rejected PII
    /// candidate gives the remaining rules a chance at the same start; if none takes it, the search
    /// continues one character later.
    fn find(&self, next: &mut [Option<Next>], hay: &str, from: usize) -> Option<PatternHit> {
        let mut pos = from;
        loop {
            let hit = self.leftmost(next, hay, pos)?;
            let (start, rule) = (hit.start, hit.rule);
            if self.accepts(rule, &hay[start..hit.end]) {
                return Some(hit);
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

/// A lane's next hit, as found from some earlier position of the same haystack.
#[derive(Clone, Copy, Debug)]
enum Next {
    Hit(PatternHit),
    None,
}

/// Successive searches over one haystack, each from a position at or after the previous hit's
/// start. Remembers every lane's next hit so a lane with rare hits is not searched again for each
/// hit of another lane. Make a new one whenever the haystack changes.
pub(crate) struct PatternSearch<'m> {
    m: &'m PatternMatcher,
    next: Vec<Option<Next>>,
}

impl PatternSearch<'_> {
    pub(crate) fn find(&mut self, hay: &str, from: usize) -> Option<PatternHit> {
        self.m.find(&mut self.next, hay, from)
    }
}

/// Splits rule indices into lanes (each lane in rule order): one lane for rules with a fast
/// literal prefix, one per PII detector kind, up to [`SOLO_LANES`] for other rules, one for the rest.
fn lane_groups(hirs: &[Hir], rules: &[PatternRule]) -> Vec<Vec<usize>> {
    let mut prefixed = Vec::new();
    let mut solo: Vec<Vec<usize>> = Vec::new();
    let mut pii: Vec<(PiiKind, Vec<usize>)> = Vec::new();
    let mut rest = Vec::new();
    for (i, (hir, rule)) in hirs.iter().zip(rules).enumerate() {
        let fast_prefix =
            Prefilter::from_hir_prefix(MatchKind::LeftmostFirst, hir).is_some_and(|p| p.is_fast());
        match rule.pii {
            Some(kind) => match pii.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, group)) => group.push(i),
                None => pii.push((kind, vec![i])),
            },
            None if fast_prefix => prefixed.push(i),
            None if solo.len() < SOLO_LANES => solo.push(vec![i]),
            None => rest.push(i),
        }
    }
    std::iter::once(prefixed)
        .chain(solo)
        .chain(pii.into_iter().map(|(_, g)| g))
        .chain(std::iter::once(rest))
        .filter(|g| !g.is_empty())
        .collect()
}
