//! Each chain's redaction mode as the middleware needs it: read from `audit_settings` and kept
//! for a few seconds, so recording a call costs no extra query on the hot path.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use enclave_domain::{AuditRedaction, TenantId};
use enclave_store::Store;

/// How long a looked-up mode is used before it is read again (a change made through another
/// gateway takes effect here within this time; one made here takes effect at once).
const FRESH: Duration = Duration::from_secs(5);
/// Longest a lookup may delay a call's record (the database may be unreachable: records then
/// go to the spool and must not wait for a connect timeout).
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(300);
/// After a failed lookup, how long the fallback is used before the database is asked again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct SettingsCache {
    store: Option<Store>,
    entries: Mutex<HashMap<TenantId, (AuditRedaction, Instant)>>,
}

impl SettingsCache {
    pub(crate) fn new(store: Option<Store>) -> SettingsCache {
        SettingsCache {
            store,
            entries: Mutex::default(),
        }
    }

    fn cached(&self, tenant: &TenantId) -> Option<(AuditRedaction, Instant)> {
        self.entries.lock().ok()?.get(tenant).copied()
    }

    fn remember(&self, tenant: TenantId, mode: AuditRedaction, until: Instant) {
        if let Ok(mut e) = self.entries.lock() {
            e.insert(tenant, (mode, until));
        }
    }

    pub(crate) fn forget(&self, tenant: &TenantId) {
        if let Ok(mut e) = self.entries.lock() {
            e.remove(tenant);
        }
    }

    /// The mode of `tenant`'s chain. When the settings cannot be read, the last known mode;
    /// with none known, `pii_masked`: a tenant that asked for masking must never get raw PII
    /// stored because the database was briefly away (the record names the mode it got).
    pub(crate) async fn redaction(&self, tenant: TenantId) -> AuditRedaction {
        let Some(store) = &self.store else {
            return AuditRedaction::Raw;
        };
        let known = self.cached(&tenant);
        if let Some((mode, until)) = known
            && Instant::now() < until
        {
            return mode;
        }
        let looked_up =
            tokio::time::timeout(LOOKUP_TIMEOUT, store.audit_settings().get(&tenant)).await;
        match looked_up {
            Ok(Ok(s)) => {
                self.remember(tenant, s.redaction, Instant::now() + FRESH);
                s.redaction
            }
            failed => {
                if let Ok(Err(e)) = failed {
                    tracing::warn!(error = %e, %tenant, "audit settings unreadable; using the last known redaction mode");
                }
                let mode = known.map_or(AuditRedaction::PiiMasked, |(m, _)| m);
                self.remember(tenant, mode, Instant::now() + RETRY_AFTER);
                mode
            }
        }
    }
}
