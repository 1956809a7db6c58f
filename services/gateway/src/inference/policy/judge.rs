//! The judge detector: asks the served model to classify a text into a policy's categories. The
//! answer is constrained by the engine to [`JudgeSpec::answer_regex`] (`none` or allowed labels,
//! comma separated) and parsed strictly; an answer outside that grammar is an error, never a
//! guess.

use enclave_model_core::chat::{ChatMessage, Role};
use enclave_model_core::constraints::ResponseFormat;
use enclave_model_core::engine::{Engine, GenerateRequest, PromptInput, RequestOptions};
use enclave_model_core::sampling::RawSamplingParams;
use enclave_policy::Detection;
use enclave_policy::detect::{JudgeParseError, JudgeSpec, parse_judge_answer};

use crate::inference::respond::{self, GenerationError};

/// Why a judge could not classify a text.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("the judge request was refused: {0}")]
    Request(String),
    #[error(transparent)]
    Generation(#[from] GenerationError),
    #[error("the judge's answer {answer:?} is not in the answer grammar")]
    Answer {
        answer: String,
        #[source]
        source: JudgeParseError,
    },
}

/// A judge over an engine (the base model; a tenant adapter once adapters are served).
pub struct EngineJudge {
    engine: Engine,
    spec: JudgeSpec,
    /// Longest answer read: enough for every label once, comma separated.
    max_tokens: u32,
}

impl EngineJudge {
    pub fn new(engine: Engine, labels: Vec<String>) -> EngineJudge {
        let chars: usize = labels.iter().map(|l| l.len() + 2).sum();
        EngineJudge {
            engine,
            spec: JudgeSpec::new(labels),
            max_tokens: u32::try_from(chars.clamp(4, 256)).unwrap_or(256),
        }
    }

    pub fn spec(&self) -> &JudgeSpec {
        &self.spec
    }

    /// Classifies `text`: the labels the model named (score 1.0 each), or why not.
    pub async fn classify(&self, text: &str) -> Result<Vec<Detection>, JudgeError> {
        let request = GenerateRequest {
            prompt: PromptInput::Chat(vec![ChatMessage::new(Role::User, self.spec.render(text))]),
            sampling: RawSamplingParams {
                temperature: Some(0.0),
                ..RawSamplingParams::default()
            },
            max_tokens: Some(self.max_tokens),
        };
        let format =
            serde_json::json!({"type": "regex", "regex": {"pattern": self.spec.answer_regex()}});
        let options = RequestOptions {
            response_format: Some(
                ResponseFormat::from_json(&format)
                    .map_err(|e| JudgeError::Request(e.to_string()))?,
            ),
        };
        let prepared = self
            .engine
            .prepare_with(request, options)
            .map_err(|e| JudgeError::Request(e.to_string()))?;
        let events = self
            .engine
            .submit(prepared)
            .map_err(|e| JudgeError::Request(e.to_string()))?;
        let done = respond::collect(events).await?;
        parse_judge_answer(&done.text, &self.spec.labels).map_err(|source| JudgeError::Answer {
            answer: done.text.chars().take(200).collect(),
            source,
        })
    }
}
