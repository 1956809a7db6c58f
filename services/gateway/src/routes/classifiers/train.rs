//! Validating a training set and training a classifier version from it (with the policy crate's
//! n-gram classifier), including the held-out evaluation at the requested thresholds.

use std::collections::BTreeMap;

use enclave_policy::CategoryName;
use enclave_policy::detect::{Example, NgramClassifier, TrainConfig, split};
use sha2::{Digest as _, Sha256};

use crate::api::classifiers::{CreateClassifierRequest, LabelMetrics};
use crate::error::ApiError;

pub const MIN_EXAMPLES: usize = 20;
pub const MIN_PER_LABEL: usize = 5;
pub const MAX_EXAMPLES: usize = 50_000;
pub const MAX_LABELS: usize = 16;
pub const MAX_TEXT_CHARS: usize = 4096;
const MAX_COMMENT_CHARS: usize = 1000;
/// Largest serialised model stored (the table allows 64 MiB).
const MAX_MODEL_BYTES: usize = 48 << 20;
const DEFAULT_THRESHOLD: f32 = 0.5;

/// A checked upload, ready to train on.
#[derive(Debug)]
pub struct TrainingSet {
    pub name: String,
    pub examples: Vec<Example>,
    /// Sorted, distinct.
    pub labels: Vec<String>,
    pub thresholds: BTreeMap<String, f32>,
    pub comment: Option<String>,
    pub data_sha256: String,
}

/// A trained, evaluated version, ready to store.
#[derive(Debug)]
pub struct Trained {
    pub model_json: String,
    pub metrics: Vec<LabelMetrics>,
    pub config: TrainConfig,
    pub train_examples: usize,
    pub holdout_examples: usize,
}

/// A classifier name: the shape the database checks, refused with a code before it gets there.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "invalid_name",
            "name",
            "name must be 1-64 characters of a-z 0-9 _ -, starting with a letter or digit",
        ))
    }
}

fn example_labels(
    i: usize,
    label: Option<String>,
    labels: Option<Vec<String>>,
) -> Result<Vec<String>, ApiError> {
    let mut all: Vec<String> = label
        .into_iter()
        .chain(labels.unwrap_or_default())
        .collect();
    if all.is_empty() {
        return Err(ApiError::invalid(
            "missing_label",
            format!("examples[{i}] has no label (give `label` or `labels`)"),
            Some(format!("examples[{i}].label")),
        ));
    }
    for l in &all {
        if CategoryName::parse(l).is_err() {
            return Err(ApiError::invalid(
                "invalid_label",
                format!(
                    "examples[{i}]: label {:?} must be 1-64 characters of a-z 0-9 _ - (a policy category name)",
                    l.chars().take(64).collect::<String>()
                ),
                Some(format!("examples[{i}].label")),
            ));
        }
    }
    all.sort();
    all.dedup();
    Ok(all)
}

fn check_text(i: usize, text: &str) -> Result<(), ApiError> {
    let field = || Some(format!("examples[{i}].text"));
    if text.contains('\0') {
        return Err(ApiError::invalid(
            "nul_character",
            format!("examples[{i}].text contains a NUL character"),
            field(),
        ));
    }
    if text.trim().is_empty() {
        return Err(ApiError::invalid(
            "empty_text",
            format!("examples[{i}].text is empty"),
            field(),
        ));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ApiError::invalid(
            "text_too_long",
            format!(
                "examples[{i}].text has {chars} characters; at most {MAX_TEXT_CHARS} are allowed"
            ),
            field(),
        ));
    }
    Ok(())
}

fn check_counts(examples: &[Example], labels: &[String]) -> Result<(), ApiError> {
    let field = |f: &str| Some(f.to_owned());
    if examples.len() < MIN_EXAMPLES {
        return Err(ApiError::invalid(
            "too_few_examples",
            format!(
                "{} examples given; at least {MIN_EXAMPLES} are needed",
                examples.len()
            ),
            field("examples"),
        ));
    }
    if labels.len() < 2 {
        return Err(ApiError::invalid(
            "single_label",
            "every example has the same label; at least 2 labels are needed (e.g. the category and `benign`)",
            field("examples"),
        ));
    }
    if labels.len() > MAX_LABELS {
        return Err(ApiError::invalid(
            "too_many_labels",
            format!(
                "{} labels given; at most {MAX_LABELS} are allowed",
                labels.len()
            ),
            field("examples"),
        ));
    }
    for l in labels {
        let n = examples.iter().filter(|e| e.labels.contains(l)).count();
        if n < MIN_PER_LABEL {
            return Err(ApiError::invalid(
                "too_few_examples",
                format!("label {l:?} has {n} examples; at least {MIN_PER_LABEL} are needed"),
                field("examples"),
            ));
        }
    }
    Ok(())
}

fn check_thresholds(
    given: Option<BTreeMap<String, f32>>,
    labels: &[String],
) -> Result<BTreeMap<String, f32>, ApiError> {
    let given = given.unwrap_or_default();
    for (label, t) in &given {
        let field = Some(format!(
            "thresholds.{}",
            label.chars().take(64).collect::<String>()
        ));
        if !labels.contains(label) {
            return Err(ApiError::invalid(
                "invalid_threshold",
                format!("threshold for {label:?}, which no example carries"),
                field,
            ));
        }
        if !(*t > 0.0 && *t < 1.0) {
            return Err(ApiError::invalid(
                "invalid_threshold",
                format!("threshold for {label:?} is {t}; it must be in (0, 1)"),
                field,
            ));
        }
    }
    Ok(labels
        .iter()
        .map(|l| {
            (
                l.clone(),
                given.get(l).copied().unwrap_or(DEFAULT_THRESHOLD),
            )
        })
        .collect())
}

/// Checks an upload: name, every example, counts per label, thresholds, comment.
pub fn validate(req: CreateClassifierRequest) -> Result<TrainingSet, ApiError> {
    check_name(&req.name)?;
    if req
        .comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS || c.contains('\0'))
    {
        return Err(ApiError::invalid_field(
            "invalid_comment",
            "comment",
            format!("comment must be at most {MAX_COMMENT_CHARS} characters, without NUL"),
        ));
    }
    if req.examples.len() > MAX_EXAMPLES {
        return Err(ApiError::invalid_field(
            "too_many_examples",
            "examples",
            format!(
                "{} examples given; at most {MAX_EXAMPLES} are allowed",
                req.examples.len()
            ),
        ));
    }
    let mut examples = Vec::with_capacity(req.examples.len());
    for (i, e) in req.examples.into_iter().enumerate() {
        check_text(i, &e.text)?;
        let labels = example_labels(i, e.label, e.labels)?;
        examples.push(Example {
            text: e.text,
            labels,
        });
    }
    let mut labels: Vec<String> = examples
        .iter()
        .flat_map(|e| e.labels.iter().cloned())
        .collect();
    labels.sort();
    labels.dedup();
    check_counts(&examples, &labels)?;
    let thresholds = check_thresholds(req.thresholds, &labels)?;
    let mut hash = Sha256::new();
    for e in &examples {
        // Length-prefixed fields: no two different sets hash alike.
        for field in std::iter::once(&e.text).chain(&e.labels) {
            hash.update((field.len() as u64).to_le_bytes());
            hash.update(field.as_bytes());
        }
        hash.update([0xff]);
    }
    let data_sha256 = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(TrainingSet {
        name: req.name,
        examples,
        labels,
        thresholds,
        comment: req.comment,
        data_sha256,
    })
}

/// Trains on four in five examples (a hash of the text decides, so the split is reproducible),
/// applies the thresholds and evaluates on the rest. CPU-bound: call it off the async workers.
pub fn train(set: &TrainingSet) -> Result<Trained, ApiError> {
    let config = TrainConfig::default();
    let (held_out, _) = split(&set.examples, config.holdout_every);
    if held_out.is_empty() {
        return Err(ApiError::invalid_field(
            "too_few_examples",
            "examples",
            "no example fell into the held-out split; add more examples",
        ));
    }
    let report = NgramClassifier::train(&set.examples, &config)
        .map_err(|e| ApiError::invalid_field("invalid_training_set", "examples", e.to_string()))?;
    let mut model = report.model;
    for (label, t) in &set.thresholds {
        model.set_threshold(label, *t);
    }
    let metrics = model
        .evaluate(&held_out)
        .into_iter()
        .map(|r| LabelMetrics {
            threshold: model.threshold(&r.label).unwrap_or(DEFAULT_THRESHOLD),
            label: r.label,
            precision: r.precision,
            recall: r.recall,
            f1: r.f1,
            support: r.support,
            true_positives: r.true_positives,
            false_positives: r.false_positives,
            false_negatives: r.false_negatives,
            baseline_f1: r.baseline_f1,
        })
        .collect();
    let model_json = model.to_json().map_err(ApiError::internal)?;
    if model_json.len() > MAX_MODEL_BYTES {
        return Err(ApiError::invalid_field(
            "model_too_large",
            "examples",
            format!(
                "the trained model takes {} bytes; at most {MAX_MODEL_BYTES} are stored (use fewer labels or examples)",
                model_json.len()
            ),
        ));
    }
    Ok(Trained {
        model_json,
        metrics,
        config,
        train_examples: report.train_examples,
        holdout_examples: report.holdout_examples,
    })
}
