//! Enclave's inference engine: model loading, continuous batching over a paged KV cache, sampling.
//! No HTTP and no SQL here; the gateway talks to [`engine::Engine`] through its handle.

pub mod adapters;
pub mod chat;
pub mod config;
pub mod constraints;
pub mod engine;
pub mod error;
pub mod kv;
pub mod layers;
pub mod loader;
pub mod models;
pub mod sampling;
pub mod scheduler;
pub mod tokenizer;
