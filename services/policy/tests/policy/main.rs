//! Integration tests of the policy engine (one binary).

mod classifier;
mod documents;
mod evasion;
mod leak;
mod pii;

use std::sync::Arc;

use enclave_policy::{Limits, Policy, PolicyDocument, Scope, StreamFilter};

pub fn policy(toml: &str) -> Arc<Policy> {
    let doc = PolicyDocument::parse_toml(toml).unwrap_or_else(|e| panic!("document rejected: {e}"));
    Arc::new(
        Policy::compile(&doc, &Limits::default()).unwrap_or_else(|e| panic!("compile failed: {e}")),
    )
}

/// Streams `chunks` through a filter; returns (concatenated output, emitted pieces).
pub fn stream(policy: &Arc<Policy>, chunks: &[&str]) -> (String, Vec<String>) {
    let mut f = StreamFilter::new(policy.clone());
    let mut pieces = Vec::new();
    for c in chunks {
        pieces.push(f.push(c).emit);
    }
    pieces.push(f.finish().emit);
    (pieces.concat(), pieces)
}

pub fn masked(policy: &Policy, text: &str) -> String {
    policy.apply(text, Scope::Output).text
}
