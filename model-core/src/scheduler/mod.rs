//! Continuous batching: which sequences run in the next step, and how many of their tokens.
//! Pure bookkeeping over [`SeqState`]s; the engine owns the sequences and the model.

use std::collections::VecDeque;

use crate::kv::SeqBlocks;

/// What the scheduler needs to know about a sequence.
pub trait SeqState {
    /// Tokens that exist (prompt + generated) but are not in the KV cache yet.
    fn pending(&self) -> usize;
    /// Tokens already in the KV cache.
    fn computed(&self) -> usize;
    fn blocks(&mut self) -> &mut SeqBlocks;
    /// Forget the cache; the sequence will recompute everything it has when scheduled again.
    fn preempt(&mut self);
}

#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// Tokens processed per step across all sequences (decode tokens + prefill chunks).
    pub max_batch_tokens: usize,
    /// Sequences in the running set at most.
    pub max_running: usize,
}

/// The plan of one step: `(index into running, tokens to compute)`.
pub type StepPlan = Vec<(usize, usize)>;

pub struct Scheduler<S> {
    cfg: SchedulerConfig,
    pub waiting: VecDeque<S>,
    pub running: Vec<S>,
    pub preemptions: u64,
}

impl<S: SeqState> Scheduler<S> {
    pub fn new(cfg: SchedulerConfig) -> Self {
        Scheduler {
            cfg,
            waiting: VecDeque::new(),
            running: Vec::new(),
            preemptions: 0,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Plans the next step. Running sequences go first (oldest first) so started requests keep
    /// streaming; waiting ones are admitted FIFO with whatever token budget is left. When the KV
    /// pool is exhausted the newest running sequence is preempted (its blocks freed, recomputed
    /// later), which guarantees the oldest sequences always make progress.
    pub fn schedule(&mut self) -> StepPlan {
        let mut budget = self.cfg.max_batch_tokens;
        let mut plan: StepPlan = Vec::new();
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let n = self.running[i].pending().min(budget);
            if n == 0 {
                i += 1;
                continue;
            }
            let need = self.running[i].computed() + n;
            if self.running[i].blocks().reserve(need) {
                plan.push((i, n));
                budget -= n;
                i += 1;
                continue;
            }
            // Out of blocks: preempt the newest running sequence that is not planned yet.
            let victim = self.running.len() - 1;
            if victim == i && i == 0 {
                // Alone and still does not fit: nothing to free; it waits (cannot happen when the
                // pool holds at least one full context, which the engine guarantees at start).
                break;
            }
            let mut seq = self.running.remove(victim);
            seq.preempt();
            self.preemptions += 1;
            self.waiting.push_front(seq);
            // Retry the same `i` (if the victim was `i` itself, the loop condition ends it).
        }
        while budget > 0 && self.running.len() < self.cfg.max_running {
            let Some(front) = self.waiting.front_mut() else {
                break;
            };
            let n = front.pending().min(budget);
            let need = front.computed() + n;
            if n == 0 || !front.blocks().reserve(need) {
                break;
            }
            // INVARIANT: front_mut() returned Some just above.
            let seq = self
                .waiting
                .pop_front()
                .expect("waiting queue is non-empty");
            self.running.push(seq);
            plan.push((self.running.len() - 1, n));
            budget -= n;
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::BlockAllocator;

    struct Fake {
        total: usize,
        computed: usize,
        blocks: SeqBlocks,
    }

    impl SeqState for Fake {
        fn pending(&self) -> usize {
            self.total - self.computed
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

    fn run_step(s: &mut Scheduler<Fake>) -> StepPlan {
        let plan = s.schedule();
        for &(i, n) in &plan {
            s.running[i].computed += n;
        }
        plan
    }

    #[test]
    fn prefill_is_chunked_under_the_token_budget_and_decodes_join() {
        let alloc = BlockAllocator::new(64, 16);
        let mut s = Scheduler::new(SchedulerConfig {
            max_batch_tokens: 100,
            max_running: 8,
        });
        s.waiting.push_back(Fake {
            total: 250,
            computed: 0,
            blocks: alloc.new_sequence(),
        });
        assert_eq!(run_step(&mut s), vec![(0, 100)]);
        s.waiting.push_back(Fake {
            total: 10,
            computed: 0,
            blocks: alloc.new_sequence(),
        });
        assert_eq!(
            run_step(&mut s),
            vec![(0, 100)],
            "budget used up by the first prefill"
        );
        assert_eq!(
            run_step(&mut s),
            vec![(0, 50), (1, 10)],
            "the rest of the budget admits the second"
        );
        // Both now decode one token each step.
        s.running[0].total += 1;
        s.running[1].total += 1;
        assert_eq!(run_step(&mut s), vec![(0, 1), (1, 1)]);
    }

    #[test]
    fn pool_exhaustion_preempts_the_newest_and_it_resumes_later() {
        let alloc = BlockAllocator::new(4, 4); // 16 positions in all
        let mut s = Scheduler::new(SchedulerConfig {
            max_batch_tokens: 64,
            max_running: 8,
        });
        s.waiting.push_back(Fake {
            total: 8,
            computed: 0,
            blocks: alloc.new_sequence(),
        });
        s.waiting.push_back(Fake {
            total: 8,
            computed: 0,
            blocks: alloc.new_sequence(),
        });
        assert_eq!(run_step(&mut s), vec![(0, 8), (1, 8)]);
        // The first grows past its blocks: the pool is full, so the second is preempted.
        s.running[0].total += 1;
        s.running[1].total += 1;
        assert_eq!(run_step(&mut s), vec![(0, 1)]);
        assert_eq!(s.preemptions, 1);
        assert_eq!(s.waiting.len(), 1);
        assert_eq!(
            s.waiting[0].computed, 0,
            "preempted sequence recomputes from scratch"
        );
        // When the first finishes, the second is re-admitted with all 9 tokens.
        s.running.remove(0);
        assert_eq!(run_step(&mut s), vec![(0, 9)]);
    }
}
