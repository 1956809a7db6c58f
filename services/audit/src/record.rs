//! The audit record: one per API call (inference or administrative).

use chrono::{DateTime, SubsecRound, Utc};
use enclave_domain::{ApiKeyId, AuditRedaction, RequestId, TenantId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::AuditError;

/// The chain that platform-level events (no tenant) are recorded in.
pub const PLATFORM_CHAIN: TenantId = TenantId::from_uuid(Uuid::nil());

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditActor {
    User {
        id: UserId,
    },
    ApiKey {
        id: ApiKeyId,
    },
    /// The platform itself (maintenance commands, background jobs); `id` names the component.
    System {
        id: String,
    },
    /// A caller without valid credentials (a refused request, a login attempt).
    Anonymous,
}

impl AuditActor {
    pub fn kind(&self) -> &'static str {
        match self {
            AuditActor::User { .. } => "user",
            AuditActor::ApiKey { .. } => "api_key",
            AuditActor::System { .. } => "system",
            AuditActor::Anonymous => "anonymous",
        }
    }
}

impl From<enclave_domain::Actor> for AuditActor {
    fn from(a: enclave_domain::Actor) -> Self {
        match a {
            enclave_domain::Actor::User(id) => AuditActor::User { id },
            enclave_domain::Actor::ApiKey(id) => AuditActor::ApiKey { id },
        }
    }
}

/// Where a record stands in a call's life. Non-streamed calls write one `Single` record; a
/// stream writes `Started` when it begins and `Completed` or `Aborted` when it ends, both with
/// the same `request_id`, so a crash mid-stream still leaves the `Started` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Single,
    Started,
    Completed,
    Aborted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// What the platform answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AuditResponse {
    /// The full response body (JSON), or the full generated text as a JSON string.
    pub body: Value,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
}

/// The policy version in force and what its filters decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PolicyInfo {
    pub version: String,
    /// Summary the query filter matches on (e.g. `allow`, `block`, `mask`, `flag`).
    pub outcome: Option<String>,
    /// The detailed decisions (per rule / per direction), as the policy engine reports them.
    pub decisions: Value,
}

/// Before/after values of an administrative change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AdminChange {
    pub before: Value,
    pub after: Value,
}

/// One audit record. Build with [`AuditRecord::new`] and set the optional fields; the writer
/// checks it ([`AuditRecord::checked`]) before it is chained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Unique id of this record (UUID v7); makes spool replay idempotent.
    pub record_id: Uuid,
    /// When the call happened (microsecond precision, UTC).
    pub time: DateTime<Utc>,
    pub tenant: TenantId,
    pub actor: AuditActor,
    /// What was done, dotted lower case (e.g. `chat.completions.create`, `api_key.revoke`).
    pub action: String,
    /// The object acted on (e.g. `api_key/0190...`), when there is one.
    pub resource: Option<String>,
    pub phase: Phase,
    /// The full request body (messages/prompt and parameters).
    pub request: Value,
    pub response: Option<AuditResponse>,
    pub model: Option<String>,
    pub adapter_version: Option<String>,
    pub policy: Option<PolicyInfo>,
    pub status_code: u16,
    pub latency_ms: u64,
    pub client_addr: Option<String>,
    pub request_id: Option<RequestId>,
    pub trace_id: Option<String>,
    pub change: Option<AdminChange>,
    /// How the record's free text was stored (the tenant's audit setting): `raw`, or
    /// `pii_masked` (every PII span replaced by `[PII:<kind>]` before hashing). Absent in
    /// records written before the setting existed and by maintenance commands (raw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redaction: Option<AuditRedaction>,
}

const MAX_ACTION: usize = 128;

impl AuditRecord {
    /// A record of `action` by `actor` in `tenant`, stamped now, status 200 until set.
    pub fn new(
        tenant: TenantId,
        actor: AuditActor,
        action: impl Into<String>,
        request: Value,
    ) -> Self {
        AuditRecord {
            record_id: Uuid::now_v7(),
            time: Utc::now().trunc_subsecs(6),
            tenant,
            actor,
            action: action.into(),
            resource: None,
            phase: Phase::Single,
            request,
            response: None,
            model: None,
            adapter_version: None,
            policy: None,
            status_code: 200,
            latency_ms: 0,
            client_addr: None,
            request_id: None,
            trace_id: None,
            change: None,
            redaction: None,
        }
    }

    /// Validates the record and brings it to the form that survives a database round trip
    /// unchanged: time truncated to microseconds (what `timestamptz` keeps) and U+0000 replaced
    /// by U+FFFD in every string (PostgreSQL text and jsonb cannot hold NUL).
    pub fn checked(self) -> Result<Self, AuditError> {
        self.checked_value().map(|(r, _)| r)
    }

    /// [`AuditRecord::checked`], also returning the record's JSON value (the writer encodes
    /// it without serialising the record a second time).
    pub(crate) fn checked_value(mut self) -> Result<(Self, Value), AuditError> {
        let action_ok = !self.action.is_empty()
            && self.action.len() <= MAX_ACTION
            && self
                .action
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !action_ok {
            return Err(AuditError::InvalidRecord {
                field: "action",
                reason: format!(
                    "must be 1..={MAX_ACTION} of [a-z0-9._-], got {:?}",
                    truncate(&self.action)
                ),
            });
        }
        if !(100..=599).contains(&self.status_code) {
            return Err(AuditError::InvalidRecord {
                field: "status_code",
                reason: format!("must be an HTTP status 100..=599, got {}", self.status_code),
            });
        }
        if let AuditActor::System { id } = &self.actor
            && id.is_empty()
        {
            return Err(AuditError::InvalidRecord {
                field: "actor.id",
                reason: "must not be empty".into(),
            });
        }
        if self.redaction == Some(AuditRedaction::PiiMasked) {
            crate::redact::mask_record(&mut self)?;
        }
        self.time = self.time.trunc_subsecs(6);
        let mut value = serde_json::to_value(&self).map_err(AuditError::json("audit record"))?;
        if strip_nul(&mut value) {
            self =
                serde_json::from_value(value.clone()).map_err(AuditError::json("audit record"))?;
        }
        Ok((self, value))
    }

    /// The same record marked as the start of a stream (response not known yet).
    pub fn stream_started(&self) -> AuditRecord {
        AuditRecord {
            record_id: Uuid::now_v7(),
            phase: Phase::Started,
            response: None,
            ..self.clone()
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Replaces NUL in every string and key; true when something changed.
fn strip_nul(v: &mut Value) -> bool {
    match v {
        Value::String(s) if s.contains('\0') => {
            *s = s.replace('\0', "\u{FFFD}");
            true
        }
        Value::Array(a) => a.iter_mut().fold(false, |acc, x| strip_nul(x) | acc),
        Value::Object(m) => {
            let mut changed = false;
            if m.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(m);
                for (k, val) in old {
                    m.insert(k.replace('\0', "\u{FFFD}"), val);
                }
                changed = true;
            }
            m.values_mut().fold(changed, |acc, x| strip_nul(x) | acc)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> AuditRecord {
        AuditRecord::new(
            TenantId::new(),
            AuditActor::System { id: "test".into() },
            "chat.completions.create",
            Value::Null,
        )
    }

    #[test]
    fn bad_fields_are_refused_with_their_name() {
        let cases: Vec<(&str, Box<dyn Fn(&mut AuditRecord)>)> = vec![
            ("action", Box::new(|r| r.action = String::new())),
            ("action", Box::new(|r| r.action = "Chat Completions".into())),
            ("action", Box::new(|r| r.action = "a".repeat(129))),
            ("status_code", Box::new(|r| r.status_code = 42)),
            (
                "actor.id",
                Box::new(|r| r.actor = AuditActor::System { id: String::new() }),
            ),
        ];
        for (field, mutate) in cases {
            let mut r = rec();
            mutate(&mut r);
            match r.checked() {
                Err(AuditError::InvalidRecord { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected {field} to be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn nul_is_replaced_everywhere() {
        let mut r = rec();
        r.request = serde_json::json!({"a\u{0}b": ["x\u{0}"]});
        let r = r.checked().unwrap();
        assert_eq!(r.request, serde_json::json!({"a\u{FFFD}b": ["x\u{FFFD}"]}));
    }
}
