//! What a caller asks for, and its validated form. The engine only runs [`PreparedRequest`]s,
//! which can only be built by [`super::Engine::prepare`], so every limit is checked before a
//! request takes a place in the queue.

use crate::adapters::AdapterLease;
use crate::chat::ChatMessage;
use crate::constraints::{Constraint, ConstraintError, ResponseFormat};
use crate::sampling::{RawSamplingParams, SamplingError, SamplingParams};

/// The prompt as the caller gives it.
#[derive(Debug, Clone)]
pub enum PromptInput {
    /// Raw text; special-token markup in it is NOT parsed (a user cannot inject `<|im_start|>`).
    Text(String),
    /// Chat messages, rendered with the model's chat template.
    Chat(Vec<ChatMessage>),
    /// Already tokenized ids (checked against the vocabulary).
    Tokens(Vec<u32>),
}

/// An unvalidated generation request.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub prompt: PromptInput,
    pub sampling: RawSamplingParams,
    /// `None` means "until the context is full".
    pub max_tokens: Option<u32>,
}

/// What a request asks for beyond the prompt and sampling: the output format it must follow.
/// Kept apart from [`GenerateRequest`] so callers that need none of it are unaffected.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// Constrained output (`None` or [`ResponseFormat::Text`]: free text). Compiled by
    /// [`super::Engine::prepare_with`], so a bad format is refused before generation.
    pub response_format: Option<ResponseFormat>,
    /// The LoRA adapter version to run with (`None`: the base model). A lease pins the version
    /// in the engine's resident set until the request ends, so it finishes on the version it
    /// started with. Get one from [`super::Engine::acquire_adapter`].
    pub adapter: Option<AdapterLease>,
}

/// A request that passed every check: tokens fit the context, sampling values are in range,
/// the response format compiled.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    pub(crate) prompt_ids: Vec<u32>,
    pub(crate) sampling: SamplingParams,
    pub(crate) max_tokens: u32,
    /// The compiled output format, at its start state.
    pub(crate) constraint: Option<Constraint>,
    /// The adapter version the request runs with; held until the sequence ends.
    pub(crate) adapter: Option<AdapterLease>,
}

impl PreparedRequest {
    pub fn prompt_ids(&self) -> &[u32] {
        &self.prompt_ids
    }

    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
    }

    pub fn sampling(&self) -> &SamplingParams {
        &self.sampling
    }

    /// The content address of the adapter version the request runs with, if any.
    pub fn adapter_id(&self) -> Option<&str> {
        self.adapter.as_ref().map(AdapterLease::id)
    }

    /// Whether the output is constrained to a format.
    pub fn is_constrained(&self) -> bool {
        self.constraint.is_some()
    }
}

/// A caller fault found while preparing a request. Every variant maps to a 4xx.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("prompt is empty")]
    EmptyPrompt,
    #[error("prompt has {tokens} tokens; the model's context holds {limit}")]
    PromptTooLong { tokens: usize, limit: usize },
    #[error("max_tokens must be at least 1")]
    MaxTokensZero,
    #[error(
        "max_tokens {requested} exceeds the {available} tokens left in the context after the prompt"
    )]
    MaxTokensTooLarge { requested: u32, available: usize },
    #[error("prompt token id {id} is outside the vocabulary of {vocab_size}")]
    TokenOutOfVocabulary { id: u32, vocab_size: usize },
    #[error(transparent)]
    Sampling(#[from] SamplingError),
    #[error("chat template failed: {0}")]
    Template(String),
    #[error("tokenization failed: {0}")]
    Tokenizer(String),
    /// The adapter's factors do not fit this engine's base model.
    #[error("adapter {0} was validated for a different base model")]
    AdapterMismatch(String),
    /// The response format cannot be served (bad schema, unsupported keyword, bad regex ...).
    /// Some causes are engine faults: see [`ConstraintError::is_caller_fault`].
    #[error(transparent)]
    Format(#[from] ConstraintError),
}

impl RequestError {
    /// Stable machine-readable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::EmptyPrompt => "empty_prompt",
            RequestError::PromptTooLong { .. } => "context_length_exceeded",
            RequestError::MaxTokensZero | RequestError::MaxTokensTooLarge { .. } => {
                "invalid_max_tokens"
            }
            RequestError::TokenOutOfVocabulary { .. } => "invalid_token_id",
            RequestError::Sampling(e) => e.code(),
            RequestError::Template(_) => "chat_template_error",
            RequestError::Tokenizer(_) => "tokenization_error",
            RequestError::AdapterMismatch(_) => "adapter_base_mismatch",
            RequestError::Format(e) => e.code(),
        }
    }

    /// The request field the error is about, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            RequestError::EmptyPrompt | RequestError::PromptTooLong { .. } => Some("prompt"),
            RequestError::TokenOutOfVocabulary { .. } => Some("prompt"),
            RequestError::MaxTokensZero | RequestError::MaxTokensTooLarge { .. } => {
                Some("max_tokens")
            }
            RequestError::Sampling(e) => Some(e.field()),
            RequestError::Template(_) => Some("messages"),
            RequestError::Tokenizer(_) => None,
            RequestError::AdapterMismatch(_) => Some("model"),
            RequestError::Format(e) => Some(e.field()),
        }
    }

    /// Whether the caller is at fault (4xx) rather than the engine (5xx).
    pub fn is_caller_fault(&self) -> bool {
        match self {
            RequestError::Tokenizer(_) => false,
            RequestError::Format(e) => e.is_caller_fault(),
            _ => true,
        }
    }
}

/// Failures of the engine itself when taking a request.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the engine queue is full ({capacity} waiting requests); retry later")]
    Overloaded { capacity: usize },
    #[error("the engine is shutting down")]
    ShuttingDown,
}

impl SubmitError {
    pub fn code(&self) -> &'static str {
        match self {
            SubmitError::Overloaded { .. } => "overloaded",
            SubmitError::ShuttingDown => "shutting_down",
        }
    }
}

/// What the gateway shows in `/v1/models` and uses to check requests.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The served model's id (e.g. the GGUF's `general.name`, or the directory name).
    pub id: String,
    pub architecture: String,
    pub context_length: usize,
    pub vocab_size: usize,
    /// The base model's shapes, which adapters are validated against.
    pub config: crate::config::ModelConfig,
}

/// A snapshot of the engine's load, for metrics and admission decisions in the gateway.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineMetrics {
    pub waiting: usize,
    pub running: usize,
    pub kv_blocks_total: usize,
    pub kv_blocks_free: usize,
    pub generated_tokens_total: u64,
    pub prompt_tokens_total: u64,
    pub steps_total: u64,
    pub preemptions_total: u64,
}
