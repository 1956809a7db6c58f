//! The audit trail, read: filtered pages of records and streamed, signed exports. Auditors and
//! tenant admins read their own tenant; platform admins any tenant (`tenant=`), and the
//! platform chain when they name none; developers none (403). Another tenant answers 404.

pub mod settings;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use enclave_audit::{AuditError, AuditFilter, Cursor, ExportFormat, PLATFORM_CHAIN};
use enclave_domain::{Scope, TenantId};
use serde::Deserialize;
use tokio::io::AsyncReadExt as _;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::api::audit::{AuditEvent, AuditEventPage, AuditExportManifest};
use crate::audit::NotesHandle;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::negotiate::Reply;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/audit/events").route(web::get().to(list_audit_events)))
        .service(web::resource("/v1/audit/export").route(web::get().to(export_audit)))
        .service(
            web::resource("/v1/audit/exports/{export_id}/manifest")
                .route(web::get().to(get_export_manifest)),
        );
    settings::configure(cfg);
}

/// Bytes of export text read ahead of a slow client (bounds the memory of one export).
const EXPORT_PIPE_BYTES: usize = 256 * 1024;
const DEFAULT_PAGE: u32 = 50;

fn audit_error(e: AuditError) -> ApiError {
    match e {
        AuditError::InvalidQuery { field, reason } => ApiError::invalid(
            format!("invalid_{field}"),
            format!("`{field}` {reason}"),
            Some(field.to_owned()),
        ),
        other => ApiError::internal(other),
    }
}

/// The chain the caller may read: `requested` (own tenant, or any for a platform admin), else
/// the caller's own (the platform chain for a platform admin without a tenant).
fn readable_tenant(caller: &Caller, requested: Option<Uuid>) -> Result<TenantId, ApiError> {
    caller.require(Scope::AuditRead)?;
    let p = caller.principal();
    match (requested, p.tenant_id) {
        (Some(t), _) => caller.tenant_for(TenantId::from(t)),
        (None, Some(own)) => Ok(own),
        (None, None) if p.is_platform_admin() => Ok(PLATFORM_CHAIN),
        (None, None) => Err(ApiError::forbidden(
            "tenant_required",
            "name a tenant with `tenant`",
        )),
    }
}

fn parse_time(field: &'static str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    enclave_audit::ops::parse_time(field, s).map_err(|_| {
        ApiError::invalid_field(
            "invalid_time",
            field,
            format!("`{field}` must be YYYY-MM-DD or RFC 3339"),
        )
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The tenant whose chain to read (platform admins; others may name only their own).
    tenant: Option<Uuid>,
    /// Records at or after this time (YYYY-MM-DD or RFC 3339).
    from: Option<String>,
    /// Records before this time.
    to: Option<String>,
    /// `user`, `api_key`, `system` or `anonymous`.
    actor_kind: Option<String>,
    /// The user or API key id.
    actor_id: Option<String>,
    /// e.g. `chat.completions.create`, `tenants.update`.
    action: Option<String>,
    model: Option<String>,
    adapter_version: Option<String>,
    /// The policy outcome (`allow`, `block`, `mask`, ...).
    decision: Option<String>,
    /// Case-insensitive text anywhere in the request or response.
    q: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 500, default 50.
    limit: Option<u32>,
}

/// The audit records of a tenant, newest first, filtered and paginated by cursor.
#[utoipa::path(get, path = "/v1/audit/events", tag = "audit", params(EventsQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of audit records", body = AuditEventPage)))]
pub async fn list_audit_events(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<EventsQuery>,
) -> Result<Reply<AuditEventPage>, ApiError> {
    let q = query.into_inner();
    let tenant = readable_tenant(&caller, q.tenant)?;
    let filter = AuditFilter {
        from: q
            .from
            .as_deref()
            .map(|s| parse_time("from", s))
            .transpose()?,
        to: q.to.as_deref().map(|s| parse_time("to", s)).transpose()?,
        actor_kind: q.actor_kind,
        actor_id: q.actor_id,
        action: q.action,
        model: q.model,
        adapter_version: q.adapter_version,
        decision: q.decision,
        text: q.q,
    };
    let cursor = q
        .cursor
        .as_deref()
        .map(Cursor::parse)
        .transpose()
        .map_err(audit_error)?;
    let store = state.store()?;
    let page = enclave_audit::query(
        store.pool(),
        &tenant,
        &filter,
        cursor,
        q.limit.unwrap_or(DEFAULT_PAGE),
    )
    .await
    .map_err(audit_error)?;
    let data = page
        .events
        .into_iter()
        .map(|e| AuditEvent {
            seq: e.seq,
            inserted_at: e.inserted_at,
            record_id: e.record_id,
            prev_hash: e.prev_hash.to_hex(),
            hash: e.hash.to_hex(),
            record: e.record,
        })
        .collect();
    Ok(Reply::ok(AuditEventPage {
        data,
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// The tenant whose chain to export (platform admins; others may name only their own).
    tenant: Option<Uuid>,
    /// Records stored at or after this time (YYYY-MM-DD or RFC 3339).
    from: String,
    /// Records stored before this time.
    to: String,
    /// `jsonl` (default), `csv` (RFC 4180) or `xml`.
    format: Option<String>,
}

/// Streams a tenant's records stored in `from..to`, in chain order, in constant memory. The
/// signed manifest (count, range, first/last hash, SHA-256 of the file) is at
/// `GET /v1/audit/exports/{X-Audit-Export-Id}/manifest` once the body has ended, and in the
/// export's own audit record. A body cut short by an error ends the connection without its
/// final chunk.
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit", params(ExportQuery), security(("bearer" = [])),
    responses((status = 200, description = "The export file; its id in `X-Audit-Export-Id`",
        headers(("X-Audit-Export-Id" = String, description = "Names the manifest")),
        content(
            (String = "application/x-ndjson"),
            (String = "text/csv"),
            (String = "application/xml"),
        ))))]
pub async fn export_audit(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let tenant = readable_tenant(&caller, q.tenant)?;
    let (from, to) = (parse_time("from", &q.from)?, parse_time("to", &q.to)?);
    if from >= to {
        return Err(ApiError::invalid_field(
            "invalid_range",
            "from",
            "`from` must be before `to`",
        ));
    }
    let format: ExportFormat = q
        .format
        .as_deref()
        .unwrap_or("jsonl")
        .parse()
        .map_err(audit_error)?;
    let log = state
        .audit_log()
        .cloned()
        .ok_or_else(|| ApiError::Unavailable {
            code: "audit_unavailable",
            message: "this server keeps no audit trail".to_owned(),
            retry_after_secs: None,
        })?;
    let pool = state.store()?.pool().clone();
    let id = Uuid::now_v7();
    let (mut writer, reader) = tokio::io::duplex(EXPORT_PIPE_BYTES);
    let (outcome_tx, outcome_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let notes = NotesHandle::of(&req);
    actix_web::rt::spawn(async move {
        let result = enclave_audit::export(
            &pool,
            &tenant,
            from,
            to,
            format,
            log.signing_key(),
            &mut writer,
        )
        .await;
        let outcome = match result {
            Ok(m) => {
                let value = serde_json::json!({"export_id": id, "manifest": &m});
                notes.annotate(|n| n.response = Some(value));
                log.remember_manifest(id, m);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %crate::middleware::ErrorChain(&e), "audit export failed");
                Err(e.to_string())
            }
        };
        drop(writer);
        let _ = outcome_tx.send(outcome);
    });
    let body = futures::stream::unfold(
        (reader, Some(outcome_rx)),
        |(mut reader, outcome)| async move {
            let mut buf = vec![0u8; 64 * 1024];
            match reader.read(&mut buf).await {
                Ok(0) => match outcome?.await {
                    Ok(Ok(())) => None,
                    _ => Some((
                        Err(std::io::Error::other("the export failed")),
                        (reader, None),
                    )),
                },
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), (reader, outcome)))
                }
                Err(e) => Some((Err(e), (reader, None))),
            }
        },
    );
    let (content_type, ext) = match format {
        ExportFormat::Jsonl => ("application/x-ndjson", "jsonl"),
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Xml => ("application/xml", "xml"),
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("X-Audit-Export-Id", id.to_string()))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"audit-{tenant}-{}.{ext}\"",
                id.simple()
            ),
        ))
        .streaming(body))
}

/// The signed manifest of an export this server streamed (kept for the last 1024 exports; each
/// is also in its export's audit record, action `audit.export`).
#[utoipa::path(get, path = "/v1/audit/exports/{export_id}/manifest", tag = "audit",
    params(("export_id" = Uuid, Path, description = "`X-Audit-Export-Id` of the export")), security(("bearer" = [])),
    responses((status = 200, description = "The manifest", body = AuditExportManifest)))]
pub async fn get_export_manifest(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<Reply<AuditExportManifest>, ApiError> {
    caller.require(Scope::AuditRead)?;
    let not_found = || ApiError::NotFound { resource: "export" };
    let manifest = state
        .audit_log()
        .and_then(|l| l.manifest(&path))
        .ok_or_else(not_found)?;
    caller
        .tenant_for(manifest.tenant)
        .map_err(|_| not_found())?;
    let value = serde_json::to_value(&manifest).map_err(ApiError::internal)?;
    Ok(Reply::ok(
        serde_json::from_value(value).map_err(ApiError::internal)?,
    ))
}
