//! `GET /metrics`: the engine's gauges and counters in the Prometheus text format. No
//! authentication (it carries no tenant data, only process-wide totals), like the probes;
//! operators who publish the API port beyond their network filter `/metrics` at the proxy.

use std::fmt::Write as _;

use actix_web::{HttpResponse, web};

use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").route(web::get().to(metrics)));
}

/// The Prometheus exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Process metrics for Prometheus.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String)),
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(render(&state))
}

fn render(state: &AppState) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    metric(
        "enclave_draining",
        "gauge",
        "1 while a graceful shutdown drains in-flight requests",
        f64::from(u8::from(state.is_draining())),
    );
    if let Some(model) = state.served_model() {
        let m = model.engine.metrics();
        metric(
            "enclave_engine_waiting_sequences",
            "gauge",
            "Generations queued for admission",
            m.waiting as f64,
        );
        metric(
            "enclave_engine_running_sequences",
            "gauge",
            "Generations being decoded",
            m.running as f64,
        );
        metric(
            "enclave_engine_kv_blocks_total",
            "gauge",
            "KV cache blocks",
            m.kv_blocks_total as f64,
        );
        metric(
            "enclave_engine_kv_blocks_free",
            "gauge",
            "Free KV cache blocks",
            m.kv_blocks_free as f64,
        );
        metric(
            "enclave_engine_generated_tokens_total",
            "counter",
            "Tokens generated since start",
            m.generated_tokens_total as f64,
        );
        metric(
            "enclave_engine_prompt_tokens_total",
            "counter",
            "Prompt tokens processed since start",
            m.prompt_tokens_total as f64,
        );
        metric(
            "enclave_engine_steps_total",
            "counter",
            "Engine steps since start",
            m.steps_total as f64,
        );
        metric(
            "enclave_engine_preemptions_total",
            "counter",
            "Sequences preempted since start",
            m.preemptions_total as f64,
        );
    }
    out
}
