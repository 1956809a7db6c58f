//! [`Constraint`]: one sequence's position in its output grammar.
//!
//! The engine's loop per step: [`Constraint::compute_mask`] (may run on a rayon task while the
//! forward pass runs), sample under the mask, [`Constraint::commit`] the sampled token, stop the
//! sequence when the outcome says so.
//!
//! Preemption: the constraint advances only on committed (sampled) tokens, and recomputing a
//! preempted sequence's KV cache replays tokens that were already committed, so the engine keeps
//! the `Constraint` as it is across preemption and never re-commits. Should a sequence need to
//! drop tokens (speculative decoding, a retried step), [`Constraint::rollback`] undoes commits.

use std::sync::Arc;

use llguidance::Matcher;
use llguidance::api::StopReason;

use super::error::ConstraintError;
use crate::sampling::TokenMask;

/// Which kind of format a constraint enforces (for metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConstraintKind {
    JsonObject,
    JsonSchema,
    Regex,
    Grammar,
    Xml,
}

impl ConstraintKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConstraintKind::JsonObject => "json_object",
            ConstraintKind::JsonSchema => "json_schema",
            ConstraintKind::Regex => "regex",
            ConstraintKind::Grammar => "grammar",
            ConstraintKind::Xml => "xml",
        }
    }
}

/// What committing a token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The grammar is finished (an end-of-generation token was committed, or the output is
    /// complete and nothing can extend it): end the sequence with finish reason `stop`.
    pub stop: bool,
    /// The output so far is a complete document (EOS would be allowed next).
    pub accepting: bool,
}

/// One sequence's constraint state. `Send`, so masks of a batch can be computed on rayon tasks;
/// `Clone` copies the state (a fork continues independently).
pub struct Constraint {
    matcher: Matcher,
    vocab_size: usize,
    eos_ids: Arc<[u32]>,
    kind: ConstraintKind,
    committed: usize,
}

impl Clone for Constraint {
    fn clone(&self) -> Self {
        // A deep clone: plain clones share the lexer cache behind a mutex, which would
        // serialise mask computation of sibling sequences running in parallel.
        Self {
            matcher: self.matcher.deep_clone(),
            vocab_size: self.vocab_size,
            eos_ids: Arc::clone(&self.eos_ids),
            kind: self.kind,
            committed: self.committed,
        }
    }
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("kind", &self.kind)
            .field("committed", &self.committed)
            .field("stopped", &self.matcher.is_stopped())
            .finish_non_exhaustive()
    }
}

impl Constraint {
    pub(crate) fn new(
        matcher: Matcher,
        vocab_size: usize,
        eos_ids: Arc<[u32]>,
        kind: ConstraintKind,
    ) -> Self {
        Self {
            matcher,
            vocab_size,
            eos_ids,
            kind,
            committed: 0,
        }
    }

    pub fn kind(&self) -> ConstraintKind {
        self.kind
    }

    /// Tokens allowed next. End-of-generation ids are allowed only when the output is complete;
    /// once the grammar is finished they are the only ones allowed. The mask covers the
    /// tokenizer's vocabulary; logits past it (padded model vocabularies) stay disallowed.
    pub fn compute_mask(&mut self) -> Result<TokenMask, ConstraintError> {
        let vob = self
            .matcher
            .compute_mask_or_eos()
            .map_err(|e| ConstraintError::Matcher {
                message: e.to_string(),
            })?;
        let mut mask = TokenMask::from_words(vob.as_slice().to_vec(), self.vocab_size);
        if self.matcher.is_stopped() {
            // The trie's EOS set is the tokenizer's whole end-of-generation set; make sure every
            // member is allowed, not only the first.
            for &id in self.eos_ids.iter() {
                mask.allow(id);
            }
        }
        Ok(mask)
    }

    /// Advances past a sampled token. Committing an end-of-generation token is optional (the
    /// engine may simply stop the sequence); committing one before the output is complete,
    /// or any token outside the last mask, is an error and leaves the constraint failed.
    pub fn commit(&mut self, token: u32) -> Result<CommitOutcome, ConstraintError> {
        if self.matcher.is_stopped() && self.eos_ids.contains(&token) {
            return Ok(CommitOutcome {
                stop: true,
                accepting: true,
            });
        }
        self.matcher
            .consume_token(token)
            .map_err(|e| ConstraintError::TokenRejected {
                token,
                message: e.to_string(),
            })?;
        self.committed += 1;
        let stop = self.matcher.is_stopped();
        Ok(CommitOutcome {
            stop,
            accepting: stop || self.is_accepting(),
        })
    }

    /// Whether the output so far is a complete document. With `max_tokens` reached, `false`
    /// means the output is cut off mid-structure.
    pub fn is_accepting(&mut self) -> bool {
        if self.is_finished() {
            return true;
        }
        self.matcher.is_accepting().unwrap_or(false)
    }

    /// Whether the grammar is finished (only end-of-generation may follow).
    pub fn is_finished(&self) -> bool {
        matches!(
            self.matcher.stop_reason(),
            StopReason::EndOfSentence | StopReason::NoExtension
        )
    }

    /// Whether the constraint failed (a rejected token or a matcher fault); it stays failed.
    pub fn is_failed(&self) -> bool {
        self.matcher.is_error()
    }

    /// Number of committed tokens.
    pub fn committed(&self) -> usize {
        self.committed
    }

    /// Undoes the last `n` commits.
    pub fn rollback(&mut self, n: usize) -> Result<(), ConstraintError> {
        self.matcher
            .rollback(n)
            .map_err(|e| ConstraintError::Matcher {
                message: e.to_string(),
            })?;
        self.committed = self.committed.saturating_sub(n);
        Ok(())
    }

    /// Back to the start of the output.
    pub fn reset(&mut self) -> Result<(), ConstraintError> {
        self.rollback(self.committed)
    }

    /// Bytes the grammar forces next (e.g. `{"name":"` at the start of a fixed object); the
    /// engine may use them for fast-forwarding, or ignore them.
    pub fn forced_bytes(&mut self) -> Vec<u8> {
        self.matcher.compute_ff_bytes()
    }
}
