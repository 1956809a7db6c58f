//! Policy documents: the TOML schema (see `policies/README.md`) parsed into validated types.

mod raw;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
use crate::limits::Limits;
use crate::normalize::normalize;
use crate::patterns::UserPattern;
use crate::pii::PiiKind;

/// What happens when a category matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Block,
    Mask,
    Flag,
}

impl Action {
    /// Lower is stronger; used to break ties between overlapping matches.
    pub(crate) fn rank(self) -> u8 {
        match self {
            Action::Block => 0,
            Action::Mask => 1,
            Action::Flag => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Mask => "mask",
            Action::Flag => "flag",
        }
    }
}

/// Which side of a conversation a text belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Input,
    Output,
}

/// Which sides a category applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeSet {
    Input,
    Output,
    Both,
}

impl ScopeSet {
    pub fn contains(self, scope: Scope) -> bool {
        matches!(
            (self, scope),
            (ScopeSet::Both, _)
                | (ScopeSet::Input, Scope::Input)
                | (ScopeSet::Output, Scope::Output)
        )
    }
}

/// How a masked span is rewritten.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "style", content = "text")]
pub enum MaskStyle {
    /// The whole span becomes this text (default `***`).
    Fixed(String),
    /// Every character of the span becomes `*`.
    PerChar,
    /// The span becomes `[REDACTED:<category>]`.
    Label,
}

/// A category name: 1–64 characters of `a-z 0-9 _ -`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CategoryName(Arc<str>);

impl CategoryName {
    pub fn parse(name: &str) -> Result<Self, PolicyError> {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(CategoryName(name.into()))
        } else {
            Err(PolicyError::InvalidCategoryName {
                name: name.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CategoryName {
    type Error = PolicyError;
    fn try_from(s: String) -> Result<Self, PolicyError> {
        CategoryName::parse(&s)
    }
}

impl From<CategoryName> for String {
    fn from(c: CategoryName) -> String {
        c.0.to_string()
    }
}

impl std::fmt::Display for CategoryName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One validated category.
#[derive(Clone, Debug)]
pub struct CategorySpec {
    pub(crate) name: CategoryName,
    pub(crate) action: Action,
    pub(crate) scope: ScopeSet,
    pub(crate) mask: MaskStyle,
    /// Words as written (normalised at compile time).
    pub(crate) words: Vec<Box<str>>,
    pub(crate) patterns: Vec<UserPattern>,
    pub(crate) pii: Vec<PiiKind>,
}

impl CategorySpec {
    pub fn name(&self) -> &CategoryName {
        &self.name
    }
    pub fn action(&self) -> Action {
        self.action
    }
    pub fn scope(&self) -> ScopeSet {
        self.scope
    }
    pub fn mask(&self) -> &MaskStyle {
        &self.mask
    }
    pub fn word_count(&self) -> usize {
        self.words.len()
    }
    pub fn pii(&self) -> &[PiiKind] {
        &self.pii
    }
}

/// Separator-skipping settings, already normalised and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalizationSpec {
    pub(crate) separators: Vec<char>,
    pub(crate) max_run: u32,
}

impl Default for NormalizationSpec {
    fn default() -> Self {
        // INVARIANT: the default set is made of valid separators (tested below).
        let separators = raw::normalize_separators(DEFAULT_SEPARATORS).unwrap_or_default();
        NormalizationSpec {
            separators,
            max_run: 2,
        }
    }
}

/// Separators skipped when a document does not say otherwise.
pub const DEFAULT_SEPARATORS: &str = " .-_*·•|/\\~+'\"`";

impl NormalizationSpec {
    pub fn separators(&self) -> &[char] {
        &self.separators
    }
    pub fn max_run(&self) -> u32 {
        self.max_run
    }
}

/// Kind of model-based detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    Classifier,
    Judge,
}

/// A model-based detector declared by a policy; the gateway resolves `model` and runs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorSpec {
    pub name: String,
    pub kind: DetectorKind,
    /// Model or classifier reference, resolved by the gateway (e.g. a classifier version id).
    pub model: Option<String>,
    /// Score at or above which a label counts (classifier); judges answer labels directly.
    pub threshold: f32,
    /// Labels the detector reports; each must be a category of the policy.
    pub categories: Vec<CategoryName>,
}

/// A parsed, validated policy document (one layer).
#[derive(Clone, Debug)]
pub struct PolicyDocument {
    pub(crate) name: Option<String>,
    pub(crate) normalization: NormalizationSpec,
    pub(crate) categories: Vec<CategorySpec>,
    pub(crate) detectors: Vec<DetectorSpec>,
}

impl PolicyDocument {
    /// Parses a document with default [`Limits`]. `word_files` are rejected (no file access).
    pub fn parse_toml(text: &str) -> Result<Self, PolicyError> {
        Self::parse_toml_with_limits(text, &Limits::default())
    }

    pub fn parse_toml_with_limits(text: &str, limits: &Limits) -> Result<Self, PolicyError> {
        raw::parse(text, raw::WordSource::None, limits)
    }

    /// Parses the same schema written as JSON (what the API accepts besides TOML). `word_files`
    /// are rejected.
    pub fn parse_json_with_limits(text: &str, limits: &Limits) -> Result<Self, PolicyError> {
        raw::parse_json(text, limits)
    }

    /// Parses a document whose `word_files` are compiled into the binary, given as
    /// (relative path, contents) pairs: how the gateway ships the platform baseline.
    pub fn parse_toml_with_files(
        text: &str,
        files: &[(&str, &str)],
        limits: &Limits,
    ) -> Result<Self, PolicyError> {
        raw::parse(text, raw::WordSource::Embedded(files), limits)
    }

    /// Reads a policy file; `word_files` are resolved relative to its directory.
    pub fn load(path: &Path, limits: &Limits) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::PolicyFileRead {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        raw::parse(&text, raw::WordSource::Dir(dir), limits)
    }

    /// Merges a platform baseline with a tenant layer. Category names must be unique across the
    /// two (a tenant cannot weaken a baseline category); separator sets are united and the longer
    /// `max_separator_run` wins, so a tenant can only widen evasion handling.
    pub fn layered(
        baseline: &PolicyDocument,
        tenant: &PolicyDocument,
    ) -> Result<Self, PolicyError> {
        let mut categories = baseline.categories.clone();
        for c in &tenant.categories {
            if categories.iter().any(|b| b.name == c.name) {
                return Err(PolicyError::DuplicateCategory {
                    category: c.name.to_string(),
                    layer: Some("baseline"),
                });
            }
            categories.push(c.clone());
        }
        let mut separators = baseline.normalization.separators.clone();
        for &c in &tenant.normalization.separators {
            if !separators.contains(&c) {
                separators.push(c);
            }
        }
        let mut detectors = baseline.detectors.clone();
        detectors.extend(tenant.detectors.iter().cloned());
        Ok(PolicyDocument {
            name: tenant.name.clone().or_else(|| baseline.name.clone()),
            normalization: NormalizationSpec {
                separators,
                max_run: baseline
                    .normalization
                    .max_run
                    .max(tenant.normalization.max_run),
            },
            categories,
            detectors,
        })
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    pub fn categories(&self) -> &[CategorySpec] {
        &self.categories
    }
    pub fn detectors(&self) -> &[DetectorSpec] {
        &self.detectors
    }
    pub fn normalization(&self) -> &NormalizationSpec {
        &self.normalization
    }
}

/// Checks one word and returns its normalised length in characters (for the limit check).
pub(crate) fn check_word(
    category: &str,
    index: usize,
    word: &str,
    limits: &Limits,
) -> Result<(), PolicyError> {
    let chars = word.chars().count();
    if chars > limits.max_word_chars {
        return Err(PolicyError::WordTooLong {
            category: category.to_owned(),
            index,
            chars,
            limit: limits.max_word_chars,
        });
    }
    if normalize(word).trim().is_empty() {
        return Err(PolicyError::EmptyWord {
            category: category.to_owned(),
            index,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_separators_are_valid() {
        assert!(raw::normalize_separators(DEFAULT_SEPARATORS).is_ok());
        assert!(NormalizationSpec::default().separators.contains(&'.'));
    }
}
