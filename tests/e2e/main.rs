//! End-to-end tests: the real `enclave serve` binary on a free port, a real PostgreSQL, the real
//! demo model, real HTTP clients (reqwest, the `openai` Python package, schemathesis).
//!
//! Run: `cargo test -p enclave-tests` (needs deploy/local/setup.sh: PostgreSQL binaries, the demo
//! model, .venv with openai and schemathesis). `TEST_LOG=1` echoes the servers' output live.

mod support;

mod audit;
mod auth_and_keys;
mod chat;
mod fuzz;
mod limits;
mod openai_client;
mod persistence;
mod shutdown;
mod xml;
