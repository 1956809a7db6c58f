//! OpenAI request DTOs → the engine's [`GenerateRequest`] plus how to answer. Everything the
//! engine does not check itself (n, echo, roles, content parts, logit_bias keys) is checked here
//! with a field-named error; ranges of sampling values are checked by the engine's `prepare`.

use std::collections::BTreeMap;
use std::str::FromStr as _;

use enclave_model_core::chat::{ChatMessage, Role};
use enclave_model_core::engine::{GenerateRequest, PromptInput};
use enclave_model_core::sampling::RawSamplingParams;

use crate::api::openai::{
    ChatCompletionRequest, CompletionRequest, MessageContent, PromptSpec, StreamOptions,
    StringOrArray,
};
use crate::error::ApiError;

/// The legacy completions endpoint's default when `max_tokens` is absent (OpenAI's value).
const COMPLETIONS_DEFAULT_MAX_TOKENS: u32 = 16;
/// Most alternatives per token a caller may ask for (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: u8 = 20;

/// Which log-probability shape the response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogprobsShape {
    None,
    /// `choices[].logprobs.content[]` with `top` alternatives.
    Chat {
        top: u8,
    },
    /// Legacy `tokens`/`token_logprobs`/`top_logprobs`/`text_offset`.
    Legacy {
        top: u8,
    },
}

/// How the caller wants the answer.
#[derive(Debug, Clone)]
pub struct ResponsePlan {
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub logprobs: LogprobsShape,
    pub format: super::format::RequestedFormat,
}

fn stream_plan(
    stream: Option<bool>,
    options: Option<StreamOptions>,
) -> Result<(bool, bool), ApiError> {
    let stream = stream.unwrap_or(false);
    let include_usage = options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    if options.is_some() && !stream {
        return Err(ApiError::invalid_field(
            "invalid_stream_options",
            "stream_options",
            "stream_options is only allowed when stream is true",
        ));
    }
    Ok((stream, include_usage))
}

fn only_one(field: &str, value: Option<u32>) -> Result<(), ApiError> {
    match value {
        None | Some(1) => Ok(()),
        Some(n) => Err(ApiError::invalid_field(
            "unsupported_n",
            field,
            format!("{field} must be 1 (one choice per request is supported), got {n}"),
        )),
    }
}

fn logit_bias(raw: Option<BTreeMap<String, f32>>) -> Result<Option<BTreeMap<u32, f32>>, ApiError> {
    raw.map(|map| {
        map.into_iter()
            .map(|(key, bias)| {
                key.trim().parse::<u32>().map(|id| (id, bias)).map_err(|_| {
                    ApiError::invalid_field(
                        "invalid_logit_bias",
                        "logit_bias",
                        format!("logit_bias keys must be token ids, got {key:?}"),
                    )
                })
            })
            .collect()
    })
    .transpose()
}

struct Sampling {
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<u32>,
    min_p: Option<f32>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    repetition_penalty: Option<f32>,
    logit_bias: Option<BTreeMap<String, f32>>,
    seed: Option<u64>,
    stop: Option<StringOrArray>,
    logprobs: Option<u8>,
}

impl Sampling {
    fn into_raw(self) -> Result<RawSamplingParams, ApiError> {
        Ok(RawSamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            logit_bias: logit_bias(self.logit_bias)?,
            seed: self.seed,
            stop: self.stop.map(StringOrArray::into_vec),
            logprobs: self.logprobs,
            ..RawSamplingParams::default()
        })
    }
}

fn top_logprobs_in_range(field: &str, top: u8) -> Result<u8, ApiError> {
    if top > MAX_TOP_LOGPROBS {
        return Err(ApiError::invalid_field(
            "invalid_logprobs",
            field,
            format!("{field} must be from 0 to {MAX_TOP_LOGPROBS}, got {top}"),
        ));
    }
    Ok(top)
}

fn chat_message(
    index: usize,
    role: &str,
    content: MessageContent,
) -> Result<ChatMessage, ApiError> {
    let role = Role::from_str(role).map_err(|_| {
        ApiError::invalid_field(
            "invalid_role",
            &format!("messages[{index}].role"),
            format!("role must be system, user, assistant or tool, got {role:?}"),
        )
    })?;
    let content = match content {
        MessageContent::Text(text) => text,
        MessageContent::Parts(parts) => {
            let mut text = String::new();
            for (p, part) in parts.into_iter().enumerate() {
                if part.kind != "text" {
                    return Err(ApiError::invalid_field(
                        "unsupported_content_part",
                        &format!("messages[{index}].content[{p}].type"),
                        format!("only text content parts are supported, got {:?}", part.kind),
                    ));
                }
                text.push_str(&part.text);
            }
            text
        }
    };
    Ok(ChatMessage::new(role, content))
}

/// `POST /v1/chat/completions` body → engine request and response plan.
pub fn chat_request(
    req: ChatCompletionRequest,
) -> Result<(GenerateRequest, ResponsePlan), ApiError> {
    only_one("n", req.n)?;
    let format = super::format::RequestedFormat::parse(req.response_format)?;
    let (stream, include_usage) = stream_plan(req.stream, req.stream_options)?;
    if req.messages.is_empty() {
        return Err(ApiError::invalid_field(
            "empty_messages",
            "messages",
            "messages must not be empty",
        ));
    }
    let messages = req
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| chat_message(i, &m.role, m.content))
        .collect::<Result<Vec<_>, _>>()?;
    let logprobs = match (req.logprobs.unwrap_or(false), req.top_logprobs) {
        (false, Some(_)) => {
            return Err(ApiError::invalid_field(
                "invalid_logprobs",
                "top_logprobs",
                "top_logprobs requires logprobs to be true",
            ));
        }
        (false, None) => LogprobsShape::None,
        (true, top) => LogprobsShape::Chat {
            top: top_logprobs_in_range("top_logprobs", top.unwrap_or(0))?,
        },
    };
    let max_tokens = match (req.max_completion_tokens, req.max_tokens) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid_field(
                "invalid_max_tokens",
                "max_completion_tokens",
                format!("max_completion_tokens ({a}) and max_tokens ({b}) disagree; send one"),
            ));
        }
        (a, b) => a.or(b),
    };
    let sampling = Sampling {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        min_p: req.min_p,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        repetition_penalty: req.repetition_penalty,
        logit_bias: req.logit_bias,
        seed: req.seed,
        stop: req.stop,
        logprobs: engine_logprobs(logprobs),
    };
    let generate = GenerateRequest {
        prompt: PromptInput::Chat(messages),
        sampling: sampling.into_raw()?,
        max_tokens,
    };
    Ok((
        generate,
        ResponsePlan {
            model: req.model,
            stream,
            include_usage,
            logprobs,
            format,
        },
    ))
}

/// `POST /v1/completions` body → engine request and response plan.
pub fn completion_request(
    req: CompletionRequest,
) -> Result<(GenerateRequest, ResponsePlan), ApiError> {
    only_one("n", req.n)?;
    only_one("best_of", req.best_of)?;
    if req.echo == Some(true) {
        return Err(ApiError::invalid_field(
            "unsupported_echo",
            "echo",
            "echo is not supported",
        ));
    }
    let format = super::format::RequestedFormat::parse(req.response_format)?;
    let (stream, include_usage) = stream_plan(req.stream, req.stream_options)?;
    let prompt = match req.prompt {
        PromptSpec::Text(text) => PromptInput::Text(text),
        PromptSpec::Texts(mut texts) if texts.len() == 1 => PromptInput::Text(texts.remove(0)),
        PromptSpec::Texts(texts) => {
            return Err(ApiError::invalid_field(
                "unsupported_batch_prompt",
                "prompt",
                format!(
                    "prompt must be one string (or an array of one), got {} strings",
                    texts.len()
                ),
            ));
        }
        PromptSpec::Tokens(ids) => PromptInput::Tokens(ids),
    };
    let logprobs = match req.logprobs {
        None => LogprobsShape::None,
        Some(top) => LogprobsShape::Legacy {
            top: top_logprobs_in_range("logprobs", top)?,
        },
    };
    let sampling = Sampling {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        min_p: req.min_p,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        repetition_penalty: req.repetition_penalty,
        logit_bias: req.logit_bias,
        seed: req.seed,
        stop: req.stop,
        logprobs: engine_logprobs(logprobs),
    };
    let generate = GenerateRequest {
        prompt,
        sampling: sampling.into_raw()?,
        max_tokens: Some(req.max_tokens.unwrap_or(COMPLETIONS_DEFAULT_MAX_TOKENS)),
    };
    Ok((
        generate,
        ResponsePlan {
            model: req.model,
            stream,
            include_usage,
            logprobs,
            format,
        },
    ))
}

fn engine_logprobs(shape: LogprobsShape) -> Option<u8> {
    match shape {
        LogprobsShape::None => None,
        LogprobsShape::Chat { top } | LogprobsShape::Legacy { top } => Some(top),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(json: serde_json::Value) -> Result<(GenerateRequest, ResponsePlan), ApiError> {
        chat_request(serde_json::from_value(json).expect("valid DTO"))
    }

    #[test]
    fn chat_maps_fields() {
        let (req, plan) = chat(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "max_completion_tokens": 5, "stop": "x", "seed": 7, "logprobs": true, "top_logprobs": 2,
            "logit_bias": {"42": -100}, "stream": true, "stream_options": {"include_usage": true}
        }))
        .expect("valid");
        assert_eq!(req.max_tokens, Some(5));
        assert_eq!(req.sampling.stop, Some(vec!["x".to_owned()]));
        assert_eq!(req.sampling.seed, Some(7));
        assert_eq!(req.sampling.logprobs, Some(2));
        assert_eq!(
            req.sampling.logit_bias,
            Some(BTreeMap::from([(42, -100.0)]))
        );
        assert!(plan.stream && plan.include_usage);
        assert_eq!(plan.logprobs, LogprobsShape::Chat { top: 2 });
        let PromptInput::Chat(messages) = req.prompt else {
            panic!("chat prompt")
        };
        assert_eq!(messages[0].content, "hi");
    }

    #[test]
    fn chat_refusals_name_code_and_field() {
        let base = |extra: serde_json::Value| {
            let mut v =
                serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            for (k, val) in extra.as_object().expect("object") {
                v[k] = val.clone();
            }
            v
        };
        let cases = [
            (base(serde_json::json!({"n": 2})), "unsupported_n", "n"),
            (
                base(serde_json::json!({"messages": []})),
                "empty_messages",
                "messages",
            ),
            (
                base(serde_json::json!({"messages": [{"role": "boss", "content": "x"}]})),
                "invalid_role",
                "messages[0].role",
            ),
            (
                base(serde_json::json!({"top_logprobs": 3})),
                "invalid_logprobs",
                "top_logprobs",
            ),
            (
                base(serde_json::json!({"logprobs": true, "top_logprobs": 21})),
                "invalid_logprobs",
                "top_logprobs",
            ),
            (
                base(serde_json::json!({"logit_bias": {"abc": 1}})),
                "invalid_logit_bias",
                "logit_bias",
            ),
            (
                base(serde_json::json!({"stream_options": {"include_usage": true}})),
                "invalid_stream_options",
                "stream_options",
            ),
            (
                base(serde_json::json!({"max_tokens": 3, "max_completion_tokens": 4})),
                "invalid_max_tokens",
                "max_completion_tokens",
            ),
            (
                base(
                    serde_json::json!({"messages": [{"role": "user", "content": [{"type": "image_url", "text": ""}]}]}),
                ),
                "unsupported_content_part",
                "messages[0].content[0].type",
            ),
        ];
        for (body, code, field) in cases {
            let err = chat(body.clone()).expect_err("must be refused");
            assert_eq!(err.code(), code, "{body}");
            assert_eq!(err.field(), Some(field), "{body}");
        }
    }

    #[test]
    fn completion_defaults_and_refusals() {
        let req: CompletionRequest =
            serde_json::from_value(serde_json::json!({"model": "m", "prompt": ["one"]}))
                .expect("valid DTO");
        let (generate, plan) = completion_request(req).expect("valid");
        assert_eq!(generate.max_tokens, Some(16));
        assert!(!plan.stream);
        assert!(matches!(generate.prompt, PromptInput::Text(ref t) if t == "one"));

        for (body, code) in [
            (
                serde_json::json!({"model": "m", "prompt": ["a", "b"]}),
                "unsupported_batch_prompt",
            ),
            (
                serde_json::json!({"model": "m", "prompt": "a", "echo": true}),
                "unsupported_echo",
            ),
            (
                serde_json::json!({"model": "m", "prompt": "a", "best_of": 3}),
                "unsupported_n",
            ),
            (
                serde_json::json!({"model": "m", "prompt": "a", "logprobs": 25}),
                "invalid_logprobs",
            ),
        ] {
            let req: CompletionRequest = serde_json::from_value(body.clone()).expect("valid DTO");
            let err = completion_request(req).expect_err("must be refused");
            assert_eq!(err.code(), code, "{body}");
        }
    }
}
