//! One file per resource; each exposes `configure` and its documented handlers.

use actix_web::web;

pub mod adapters;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod chat;
pub mod classifiers;
pub mod completions;
pub mod docs;
pub mod health;
pub mod metrics;
pub mod models;
pub mod policies;
pub mod templates;
pub mod tenants;
pub mod users;

pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    metrics::configure(cfg);
    docs::configure(cfg);
    models::configure(cfg);
    chat::configure(cfg);
    completions::configure(cfg);
    tenants::configure(cfg);
    auth::configure(cfg);
    users::configure(cfg);
    api_keys::configure(cfg);
    audit::configure(cfg);
    policies::configure(cfg);
    adapters::configure(cfg);
    classifiers::configure(cfg);
    templates::configure(cfg);
}
