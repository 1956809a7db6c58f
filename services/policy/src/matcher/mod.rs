//! Compiled matchers for one scope (input or output): word lists and patterns.

pub(crate) mod patterns;
pub(crate) mod words;

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::document::{Action, CategoryName, MaskStyle, PolicyDocument, Scope, ScopeSet};
use crate::error::PolicyError;
use crate::limits::Limits;
use crate::normalize::separators::SeparatorSet;
use crate::pii::PiiKind;

/// Which rule of a category produced a match. Serialises as `word:<normalised word>`,
/// `regex:<rule name>`, `pii:<kind>` or `detector:<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RuleId {
    Word(Arc<str>),
    Regex(Arc<str>),
    Pii(PiiKind),
    /// A model-based detector, by its name in the policy.
    Detector(Arc<str>),
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleId::Word(w) => write!(f, "word:{w}"),
            RuleId::Regex(r) => write!(f, "regex:{r}"),
            RuleId::Pii(k) => write!(f, "pii:{}", k.as_str()),
            RuleId::Detector(d) => write!(f, "detector:{d}"),
        }
    }
}

impl Serialize for RuleId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A category as the matchers see it.
#[derive(Clone, Debug)]
pub(crate) struct CategoryInfo {
    pub(crate) name: CategoryName,
    pub(crate) action: Action,
    pub(crate) mask: MaskStyle,
    /// Which sides the category applies to (detector matches are filtered by it).
    pub(crate) scope: ScopeSet,
}

/// Everything needed to scan text of one scope.
pub(crate) struct ScopedMatcher {
    pub(crate) categories: Arc<[CategoryInfo]>,
    pub(crate) separators: SeparatorSet,
    pub(crate) words: Option<words::WordMatcher>,
    pub(crate) patterns: Option<patterns::PatternMatcher>,
}

impl ScopedMatcher {
    pub(crate) fn build(
        doc: &PolicyDocument,
        categories: Arc<[CategoryInfo]>,
        separators: SeparatorSet,
        scope: Scope,
        limits: &Limits,
    ) -> Result<Self, PolicyError> {
        let in_scope = || {
            doc.categories
                .iter()
                .enumerate()
                .filter(|(_, c)| c.scope.contains(scope))
        };
        let word_iter = in_scope().flat_map(|(i, c)| c.words.iter().map(move |w| (i as u16, &**w)));
        let words = words::WordMatcher::build(word_iter, &categories, &separators)?;
        let patterns =
            patterns::PatternMatcher::build(in_scope().map(|(i, c)| (i as u16, c)), limits)?;
        Ok(ScopedMatcher {
            categories,
            separators,
            words,
            patterns,
        })
    }

    /// Whether word matching runs on the separator-skipping view.
    pub(crate) fn skips_separators(&self) -> bool {
        self.words.is_some() && !self.separators.is_empty()
    }
}
