//! Streaming-safe output filtering.

use std::sync::Arc;

use crate::document::Scope;
use crate::engine::Scanner;
use crate::policy::{BlockReason, Match, Policy};

/// What one pushed chunk released.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterStep {
    /// Text safe to send now (masked).
    pub emit: String,
    /// Set once, on the step that found a blocking match; nothing is emitted afterwards.
    pub blocked: Option<BlockReason>,
    /// Matches resolved during this step.
    pub decisions: Vec<Match>,
}

/// Filters a model's output as it streams. It holds back only the shortest suffix that could
/// still become (part of) a match: the earliest position from which a listed word could still be
/// spelled, from which a pattern's automaton is still alive, or whose normalisation/separator
/// decision awaits the next character. The concatenation of all `emit`s equals
/// `Policy::apply(whole_text, Scope::Output).text` for every chunking.
pub struct StreamFilter {
    scanner: Scanner,
    _policy: Arc<Policy>,
}

impl StreamFilter {
    /// A filter for the output side of `policy`.
    pub fn new(policy: Arc<Policy>) -> Self {
        Self::with_scope(policy, Scope::Output)
    }

    pub fn with_scope(policy: Arc<Policy>, scope: Scope) -> Self {
        StreamFilter {
            scanner: Scanner::new(policy.matcher(scope), true),
            _policy: policy,
        }
    }

    pub fn push(&mut self, chunk: &str) -> FilterStep {
        into_step(self.scanner.step(chunk, false))
    }

    /// Ends the stream: releases everything still held.
    pub fn finish(mut self) -> FilterStep {
        into_step(self.scanner.step("", true))
    }

    /// Bytes of original text released so far (for metrics: held = received - released).
    pub fn released(&self) -> usize {
        self.scanner.emitted()
    }
}

fn into_step(s: crate::engine::Step) -> FilterStep {
    FilterStep {
        emit: s.emit,
        blocked: s.blocked,
        decisions: s.matches,
    }
}
