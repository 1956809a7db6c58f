//! PII masking of a record (tenants whose audit setting is `pii_masked`): every span the policy
//! engine's PII detectors find is replaced by `[PII:<kind>]` in the request, the response body,
//! the before/after values of an administrative change and the policy decisions, before the
//! record is hashed, spooled or stored. The detectors are the policy engine's own (same
//! patterns, same validators, same text normalisation); nothing here matches text itself.

use std::sync::OnceLock;

use enclave_policy::{Limits, PiiKind, Policy, PolicyDocument, RuleId, Scope};
use serde_json::Value;

use crate::{AuditError, AuditRecord};

/// Member names whose values are identifiers (UUIDs, digests), never PII: left alone so a
/// digit run in an id is not mistaken for a card number.
fn is_identifier(key: &str) -> bool {
    key == "id" || key.ends_with("_id") || key.ends_with("sha256") || key.ends_with("hash")
}

/// A policy with one masking category holding every built-in PII detector.
fn detectors() -> Option<&'static Policy> {
    static POLICY: OnceLock<Option<Policy>> = OnceLock::new();
    POLICY
        .get_or_init(|| {
            let kinds: Vec<String> = PiiKind::ALL
                .iter()
                .map(|k| format!("{:?}", k.as_str()))
                .collect();
            let toml = format!(
                "[[category]]\nname = \"pii\"\naction = \"mask\"\npii = [{}]\n",
                kinds.join(", ")
            );
            let compiled = PolicyDocument::parse_toml(&toml)
                .and_then(|doc| Policy::compile(&doc, &Limits::default()));
            match compiled {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::error!(error = %e, "the PII detectors did not compile");
                    None
                }
            }
        })
        .as_ref()
}

/// `text` with every PII span replaced by `[PII:<kind>]`; `None` when it holds none.
pub fn mask_text(policy: &Policy, text: &str) -> Option<String> {
    let mut matches: Vec<_> = policy
        .scan(text, Scope::Input)
        .into_iter()
        .filter_map(|m| match m.rule {
            RuleId::Pii(kind) => Some((m.span, kind)),
            _ => None,
        })
        .collect();
    if matches.is_empty() {
        return None;
    }
    matches.sort_by_key(|(span, _)| span.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (span, kind) in matches {
        // Resolved matches do not overlap; skip defensively if one ever did.
        if span.start < at || span.end > text.len() {
            continue;
        }
        out.push_str(&text[at..span.start]);
        out.push_str("[PII:");
        out.push_str(kind.as_str());
        out.push(']');
        at = span.end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

fn mask_value(policy: &Policy, v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Some(masked) = mask_text(policy, s) {
                *s = masked;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| mask_value(policy, x)),
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if !is_identifier(k) {
                    mask_value(policy, x);
                }
            }
        }
        _ => {}
    }
}

/// Masks the free-text parts of `rec` (see the module docs).
pub(crate) fn mask_record(rec: &mut AuditRecord) -> Result<(), AuditError> {
    let Some(policy) = detectors() else {
        // Refusing the record (the caller answers 503) is the only safe answer: storing it raw
        // would break the tenant's setting.
        return Err(AuditError::InvalidRecord {
            field: "redaction",
            reason: "the PII detectors are unavailable".into(),
        });
    };
    mask_value(policy, &mut rec.request);
    if let Some(r) = rec.response.as_mut() {
        mask_value(policy, &mut r.body);
    }
    if let Some(c) = rec.change.as_mut() {
        mask_value(policy, &mut c.before);
        mask_value(policy, &mut c.after);
    }
    if let Some(p) = rec.policy.as_mut() {
        mask_value(policy, &mut p.decisions);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_become_markers_and_ids_stay() {
        let policy = detectors().unwrap();
        let masked = mask_text(
            policy,
            "mail li.lei@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111",
        )
        .unwrap();
        assert_eq!(
            masked,
            "mail [PII:email] or call [PII:phone_intl], card [PII:bank_card]"
        );
        assert_eq!(mask_text(policy, "nothing personal here"), None);
        let mut v = serde_json::json!({
            "messages": [{"role": "user", "content": "I am bob@example.org"}],
            "tenant_id": "4111111111111111",
        });
        mask_value(policy, &mut v);
        assert_eq!(v["messages"][0]["content"], "I am [PII:email]");
        assert_eq!(v["tenant_id"], "4111111111111111");
    }
}
