//! The serde mirror of the TOML schema and its conversion into validated types.

use std::path::{Component, Path};

use serde::Deserialize;

use super::{
    Action, CategoryName, CategorySpec, DetectorKind, DetectorSpec, MaskStyle, NormalizationSpec,
    PolicyDocument, ScopeSet, check_word,
};
use crate::error::PolicyError;
use crate::limits::Limits;
use crate::normalize::{is_invisible, normalize};
use crate::patterns::UserPattern;
use crate::pii::PiiKind;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    version: Option<u32>,
    name: Option<String>,
    normalization: Option<RawNormalization>,
    #[serde(default, rename = "category")]
    categories: Vec<RawCategory>,
    #[serde(default, rename = "detector")]
    detectors: Vec<RawDetector>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNormalization {
    separators: Option<String>,
    max_separator_run: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    name: String,
    action: String,
    scope: Option<String>,
    mask: Option<String>,
    mask_text: Option<String>,
    #[serde(default)]
    words: Vec<String>,
    #[serde(default)]
    word_files: Vec<String>,
    #[serde(default, rename = "regex")]
    regexes: Vec<RawRegex>,
    #[serde(default)]
    pii: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegex {
    name: String,
    pattern: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetector {
    name: String,
    kind: String,
    model: Option<String>,
    threshold: Option<f32>,
    categories: Vec<String>,
}

/// Where a document's `word_files` are read from.
#[derive(Clone, Copy)]
pub(super) enum WordSource<'a> {
    /// None: a document naming word files is rejected.
    None,
    /// Files relative to the policy file's directory.
    Dir(&'a Path),
    /// Files compiled into the binary: (relative path, contents).
    Embedded(&'a [(&'a str, &'a str)]),
}

pub(super) fn parse(
    text: &str,
    dir: WordSource<'_>,
    limits: &Limits,
) -> Result<PolicyDocument, PolicyError> {
    let raw: RawDocument = toml::from_str(text)?;
    convert(raw, dir, limits)
}

/// The same schema as JSON (the API accepts both); word files are not available there.
pub(super) fn parse_json(text: &str, limits: &Limits) -> Result<PolicyDocument, PolicyError> {
    let raw: RawDocument =
        serde_json::from_str(text).map_err(|e| PolicyError::JsonDocument(Box::new(e)))?;
    convert(raw, WordSource::None, limits)
}

fn convert(
    raw: RawDocument,
    dir: WordSource<'_>,
    limits: &Limits,
) -> Result<PolicyDocument, PolicyError> {
    if let Some(v) = raw.version.filter(|&v| v != 1) {
        return Err(PolicyError::UnsupportedVersion { found: v });
    }
    if raw.categories.len() > limits.max_categories {
        return Err(PolicyError::TooManyCategories {
            count: raw.categories.len(),
            limit: limits.max_categories,
        });
    }
    let normalization = match raw.normalization {
        Some(n) => parse_normalization(n, limits)?,
        None => NormalizationSpec::default(),
    };
    let detector_targets: Vec<String> = raw
        .detectors
        .iter()
        .flat_map(|d| d.categories.iter().cloned())
        .collect();
    let mut budget = Budget::default();
    let mut categories: Vec<CategorySpec> = Vec::with_capacity(raw.categories.len());
    for rc in raw.categories {
        let has_detector = detector_targets.contains(&rc.name);
        let spec = parse_category(rc, dir, limits, &mut budget, has_detector)?;
        if categories.iter().any(|c| c.name == spec.name) {
            return Err(PolicyError::DuplicateCategory {
                category: spec.name.to_string(),
                layer: None,
            });
        }
        categories.push(spec);
    }
    let detectors = raw
        .detectors
        .into_iter()
        .map(|d| parse_detector(d, &categories))
        .collect::<Result<_, _>>()?;
    Ok(PolicyDocument {
        name: raw.name,
        normalization,
        categories,
        detectors,
    })
}

#[derive(Default)]
struct Budget {
    words: usize,
    bytes: u64,
    rules: usize,
}

impl Budget {
    fn add_words(&mut self, count: usize, bytes: u64, limits: &Limits) -> Result<(), PolicyError> {
        self.words += count;
        self.bytes += bytes;
        if self.words > limits.max_words {
            return Err(PolicyError::TooManyWords {
                count: self.words,
                limit: limits.max_words,
            });
        }
        if self.bytes > limits.max_word_bytes as u64 {
            return Err(PolicyError::WordListTooLarge {
                bytes: self.bytes,
                limit: limits.max_word_bytes,
            });
        }
        Ok(())
    }
}

/// Normalises and checks the separator set: every entry must survive normalisation as one
/// visible, non-alphanumeric character (otherwise skipping it would eat real text).
pub(crate) fn normalize_separators(raw: &str) -> Result<Vec<char>, PolicyError> {
    let mut out = Vec::new();
    for c in raw.chars() {
        let n = normalize(c.encode_utf8(&mut [0u8; 4]));
        let mut it = n.chars();
        let (Some(s), None) = (it.next(), it.next()) else {
            return Err(PolicyError::InvalidSeparator {
                value: c.to_string(),
            });
        };
        if s.is_alphanumeric() || is_invisible(s) || s.is_control() && s != '\t' {
            return Err(PolicyError::InvalidSeparator {
                value: c.to_string(),
            });
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

fn parse_normalization(
    n: RawNormalization,
    limits: &Limits,
) -> Result<NormalizationSpec, PolicyError> {
    let default = NormalizationSpec::default();
    let separators = match n.separators {
        Some(s) => normalize_separators(&s)?,
        None => default.separators,
    };
    let max_run = n.max_separator_run.unwrap_or(default.max_run);
    if max_run == 0 || max_run > limits.max_separator_run {
        return Err(PolicyError::InvalidSeparatorRun {
            value: max_run,
            limit: limits.max_separator_run,
        });
    }
    Ok(NormalizationSpec {
        separators,
        max_run,
    })
}

fn parse_action(category: &str, v: &str) -> Result<Action, PolicyError> {
    match v {
        "block" => Ok(Action::Block),
        "mask" => Ok(Action::Mask),
        "flag" => Ok(Action::Flag),
        _ => Err(PolicyError::UnknownAction {
            category: category.to_owned(),
            value: v.to_owned(),
        }),
    }
}

fn parse_scope(category: &str, v: Option<&str>) -> Result<ScopeSet, PolicyError> {
    match v {
        None | Some("both") => Ok(ScopeSet::Both),
        Some("input") => Ok(ScopeSet::Input),
        Some("output") => Ok(ScopeSet::Output),
        Some(other) => Err(PolicyError::UnknownScope {
            category: category.to_owned(),
            value: other.to_owned(),
        }),
    }
}

fn parse_mask(
    category: &str,
    style: Option<&str>,
    text: Option<String>,
) -> Result<MaskStyle, PolicyError> {
    if let Some(t) = &text
        && (t.is_empty() || t.chars().count() > 64)
    {
        return Err(PolicyError::InvalidMaskText {
            category: category.to_owned(),
        });
    }
    match style {
        None | Some("fixed") => Ok(MaskStyle::Fixed(text.unwrap_or_else(|| "***".to_owned()))),
        Some("per_char") => Ok(MaskStyle::PerChar),
        Some("label") => Ok(MaskStyle::Label),
        Some(other) => Err(PolicyError::UnknownMaskStyle {
            category: category.to_owned(),
            value: other.to_owned(),
        }),
    }
}

fn parse_category(
    rc: RawCategory,
    dir: WordSource<'_>,
    limits: &Limits,
    budget: &mut Budget,
    has_detector: bool,
) -> Result<CategorySpec, PolicyError> {
    let name = CategoryName::parse(&rc.name)?;
    let cat = name.as_str();
    let action = parse_action(cat, &rc.action)?;
    let scope = parse_scope(cat, rc.scope.as_deref())?;
    let mask = parse_mask(cat, rc.mask.as_deref(), rc.mask_text)?;
    let mut words: Vec<Box<str>> = Vec::with_capacity(rc.words.len());
    budget.add_words(
        rc.words.len(),
        rc.words.iter().map(|w| w.len() as u64).sum(),
        limits,
    )?;
    words.extend(rc.words.into_iter().map(String::into_boxed_str));
    for file in &rc.word_files {
        read_word_file(cat, file, dir, limits, budget, &mut words)?;
    }
    for (i, w) in words.iter().enumerate() {
        check_word(cat, i, w, limits)?;
    }
    budget.rules += rc.regexes.len();
    if budget.rules > limits.max_regex_rules {
        return Err(PolicyError::TooManyRules {
            count: budget.rules,
            limit: limits.max_regex_rules,
        });
    }
    let mut patterns: Vec<UserPattern> = Vec::with_capacity(rc.regexes.len());
    for r in rc.regexes {
        let valid_name = !r.name.is_empty()
            && r.name.len() <= 64
            && !patterns.iter().any(|p| p.name() == r.name);
        if !valid_name {
            return Err(PolicyError::InvalidRuleName {
                category: cat.to_owned(),
                rule: r.name,
            });
        }
        patterns.push(UserPattern::parse(cat, &r.name, &r.pattern, limits)?);
    }
    let mut pii = Vec::with_capacity(rc.pii.len());
    for p in &rc.pii {
        let kind = PiiKind::parse(p).ok_or_else(|| PolicyError::UnknownPii {
            category: cat.to_owned(),
            value: p.clone(),
            expected: PiiKind::NAMES,
        })?;
        if !pii.contains(&kind) {
            pii.push(kind);
        }
    }
    if words.is_empty() && patterns.is_empty() && pii.is_empty() && !has_detector {
        return Err(PolicyError::EmptyCategory {
            category: cat.to_owned(),
        });
    }
    Ok(CategorySpec {
        name,
        action,
        scope,
        mask,
        words,
        patterns,
        pii,
    })
}

fn read_word_file(
    cat: &str,
    file: &str,
    dir: WordSource<'_>,
    limits: &Limits,
    budget: &mut Budget,
    words: &mut Vec<Box<str>>,
) -> Result<(), PolicyError> {
    let rel = Path::new(file);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(PolicyError::WordFilePath {
            category: cat.to_owned(),
            path: file.to_owned(),
        });
    }
    let dir = match dir {
        WordSource::Dir(dir) => dir,
        WordSource::Embedded(files) => {
            let Some((_, text)) = files.iter().find(|(name, _)| *name == file) else {
                return Err(PolicyError::WordFileUnresolved {
                    category: cat.to_owned(),
                    path: file.to_owned(),
                });
            };
            budget.add_words(0, text.len() as u64, limits)?;
            return push_lines(text, words, budget, limits);
        }
        WordSource::None => {
            return Err(PolicyError::WordFileUnresolved {
                category: cat.to_owned(),
                path: file.to_owned(),
            });
        }
    };
    let path = dir.join(rel);
    let read_err = |source| PolicyError::WordFileRead {
        category: cat.to_owned(),
        path: path.clone(),
        source,
    };
    let len = std::fs::metadata(&path).map_err(read_err)?.len();
    // Check the size before reading so an oversized file is never loaded whole.
    budget.add_words(0, len, limits)?;
    let text = std::fs::read_to_string(&path).map_err(read_err)?;
    push_lines(&text, words, budget, limits)
}

/// One word or phrase per line; blank lines and `#` comments are skipped.
fn push_lines(
    text: &str,
    words: &mut Vec<Box<str>>,
    budget: &mut Budget,
    limits: &Limits,
) -> Result<(), PolicyError> {
    let before = words.len();
    words.extend(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.to_owned().into_boxed_str()),
    );
    budget.add_words(words.len() - before, 0, limits)
}

fn parse_detector(
    d: RawDetector,
    categories: &[CategorySpec],
) -> Result<DetectorSpec, PolicyError> {
    let kind = match d.kind.as_str() {
        "classifier" => DetectorKind::Classifier,
        "judge" => DetectorKind::Judge,
        other => {
            return Err(PolicyError::UnknownDetectorKind {
                detector: d.name,
                value: other.to_owned(),
            });
        }
    };
    let problem = |p: String| PolicyError::InvalidDetector {
        detector: d.name.clone(),
        problem: p,
    };
    let threshold = d.threshold.unwrap_or(0.5);
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(problem(format!("threshold {threshold} is outside (0, 1]")));
    }
    if d.categories.is_empty() {
        return Err(problem("lists no categories".to_owned()));
    }
    let mut cats = Vec::with_capacity(d.categories.len());
    for c in &d.categories {
        let found = categories.iter().find(|s| s.name.as_str() == c);
        let Some(spec) = found else {
            return Err(problem(format!(
                "category {c:?} is not defined in this document"
            )));
        };
        cats.push(spec.name.clone());
    }
    if kind == DetectorKind::Classifier && d.model.is_none() {
        return Err(problem(
            "a classifier needs `model` (the trained model reference)".to_owned(),
        ));
    }
    Ok(DetectorSpec {
        name: d.name,
        kind,
        model: d.model,
        threshold,
        categories: cats,
    })
}
