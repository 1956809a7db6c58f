//! Paged KV cache: fixed-size blocks from a bounded pool, handed to sequences as RAII guards.

mod allocator;
pub mod store;

pub use allocator::{BlockAllocator, SeqBlocks};
pub use store::KvStore;
