//! One file per resource; each exposes `configure` and its documented handlers.

use actix_web::web;

pub mod docs;
pub mod health;

pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    docs::configure(cfg);
}
