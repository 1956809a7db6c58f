//! The `enclave` command: serve, generate, bench, migrate, admin, audit.

pub mod cli;
pub mod commands;
pub mod telemetry;
