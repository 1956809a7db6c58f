//! The gateway's one integration binary: a real server on port 0 per test.

mod framework;
mod inference;
mod support;
mod tenants;
