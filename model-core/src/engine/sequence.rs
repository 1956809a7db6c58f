//! One request inside the engine: its tokens, cache blocks, sampler and output pipeline.

use tokio::sync::mpsc::UnboundedSender;

use super::api::{FinishReason, GenerationEvent, TokenLogprobs, Usage};
use crate::adapters::AdapterLease;
use crate::constraints::Constraint;
use crate::kv::SeqBlocks;
use crate::sampling::{Sampler, SamplingParams, StopMatcher, TokenHistory};
use crate::scheduler::SeqState;
use crate::tokenizer::{IncrementalDecoder, Tokenizer};

pub struct Sequence {
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
    pub max_tokens: usize,
    pub computed: usize,
    pub blocks: SeqBlocks,
    pub params: SamplingParams,
    pub sampler: Sampler,
    pub history: TokenHistory,
    pub decoder: IncrementalDecoder,
    pub stop: StopMatcher,
    pub tx: UnboundedSender<GenerationEvent>,
    /// Still counted against the engine's waiting-queue bound (accepted, never started).
    pub in_queue_count: bool,
    /// The response format's state. It advances only on sampled tokens, so it survives
    /// preemption untouched: recomputing the KV cache replays tokens it already committed.
    pub constraint: Option<Constraint>,
    /// The adapter version this sequence runs with (pinned while the sequence lives, so the
    /// resident set cannot evict it and preemption recomputes with the same version).
    pub adapter: Option<AdapterLease>,
}

/// What happened after a token was appended.
pub enum Progress {
    Continue,
    Finished(FinishReason),
    /// The token broke the sequence's constraint (an engine fault: it was sampled under the mask).
    Failed(String),
}

impl Sequence {
    pub fn generated(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    pub fn cancelled(&self) -> bool {
        self.tx.is_closed()
    }

    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_len as u32,
            completion_tokens: self.generated() as u32,
        }
    }

    /// Appends a sampled token and emits what the caller may see now.
    pub fn accept(
        &mut self,
        id: u32,
        logprobs: Option<TokenLogprobs>,
        tokenizer: &Tokenizer,
        context_length: usize,
    ) -> Progress {
        // Under a constraint, EOS is only in the mask once the output is complete.
        if tokenizer.eos_ids().contains(&id)
            && (!self.params.ignore_eos() || self.constraint.is_some())
        {
            return Progress::Finished(FinishReason::EndOfSequence);
        }
        let mut grammar_done = false;
        if let Some(c) = &mut self.constraint {
            match c.commit(id) {
                Ok(outcome) => grammar_done = outcome.stop,
                Err(e) => return Progress::Failed(e.to_string()),
            }
        }
        self.tokens.push(id);
        self.history.push(id);
        let piece = self.decoder.push(id);
        let step = self.stop.push(&piece);
        // A closed receiver is noticed by the engine loop before the next step.
        let _ = self.tx.send(GenerationEvent::Token {
            id,
            text: step.text,
            logprobs,
        });
        if let Some(stop) = step.stopped {
            return Progress::Finished(FinishReason::StopSequence(stop));
        }
        if grammar_done {
            // Nothing can extend the output: the same as the model ending it.
            return Progress::Finished(FinishReason::EndOfSequence);
        }
        if self.generated() >= self.max_tokens || self.tokens.len() >= context_length {
            let incomplete = self.constraint.as_mut().is_some_and(|c| !c.is_accepting());
            return Progress::Finished(if incomplete {
                FinishReason::LengthIncompleteFormat
            } else {
                FinishReason::Length
            });
        }
        Progress::Continue
    }

    /// Sends the final event, releasing any text held back for stop matching.
    pub fn finish(mut self, reason: FinishReason) {
        // Unpin the adapter before the caller learns the request ended.
        self.adapter = None;
        let usage = self.usage();
        let mut text = String::new();
        if !matches!(reason, FinishReason::StopSequence(_)) {
            let tail = self.decoder.finish();
            let mut stop = self.stop;
            let step = stop.push(&tail);
            text.push_str(&step.text);
            if step.stopped.is_none() {
                text.push_str(&stop.finish());
            }
        }
        let _ = self.tx.send(GenerationEvent::Finished {
            reason,
            usage,
            text,
        });
    }

    /// Ends the sequence with an error event (its blocks return to the pool on drop).
    pub fn fail(mut self, message: String) {
        self.adapter = None;
        let _ = self.tx.send(GenerationEvent::Failed { message });
    }
}

impl SeqState for Sequence {
    fn pending(&self) -> usize {
        self.tokens.len() - self.computed
    }

    fn computed(&self) -> usize {
        self.computed
    }

    fn blocks(&mut self) -> &mut SeqBlocks {
        &mut self.blocks
    }

    fn preempt(&mut self) {
        self.blocks.release();
        self.computed = 0;
    }
}
