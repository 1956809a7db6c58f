//! The engine actor: one thread owns the model, the KV cache and the scheduler; callers hold a
//! cloneable [`Engine`] handle, prepare (validate) a request, submit it and read a stream of events.

mod api;
mod core;
mod handle;
mod request;
mod sequence;

pub use api::*;
pub use handle::{Engine, EngineConfig};
pub use request::*;
