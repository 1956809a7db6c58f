//! Two-phase records for streamed responses.

use std::time::Instant;

use uuid::Uuid;

use super::{AuditReceipt, AuditWriter};
use crate::{AuditError, AuditRecord, AuditResponse, Phase};

/// The pending final record of a stream. Finish it with [`StreamAudit::complete`] or
/// [`StreamAudit::abort`]; dropping it unfinished (client gone, task cancelled) writes an
/// `aborted` record in the background. A crash leaves the `started` record alone, which is how
/// an interrupted stream shows in the trail.
#[derive(Debug)]
pub struct StreamAudit {
    writer: AuditWriter,
    record: Option<AuditRecord>,
    started: Instant,
}

impl StreamAudit {
    pub(super) fn new(writer: AuditWriter, record: AuditRecord) -> Self {
        StreamAudit {
            writer,
            record: Some(record),
            started: Instant::now(),
        }
    }

    fn finish(
        &mut self,
        phase: Phase,
        response: Option<AuditResponse>,
        status: u16,
    ) -> Option<AuditRecord> {
        let mut r = self.record.take()?;
        r.record_id = Uuid::now_v7();
        r.phase = phase;
        r.response = response;
        r.status_code = status;
        r.latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Some(r)
    }

    /// Writes the `completed` record with the full response.
    pub async fn complete(
        mut self,
        response: AuditResponse,
        status: u16,
    ) -> Result<AuditReceipt, AuditError> {
        let r = self
            .finish(Phase::Completed, Some(response), status)
            .ok_or(AuditError::WriterStopped)?;
        self.writer.append(r).await
    }

    /// Writes the `aborted` record with what was sent so far (if anything).
    pub async fn abort(
        mut self,
        partial: Option<AuditResponse>,
        status: u16,
    ) -> Result<AuditReceipt, AuditError> {
        let r = self
            .finish(Phase::Aborted, partial, status)
            .ok_or(AuditError::WriterStopped)?;
        self.writer.append(r).await
    }
}

impl Drop for StreamAudit {
    fn drop(&mut self) {
        // 499: the client closed the request (nginx's convention, widely understood).
        let Some(r) = self.finish(Phase::Aborted, None, 499) else {
            return;
        };
        let writer = self.writer.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = writer.append(r).await {
                    tracing::error!(error = %e, "could not record an aborted stream");
                }
            });
        }
    }
}
