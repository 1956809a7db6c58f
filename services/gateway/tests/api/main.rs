//! The gateway's one integration binary: a real server on port 0 per test.

mod adapter_serving;
mod adapters;
mod audit;
mod audit_settings;
mod auth_attacks;
mod classifiers;
mod format_defaults;
mod formats;
mod framework;
mod inference;
mod isolation;
mod policies;
mod support;
mod templates;
mod tenants;
