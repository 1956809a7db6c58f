//! The policy decisions of one request, for its audit record.
//!
//! A [`SharedTrail`] is put into the request's extensions when the inference path loads the
//! tenant's policy; the input check and the output filter append to it as they decide (a stream
//! keeps appending after the response head is sent). Whoever writes the audit record reads a
//! snapshot with [`SharedTrail::snapshot`] once the response is complete. Every change is also
//! written into the call's audit notes ([`crate::audit::NotesHandle`]) as its `policy` field:
//! version (`baseline` without a tenant version), outcome (`block`, `mask`, `flag` or `allow`)
//! and the trail itself as `decisions`.

use std::sync::{Arc, Mutex};

use actix_web::HttpMessage as _;
use actix_web::HttpRequest;
use enclave_audit::PolicyInfo;
use enclave_policy::{Match, Scope};
use serde::{Deserialize, Serialize};

use crate::audit::NotesHandle;

/// Decisions kept per request at most; more are counted in `dropped` (a pathological answer
/// full of matches must not grow the audit record without bound).
pub const MAX_DECISIONS: usize = 1000;

/// One match the policy acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecision {
    /// `input` or `output`.
    pub scope: Scope,
    /// Which text: `messages[1].content`, `prompt`; absent for the answer.
    pub field: Option<String>,
    pub category: String,
    /// `word:<normalised word>`, `regex:<name>`, `pii:<kind>`, `detector:<name>`.
    pub rule: String,
    /// `block`, `mask` or `flag`.
    pub action: String,
    /// Byte span in that text (for the answer: in the whole generated text, before masking).
    pub start: usize,
    pub end: usize,
}

/// Everything the policy decided for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyTrail {
    /// The tenant's policy version applied; absent when only the platform baseline applied.
    pub policy_version: Option<u32>,
    pub decisions: Vec<PolicyDecision>,
    /// The decision that stopped the request or the answer.
    pub blocked: Option<PolicyDecision>,
    /// Decisions beyond [`MAX_DECISIONS`], not kept.
    pub dropped: usize,
}

/// A request's trail, shared between the handler, the streaming body and the audit writer.
#[derive(Clone, Default)]
pub struct SharedTrail(Arc<Mutex<PolicyTrail>>, NotesHandle);

impl std::fmt::Debug for SharedTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedTrail").field(&self.0).finish()
    }
}

impl PolicyTrail {
    /// The strongest action taken: `block`, `mask`, `flag`, or `allow` when nothing matched.
    pub fn outcome(&self) -> &'static str {
        if self.blocked.is_some() {
            return "block";
        }
        ["block", "mask", "flag"]
            .into_iter()
            .find(|a| self.decisions.iter().any(|d| d.action == *a))
            .unwrap_or("allow")
    }
}

fn decision(scope: Scope, field: Option<&str>, m: &Match) -> PolicyDecision {
    PolicyDecision {
        scope,
        field: field.map(str::to_owned),
        category: m.category.to_string(),
        rule: m.rule.to_string(),
        action: m.action.as_str().to_owned(),
        start: m.span.start,
        end: m.span.end,
    }
}

impl SharedTrail {
    /// A new trail for `policy_version`, attached to the request.
    pub fn attach(req: &HttpRequest, policy_version: Option<u32>) -> SharedTrail {
        let t = PolicyTrail {
            policy_version,
            ..PolicyTrail::default()
        };
        let trail = SharedTrail(Arc::new(Mutex::new(t.clone())), NotesHandle::of(req));
        trail.publish(&t);
        req.extensions_mut().insert(trail.clone());
        trail
    }

    /// The trail attached to a request, if the inference path ran.
    pub fn of(req: &HttpRequest) -> Option<SharedTrail> {
        req.extensions().get::<SharedTrail>().cloned()
    }

    pub fn snapshot(&self) -> PolicyTrail {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub(crate) fn record(&self, scope: Scope, field: Option<&str>, matches: &[Match]) {
        if matches.is_empty() {
            return;
        }
        let Ok(mut t) = self.0.lock() else { return };
        for m in matches {
            if t.decisions.len() < MAX_DECISIONS {
                t.decisions.push(decision(scope, field, m));
            } else {
                t.dropped += 1;
            }
        }
        self.publish(&t);
    }

    /// Writes the trail into the call's audit notes (a no-op when the call is not audited).
    fn publish(&self, t: &PolicyTrail) {
        let info = PolicyInfo {
            version: t
                .policy_version
                .map_or_else(|| "baseline".to_owned(), |v| v.to_string()),
            outcome: Some(t.outcome().to_owned()),
            decisions: serde_json::to_value(t).unwrap_or_default(),
        };
        self.1.annotate(|n| n.policy = Some(info));
    }

    pub(crate) fn block(&self, scope: Scope, field: Option<&str>, m: &Match) {
        if let Ok(mut t) = self.0.lock() {
            t.blocked = Some(decision(scope, field, m));
            self.publish(&t);
        }
    }
}
