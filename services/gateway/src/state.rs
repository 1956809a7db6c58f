//! What every handler shares: settings and handles to the services the gateway calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use enclave_auth::Authenticator;
use enclave_model_core::engine::Engine;
use enclave_store::Store;

use crate::api::health::ReadinessCheck;
use crate::auth::SharedAuthenticator;
use crate::error::ApiError;
use crate::settings::Settings;

/// The base model this server generates with.
#[derive(Clone)]
pub struct ServedModel {
    /// The id callers name in `model` (settings' `model.served_name`, else the model's own).
    pub id: String,
    /// Unix seconds when it was loaded (`created` in `/v1/models`).
    pub created: i64,
    pub engine: Engine,
}

/// Cheap to clone (one `Arc`); registered once as `web::Data<AppState>`.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    model: Option<ServedModel>,
    authenticator: Option<SharedAuthenticator>,
    auth: Option<Authenticator>,
    store: Option<Store>,
    audit: Option<crate::audit::AuditLog>,
    policies: Arc<crate::inference::policy::PolicyRuntime>,
    adapters: crate::inference::adapters::AdapterRuntime,
    draining: AtomicBool,
}

/// Assembles an [`AppState`]; every service is optional so tests can start what they need.
pub struct AppStateBuilder {
    settings: Settings,
    model: Option<ServedModel>,
    authenticator: Option<SharedAuthenticator>,
    auth: Option<Authenticator>,
    store: Option<Store>,
    audit: Option<crate::audit::AuditLog>,
}

impl AppStateBuilder {
    /// Serves `engine`'s model under `model.served_name` or the model's own id.
    pub fn engine(mut self, engine: Engine) -> Self {
        let id = self
            .settings
            .model
            .served_name
            .clone()
            .unwrap_or_else(|| engine.info().id.clone());
        self.model = Some(ServedModel {
            id,
            created: chrono::Utc::now().timestamp(),
            engine,
        });
        self
    }

    /// Checks bearer credentials; without one every authenticated route answers 503.
    pub fn authenticator(mut self, authenticator: SharedAuthenticator) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// The platform's own authentication: checks bearer credentials (unless
    /// [`Self::authenticator`] sets another checker) and serves login, refresh, logout, users and
    /// API keys.
    pub fn auth(mut self, auth: Authenticator) -> Self {
        if self.authenticator.is_none() {
            self.authenticator = Some(std::sync::Arc::new(auth.clone()));
        }
        self.auth = Some(auth);
        self
    }

    /// The database (connected as the application role).
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Records every API call in the audit trail (see [`crate::audit`]).
    pub fn audit(mut self, audit: crate::audit::AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    pub fn build(self) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                adapters: crate::inference::adapters::AdapterRuntime::new(
                    &self.settings.adapters,
                    &self.settings.database.data_dir,
                ),
                settings: self.settings,
                model: self.model,
                authenticator: self.authenticator,
                auth: self.auth,
                store: self.store,
                audit: self.audit,
                policies: crate::inference::policy::PolicyRuntime::shared(),
                draining: AtomicBool::new(false),
            }),
        }
    }
}

impl AppState {
    pub fn builder(settings: Settings) -> AppStateBuilder {
        AppStateBuilder {
            settings,
            model: None,
            authenticator: None,
            auth: None,
            store: None,
            audit: None,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn authenticator(&self) -> Option<&SharedAuthenticator> {
        self.inner.authenticator.as_ref()
    }

    /// The platform's authentication service, or 503 when this server runs without one.
    pub fn auth(&self) -> Result<&Authenticator, ApiError> {
        self.inner
            .auth
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable {
                code: "auth_unavailable",
                message: "authentication is not configured on this server".to_owned(),
                retry_after_secs: None,
            })
    }

    /// The database, or 503 when this server runs without one.
    pub fn store(&self) -> Result<&Store, ApiError> {
        self.inner
            .store
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable {
                code: "database_unavailable",
                message: "this server has no database configured".to_owned(),
                retry_after_secs: None,
            })
    }

    /// The audit trail, when this server records calls.
    pub fn audit_log(&self) -> Option<&crate::audit::AuditLog> {
        self.inner.audit.as_ref()
    }

    /// The platform baseline and the tenants' compiled content policies.
    pub fn policies(&self) -> &crate::inference::policy::PolicyRuntime {
        &self.inner.policies
    }

    /// Adapter files and the cache of validated adapters.
    pub fn adapters(&self) -> &crate::inference::adapters::AdapterRuntime {
        &self.inner.adapters
    }

    pub fn served_model(&self) -> Option<&ServedModel> {
        self.inner.model.as_ref()
    }

    /// Marks the server as draining: readiness fails so load balancers stop sending traffic.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    pub async fn readiness_checks(&self) -> Vec<ReadinessCheck> {
        let draining = self.is_draining();
        let mut checks = vec![ReadinessCheck {
            name: "server".to_owned(),
            ok: !draining,
            detail: draining.then(|| "shutting down".to_owned()),
        }];
        if let Some(store) = &self.inner.store {
            let ping = store.ping().await;
            if let Err(e) = &ping {
                tracing::warn!(error = %crate::middleware::ErrorChain(e), "readiness: database unreachable");
            }
            checks.push(ReadinessCheck {
                name: "database".to_owned(),
                ok: ping.is_ok(),
                detail: ping.err().map(|_| "database unreachable".to_owned()),
            });
        }
        checks.push(ReadinessCheck {
            name: "model".to_owned(),
            ok: self.inner.model.is_some(),
            detail: self
                .inner
                .model
                .is_none()
                .then(|| "no model loaded".to_owned()),
        });
        checks
    }
}
