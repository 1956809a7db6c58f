//! Server-Sent Events for streamed completions. Each event's `data` is one chunk in the
//! negotiated format; the stream ends with `data: [DONE]`. The HTTP body owns the engine's
//! [`GenerationStream`], so a client disconnect drops it and cancels the generation.

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use enclave_model_core::engine::{Engine, FinishReason, Usage};
use serde::Serialize;
use tracing::Instrument as _;
use utoipa::ToSchema;

use crate::api::openai::ChatDelta;
use crate::error::ApiError;
use crate::inference::Accounting;
use crate::inference::convert::ResponsePlan;
use crate::inference::policy::{PolicedEvent, PolicedStream};
use crate::inference::respond::{self, GenerationError, ResponseMeta, SampledToken};
use crate::negotiate::Format;

/// Which OpenAI chunk shape the stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkShape {
    Chat,
    Completion,
}

struct StreamState {
    events: Option<PolicedStream>,
    engine: Engine,
    meta: ResponseMeta,
    plan: ResponsePlan,
    shape: ChunkShape,
    format: Format,
    request_id: String,
    accounting: Option<Accounting>,
    started: bool,
    /// Characters emitted so far (legacy `text_offset`).
    offset: u32,
}

/// The streaming response for an accepted generation.
pub fn respond(
    events: PolicedStream,
    engine: Engine,
    meta: ResponseMeta,
    plan: ResponsePlan,
    shape: ChunkShape,
    format: Format,
    request_id: String,
    accounting: Option<Accounting>,
) -> HttpResponse {
    let state = StreamState {
        events: Some(events),
        engine,
        meta,
        plan,
        shape,
        format,
        request_id,
        accounting,
        started: false,
        offset: 0,
    };
    let span = tracing::Span::current();
    let body = futures::stream::unfold(state, move |mut state| {
        async move {
            let bytes = state.step().await?;
            Some((Ok::<_, actix_web::Error>(bytes), state))
        }
        .instrument(span.clone())
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// `data:` lines of one event; multi-line payloads (XML text with newlines) use one line each.
fn event(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 16);
    for line in payload.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

impl StreamState {
    /// The next chunk of the body, or `None` once the stream is over.
    async fn step(&mut self) -> Option<Bytes> {
        if !self.started {
            self.started = true;
            if self.shape == ChunkShape::Chat {
                let delta = ChatDelta {
                    role: Some("assistant".to_owned()),
                    content: Some(String::new()),
                };
                let chunk = respond::chat_chunk(&self.meta, delta, None, None);
                return Some(self.encode(&chunk));
            }
        }
        let events = self.events.as_mut()?;
        loop {
            match events.next_event().await {
                Some(PolicedEvent::Token { id, text, logprobs }) => {
                    if text.is_empty() && logprobs.is_none() {
                        continue;
                    }
                    let token = SampledToken { id, logprobs };
                    return Some(self.content(text, std::slice::from_ref(&token)));
                }
                Some(PolicedEvent::Blocked {
                    text,
                    stopped,
                    usage,
                }) => {
                    // Dropping the engine stream cancels the generation.
                    self.events = None;
                    if let Some(accounting) = &self.accounting {
                        accounting.record_completion(usage.completion_tokens).await;
                    }
                    return Some(self.blocked(text, &stopped, usage));
                }
                Some(PolicedEvent::Finished {
                    reason,
                    usage,
                    text,
                }) => {
                    self.events = None;
                    if let Some(accounting) = &self.accounting {
                        accounting.record_completion(usage.completion_tokens).await;
                    }
                    return Some(self.finish(text, &reason, usage));
                }
                Some(PolicedEvent::Failed { message }) => {
                    self.events = None;
                    return Some(self.failure(GenerationError::Failed(message)));
                }
                None => {
                    self.events = None;
                    return Some(self.failure(GenerationError::Truncated));
                }
            }
        }
    }

    fn content(&mut self, text: String, tokens: &[SampledToken]) -> Bytes {
        let tokenizer = self.engine.tokenizer();
        match self.shape {
            ChunkShape::Chat => {
                let logprobs = respond::chat_logprobs(tokenizer, self.plan.logprobs, tokens);
                let delta = ChatDelta {
                    role: None,
                    content: Some(text),
                };
                self.encode(&respond::chat_chunk(&self.meta, delta, logprobs, None))
            }
            ChunkShape::Completion => {
                let logprobs =
                    respond::legacy_logprobs(tokenizer, self.plan.logprobs, tokens, self.offset);
                self.offset += u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
                self.encode(&respond::completion_chunk(&self.meta, text, logprobs, None))
            }
        }
    }

    fn finish(&mut self, rest: String, reason: &FinishReason, usage: Usage) -> Bytes {
        let incomplete = crate::inference::format::incomplete_flag(reason);
        self.last_chunks(rest, reason.as_openai_str(), incomplete, usage)
    }

    /// A policy stopped the answer: the safe text, a `policy` event saying why (named, so
    /// OpenAI SDKs that read unnamed events only skip it), then `finish_reason: "content_filter"`.
    fn blocked(
        &mut self,
        rest: String,
        stopped: &crate::inference::policy::Stopped,
        usage: Usage,
    ) -> Bytes {
        let mut out = Vec::new();
        if !rest.is_empty() {
            out.extend_from_slice(&self.content(rest, &[]));
        }
        let why = crate::api::policies::PolicyStopEvent {
            blocked: true,
            category: stopped.category.clone(),
            action: stopped.action.to_owned(),
        };
        out.extend_from_slice(b"event: policy\n");
        out.extend_from_slice(&self.encode(&why));
        out.extend_from_slice(&self.last_chunks(
            String::new(),
            crate::inference::policy::CONTENT_FILTER,
            None,
            usage,
        ));
        Bytes::from(out)
    }

    /// Any remaining text, the chunk with `finish_reason` (and `format_incomplete` when a
    /// constrained output was cut off), the usage chunk if asked, `[DONE]`.
    fn last_chunks(
        &mut self,
        rest: String,
        finish_reason: &str,
        incomplete: Option<bool>,
        usage: Usage,
    ) -> Bytes {
        let mut out = Vec::new();
        if !rest.is_empty() {
            out.extend_from_slice(&self.content(rest, &[]));
        }
        let last = match self.shape {
            ChunkShape::Chat => {
                let mut chunk = respond::chat_chunk(&self.meta, ChatDelta::default(), None, None);
                chunk.choices.iter_mut().for_each(|c| {
                    c.finish_reason = Some(finish_reason.to_owned());
                    c.format_incomplete = incomplete;
                });
                self.encode(&chunk)
            }
            ChunkShape::Completion => {
                let mut chunk = respond::completion_chunk(&self.meta, String::new(), None, None);
                chunk.choices.iter_mut().for_each(|c| {
                    c.finish_reason = Some(finish_reason.to_owned());
                    c.format_incomplete = incomplete;
                });
                self.encode(&chunk)
            }
        };
        out.extend_from_slice(&last);
        if self.plan.include_usage {
            let chunk = match self.shape {
                ChunkShape::Chat => self.encode(&respond::chat_usage_chunk(&self.meta, usage)),
                ChunkShape::Completion => {
                    self.encode(&respond::completion_usage_chunk(&self.meta, usage))
                }
            };
            out.extend_from_slice(&chunk);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        Bytes::from(out)
    }

    /// A mid-stream failure: one `{"error": ...}` event (what OpenAI SDKs raise on), no `[DONE]`.
    fn failure(&self, error: GenerationError) -> Bytes {
        let error = ApiError::from(error);
        tracing::error!(error = %crate::middleware::ErrorChain(&error), "stream failed");
        self.encode(&error.body(Some(&self.request_id)))
    }

    fn encode<T: Serialize + ToSchema>(&self, chunk: &T) -> Bytes {
        match self.format.encode(chunk) {
            Ok(payload) => Bytes::from(event(&payload)),
            Err(e) => {
                tracing::error!(error = %crate::middleware::ErrorChain(&e), "chunk could not be encoded");
                let body = e.body(Some(&self.request_id));
                Bytes::from(event(&serde_json::to_vec(&body).unwrap_or_default()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_payloads_become_one_data_line_each() {
        assert_eq!(event(b"{\"a\":1}"), b"data: {\"a\":1}\n\n".to_vec());
        assert_eq!(
            event(b"<x>a\nb</x>"),
            b"data: <x>a\ndata: b</x>\n\n".to_vec()
        );
    }
}
