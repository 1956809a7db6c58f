//! OpenAI-compatible request and response bodies (`/v1/chat/completions`, `/v1/completions`,
//! `/v1/models`). Shapes follow the OpenAI API so its SDKs work unchanged; Enclave's extensions
//! (`top_k`, `min_p`, `repetition_penalty`) are optional fields they never send.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A string or an array of strings (`stop`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StringOrArray {
    One(String),
    Many(Vec<String>),
}

impl StringOrArray {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StringOrArray::One(s) => vec![s],
            StringOrArray::Many(v) => v,
        }
    }
}

/// Message content: a string, or an array of text parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a multi-part message; only `text` parts are supported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentPart {
    /// Must be `text`.
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatMessageIn {
    /// `system`, `user`, `assistant` or `tool`.
    #[schema(example = "user")]
    pub role: String,
    pub content: MessageContent,
    /// Accepted for compatibility; not shown to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` (and no choices) before `[DONE]`.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatCompletionRequest {
    /// The served model's id (see `GET /v1/models`).
    pub model: String,
    pub messages: Vec<ChatMessageIn>,
    /// Deprecated OpenAI name of `max_completion_tokens`.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Return log-probabilities of the sampled tokens.
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// 0 to 20 alternatives per token; needs `logprobs: true`.
    #[serde(default)]
    pub top_logprobs: Option<u8>,
    /// Only 1 is supported.
    #[serde(default)]
    pub n: Option<u32>,
    /// The caller's end-user id; recorded, not interpreted.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub top_k: Option<u32>,
    #[serde(default)]
    pub min_p: Option<f32>,
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
    #[serde(default)]
    pub logit_bias: Option<BTreeMap<String, f32>>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stop: Option<StringOrArray>,
    /// Output format the answer must follow (constrained decoding): see `ResponseFormatSpec`.
    /// Absent: the selected adapter alias's default, else the API key's default, else text.
    #[serde(default)]
    #[schema(value_type = Option<crate::api::format::ResponseFormatSpec>)]
    pub response_format: Option<serde_json::Value>,
}

/// The prompt of a legacy completion: a string, an array holding one string, or token ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PromptSpec {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: PromptSpec,
    /// Default 16, as in the OpenAI API.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// 0 to 20: return the sampled token's log-probability and this many alternatives.
    #[serde(default)]
    pub logprobs: Option<u8>,
    /// Only `false` is supported.
    #[serde(default)]
    pub echo: Option<bool>,
    /// Only 1 is supported.
    #[serde(default)]
    pub n: Option<u32>,
    /// Only 1 is supported.
    #[serde(default)]
    pub best_of: Option<u32>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub top_k: Option<u32>,
    #[serde(default)]
    pub min_p: Option<f32>,
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
    #[serde(default)]
    pub logit_bias: Option<BTreeMap<String, f32>>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stop: Option<StringOrArray>,
    /// Output format the answer must follow (constrained decoding): see `ResponseFormatSpec`.
    /// Absent: the selected adapter alias's default, else the API key's default, else text.
    #[serde(default)]
    #[schema(value_type = Option<crate::api::format::ResponseFormatSpec>)]
    pub response_format: Option<serde_json::Value>,
}

// ------------------------------------------------------------------ responses

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatMessageOut {
    /// Always `assistant`.
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChoiceLogprobs {
    pub content: Vec<TokenLogprob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChoice {
    pub index: u32,
    pub message: ChatMessageOut,
    /// Present (possibly null) as in the OpenAI API.
    pub logprobs: Option<ChoiceLogprobs>,
    /// `stop` or `length`.
    pub finish_reason: String,
    /// `true` when a `response_format` output was cut off mid-structure (`finish_reason:
    /// "length"`): the text does not follow the format. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_incomplete: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-...`
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: CompletionUsage,
    pub system_fingerprint: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChunkChoice {
    pub index: u32,
    pub delta: ChatDelta,
    pub logprobs: Option<ChoiceLogprobs>,
    /// Null until the last content chunk.
    pub finish_reason: Option<String>,
    /// `true` when a `response_format` output was cut off mid-structure (`finish_reason:
    /// "length"`): the text does not follow the format. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_incomplete: Option<bool>,
}

/// One Server-Sent Event of a streamed chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionChunk {
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChatChunkChoice>,
    /// Only on the final chunk, when `stream_options.include_usage` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<CompletionUsage>,
    pub system_fingerprint: Option<String>,
}

/// Legacy completion log-probabilities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<f32>,
    pub top_logprobs: Vec<BTreeMap<String, f32>>,
    pub text_offset: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionChoice {
    pub index: u32,
    pub text: String,
    pub logprobs: Option<CompletionLogprobs>,
    /// `stop` or `length`; null on non-final stream chunks.
    pub finish_reason: Option<String>,
    /// `true` when a `response_format` output was cut off mid-structure (`finish_reason:
    /// "length"`): the text does not follow the format. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_incomplete: Option<bool>,
}

/// A legacy completion (also each streamed chunk, with `object` = `text_completion`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Completion {
    /// `cmpl-...`
    pub id: String,
    /// Always `text_completion`.
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<CompletionUsage>,
    pub system_fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Model {
    pub id: String,
    /// Always `model`.
    pub object: String,
    pub created: i64,
    pub owned_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Model>,
}
