//! Model architectures. Every family exposes `load(source)` and `forward(step, kv, scratch)`.

pub mod llama;

pub use llama::{LlamaModel, Scratch, StepSeq};
