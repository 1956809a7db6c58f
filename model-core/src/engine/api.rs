//! Types that cross the engine boundary: what a caller submits and what it gets back.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

/// Why a sequence stopped producing tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    EndOfSequence,
    /// One of the request's stop sequences appeared (the sequence itself is never emitted).
    StopSequence(String),
    /// `max_tokens` reached, or the context window is full.
    Length,
    /// Like [`FinishReason::Length`] (`"length"` on the wire), for a request with a response
    /// format whose output was cut off mid-structure: the text does not follow the format.
    LengthIncompleteFormat,
    /// The caller dropped the stream or the engine is shutting down.
    Cancelled,
}

impl FinishReason {
    /// The OpenAI-compatible `finish_reason` string.
    pub fn as_openai_str(&self) -> &'static str {
        match self {
            FinishReason::EndOfSequence | FinishReason::StopSequence(_) => "stop",
            FinishReason::Length | FinishReason::LengthIncompleteFormat => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }

    /// Whether a constrained output was cut off before it was complete (the flag callers
    /// report alongside `finish_reason: "length"`).
    pub fn output_incomplete(&self) -> bool {
        matches!(self, FinishReason::LengthIncompleteFormat)
    }
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// Log-probability of a sampled token and of its top alternatives (when the request asked).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprobs {
    pub logprob: f32,
    /// `(token id, token text, logprob)`, best first.
    pub top: Vec<(u32, String, f32)>,
}

/// One step of a generation as seen by the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// A sampled token. `text` is what may be shown now: it can be empty (an incomplete UTF-8
    /// character, or text held back because it could still be the start of a stop sequence).
    Token {
        id: u32,
        text: String,
        logprobs: Option<TokenLogprobs>,
    },
    /// The last event of a successful generation; `text` is any held-back text released at the end.
    Finished {
        reason: FinishReason,
        usage: Usage,
        text: String,
    },
    /// The generation failed after it was accepted.
    Failed { message: String },
}

/// The receiving side of a submitted request. Dropping it cancels the sequence at the next step.
pub struct GenerationStream {
    pub(crate) rx: mpsc::UnboundedReceiver<GenerationEvent>,
    pub(crate) prompt_tokens: u32,
}

impl GenerationStream {
    /// Number of prompt tokens after templating and tokenization.
    pub fn prompt_tokens(&self) -> u32 {
        self.prompt_tokens
    }

    /// The next event, or `None` once the engine has sent the final one.
    pub async fn next_event(&mut self) -> Option<GenerationEvent> {
        self.rx.recv().await
    }

    /// Blocking variant for non-async callers (CLI, tests, benches).
    pub fn blocking_next(&mut self) -> Option<GenerationEvent> {
        self.rx.blocking_recv()
    }
}

impl futures_core::Stream for GenerationStream {
    type Item = GenerationEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
