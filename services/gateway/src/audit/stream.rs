//! Streamed responses: the `started` record before the first byte, the final record before the
//! last event, an `aborted` record (with the text sent so far) when the client goes away.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::web::Bytes;
use enclave_audit::{AuditError, AuditReceipt, AuditResponse, StreamAudit};
use serde_json::Value;

use super::extract::{self, Call};
use super::{AuditLog, SharedNotes, unavailable};
use crate::negotiate::Format;

type Finish = Pin<Box<dyn Future<Output = Result<AuditReceipt, AuditError>>>>;

/// Writes the `started` record (durable before the response head is sent) and wraps the body.
pub(super) async fn begin(
    log: AuditLog,
    call: Call,
    res: ServiceResponse<BoxBody>,
    started: Instant,
    notes: SharedNotes,
    format: Format,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let status = res.status().as_u16();
    let request_id = extract::request_id(res.headers());
    let rec = call.record(
        Some(res.request()),
        None,
        status,
        started,
        &notes.snapshot(),
        request_id,
    );
    let guard = match log.begin_stream(rec).await {
        Ok((_, guard)) => guard,
        Err(e) => {
            let (req, response) = res.into_parts();
            // Dropping the body here cancels the generation that was never acknowledged.
            return Ok(ServiceResponse::new(
                req,
                unavailable(&e, format, response.headers()),
            ));
        }
    };
    let sse = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    Ok(res.map_body(move |_, body| {
        BoxBody::new(AuditedStream {
            inner: body,
            guard: Some(guard),
            sse: sse.then(SseReader::default),
            notes,
            format,
            status,
            finishing: None,
            done: false,
        })
    }))
}

/// What a stream of OpenAI chunks said so far.
#[derive(Default)]
struct SseReader {
    pending: Vec<u8>,
    text: String,
    finish_reason: Option<String>,
    usage: Option<enclave_audit::Usage>,
    /// `[DONE]` seen: the stream completed.
    done: bool,
    /// An `{"error": ...}` event: the stream failed.
    error: Option<Value>,
}

impl SseReader {
    fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = find(&self.pending, b"\n\n") {
            let event: Vec<u8> = self.pending.drain(..end + 2).collect();
            let data: Vec<&[u8]> = event
                .split(|&b| b == b'\n')
                .filter_map(|l| {
                    l.strip_prefix(b"data: ")
                        .or_else(|| l.strip_prefix(b"data:"))
                })
                .collect();
            self.event(&data.join(&b'\n'));
        }
    }

    fn event(&mut self, data: &[u8]) {
        if data == b"[DONE]" {
            self.done = true;
            return;
        }
        let tree = match serde_json::from_slice::<Value>(data) {
            Ok(v) => v,
            Err(_) => match extract::xml_tree(data) {
                Some(v) => v,
                None => return,
            },
        };
        if let Some(err) = tree.get("error") {
            self.error = Some(err.clone());
            return;
        }
        if let Some(u) = tree.get("usage").and_then(extract::usage_of) {
            self.usage = Some(u);
        }
        let Some(choice) = tree.pointer("/choices/0") else {
            return;
        };
        let piece = choice
            .pointer("/delta/content")
            .or_else(|| choice.get("text"));
        if let Some(s) = piece.and_then(Value::as_str) {
            self.text.push_str(s);
        }
        if let Some(f) = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
        {
            self.finish_reason = Some(f.to_owned());
        }
    }

    fn response(&self) -> AuditResponse {
        AuditResponse {
            body: Value::String(self.text.clone()),
            finish_reason: self.finish_reason.clone(),
            usage: self.usage.clone(),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

struct AuditedStream {
    inner: BoxBody,
    guard: Option<StreamAudit>,
    /// Present for SSE bodies (completions); other streams (exports) are not parsed.
    sse: Option<SseReader>,
    notes: SharedNotes,
    format: Format,
    status: u16,
    /// The final record being written, and the bytes held back until it is durable.
    finishing: Option<(Finish, Option<Bytes>)>,
    done: bool,
}

impl AuditedStream {
    /// Starts writing the final record; `held` is sent once it is durable. Returns `held` at
    /// once when the final record was already written.
    fn finish(&mut self, held: Option<Bytes>, failed: bool) -> Option<Bytes> {
        let Some(guard) = self.guard.take() else {
            self.done = true;
            return held;
        };
        let notes = self.notes.snapshot();
        let mut response = self
            .sse
            .as_ref()
            .map_or_else(AuditResponse::default, SseReader::response);
        if let Some(body) = notes.response {
            response.body = body;
        }
        let error = self.sse.as_ref().and_then(|s| s.error.clone());
        let fut: Finish = if failed || error.is_some() {
            if let Some(e) = error {
                response.body = serde_json::json!({"partial_text": response.body, "error": e});
            }
            Box::pin(guard.abort(Some(response), 500))
        } else {
            Box::pin(guard.complete(response, self.status))
        };
        self.finishing = Some((fut, held));
        None
    }

    /// The end of an SSE stream whose final record could not be stored: an error event instead
    /// of `[DONE]`, so the client does not take the answer as complete.
    fn audit_failure_event(&self) -> Bytes {
        let err = crate::error::ApiError::Unavailable {
            code: "audit_unavailable",
            message: "the audit trail could not record this call; the answer is not complete"
                .to_owned(),
            retry_after_secs: Some(1),
        };
        let body = err.body(None);
        let payload = self.format.encode(&body).unwrap_or_default();
        Bytes::from([b"data: ".as_slice(), &payload, b"\n\n"].concat())
    }
}

impl MessageBody for AuditedStream {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = &mut *self;
        loop {
            if let Some((fut, held)) = this.finishing.as_mut() {
                let result = ready!(fut.as_mut().poll(cx));
                let held = held.take();
                this.finishing = None;
                this.done = true;
                return Poll::Ready(match (result, held) {
                    (Ok(_), held) => held.map(Ok),
                    (Err(e), held) => {
                        tracing::error!(error = %crate::middleware::ErrorChain(&e), "final audit record of a stream not durable");
                        match (&this.sse, held) {
                            (Some(_), _) => Some(Ok(this.audit_failure_event())),
                            (None, _) => Some(Err(Box::new(e))),
                        }
                    }
                });
            }
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(bytes)) => {
                    let Some(sse) = this.sse.as_mut() else {
                        return Poll::Ready(Some(Ok(bytes)));
                    };
                    sse.feed(&bytes);
                    if sse.done || sse.error.is_some() {
                        if let Some(b) = this.finish(Some(bytes), false) {
                            return Poll::Ready(Some(Ok(b)));
                        }
                        continue;
                    }
                    return Poll::Ready(Some(Ok(bytes)));
                }
                Some(Err(e)) => {
                    tracing::error!(error = %e, "streamed body failed");
                    this.finish(None, true);
                    continue;
                }
                None => {
                    // The body ended without `[DONE]` (an SSE stream cut short) or normally (an
                    // export: its manifest is in the notes by now).
                    let cut_short = this.sse.as_ref().is_some_and(|s| !s.done);
                    this.finish(None, cut_short);
                    continue;
                }
            }
        }
    }
}

impl Drop for AuditedStream {
    /// The client went away mid-stream: record what it was sent, as `aborted` (499).
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        let partial = self.sse.as_ref().map(SseReader::response);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = guard.abort(partial, 499).await {
                    tracing::error!(error = %e, "could not record an aborted stream");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_reader_collects_text_finish_and_usage() {
        let mut r = SseReader::default();
        r.feed(b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\nda");
        r.feed(b"ta: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n");
        assert!(!r.done);
        r.feed(b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\ndata: [DONE]\n\n");
        assert!(r.done);
        let resp = r.response();
        assert_eq!(resp.body, Value::String("Hello".into()));
        assert_eq!(resp.finish_reason.as_deref(), Some("stop"));
        assert_eq!(resp.usage.map(|u| u.total_tokens), Some(6));
    }

    #[test]
    fn sse_reader_reads_xml_chunks_and_errors() {
        let mut r = SseReader::default();
        r.feed(b"data: <completion><choices><item><text>a\ndata: b</text></item></choices></completion>\n\n");
        assert_eq!(r.text, "a\nb");
        r.feed(b"data: {\"error\":{\"code\":\"internal_error\"}}\n\n");
        assert!(r.error.is_some());
    }
}
