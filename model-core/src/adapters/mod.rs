//! LoRA adapters: PEFT parsing and validation, and the batched low-rank application used by the
//! forward pass (base output for all tokens, plus `scale·(x·Aᵀ)·Bᵀ` per adapter group of rows).

mod apply;
mod error;
mod peft;

pub use apply::apply_lora;
pub use error::AdapterError;
pub use peft::{AdapterLimits, LoraAdapter, LoraWeights, Target, load_peft};
