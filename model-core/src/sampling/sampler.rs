//! [`Sampler`]: turns one step's logits into a token for one sequence.

use super::error::SampleError;
use super::history::TokenHistory;
use super::logprobs::{log_sum_exp, top_n};
use super::mask::TokenMask;
use super::params::SamplingParams;
use super::rng::Xoshiro256StarStar;
use super::select::{
    Cand, argmax, cut_min_p, cut_top_p, draw_from, draw_full, min_p_candidates, nucleus_candidates,
    top_k_sorted, weight,
};

/// The outcome of one sampling step.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledToken {
    pub id: u32,
    /// Log-probability of `id`: the log-softmax of the *processed* logits, after logit bias,
    /// penalties and the mask, before temperature and truncation. It describes what the model,
    /// as adjusted by the request, believes, independent of the sampling temperature, and a
    /// masked token never appears as an alternative. (vLLM's default reports raw model output,
    /// before penalties and bias; with none of those the two agree.) `None` unless the request
    /// asked for logprobs, since it costs a pass over the vocabulary.
    pub logprob: Option<f32>,
    /// The requested number of most likely tokens with their log-probabilities, best first
    /// (ties: lower id first); empty unless requested.
    pub top: Vec<(u32, f32)>,
}

/// Per-sequence sampling state: the validated parameters, the seeded PRNG and scratch buffers
/// reused across steps so the hot path does not allocate (except the `top` list when asked).
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    seed: u64,
    rng: Xoshiro256StarStar,
    cands: Vec<Cand>,
    top: Vec<Cand>,
}

impl Sampler {
    /// Seeds from `params.seed()`, or from a fresh random seed reported by [`Self::seed_used`].
    pub fn new(params: &SamplingParams) -> Self {
        let seed = params.seed().unwrap_or_else(rand::random::<u64>);
        Sampler {
            params: params.clone(),
            seed,
            rng: Xoshiro256StarStar::seed_from_u64(seed),
            cands: Vec::new(),
            top: Vec::new(),
        }
    }

    /// The seed in use: passing it back as `seed` reproduces this sequence's draws.
    pub fn seed_used(&self) -> u64 {
        self.seed
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Samples the next token from `logits` (one per vocabulary entry).
    ///
    /// Order: logit bias, repetition/frequency/presence penalties, the `allowed` mask (others to
    /// -inf; ids past the mask's length too); then the argmax when greedy (temperature 0 or
    /// top_k 1; ties go to the lowest id), else temperature, top-k, top-p, min-p and a draw.
    /// On return `logits` holds the processed logits (after the mask, before temperature).
    /// Each non-greedy step consumes exactly one number from the PRNG.
    pub fn sample(
        &mut self,
        logits: &mut [f32],
        history: &TokenHistory,
        allowed: Option<&TokenMask>,
    ) -> Result<SampledToken, SampleError> {
        apply_processors(&self.params, logits, history, allowed);
        let (best_id, max) = argmax(logits)?;
        let id = if self.params.is_greedy() || self.params.top_k() == 1 {
            best_id
        } else {
            self.draw(logits, max).unwrap_or(best_id)
        };
        let (logprob, top) = match self.params.logprobs() {
            None => (None, Vec::new()),
            Some(n) => {
                let lse = log_sum_exp(logits, max);
                top_n(logits, usize::from(n), &mut self.top);
                let top = self.top.iter().map(|c| (c.id, c.key - lse)).collect();
                (Some(logits[id as usize] - lse), top)
            }
        };
        Ok(SampledToken { id, logprob, top })
    }

    /// Temperature, truncation and the draw; `max` is the largest (finite) logit. `None` only if
    /// rounding left no candidate, in which case the caller falls back to the argmax.
    fn draw(&mut self, logits: &[f32], max: f32) -> Option<u32> {
        let p = &self.params;
        let inv_t = 1.0 / p.temperature();
        let u = self.rng.next_f64();
        let k = p.top_k() as usize;
        if k > 0 {
            top_k_sorted(logits, max, k, &mut self.cands);
            let total: f64 = self
                .cands
                .iter()
                .map(|c| f64::from(weight(c.key, max, inv_t)))
                .sum();
            cut_top_p(&mut self.cands, max, inv_t, p.top_p(), total);
            let kept = cut_min_p(&mut self.cands, p.min_p());
            draw_from(&self.cands, kept, u)
        } else if p.top_p() < 1.0 {
            let total =
                nucleus_candidates(logits, max, inv_t, p.top_p(), p.min_p(), &mut self.cands);
            cut_top_p(&mut self.cands, max, inv_t, p.top_p(), total);
            let kept = cut_min_p(&mut self.cands, p.min_p());
            draw_from(&self.cands, kept, u)
        } else if p.min_p() > 0.0 {
            let total = min_p_candidates(logits, max, inv_t, p.min_p(), &mut self.cands);
            draw_from(&self.cands, total, u)
        } else {
            draw_full(logits, max, inv_t, u)
        }
    }
}

/// Logit bias, then penalties, then the mask, in place. Ids past the end of `logits` are skipped:
/// they cannot be sampled anyway.
fn apply_processors(
    params: &SamplingParams,
    logits: &mut [f32],
    history: &TokenHistory,
    mask: Option<&TokenMask>,
) {
    for &(id, bias) in params.logit_bias() {
        if let Some(l) = logits.get_mut(id as usize) {
            *l += bias;
        }
    }
    if params.has_penalties() {
        if params.has_repetition_penalty() {
            let penalty = params.repetition_penalty();
            for (id, _) in history.window_counts() {
                if let Some(l) = logits.get_mut(id as usize) {
                    // HF / llama.cpp semantics: always towards "less likely", whatever the sign.
                    *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
                }
            }
        }
        let (freq, presence) = (params.frequency_penalty(), params.presence_penalty());
        if freq != 0.0 || presence != 0.0 {
            for (id, count) in history.generated_counts() {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l -= freq * count as f32 + presence;
                }
            }
        }
    }
    if let Some(mask) = mask {
        mask.apply(logits);
    }
}
