//! The judge detector: asks the served model to classify a text into a policy's categories. The
//! answer is constrained by the engine to [`JudgeSpec::answer_regex`] (`none` or allowed labels,
//! comma separated) and parsed strictly; an answer outside that grammar is an error, never a
//! guess.

use enclave_model_core::chat::{ChatMessage, Role};
use enclave_model_core::constraints::ResponseFormat;
use enclave_model_core::engine::{Engine, GenerateRequest, PromptInput, RequestOptions};
use enclave_model_core::sampling::RawSamplingParams;
use enclave_policy::detect::{JudgeParseError, JudgeSpec, parse_judge_answer};
use enclave_policy::{Detection, DetectorKind, Policy, Scope};

use crate::error::ApiError;
use crate::inference::respond::{self, GenerationError};

use super::{SharedTrail, input_blocked};

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
            ..RequestOptions::default()
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

/// Refuses a policy whose judge detectors could report an output category: judging needs the
/// whole answer, which the streamed path does not hold back for a judge (422
/// `judge_output_unsupported`, nothing stored). Judges on input categories are enforced.
pub fn check_supported(policy: &Policy) -> Result<(), ApiError> {
    for spec in judges(policy) {
        let probes: Vec<Detection> = spec
            .categories
            .iter()
            .map(|c| Detection {
                label: c.to_string(),
                score: 1.0,
            })
            .collect();
        if !policy
            .detection_matches("", spec, &probes, Scope::Output)
            .is_empty()
        {
            return Err(ApiError::Status {
                status: actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                code: "judge_output_unsupported",
                message: format!(
                    "detector {:?}: judge detectors run on input only; give its categories `scope = \"input\"` or use a classifier detector for output",
                    spec.name
                ),
            });
        }
    }
    Ok(())
}

fn judges(policy: &Policy) -> impl Iterator<Item = &enclave_policy::DetectorSpec> {
    policy
        .detectors()
        .iter()
        .filter(|d| d.kind == DetectorKind::Judge)
}

/// Runs the policy's judge detectors over the caller's texts (`(field, text)`), in order, before
/// the engine sees them: a `block` category answers 400 `policy_blocked:<category>`; every
/// decision lands in the trail. A judge that cannot answer fails the request closed (503
/// `policy_judge_unavailable`), never open.
pub async fn judge_input(
    policy: &Policy,
    engine: &Engine,
    texts: &[(String, String)],
    trail: &SharedTrail,
) -> Result<(), ApiError> {
    for spec in judges(policy) {
        let labels: Vec<String> = spec.categories.iter().map(|c| c.to_string()).collect();
        let judge = EngineJudge::new(engine.clone(), labels);
        for (field, text) in texts {
            let detections = judge
                .classify(text)
                .await
                .map_err(|e| ApiError::Unavailable {
                    code: "policy_judge_unavailable",
                    message: format!(
                        "the content policy's judge {:?} could not classify {field}: {e}",
                        spec.name
                    ),
                    retry_after_secs: Some(1),
                })?;
            let rule = enclave_policy::RuleId::Detector(std::sync::Arc::from(format!(
                "{}(judge)",
                spec.name
            )));
            let matches: Vec<_> = policy
                .detection_matches(text, spec, &detections, Scope::Input)
                .into_iter()
                .map(|mut m| {
                    m.rule = rule.clone();
                    m
                })
                .collect();
            trail.record(Scope::Input, Some(field.as_str()), &matches);
            if let Some(m) = matches
                .iter()
                .find(|m| m.action == enclave_policy::Action::Block)
            {
                trail.block(Scope::Input, Some(field.as_str()), m);
                return Err(input_blocked(field, m));
            }
        }
    }
    Ok(())
}

/// Whether the policy has a judge to run on input.
pub fn has_judges(policy: &Policy) -> bool {
    judges(policy).next().is_some()
}

/// The texts of a prompt a judge reads, named by their request field.
pub fn prompt_texts(
    prompt: &PromptInput,
    tokenizer: &enclave_model_core::tokenizer::Tokenizer,
) -> Vec<(String, String)> {
    match prompt {
        PromptInput::Text(t) => vec![("prompt".to_owned(), t.clone())],
        PromptInput::Chat(messages) => messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.content.trim().is_empty())
            .map(|(i, m)| (format!("messages[{i}].content"), m.content.clone()))
            .collect(),
        PromptInput::Tokens(ids) => {
            vec![(
                "prompt".to_owned(),
                tokenizer.decode(ids).unwrap_or_default(),
            )]
        }
    }
}
