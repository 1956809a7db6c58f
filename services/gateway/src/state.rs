//! What every handler shares: settings and handles to the services the gateway calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::api::health::ReadinessCheck;
use crate::settings::Settings;

/// Cheap to clone (one `Arc`); registered once as `web::Data<AppState>`.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    draining: AtomicBool,
}

impl AppState {
    pub fn new(settings: Settings) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                settings,
                draining: AtomicBool::new(false),
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
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
        vec![ReadinessCheck {
            name: "server".to_owned(),
            ok: !draining,
            detail: draining.then(|| "shutting down".to_owned()),
        }]
    }
}
