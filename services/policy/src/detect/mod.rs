//! Model-based detection behind one trait.

/// One label reported by a detector for a whole text.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detection {
    pub label: String,
    /// Probability-like score in [0, 1].
    pub score: f32,
}

/// Why a detector could not answer.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("detector backend failed: {0}")]
    Backend(String),
}

/// A model-based detector. Synchronous: the gateway runs slow ones on a blocking pool.
pub trait Detector: Send + Sync {
    fn detect(&self, text: &str) -> Result<Vec<Detection>, DetectorError>;
}

pub(crate) mod features;
mod judge;
mod ngram;

pub use judge::{DEFAULT_JUDGE_PROMPT, JudgeParseError, JudgeSpec, parse_judge_answer};
pub use ngram::{
    Example, LabelReport, NgramClassifier, TrainConfig, TrainError, TrainReport, parse_jsonl, split,
};
