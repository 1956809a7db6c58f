//! End-to-end test harness for Enclave: the real `enclave serve` binary as a child process on a
//! free port, with a real PostgreSQL (a fresh database per test, or the embedded cluster) and the
//! real demo model, driven over real HTTP.
//!
//! - [`server::EnclaveServer`]: start / wait for `/readyz` / SIGTERM / kill on drop / logs.
//! - [`api::Api`]: a small typed client for the routes the tests walk through.
//! - [`sse`]: reading a Server-Sent Events body into its `data:` payloads.
//! - [`bootstrap`]: the first platform admin, made with `enclave admin create-platform-admin`.
//! - [`xml`]: reading the gateway's XML documents.

pub mod api;
pub mod bootstrap;
pub mod server;
pub mod sse;
pub mod xml;

pub use api::{Api, ApiResponse};
pub use server::{EnclaveServer, ServerOptions};
