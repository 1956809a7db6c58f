//! Liveness and readiness probes (no authentication).

use actix_web::http::StatusCode;
use actix_web::web;

use crate::api::health::{HealthResponse, ReadinessCheck, ReadinessResponse};
use crate::negotiate::Reply;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(healthz)))
        .service(web::resource("/readyz").route(web::get().to(readyz)));
}

/// The process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is alive", body = HealthResponse)),
)]
pub async fn healthz() -> Reply<HealthResponse> {
    Reply::ok(HealthResponse {
        status: "ok".to_owned(),
    })
}

/// The process can serve requests: database reachable, model loaded, not shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = ReadinessResponse),
        (status = 503, description = "Not ready; `checks` says why", body = ReadinessResponse),
    ),
)]
pub async fn readyz(state: web::Data<AppState>) -> Reply<ReadinessResponse> {
    let checks: Vec<ReadinessCheck> = state.readiness_checks().await;
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Reply::with_status(
        status,
        ReadinessResponse {
            status: if ready { "ready" } else { "not_ready" }.to_owned(),
            checks,
        },
    )
}
