//! Sensitive-content policy engine: per-tenant policy documents, evasion-resistant matching over
//! normalised text, PII detectors, model-based detectors, and a streaming-safe output filter.
//!
//! Pure: no network, no database; the only IO is reading a policy file and its word lists
//! ([`PolicyDocument::load`]) and reading/writing classifier JSON on request.
//!
//! ```
//! use std::sync::Arc;
//! use enclave_policy::{Limits, Policy, PolicyDocument, Scope, StreamFilter};
//! let doc = PolicyDocument::parse_toml(r#"
//!     [[category]]
//!     name = "demo"
//!     action = "mask"
//!     words = ["bad"]
//! "#).unwrap();
//! let policy = Arc::new(Policy::compile(&doc, &Limits::default()).unwrap());
//! assert_eq!(policy.apply("a Ｂ.Ａ.Ｄ idea", Scope::Output).text, "a *** idea");
//! let mut f = StreamFilter::new(policy);
//! let mut out = f.push("a b").emit;
//! out += &f.push("ad idea").emit;
//! out += &f.finish().emit;
//! assert_eq!(out, "a *** idea");
//! ```

pub mod bench;
pub mod detect;
mod document;
pub(crate) mod engine;
mod error;
mod limits;
mod matcher;
pub mod normalize;
mod patterns;
mod pii;
mod policy;
mod stream;

pub use detect::{Detection, Detector, DetectorError};
pub use document::{
    Action, CategoryName, CategorySpec, DEFAULT_SEPARATORS, DetectorKind, DetectorSpec, MaskStyle,
    NormalizationSpec, PolicyDocument, Scope, ScopeSet,
};
pub use error::PolicyError;
pub use limits::Limits;
pub use matcher::RuleId;
pub use pii::{PiiKind, valid_card, valid_cn_id};
pub use policy::{BlockReason, Decision, Match, Policy};
pub use stream::{FilterStep, StreamFilter};
