//! Engine events → OpenAI response bodies (whole, or chunk by chunk for streams).

use std::collections::BTreeMap;

use enclave_model_core::engine::{
    FinishReason, GenerationEvent, GenerationStream, TokenLogprobs, Usage,
};
use enclave_model_core::tokenizer::Tokenizer;

use crate::api::openai::{
    ChatChoice, ChatChunkChoice, ChatCompletion, ChatCompletionChunk, ChatDelta, ChatMessageOut,
    ChoiceLogprobs, Completion, CompletionChoice, CompletionLogprobs, CompletionUsage,
    TokenLogprob, TopLogprob,
};
use crate::error::ApiError;
use crate::inference::convert::{LogprobsShape, ResponsePlan};

/// Why a generation that was accepted could not complete.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error("generation failed: {0}")]
    Failed(String),
    #[error("the engine closed the stream without a final event")]
    Truncated,
}

impl From<GenerationError> for ApiError {
    fn from(e: GenerationError) -> Self {
        ApiError::internal(e)
    }
}

/// Identity of one response: the id and creation time every chunk repeats.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    pub id: String,
    pub created: i64,
    pub model: String,
}

impl ResponseMeta {
    pub fn new(prefix: &str, model: &str) -> ResponseMeta {
        ResponseMeta {
            id: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
            created: chrono::Utc::now().timestamp(),
            model: model.to_owned(),
        }
    }
}

/// One sampled token as the response reports it.
#[derive(Debug, Clone)]
pub struct SampledToken {
    pub id: u32,
    pub logprobs: Option<TokenLogprobs>,
}

/// A whole generation, read to its end.
#[derive(Debug, Clone)]
pub struct Completed {
    pub text: String,
    pub tokens: Vec<SampledToken>,
    pub finish: FinishReason,
    pub usage: Usage,
}

/// Reads the stream to its final event.
pub async fn collect(mut stream: GenerationStream) -> Result<Completed, GenerationError> {
    let mut text = String::new();
    let mut tokens = Vec::new();
    while let Some(event) = stream.next_event().await {
        match event {
            GenerationEvent::Token {
                id,
                text: piece,
                logprobs,
            } => {
                text.push_str(&piece);
                tokens.push(SampledToken { id, logprobs });
            }
            GenerationEvent::Finished {
                reason,
                usage,
                text: rest,
            } => {
                text.push_str(&rest);
                return Ok(Completed {
                    text,
                    tokens,
                    finish: reason,
                    usage,
                });
            }
            GenerationEvent::Failed { message } => return Err(GenerationError::Failed(message)),
        }
    }
    Err(GenerationError::Truncated)
}

pub fn usage(u: Usage) -> CompletionUsage {
    CompletionUsage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.prompt_tokens + u.completion_tokens,
    }
}

fn token_text(tokenizer: &Tokenizer, id: u32) -> (String, Vec<u8>) {
    let bytes = tokenizer
        .token_bytes(id)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    (String::from_utf8_lossy(&bytes).into_owned(), bytes)
}

/// Chat-shaped log-probabilities of the given tokens (`None` unless the caller asked).
pub fn chat_logprobs(
    tokenizer: &Tokenizer,
    shape: LogprobsShape,
    tokens: &[SampledToken],
) -> Option<ChoiceLogprobs> {
    if !matches!(shape, LogprobsShape::Chat { .. }) {
        return None;
    }
    let content = tokens
        .iter()
        .filter_map(|t| {
            let lp = t.logprobs.as_ref()?;
            let (token, bytes) = token_text(tokenizer, t.id);
            Some(TokenLogprob {
                token,
                logprob: lp.logprob,
                bytes,
                top_logprobs: lp
                    .top
                    .iter()
                    .map(|(_, text, logprob)| TopLogprob {
                        token: text.clone(),
                        logprob: *logprob,
                        bytes: text.as_bytes().to_vec(),
                    })
                    .collect(),
            })
        })
        .collect();
    Some(ChoiceLogprobs { content })
}

/// Legacy-shaped log-probabilities; `offset` is the text length (in chars) before these tokens.
pub fn legacy_logprobs(
    tokenizer: &Tokenizer,
    shape: LogprobsShape,
    tokens: &[SampledToken],
    mut offset: u32,
) -> Option<CompletionLogprobs> {
    if !matches!(shape, LogprobsShape::Legacy { .. }) {
        return None;
    }
    let mut out = CompletionLogprobs::default();
    for t in tokens {
        let Some(lp) = t.logprobs.as_ref() else {
            continue;
        };
        let (token, _) = token_text(tokenizer, t.id);
        out.text_offset.push(offset);
        offset += u32::try_from(token.chars().count()).unwrap_or(u32::MAX);
        out.tokens.push(token);
        out.token_logprobs.push(lp.logprob);
        out.top_logprobs.push(
            lp.top
                .iter()
                .map(|(_, text, logprob)| (text.clone(), *logprob))
                .collect::<BTreeMap<_, _>>(),
        );
    }
    Some(out)
}

pub fn chat_completion(
    meta: &ResponseMeta,
    plan: &ResponsePlan,
    tokenizer: &Tokenizer,
    done: Completed,
) -> ChatCompletion {
    ChatCompletion {
        id: meta.id.clone(),
        object: "chat.completion".to_owned(),
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![ChatChoice {
            index: 0,
            logprobs: chat_logprobs(tokenizer, plan.logprobs, &done.tokens),
            message: ChatMessageOut {
                role: "assistant".to_owned(),
                content: done.text,
            },
            finish_reason: done.finish.as_openai_str().to_owned(),
            format_incomplete: super::format::incomplete_flag(&done.finish),
        }],
        usage: usage(done.usage),
        system_fingerprint: None,
    }
}

pub fn completion(
    meta: &ResponseMeta,
    plan: &ResponsePlan,
    tokenizer: &Tokenizer,
    done: Completed,
) -> Completion {
    Completion {
        id: meta.id.clone(),
        object: "text_completion".to_owned(),
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![CompletionChoice {
            index: 0,
            logprobs: legacy_logprobs(tokenizer, plan.logprobs, &done.tokens, 0),
            text: done.text,
            finish_reason: Some(done.finish.as_openai_str().to_owned()),
            format_incomplete: super::format::incomplete_flag(&done.finish),
        }],
        usage: Some(usage(done.usage)),
        system_fingerprint: None,
    }
}

pub fn chat_chunk(
    meta: &ResponseMeta,
    delta: ChatDelta,
    logprobs: Option<ChoiceLogprobs>,
    finish: Option<&FinishReason>,
) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: meta.id.clone(),
        object: "chat.completion.chunk".to_owned(),
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![ChatChunkChoice {
            index: 0,
            delta,
            logprobs,
            finish_reason: finish.map(|f| f.as_openai_str().to_owned()),
            format_incomplete: finish.and_then(super::format::incomplete_flag),
        }],
        usage: None,
        system_fingerprint: None,
    }
}

pub fn chat_usage_chunk(meta: &ResponseMeta, u: Usage) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: meta.id.clone(),
        object: "chat.completion.chunk".to_owned(),
        created: meta.created,
        model: meta.model.clone(),
        choices: Vec::new(),
        usage: Some(usage(u)),
        system_fingerprint: None,
    }
}

pub fn completion_chunk(
    meta: &ResponseMeta,
    text: String,
    logprobs: Option<CompletionLogprobs>,
    finish: Option<&FinishReason>,
) -> Completion {
    Completion {
        id: meta.id.clone(),
        object: "text_completion".to_owned(),
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![CompletionChoice {
            index: 0,
            text,
            logprobs,
            finish_reason: finish.map(|f| f.as_openai_str().to_owned()),
            format_incomplete: finish.and_then(super::format::incomplete_flag),
        }],
        usage: None,
        system_fingerprint: None,
    }
}

pub fn completion_usage_chunk(meta: &ResponseMeta, u: Usage) -> Completion {
    Completion {
        id: meta.id.clone(),
        object: "text_completion".to_owned(),
        created: meta.created,
        model: meta.model.clone(),
        choices: Vec::new(),
        usage: Some(usage(u)),
        system_fingerprint: None,
    }
}
