//! Tenant-trained classifiers on the inference path.
//!
//! A policy's `classifier` detector names a stored classifier in `model`: `<name>@v<n>` for one
//! version, `<name>` for the newest version at the time the policy is loaded. [`bind`] resolves
//! every classifier detector of a compiled policy against the tenant's classifiers (when a policy
//! version is created, and when it is loaded for enforcement); an unknown reference refuses the
//! policy version (422) instead of silently enforcing less. [`BoundDetectors::check`] then runs
//! them over a whole text: a label counts when its score reaches both the classifier version's
//! threshold for it and the detector's `threshold`, and only for labels the detector lists as
//! categories of the policy. Matches span the whole text (a classifier has no spans) and carry
//! the rule `detector:<detector>(<name>@v<n>)`, so the audit record names the exact version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use enclave_domain::TenantId;
use enclave_policy::detect::NgramClassifier;
use enclave_policy::{Detection, DetectorKind, DetectorSpec, Match, Policy, RuleId, Scope};
use enclave_store::{ClassifierVersion, Store};

use crate::error::ApiError;

/// Models kept parsed at most (versions are immutable, so entries never go stale).
const CACHE_ENTRIES: usize = 256;

/// A parsed `model` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifierRef {
    pub name: String,
    /// `None`: the newest version.
    pub version: Option<u32>,
}

impl ClassifierRef {
    pub fn parse(reference: &str) -> Option<ClassifierRef> {
        let (name, version) = match reference.split_once('@') {
            Some((name, v)) => (name, Some(v.strip_prefix('v')?.parse::<u32>().ok()?)),
            None => (reference, None),
        };
        crate::routes::classifiers::train::check_name(name).ok()?;
        Some(ClassifierRef {
            name: name.to_owned(),
            version,
        })
    }
}

fn unprocessable(code: &'static str, message: String) -> ApiError {
    ApiError::Status {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code,
        message,
    }
}

/// Parsed models of stored classifier versions, shared by every request.
#[derive(Default)]
pub struct ClassifierCache {
    models: Mutex<HashMap<(TenantId, String, u32), Arc<NgramClassifier>>>,
}

impl ClassifierCache {
    /// The parsed model of a stored version.
    pub fn model(
        &self,
        tenant: &TenantId,
        stored: &ClassifierVersion,
    ) -> Result<Arc<NgramClassifier>, ApiError> {
        let key = (*tenant, stored.info.name.clone(), stored.info.version);
        if let Some(m) = self.models.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(m);
        }
        // Stored models were produced by this code; failing to parse one is the server's fault.
        let model =
            Arc::new(NgramClassifier::from_json(&stored.model).map_err(ApiError::internal)?);
        if let Ok(mut cache) = self.models.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, model.clone());
        }
        Ok(model)
    }

    /// Loads a referenced version (newest if unversioned) of the tenant's classifier.
    pub async fn resolve(
        &self,
        store: &Store,
        tenant: &TenantId,
        reference: &ClassifierRef,
    ) -> Result<(u32, Arc<NgramClassifier>), ApiError> {
        let repo = store.classifiers();
        let stored = match reference.version {
            Some(v) => repo.get(tenant, &reference.name, v).await,
            None => repo.latest(tenant, &reference.name).await,
        }?;
        Ok((stored.info.version, self.model(tenant, &stored)?))
    }
}

/// A classifier detector with its model.
pub struct BoundDetector {
    spec: DetectorSpec,
    /// `<name>@v<n>`: the version actually bound.
    reference: String,
    model: Arc<NgramClassifier>,
}

/// The classifier detectors of one compiled policy, bound to stored versions.
#[derive(Default)]
pub struct BoundDetectors {
    bound: Vec<BoundDetector>,
}

impl std::fmt::Debug for BoundDetectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let refs: Vec<&str> = self.bound.iter().map(|b| b.reference.as_str()).collect();
        f.debug_struct("BoundDetectors")
            .field("bound", &refs)
            .finish()
    }
}

/// Resolves the policy's classifier detectors. Without a database a policy that has any is
/// refused (nothing to resolve against). Errors are the 422s a policy upload answers:
/// `invalid_classifier_reference`, `unknown_classifier`, `classifier_label_mismatch`.
pub async fn bind(
    cache: &ClassifierCache,
    store: Option<&Store>,
    tenant: &TenantId,
    policy: &Policy,
) -> Result<BoundDetectors, ApiError> {
    let mut bound = Vec::new();
    for spec in policy
        .detectors()
        .iter()
        .filter(|d| d.kind == DetectorKind::Classifier)
    {
        let raw = spec.model.as_deref().unwrap_or_default();
        let reference = ClassifierRef::parse(raw).ok_or_else(|| {
            unprocessable(
                "invalid_classifier_reference",
                format!(
                    "detector {:?}: model {:?} is not a classifier reference (`<name>` or `<name>@v<n>`)",
                    spec.name,
                    raw.chars().take(80).collect::<String>()
                ),
            )
        })?;
        let unknown = || {
            unprocessable(
                "unknown_classifier",
                format!(
                    "detector {:?}: this tenant has no classifier {raw:?}; train one with POST /v1/classifiers",
                    spec.name
                ),
            )
        };
        let store = store.ok_or_else(unknown)?;
        let (version, model) = match cache.resolve(store, tenant, &reference).await {
            Err(ApiError::NotFound { .. }) => return Err(unknown()),
            other => other?,
        };
        if let Some(c) = spec
            .categories
            .iter()
            .find(|c| !model.labels().any(|l| l == c.as_str()))
        {
            return Err(unprocessable(
                "classifier_label_mismatch",
                format!(
                    "detector {:?}: category {:?} is not a label of classifier {}@v{version} (labels: {})",
                    spec.name,
                    c.as_str(),
                    reference.name,
                    model.labels().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        bound.push(BoundDetector {
            spec: spec.clone(),
            reference: format!("{}@v{version}", reference.name),
            model,
        });
    }
    Ok(BoundDetectors { bound })
}

impl BoundDetectors {
    pub fn is_empty(&self) -> bool {
        self.bound.is_empty()
    }

    /// Whether any bound detector can report a category of `scope`.
    pub fn applies_to(&self, policy: &Policy, scope: Scope) -> bool {
        self.bound.iter().any(|b| {
            b.spec.categories.iter().any(|c| {
                let probe = Detection {
                    label: c.to_string(),
                    score: 1.0,
                };
                !policy
                    .detection_matches("", &b.spec, &[probe], scope)
                    .is_empty()
            })
        })
    }

    /// Whole-text matches of every bound detector over `text` (strongest action first).
    pub fn check(&self, policy: &Policy, text: &str, scope: Scope) -> Vec<Match> {
        let mut out = Vec::new();
        for b in &self.bound {
            let detections: Vec<Detection> = b
                .model
                .scores(text)
                .into_iter()
                .filter(|d| b.model.threshold(&d.label).is_some_and(|t| d.score >= t))
                .collect();
            let rule = RuleId::Detector(Arc::from(format!("{}({})", b.spec.name, b.reference)));
            out.extend(
                policy
                    .detection_matches(text, &b.spec, &detections, scope)
                    .into_iter()
                    .map(|mut m| {
                        m.rule = rule.clone();
                        m
                    }),
            );
        }
        out.sort_by_key(|m| match m.action {
            enclave_policy::Action::Block => 0,
            enclave_policy::Action::Mask => 1,
            enclave_policy::Action::Flag => 2,
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_with_or_without_a_version() {
        assert_eq!(
            ClassifierRef::parse("abuse@v3"),
            Some(ClassifierRef {
                name: "abuse".into(),
                version: Some(3)
            })
        );
        assert_eq!(ClassifierRef::parse("abuse").and_then(|r| r.version), None);
        for bad in ["", "Abuse", "abuse@3", "abuse@v", "abuse@vx", "a b"] {
            assert_eq!(ClassifierRef::parse(bad), None, "{bad:?}");
        }
    }
}
