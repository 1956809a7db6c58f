//! DTOs of the audit routes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// One stored audit record with its place in the tenant's hash chain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// Position in the tenant's chain (1, 2, ...).
    pub seq: u64,
    /// When the database stored it.
    pub inserted_at: DateTime<Utc>,
    pub record_id: Uuid,
    /// SHA-256 of the previous record (hex); the chain link.
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and the canonical encoding of `record` (hex).
    pub hash: String,
    /// The record: `time`, `tenant`, `actor` (`{kind: user|api_key|system|anonymous, id}`),
    /// `action` (e.g. `chat.completions.create`, `tenants.update`), `resource`, `phase`
    /// (`single`, or `started`/`completed`/`aborted` for streams), `request` (`{method, path,
    /// query, body}`, credentials redacted), `response` (`{body, finish_reason, usage}`),
    /// `model`, `adapter_version`, `policy` (`{version, outcome, decisions}`), `status_code`,
    /// `latency_ms`, `client_addr`, `request_id`, `trace_id`, `change` (`{before, after}`).
    #[schema(value_type = Object)]
    pub record: serde_json::Value,
}

/// A page of audit records, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEventPage {
    pub data: Vec<AuditEvent>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What an export contains, signed with the platform's audit key (Ed25519). Check a file
/// offline with `enclave audit verify --export FILE --manifest MANIFEST --public-key KEY`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditExportManifest {
    pub version: u32,
    pub tenant: Uuid,
    /// `jsonl`, `csv` or `xml`.
    pub format: String,
    /// The range asked for: records stored in `from..to`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub count: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The hash the first exported record links to.
    pub first_prev_hash: Option<String>,
    pub first_hash: Option<String>,
    pub last_hash: Option<String>,
    /// SHA-256 of the exported file (hex).
    pub file_sha256: String,
    pub created_at: DateTime<Utc>,
    pub key_id: String,
    /// Ed25519 signature over the canonical JSON of every other member (hex).
    pub signature: String,
}

/// How a tenant's audit records are stored and how long they are kept at least.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditSettings {
    /// The chain these settings belong to (the nil UUID: the platform chain).
    pub tenant_id: Uuid,
    /// `raw` (default): as sent and answered, credentials removed. `pii_masked`: every span the
    /// policy engine's PII detectors find (e-mail, phone numbers, card numbers, resident ids, IP
    /// addresses) is replaced by `[PII:<kind>]` before the record is hashed and stored; each
    /// record names the mode that applied (`redaction`).
    pub redaction: String,
    /// Records are kept at least this many days (1 to 36500); null: kept forever.
    /// `enclave audit prune --retention` drops a month only when every chain in it is past
    /// its retention.
    pub retention_days: Option<u32>,
    /// When the settings were last changed; absent: never set, the defaults apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<Uuid>,
}

/// New audit settings (both members are replaced).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpdateAuditSettings {
    /// `raw` or `pii_masked`.
    pub redaction: String,
    /// 1 to 36500 days; absent or null: keep forever.
    #[serde(default)]
    pub retention_days: Option<i64>,
}
