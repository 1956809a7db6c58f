//! The compiled policy and its whole-text API.

use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;

use crate::document::{Action, CategoryName, DetectorSpec, PolicyDocument, Scope};
use crate::engine::Scanner;
use crate::error::PolicyError;
use crate::limits::Limits;
use crate::matcher::{CategoryInfo, RuleId, ScopedMatcher};
use crate::normalize::separators::SeparatorSet;

/// One resolved match, with its span in the original text (bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Match {
    pub category: CategoryName,
    pub rule: RuleId,
    pub action: Action,
    pub span: Range<usize>,
    /// The original text of the span.
    pub matched: String,
}

/// Why a text was blocked: the first blocking match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockReason {
    pub category: CategoryName,
    pub rule: RuleId,
    pub span: Range<usize>,
}

/// Result of applying a policy to a whole text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The masked text; when blocked, only the (masked) text before the blocking match.
    pub text: String,
    pub blocked: Option<BlockReason>,
    /// Resolved matches in text order (up to and including the blocking one).
    pub matches: Vec<Match>,
}

/// A compiled policy: matchers for input and output, built once and shared (`Arc<Policy>`).
pub struct Policy {
    input: Arc<ScopedMatcher>,
    output: Arc<ScopedMatcher>,
    detectors: Vec<DetectorSpec>,
    categories: Arc<[CategoryInfo]>,
    word_count: usize,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("categories", &self.categories.len())
            .field("words", &self.word_count)
            .finish()
    }
}

impl Policy {
    /// Builds the matchers of a (possibly layered) document.
    pub fn compile(doc: &PolicyDocument, limits: &Limits) -> Result<Policy, PolicyError> {
        let categories: Arc<[CategoryInfo]> = doc
            .categories
            .iter()
            .map(|c| CategoryInfo {
                name: c.name.clone(),
                action: c.action,
                mask: c.mask.clone(),
                scope: c.scope,
            })
            .collect();
        let seps = SeparatorSet::new(
            doc.normalization.separators.iter().copied(),
            doc.normalization.max_run as usize,
        );
        let input = Arc::new(ScopedMatcher::build(
            doc,
            categories.clone(),
            seps.clone(),
            Scope::Input,
            limits,
        )?);
        let same_scopes = doc
            .categories
            .iter()
            .all(|c| c.scope.contains(Scope::Input) == c.scope.contains(Scope::Output));
        let output = if same_scopes {
            input.clone()
        } else {
            Arc::new(ScopedMatcher::build(
                doc,
                categories.clone(),
                seps,
                Scope::Output,
                limits,
            )?)
        };
        let word_count = input
            .words
            .as_ref()
            .map_or(0, |w| w.len())
            .max(output.words.as_ref().map_or(0, |w| w.len()));
        Ok(Policy {
            input,
            output,
            detectors: doc.detectors.clone(),
            categories,
            word_count,
        })
    }

    /// Convenience: baseline + optional tenant layer, merged and compiled.
    pub fn compile_layered(
        baseline: &PolicyDocument,
        tenant: Option<&PolicyDocument>,
        limits: &Limits,
    ) -> Result<Policy, PolicyError> {
        match tenant {
            Some(t) => Policy::compile(&PolicyDocument::layered(baseline, t)?, limits),
            None => Policy::compile(baseline, limits),
        }
    }

    pub(crate) fn matcher(&self, scope: Scope) -> Arc<ScopedMatcher> {
        match scope {
            Scope::Input => self.input.clone(),
            Scope::Output => self.output.clone(),
        }
    }

    /// All resolved matches (does not stop at a blocking match). For dry runs and audit.
    pub fn scan(&self, text: &str, scope: Scope) -> Vec<Match> {
        Scanner::new(self.matcher(scope), false)
            .step(text, true)
            .matches
    }

    /// Masks the text and decides whether it is blocked. Identical to streaming the text
    /// through a [`crate::StreamFilter`] in any chunking.
    pub fn apply(&self, text: &str, scope: Scope) -> Decision {
        let step = Scanner::new(self.matcher(scope), true).step(text, true);
        Decision {
            text: step.emit,
            blocked: step.blocked,
            matches: step.matches,
        }
    }

    /// Model-based detectors declared by the policy (run by the gateway).
    pub fn detectors(&self) -> &[DetectorSpec] {
        &self.detectors
    }

    /// Action of a category, if the policy defines it.
    pub fn category_action(&self, name: &str) -> Option<Action> {
        self.categories
            .iter()
            .find(|c| c.name.as_str() == name)
            .map(|c| c.action)
    }

    /// The text a whole-text match of `category` (a detector's) is masked to, per the category's
    /// mask style; `None` if the policy has no such category.
    pub fn mask_whole(&self, category: &str, original: &str) -> Option<String> {
        let info = self
            .categories
            .iter()
            .find(|c| c.name.as_str() == category)?;
        let mut out = String::new();
        crate::engine::mask_into(&mut out, &info.mask, category, original);
        Some(out)
    }

    /// Distinct normalised words in the larger of the two scopes.
    pub fn word_count(&self) -> usize {
        self.word_count
    }

    /// Turns detector results for a whole text into matches over the whole text, for categories
    /// of `scope` whose score reaches the detector's threshold.
    pub fn detection_matches(
        &self,
        text: &str,
        detector: &DetectorSpec,
        detections: &[crate::Detection],
        scope: Scope,
    ) -> Vec<Match> {
        let mut out = Vec::new();
        for d in detections {
            if d.score < detector.threshold
                || !detector.categories.iter().any(|c| c.as_str() == d.label)
            {
                continue;
            }
            let Some(info) = self.categories.iter().find(|c| c.name.as_str() == d.label) else {
                continue;
            };
            // The matchers share one category table for both scopes: the category's own scope
            // set decides.
            if info.scope.contains(scope) {
                out.push(Match {
                    category: info.name.clone(),
                    rule: RuleId::Detector(Arc::from(detector.name.as_str())),
                    action: info.action,
                    span: 0..text.len(),
                    matched: text.to_owned(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Detection;

    #[test]
    fn detector_matches_respect_the_category_scope() {
        let doc = PolicyDocument::parse_toml(
            "[[category]]\nname = \"abuse\"\naction = \"mask\"\nscope = \"output\"\nmask = \"label\"\n\n\
             [[detector]]\nname = \"d\"\nkind = \"classifier\"\nmodel = \"m\"\ncategories = [\"abuse\"]\n",
        )
        .expect("valid");
        let policy = Policy::compile(&doc, &Limits::default()).expect("compiles");
        let hit = [Detection {
            label: "abuse".into(),
            score: 0.9,
        }];
        let spec = &policy.detectors()[0];
        assert!(
            policy
                .detection_matches("x", spec, &hit, Scope::Input)
                .is_empty()
        );
        let out = policy.detection_matches("x", spec, &hit, Scope::Output);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].span, 0..1);
        assert_eq!(
            policy.mask_whole("abuse", "x").as_deref(),
            Some("[REDACTED:abuse]")
        );
    }
}
