//! A one-vs-rest logistic-regression classifier over hashed character n-grams.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::features::{SplitMix, featurize, text_hash};
use super::{Detection, Detector, DetectorError};

/// One labelled example (one line of the training JSONL).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub text: String,
    #[serde(default)]
    pub labels: Vec<String>,
}

/// Training hyper-parameters. Same config + same data = same model, bit for bit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainConfig {
    pub ngram_min: usize,
    pub ngram_max: usize,
    /// Hash buckets (power of two recommended).
    pub dims: u32,
    pub epochs: usize,
    pub learning_rate: f32,
    /// L2 penalty applied to the weights touched by each update.
    pub l2: f32,
    pub seed: u64,
    /// One example in `holdout_every` (by text hash) is held out for evaluation.
    pub holdout_every: u64,
    /// Default decision threshold per label.
    pub threshold: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            ngram_min: 1,
            ngram_max: 3,
            dims: 1 << 18,
            epochs: 12,
            learning_rate: 0.5,
            l2: 1e-5,
            seed: 7,
            holdout_every: 5,
            threshold: 0.5,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct LabelModel {
    bias: f32,
    threshold: f32,
    /// Non-zero weights only: (bucket, weight), sorted by bucket.
    weights: Vec<(u32, f32)>,
}

/// A trained classifier; serialise with serde (JSON) to version it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NgramClassifier {
    pub format_version: u32,
    ngram_min: usize,
    ngram_max: usize,
    dims: u32,
    labels: BTreeMap<String, LabelModel>,
}

/// Held-out quality of one label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelReport {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Held-out examples carrying the label.
    pub support: usize,
    /// Held-out confusion counts at the label's threshold.
    #[serde(default)]
    pub true_positives: usize,
    #[serde(default)]
    pub false_positives: usize,
    #[serde(default)]
    pub false_negatives: usize,
    /// F1 of the trivial baseline that predicts the label for every held-out example (recall 1,
    /// precision = the label's share): a useful model scores above it.
    #[serde(default)]
    pub baseline_f1: f64,
}

/// Training outcome: the model and its held-out evaluation.
#[derive(Clone, Debug)]
pub struct TrainReport {
    pub model: NgramClassifier,
    pub train_examples: usize,
    pub holdout_examples: usize,
    pub per_label: Vec<LabelReport>,
}

/// Why training data was rejected.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("line {line}: not a training example: {source}")]
    BadLine {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("training data has no labelled examples")]
    NoLabels,
    #[error("invalid training config: {0}")]
    Config(&'static str),
}

/// Parses JSONL training data (`{"text": ..., "labels": [...]}` per line; blank lines skipped).
pub fn parse_jsonl(data: &str) -> Result<Vec<Example>, TrainError> {
    data.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| TrainError::BadLine {
                line: i + 1,
                source,
            })
        })
        .collect()
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

impl NgramClassifier {
    /// Trains on the examples not held out and evaluates on the held-out ones.
    pub fn train(examples: &[Example], config: &TrainConfig) -> Result<TrainReport, TrainError> {
        if config.ngram_min == 0
            || config.ngram_max < config.ngram_min
            || config.dims == 0
            || config.holdout_every < 2
        {
            return Err(TrainError::Config(
                "need 1 <= ngram_min <= ngram_max, dims > 0, holdout_every >= 2",
            ));
        }
        let labels: Vec<String> = {
            let mut l: Vec<String> = examples
                .iter()
                .flat_map(|e| e.labels.iter().cloned())
                .collect();
            l.sort();
            l.dedup();
            l
        };
        if labels.is_empty() {
            return Err(TrainError::NoLabels);
        }
        let (test, train) = split(examples, config.holdout_every);
        let feats: Vec<Vec<(u32, f32)>> = train
            .iter()
            .map(|e| featurize(&e.text, config.ngram_min, config.ngram_max, config.dims))
            .collect();
        let mut models = BTreeMap::new();
        for label in &labels {
            let y: Vec<f32> = train
                .iter()
                .map(|e| if e.labels.contains(label) { 1.0 } else { 0.0 })
                .collect();
            models.insert(label.clone(), train_one(&feats, &y, config));
        }
        let model = NgramClassifier {
            format_version: 1,
            ngram_min: config.ngram_min,
            ngram_max: config.ngram_max,
            dims: config.dims,
            labels: models,
        };
        let per_label = model.evaluate(&test);
        Ok(TrainReport {
            model,
            train_examples: train.len(),
            holdout_examples: test.len(),
            per_label,
        })
    }

    /// Evaluates every label on `test` at the labels' current thresholds (after
    /// [`Self::set_threshold`], re-evaluate to report what will be enforced).
    pub fn evaluate(&self, test: &[&Example]) -> Vec<LabelReport> {
        let predicted: Vec<Vec<String>> = test
            .iter()
            .map(|e| self.labels_above_threshold(&e.text))
            .collect();
        self.labels
            .keys()
            .map(|l| evaluate_label(test, &predicted, l))
            .collect()
    }

    /// The decision threshold of a label.
    pub fn threshold(&self, label: &str) -> Option<f32> {
        self.labels.get(label).map(|m| m.threshold)
    }
}

/// Splits examples deterministically by text hash: (held out, training), one in `every` held
/// out. The same text always lands on the same side, so duplicates never straddle the split.
pub fn split(examples: &[Example], every: u64) -> (Vec<&Example>, Vec<&Example>) {
    examples
        .iter()
        .partition(|e| text_hash(&e.text).is_multiple_of(every.max(1)))
}

fn evaluate_label(test: &[&Example], predicted: &[Vec<String>], label: &str) -> LabelReport {
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for (e, p) in test.iter().zip(predicted) {
        let predicted = p.iter().any(|l| l == label);
        let actual = e.labels.iter().any(|l| l == label);
        match (predicted, actual) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
    }
    let ratio = |a: usize, b: usize| {
        if a + b == 0 {
            0.0
        } else {
            a as f64 / (a + b) as f64
        }
    };
    let (precision, recall) = (ratio(tp, fp), ratio(tp, fn_));
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    let share = ratio(tp + fn_, test.len().saturating_sub(tp + fn_));
    LabelReport {
        label: label.to_owned(),
        precision,
        recall,
        f1,
        support: tp + fn_,
        true_positives: tp,
        false_positives: fp,
        false_negatives: fn_,
        baseline_f1: if share == 0.0 {
            0.0
        } else {
            2.0 * share / (share + 1.0)
        },
    }
}

impl NgramClassifier {
    /// Score per label in [0, 1].
    pub fn scores(&self, text: &str) -> Vec<Detection> {
        let x = featurize(text, self.ngram_min, self.ngram_max, self.dims);
        self.labels
            .iter()
            .map(|(label, m)| {
                let mut z = m.bias;
                for &(b, v) in &x {
                    if let Ok(i) = m.weights.binary_search_by_key(&b, |w| w.0) {
                        z += m.weights[i].1 * v;
                    }
                }
                Detection {
                    label: label.clone(),
                    score: sigmoid(z),
                }
            })
            .collect()
    }

    /// Labels whose score reaches their threshold.
    pub fn labels_above_threshold(&self, text: &str) -> Vec<String> {
        self.scores(text)
            .into_iter()
            .filter(|d| {
                self.labels
                    .get(&d.label)
                    .is_some_and(|m| d.score >= m.threshold)
            })
            .map(|d| d.label)
            .collect()
    }

    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.labels.keys().map(String::as_str)
    }

    /// Sets the decision threshold of one label; false if the label is unknown or the value is
    /// outside (0, 1).
    pub fn set_threshold(&mut self, label: &str, threshold: f32) -> bool {
        match self.labels.get_mut(label) {
            Some(m) if threshold > 0.0 && threshold < 1.0 => {
                m.threshold = threshold;
                true
            }
            _ => false,
        }
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }
}

/// Plain SGD on the logistic loss, examples shuffled per epoch with the seeded PRNG.
fn train_one(feats: &[Vec<(u32, f32)>], y: &[f32], config: &TrainConfig) -> LabelModel {
    let mut w = vec![0f32; config.dims as usize];
    let mut bias = 0f32;
    let mut order: Vec<usize> = (0..feats.len()).collect();
    let mut rng = SplitMix(config.seed);
    for epoch in 0..config.epochs {
        rng.shuffle(&mut order);
        let lr = config.learning_rate / (1.0 + epoch as f32 * 0.1);
        for &i in &order {
            let x = &feats[i];
            let z = bias + x.iter().map(|&(b, v)| w[b as usize] * v).sum::<f32>();
            let g = sigmoid(z) - y[i];
            for &(b, v) in x {
                let wi = &mut w[b as usize];
                *wi -= lr * (g * v + config.l2 * *wi);
            }
            bias -= lr * g;
        }
    }
    let weights = w
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 0.0)
        .map(|(i, v)| (i as u32, *v))
        .collect();
    LabelModel {
        bias,
        threshold: config.threshold,
        weights,
    }
}

impl Detector for NgramClassifier {
    fn detect(&self, text: &str) -> Result<Vec<Detection>, DetectorError> {
        Ok(self.scores(text))
    }
}
