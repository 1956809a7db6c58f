//! The engine thread: receives requests, runs scheduler steps, samples, streams events.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, OnceLock};

use rayon::prelude::*;
use tokio::sync::mpsc::UnboundedSender;

use super::EngineMetrics;
use super::api::{FinishReason, GenerationEvent, TokenLogprobs};
use super::handle::EngineConfig;
use super::request::ModelInfo;
use super::request::PreparedRequest;
use super::sequence::{Progress, Sequence};
use crate::chat::ChatTemplate;
use crate::constraints::{Constraint, ConstraintCompiler, ConstraintError};
use crate::error::LoadError;
use crate::kv::{BlockAllocator, KvStore};
use crate::models::{LlamaModel, Scratch, StepSeq};
use crate::sampling::{Sampler, StopMatcher, TokenHistory, TokenMask};
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::tokenizer::{IncrementalDecoder, Tokenizer};

pub(crate) enum Command {
    /// Boxed: a prepared request carries its compiled constraint, far larger than `Shutdown`.
    Submit(Box<PreparedRequest>, UnboundedSender<GenerationEvent>),
    Shutdown,
}

/// State readable from any handle without talking to the engine thread.
pub(crate) struct Shared {
    pub info: ModelInfo,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub max_waiting: usize,
    /// Built on the first constrained request; a vocabulary llguidance cannot read fails
    /// constrained requests only.
    pub compiler: OnceLock<Result<ConstraintCompiler, ConstraintError>>,
    pub waiting: AtomicUsize,
    running: AtomicUsize,
    kv_total: AtomicUsize,
    kv_free: AtomicUsize,
    generated: AtomicU64,
    prompt: AtomicU64,
    steps: AtomicU64,
    preemptions: AtomicU64,
}

impl Shared {
    pub fn new(
        info: ModelInfo,
        tokenizer: Tokenizer,
        template: ChatTemplate,
        max_waiting: usize,
    ) -> Self {
        Shared {
            info,
            tokenizer,
            template,
            max_waiting,
            compiler: OnceLock::new(),
            waiting: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            kv_total: AtomicUsize::new(0),
            kv_free: AtomicUsize::new(0),
            generated: AtomicU64::new(0),
            prompt: AtomicU64::new(0),
            steps: AtomicU64::new(0),
            preemptions: AtomicU64::new(0),
        }
    }

    pub fn metrics(&self) -> EngineMetrics {
        EngineMetrics {
            waiting: self.waiting.load(Ordering::Relaxed),
            running: self.running.load(Ordering::Relaxed),
            kv_blocks_total: self.kv_total.load(Ordering::Relaxed),
            kv_blocks_free: self.kv_free.load(Ordering::Relaxed),
            generated_tokens_total: self.generated.load(Ordering::Relaxed),
            prompt_tokens_total: self.prompt.load(Ordering::Relaxed),
            steps_total: self.steps.load(Ordering::Relaxed),
            preemptions_total: self.preemptions.load(Ordering::Relaxed),
        }
    }
}

pub(crate) struct EngineCore {
    model: LlamaModel,
    shared: Arc<Shared>,
    kv: KvStore,
    allocator: BlockAllocator,
    scheduler: Scheduler<Sequence>,
    scratch: Scratch,
    /// Logits of the current step, copied out of the scratch so sampling can mutate them.
    logits: Vec<f32>,
    pool: rayon::ThreadPool,
    context_length: usize,
}

impl EngineCore {
    pub fn new(
        model: LlamaModel,
        shared: Arc<Shared>,
        cfg: &EngineConfig,
        blocks: usize,
        context_length: usize,
    ) -> Result<Self, LoadError> {
        let mc = model.config();
        let kv = KvStore::new(mc.num_layers, blocks, cfg.block_size, mc.kv_dim());
        let allocator = BlockAllocator::new(blocks, cfg.block_size);
        shared.kv_total.store(blocks, Ordering::Relaxed);
        shared.kv_free.store(blocks, Ordering::Relaxed);
        let mut pool =
            rayon::ThreadPoolBuilder::new().thread_name(|i| format!("enclave-compute-{i}"));
        if let Some(n) = cfg.threads {
            pool = pool.num_threads(n);
        }
        let pool = pool
            .build()
            .map_err(|e| LoadError::InvalidConfig(format!("compute threads: {e}")))?;
        let scheduler = Scheduler::new(SchedulerConfig {
            max_batch_tokens: cfg.max_batch_tokens.max(1),
            max_running: cfg.max_running.max(1),
        });
        Ok(EngineCore {
            model,
            shared,
            kv,
            allocator,
            scheduler,
            scratch: Scratch::default(),
            logits: Vec::new(),
            pool,
            context_length,
        })
    }

    pub fn run(mut self, commands: Receiver<Command>) {
        loop {
            // Block only when there is nothing to compute.
            if self.scheduler.is_idle() {
                match commands.recv() {
                    Ok(cmd) => {
                        if !self.handle(cmd) {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            let mut open = true;
            loop {
                match commands.try_recv() {
                    Ok(cmd) => {
                        if !self.handle(cmd) {
                            open = false;
                            break;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        // Every handle is gone: finish what runs, then stop.
                        if self.scheduler.is_idle() {
                            open = false;
                        }
                        break;
                    }
                }
            }
            if !open {
                break;
            }
            self.drop_cancelled();
            self.step();
            self.publish();
        }
        self.cancel_all();
    }

    /// Returns false on shutdown.
    fn handle(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Submit(req, tx) => {
                let req = *req;
                let tokenizer = &self.shared.tokenizer;
                let prompt_len = req.prompt_ids.len();
                self.shared
                    .prompt
                    .fetch_add(prompt_len as u64, Ordering::Relaxed);
                let seq = Sequence {
                    history: TokenHistory::new(&req.prompt_ids, &req.sampling),
                    tokens: req.prompt_ids,
                    prompt_len,
                    max_tokens: req.max_tokens as usize,
                    computed: 0,
                    blocks: self.allocator.new_sequence(),
                    sampler: Sampler::new(&req.sampling),
                    decoder: IncrementalDecoder::new(tokenizer),
                    stop: StopMatcher::new(req.sampling.stop()),
                    params: req.sampling,
                    tx,
                    in_queue_count: true,
                    constraint: req.constraint,
                    adapter: req.adapter,
                };
                self.scheduler.waiting.push_back(seq);
                true
            }
            Command::Shutdown => false,
        }
    }

    fn drop_cancelled(&mut self) {
        let shared = &self.shared;
        self.scheduler.waiting.retain(|s| {
            if !s.cancelled() {
                return true;
            }
            if s.in_queue_count {
                shared.waiting.fetch_sub(1, Ordering::AcqRel);
            }
            false
        });
        self.scheduler.running.retain(|s| !s.cancelled());
    }

    fn step(&mut self) {
        let plan = self.scheduler.schedule();
        // The queue bound counts requests that were accepted but never started; a preempted
        // sequence going back to the queue does not take a new request's place.
        for &(i, _) in &plan {
            let seq = &mut self.scheduler.running[i];
            if seq.in_queue_count {
                seq.in_queue_count = false;
                self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
            }
        }
        if plan.is_empty() {
            return;
        }
        let (result, masks) = self.forward_with_masks(&plan);
        match result {
            Ok(out) => self.logits = out,
            Err(e) => {
                // A kernel error is a bug (shapes are fixed at load); fail the step's requests
                // rather than the whole engine.
                tracing::error!(error = %e, "forward pass failed");
                let ended = plan
                    .iter()
                    .map(|&(i, _)| (i, Err(format!("internal error: {e}"))))
                    .collect();
                self.end(ended);
                return;
            }
        }
        self.shared.steps.fetch_add(1, Ordering::Relaxed);
        let ended = self.sample_all(&plan, masks);
        self.end(ended);
    }

    /// Runs the model over the plan and, at the same time on the compute pool, the token masks
    /// of the constrained sequences that sample this step. Returns the logits and, per plan
    /// entry, the mask (if any).
    #[allow(clippy::type_complexity)]
    fn forward_with_masks(
        &mut self,
        plan: &[(usize, usize)],
    ) -> (
        Result<Vec<f32>, enclave_kernels::KernelError>,
        Vec<Option<Result<TokenMask, ConstraintError>>>,
    ) {
        // Constraints are taken out of their sequences while the forward pass borrows them;
        // a mask depends only on committed tokens, all of which exist before the step.
        let mut constrained: Vec<(usize, Constraint)> = Vec::new();
        for (p, &(i, n)) in plan.iter().enumerate() {
            let s = &mut self.scheduler.running[i];
            if s.computed + n == s.tokens.len()
                && let Some(c) = s.constraint.take()
            {
                constrained.push((p, c));
            }
        }
        let running = &self.scheduler.running;
        let steps: Vec<StepSeq<'_>> = plan
            .iter()
            .map(|&(i, n)| {
                let s = &running[i];
                StepSeq {
                    tokens: &s.tokens[s.computed..s.computed + n],
                    start_pos: s.computed,
                    blocks: s.blocks.ids(),
                    logits: s.computed + n == s.tokens.len(),
                    adapter: s.adapter.as_ref().map(|l| l.adapter()),
                }
            })
            .collect();
        let (model, kv, scratch) = (&self.model, &mut self.kv, &mut self.scratch);
        let (result, computed) = self.pool.install(|| {
            rayon::join(
                || model.forward(&steps, kv, scratch).map(|out| out.to_vec()),
                || {
                    constrained
                        .par_iter_mut()
                        .map(|(_, c)| c.compute_mask())
                        .collect::<Vec<_>>()
                },
            )
        });
        drop(steps);
        let mut masks: Vec<Option<Result<TokenMask, ConstraintError>>> =
            plan.iter().map(|_| None).collect();
        for ((p, c), mask) in constrained.into_iter().zip(computed) {
            self.scheduler.running[plan[p].0].constraint = Some(c);
            masks[p] = Some(mask);
        }
        (result, masks)
    }

    /// Samples a token for every sequence of the plan that asked for logits; returns the
    /// sequences that ended (running index, finish reason or failure message).
    fn sample_all(
        &mut self,
        plan: &[(usize, usize)],
        masks: Vec<Option<Result<TokenMask, ConstraintError>>>,
    ) -> Vec<(usize, Result<FinishReason, String>)> {
        let vocab = self.model.config().vocab_size;
        let mut ended = Vec::new();
        let mut row = 0;
        for (&(i, n), mask) in plan.iter().zip(masks) {
            let seq = &mut self.scheduler.running[i];
            seq.computed += n;
            if seq.computed < seq.tokens.len() {
                continue;
            }
            let l = &mut self.logits[row * vocab..(row + 1) * vocab];
            row += 1;
            let mask = match mask.transpose() {
                Ok(m) => m,
                Err(e) => {
                    ended.push((i, Err(format!("response format: {e}"))));
                    continue;
                }
            };
            let sampled = match seq.sampler.sample(l, &seq.history, mask.as_ref()) {
                Ok(s) => s,
                Err(e) => {
                    ended.push((i, Err(e.to_string())));
                    continue;
                }
            };
            let tokenizer = &self.shared.tokenizer;
            let logprobs = sampled.logprob.map(|logprob| TokenLogprobs {
                logprob,
                top: sampled
                    .top
                    .iter()
                    .map(|&(id, lp)| (id, tokenizer.decode(&[id]).unwrap_or_default(), lp))
                    .collect(),
            });
            self.shared.generated.fetch_add(1, Ordering::Relaxed);
            match seq.accept(sampled.id, logprobs, tokenizer, self.context_length) {
                Progress::Continue => {}
                Progress::Finished(reason) => ended.push((i, Ok(reason))),
                Progress::Failed(message) => ended.push((i, Err(message))),
            }
        }
        ended
    }

    /// Removes ended sequences (from the back, so indices stay valid) and sends their final event.
    fn end(&mut self, mut ended: Vec<(usize, Result<FinishReason, String>)>) {
        ended.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        for (i, outcome) in ended {
            let seq = self.scheduler.running.remove(i);
            match outcome {
                Ok(reason) => seq.finish(reason),
                Err(message) => seq.fail(message),
            }
        }
    }

    fn publish(&self) {
        self.shared
            .running
            .store(self.scheduler.running.len(), Ordering::Relaxed);
        self.shared
            .kv_free
            .store(self.allocator.free_blocks(), Ordering::Relaxed);
        self.shared
            .preemptions
            .store(self.scheduler.preemptions, Ordering::Relaxed);
    }

    fn cancel_all(&mut self) {
        for seq in self.scheduler.running.drain(..) {
            seq.finish(FinishReason::Cancelled);
        }
        for seq in self.scheduler.waiting.drain(..) {
            if seq.in_queue_count {
                self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
            }
            seq.finish(FinishReason::Cancelled);
        }
    }
}
