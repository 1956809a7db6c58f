//! Bodies of the classifier routes: training a tenant classifier from labelled examples, its
//! versions with their held-out metrics, and dry-run classification.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Trains a new version of the classifier `name` from labelled examples. The same examples can
/// also be sent as the whole body in JSON Lines (`application/x-ndjson`, one example object per
/// line) or CSV (`text/csv`, a header row naming `text` and `label` columns) with `name` (and
/// optionally `thresholds` as `label:value,...` and `comment`) in the query string.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClassifierRequest {
    /// 1–64 characters of `a-z 0-9 _ -`, starting with a letter or digit.
    #[schema(example = "abuse")]
    pub name: String,
    /// At least 20 examples, at least 2 labels, at least 5 examples per label.
    pub examples: Vec<TrainingExample>,
    /// Decision threshold per label, in (0, 1); default 0.5. Metrics are reported at these.
    #[serde(default)]
    pub thresholds: Option<BTreeMap<String, f32>>,
    /// Free text kept with the version (at most 1000 characters).
    #[serde(default)]
    pub comment: Option<String>,
}

/// One labelled text. Give `label` (one) or `labels` (several); each label is a category name
/// (`a-z 0-9 _ -`), so a policy can map it to a category of the same name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingExample {
    /// At most 4096 characters; no NUL characters.
    pub text: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

/// Held-out quality of one label at its threshold.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LabelMetrics {
    pub label: String,
    /// Score at or above which the label is reported.
    pub threshold: f32,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Held-out examples carrying the label.
    pub support: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    /// F1 of always predicting the label on the held-out split (the trivial baseline).
    pub baseline_f1: f64,
}

/// A trained classifier version. Versions never change; train again for a new one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClassifierVersion {
    pub tenant_id: Uuid,
    pub name: String,
    /// 1, 2, ... per name, in training order.
    pub version: u32,
    /// What a policy's classifier detector writes in `model` to use exactly this version
    /// (`<name>@v<version>`; `<name>` alone means the latest version).
    pub reference: String,
    pub labels: Vec<String>,
    /// Examples trained on.
    pub train_examples: u32,
    /// Examples held out (one in five, chosen by a hash of the text) and evaluated on.
    pub holdout_examples: u32,
    /// Held-out metrics per label.
    pub metrics: Vec<LabelMetrics>,
    /// SHA-256 of the training set as parsed (hex).
    pub data_sha256: String,
    pub comment: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClassifierVersionList {
    /// By name, newest version first.
    pub data: Vec<ClassifierVersion>,
}

/// A text to classify with a stored version, without generating anything.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    /// At most 1 MiB.
    pub text: String,
}

/// One label's score for a text.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LabelScore {
    pub label: String,
    /// In [0, 1].
    pub score: f32,
    pub threshold: f32,
    /// `score >= threshold`.
    pub detected: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClassifyResult {
    pub reference: String,
    pub scores: Vec<LabelScore>,
    /// The labels detected, sorted.
    pub labels: Vec<String>,
}
