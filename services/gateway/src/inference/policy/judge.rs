//! The judge detector: asks the served model to classify a text into a policy's categories and
//! parses its answer strictly (`none` or allowed labels, nothing else). Until the engine takes
//! response formats, the answer is free text cut at the first line; an answer outside the
//! grammar of [`JudgeSpec::answer_regex`] is an error, never a guess.

use enclave_model_core::chat::{ChatMessage, Role};
use enclave_model_core::engine::{Engine, GenerateRequest, PromptInput};
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
                stop: Some(vec!["\n".to_owned()]),
                ..RawSamplingParams::default()
            },
            max_tokens: Some(self.max_tokens),
        };
        let prepared = self
            .engine
            .prepare(request)
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
