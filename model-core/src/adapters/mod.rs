//! LoRA adapters: PEFT parsing and validation, the resident set (byte budget, LRU, pinned while
//! in use), and the batched low-rank application used by the forward pass (base output for all
//! tokens, plus `scale·(x·Aᵀ)·Bᵀ` per adapter group of rows).

mod apply;
mod error;
mod peft;
mod resident;
pub mod synthetic;

pub use apply::apply_lora;
pub use error::AdapterError;
pub use peft::{
    AdapterLimits, AdapterPrecision, Factors, LoraAdapter, LoraWeights, Target, load_peft,
};
pub use resident::{AdapterLease, AdapterVersion, ResidentAdapters, ResidentError, ResidentStats};
