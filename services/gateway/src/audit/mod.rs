//! The audit trail of every API call: one middleware records each call under `/v1` (inference
//! and administrative, refused and failed ones included) with the request, the response, who
//! asked and how it went, and answers the client only once that record is durable.
//!
//! - Whole responses: the record is appended (and durable: committed, or fsynced in the spool
//!   while PostgreSQL is unreachable) before the response leaves; if it cannot be made durable
//!   the client gets 503 `audit_unavailable` instead of the answer.
//! - Streams (SSE and exports): a `started` record is durable before the first byte; the final
//!   `completed` or `aborted` record is durable before the stream's last event (`[DONE]`) is
//!   sent; a client that disconnects leaves an `aborted` record (status 499) with the text sent
//!   so far; a crash leaves the `started` record.
//!
//! Handlers add what only they know through [`annotate`] (policy decisions, adapter version,
//! before/after values of an administrative change); everything else is read from the request
//! and the response, so a route needs no audit code to be recorded.

mod body;
mod extract;
mod settings;
mod stream;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpMessage as _, HttpRequest};
use enclave_audit::{
    AdminChange, AuditError, AuditReceipt, AuditRecord, AuditSigningKey, AuditWriter,
    ExportManifest, PolicyInfo, StreamAudit, WriterConfig,
};
use enclave_domain::TenantId;
use futures::StreamExt as _;

use crate::error::ApiError;
use crate::negotiate::Format;
use crate::state::AppState;

pub use extract::action_for;

/// The audit services of one gateway process: the writer (one per process), the key that signs
/// exports, and the manifests of recent exports.
#[derive(Clone)]
pub struct AuditLog {
    writer: AuditWriter,
    key: Arc<AuditSigningKey>,
    manifests: Arc<Mutex<ManifestCache>>,
    settings: Arc<settings::SettingsCache>,
}

impl AuditLog {
    pub fn new(writer: AuditWriter, key: AuditSigningKey) -> AuditLog {
        AuditLog {
            writer,
            key: Arc::new(key),
            manifests: Arc::default(),
            settings: Arc::new(settings::SettingsCache::new(None)),
        }
    }

    /// Starts the writer with its spool at `<data_dir>/audit/gateway.spool` (replaying what a
    /// previous run left there) and loads or creates the signing key at
    /// `<data_dir>/keys/audit-signing.pem`, the key `enclave audit` uses too.
    pub async fn start(pool: sqlx::PgPool, data_dir: &Path) -> Result<AuditLog, AuditError> {
        let store = enclave_store::Store::from_pool(pool.clone());
        let writer = AuditWriter::start(
            pool,
            WriterConfig::new(data_dir.join("audit/gateway.spool")),
        )
        .await?;
        let key_path = data_dir.join("keys/audit-signing.pem");
        let key =
            tokio::task::spawn_blocking(move || enclave_audit::ops::load_or_create_key(&key_path))
                .await
                .map_err(|e| AuditError::Io {
                    context: "loading the audit signing key",
                    source: std::io::Error::other(e),
                })??;
        let mut log = AuditLog::new(writer, key);
        log.settings = Arc::new(settings::SettingsCache::new(Some(store)));
        Ok(log)
    }

    pub fn writer(&self) -> &AuditWriter {
        &self.writer
    }

    /// Appends a call's record under its tenant's redaction mode (the writer masks PII before
    /// hashing when the mode says so); durable when this returns Ok.
    pub async fn append(&self, mut rec: AuditRecord) -> Result<AuditReceipt, AuditError> {
        rec.redaction = Some(self.settings.redaction(rec.tenant).await);
        self.writer.append(rec).await
    }

    /// [`AuditWriter::begin_stream`] under the tenant's redaction mode (kept for the final
    /// record, so a stream's records are all stored alike).
    pub async fn begin_stream(
        &self,
        mut rec: AuditRecord,
    ) -> Result<(AuditReceipt, StreamAudit), AuditError> {
        rec.redaction = Some(self.settings.redaction(rec.tenant).await);
        self.writer.begin_stream(rec).await
    }

    /// Drops the cached settings of `tenant` (they changed): the next call reads them again.
    pub fn forget_settings(&self, tenant: &TenantId) {
        self.settings.forget(tenant);
    }

    pub fn signing_key(&self) -> &AuditSigningKey {
        &self.key
    }

    /// Keeps the manifest of a finished export for `GET /v1/audit/exports/{id}/manifest`.
    pub fn remember_manifest(&self, id: uuid::Uuid, manifest: ExportManifest) {
        if let Ok(mut cache) = self.manifests.lock() {
            cache.insert(id, manifest);
        }
    }

    pub fn manifest(&self, id: &uuid::Uuid) -> Option<ExportManifest> {
        self.manifests.lock().ok()?.get(id)
    }

    /// Stops the writer after the records already queued (call after the server drained).
    pub async fn shutdown(&self) {
        self.writer.shutdown().await;
    }
}

/// Recent export manifests, oldest dropped first (each is also in its export's audit record).
#[derive(Default)]
struct ManifestCache {
    entries: std::collections::VecDeque<(uuid::Uuid, ExportManifest)>,
}

const MANIFESTS_KEPT: usize = 1024;

impl ManifestCache {
    fn insert(&mut self, id: uuid::Uuid, m: ExportManifest) {
        if self.entries.len() >= MANIFESTS_KEPT {
            self.entries.pop_front();
        }
        self.entries.push_back((id, m));
    }

    fn get(&self, id: &uuid::Uuid) -> Option<ExportManifest> {
        self.entries
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, m)| m.clone())
    }
}

/// What a handler adds to its call's record; see [`annotate`].
#[derive(Debug, Clone, Default)]
pub struct AuditNotes {
    /// The model that served the call (default: the response's `model`).
    pub model: Option<String>,
    /// Content address (SHA-256) of the adapter version that served the call.
    pub adapter_version: Option<String>,
    /// The policy version in force and what its filters decided.
    pub policy: Option<PolicyInfo>,
    /// Before/after values of an administrative change (default: `after` is the response).
    pub change: Option<AdminChange>,
    /// The object acted on (default: derived from the path and the created object's id).
    pub resource: Option<String>,
    /// Recorded as the response body instead of the bytes sent (e.g. an export's manifest).
    pub response: Option<serde_json::Value>,
    /// The tenant a platform admin's call acted on when the path does not name it (e.g.
    /// `?tenant=`): the record goes to that tenant's chain.
    pub tenant: Option<TenantId>,
}

#[derive(Clone, Default)]
pub(crate) struct SharedNotes(Arc<Mutex<AuditNotes>>);

impl SharedNotes {
    pub(crate) fn snapshot(&self) -> AuditNotes {
        self.0.lock().map(|n| n.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut AuditNotes)) {
        if let Ok(mut n) = self.0.lock() {
            f(&mut n);
        }
    }
}

/// Adds to the audit record of the call `req` belongs to (a no-op when the call is not audited).
pub fn annotate(req: &HttpRequest, f: impl FnOnce(&mut AuditNotes)) {
    if let Some(notes) = req.extensions().get::<SharedNotes>() {
        notes.update(f);
    }
}

/// A handle for code that outlives the handler (a streaming body, a spawned export task).
#[derive(Clone, Default)]
pub struct NotesHandle(Option<SharedNotes>);

impl NotesHandle {
    pub fn of(req: &HttpRequest) -> NotesHandle {
        NotesHandle(req.extensions().get::<SharedNotes>().cloned())
    }

    pub fn annotate(&self, f: impl FnOnce(&mut AuditNotes)) {
        if let Some(n) = &self.0 {
            n.update(f);
        }
    }
}

/// Paths that are API calls (probes, docs and the spec are not recorded).
fn audited(path: &str) -> bool {
    path.starts_with("/v1/") || path == "/v1"
}

/// The middleware; see the module docs.
pub async fn record_calls(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let log = req.app_data::<web::Data<AppState>>().and_then(|s| {
        s.audit_log()
            .cloned()
            .map(|l| (l, s.settings().server.max_body_bytes))
    });
    let Some((log, limit)) = log.filter(|_| audited(req.path())) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let started = Instant::now();
    let body = read_body(&mut req, limit).await;
    let notes = SharedNotes::default();
    req.extensions_mut().insert(notes.clone());
    let call = extract::Call::from_request(&req, body);
    let format = Format::from_accept(req.headers());
    let res = match next.call(req).await {
        Ok(res) => res.map_into_boxed_body(),
        Err(err) => {
            // An inner middleware failed: record the answer the client will get.
            let status = err.as_response_error().status_code();
            let rec = call.record(
                None,
                None,
                status.as_u16(),
                started,
                &notes.snapshot(),
                None,
            );
            if let Err(e) = log.append(rec).await {
                tracing::error!(error = %e, "audit record of a failed call could not be stored");
            }
            return Err(err);
        }
    };
    let is_stream = matches!(
        res.response().body().size(),
        actix_web::body::BodySize::Stream
    );
    if is_stream && res.status().is_success() {
        return stream::begin(log, call, res, started, notes, format).await;
    }
    whole(log, call, res, started, notes, format).await
}

/// A whole response: recorded, durable, then sent.
async fn whole(
    log: AuditLog,
    call: extract::Call,
    res: ServiceResponse<BoxBody>,
    started: Instant,
    notes: SharedNotes,
    format: Format,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (req, response) = res.into_parts();
    let (head, body) = response.into_parts();
    let bytes = match actix_web::body::to_bytes(body).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "response body could not be read for the audit record");
            Bytes::new()
        }
    };
    let status = head.status().as_u16();
    let content_type = head
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = extract::response_of(&bytes, content_type.as_deref());
    let rec = call.record(
        Some(&req),
        Some(response),
        status,
        started,
        &notes.snapshot(),
        extract::request_id(head.headers()),
    );
    if let Err(e) = log.append(rec).await {
        return Ok(ServiceResponse::new(
            req,
            unavailable(&e, format, head.headers()),
        ));
    }
    Ok(ServiceResponse::new(
        req,
        head.set_body(BoxBody::new(bytes)),
    ))
}

/// 503 instead of an answer whose record could not be made durable.
fn unavailable(
    e: &AuditError,
    format: Format,
    headers: &header::HeaderMap,
) -> actix_web::HttpResponse {
    tracing::error!(error = %crate::middleware::ErrorChain(e), "audit record not durable: answering 503");
    let err = ApiError::Unavailable {
        code: "audit_unavailable",
        message: "the audit trail could not record this call; it was not completed, retry later"
            .to_owned(),
        retry_after_secs: Some(1),
    };
    err.render(
        format,
        extract::request_id(headers).as_ref().map(|r| r.as_str()),
    )
}

/// Reads the request body for the record (at most `limit` bytes and one chunk); the handler gets
/// the whole body, and still refuses one over its own limit with 413.
async fn read_body(req: &mut ServiceRequest, limit: usize) -> Bytes {
    let mut payload = req.take_payload();
    let mut buf = BytesMut::new();
    let mut failed = None;
    while buf.len() <= limit {
        match payload.next().await {
            Some(Ok(c)) => buf.extend_from_slice(&c),
            Some(Err(e)) => {
                failed = Some(e);
                break;
            }
            None => {
                let body = buf.freeze();
                req.set_payload(Payload::from(body.clone()));
                return body;
            }
        }
    }
    // Longer than the record keeps: the handler still gets the whole body (or the read error),
    // since routes with a limit of their own (adapter uploads) must not see it cut short.
    let head = buf.freeze();
    let first = futures::stream::once(std::future::ready(Ok(head.clone())));
    type Rest = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<Bytes, actix_web::error::PayloadError>>>,
    >;
    let rest: Rest = match failed {
        Some(e) => Box::pin(first.chain(futures::stream::once(std::future::ready(Err(e))))),
        None => Box::pin(first.chain(payload)),
    };
    req.set_payload(Payload::from(rest));
    head
}

/// Records the before/after values of an administrative change in the call's record.
pub fn note_change<T: serde::Serialize>(req: &HttpRequest, before: &T, after: &T) {
    let (before, after) = (serde_json::to_value(before), serde_json::to_value(after));
    if let (Ok(mut before), Ok(mut after)) = (before, after) {
        extract::redact(&mut before);
        extract::redact(&mut after);
        annotate(req, |n| n.change = Some(AdminChange { before, after }));
    }
}
