//! [`TokenHistory`]: a sequence's tokens plus the running counts the penalties need, so applying
//! them costs O(distinct tokens) per step rather than O(vocabulary × length).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::params::SamplingParams;

/// Prompt and generated token ids of one sequence, with per-token counts kept up to date by
/// [`push`](Self::push).
#[derive(Debug, Clone)]
pub struct TokenHistory {
    tokens: Vec<u32>,
    prompt_len: usize,
    /// `None`: the repetition window is every token; `Some(n)`: the newest `n`.
    window: Option<usize>,
    /// Occurrences of each token inside the repetition window.
    window_counts: HashMap<u32, u32>,
    /// Occurrences of each token among the generated ones (frequency and presence penalties).
    generated_counts: HashMap<u32, u32>,
}

impl TokenHistory {
    /// Starts a history for `prompt`, with the repetition window of `params`.
    pub fn new(prompt: &[u32], params: &SamplingParams) -> Self {
        let window = params.repeat_last_n().map(|n| n as usize);
        let start = window.map_or(0, |n| prompt.len().saturating_sub(n));
        let mut window_counts = HashMap::new();
        for &id in &prompt[start..] {
            *window_counts.entry(id).or_insert(0) += 1;
        }
        TokenHistory {
            tokens: prompt.to_vec(),
            prompt_len: prompt.len(),
            window,
            window_counts,
            generated_counts: HashMap::new(),
        }
    }

    /// Records a generated token.
    pub fn push(&mut self, id: u32) {
        self.tokens.push(id);
        *self.generated_counts.entry(id).or_insert(0) += 1;
        match self.window {
            Some(0) => {}
            Some(n) => {
                *self.window_counts.entry(id).or_insert(0) += 1;
                if self.tokens.len() > n {
                    let leaving = self.tokens[self.tokens.len() - 1 - n];
                    decrement(&mut self.window_counts, leaving);
                }
            }
            None => *self.window_counts.entry(id).or_insert(0) += 1,
        }
    }

    /// Prompt followed by generated tokens.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn prompt(&self) -> &[u32] {
        &self.tokens[..self.prompt_len]
    }

    pub fn generated(&self) -> &[u32] {
        &self.tokens[self.prompt_len..]
    }

    /// Distinct tokens inside the repetition window, each with its count there.
    pub fn window_counts(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.window_counts.iter().map(|(&id, &n)| (id, n))
    }

    /// Distinct generated tokens, each with its count.
    pub fn generated_counts(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.generated_counts.iter().map(|(&id, &n)| (id, n))
    }
}

fn decrement(counts: &mut HashMap<u32, u32>, id: u32) {
    if let Entry::Occupied(mut e) = counts.entry(id) {
        if *e.get() <= 1 {
            e.remove();
        } else {
            *e.get_mut() -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::{RawSamplingParams, SamplingLimits};

    fn params(repeat_last_n: Option<u32>) -> SamplingParams {
        let raw = RawSamplingParams {
            repeat_last_n,
            ..Default::default()
        };
        let limits = SamplingLimits {
            vocab_size: 100,
            max_stop_sequences: 4,
            max_logprobs: 5,
        };
        SamplingParams::parse(raw, &limits).expect("valid params")
    }

    fn sorted(it: impl Iterator<Item = (u32, u32)>) -> Vec<(u32, u32)> {
        let mut v: Vec<_> = it.collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn window_slides_over_prompt_and_output() {
        let mut h = TokenHistory::new(&[1, 2, 2, 3], &params(Some(3)));
        assert_eq!(sorted(h.window_counts()), vec![(2, 2), (3, 1)]);
        h.push(4);
        assert_eq!(sorted(h.window_counts()), vec![(2, 1), (3, 1), (4, 1)]);
        h.push(4);
        assert_eq!(sorted(h.window_counts()), vec![(3, 1), (4, 2)]);
        assert_eq!(sorted(h.generated_counts()), vec![(4, 2)]);
        assert_eq!(h.prompt(), &[1, 2, 2, 3]);
        assert_eq!(h.generated(), &[4, 4]);
    }

    #[test]
    fn unbounded_window_counts_everything() {
        let mut h = TokenHistory::new(&[5, 5], &params(None));
        h.push(6);
        assert_eq!(sorted(h.window_counts()), vec![(5, 2), (6, 1)]);
    }

    #[test]
    fn zero_window_counts_nothing() {
        let mut h = TokenHistory::new(&[5, 5], &params(Some(0)));
        h.push(6);
        assert_eq!(h.window_counts().count(), 0);
        assert_eq!(sorted(h.generated_counts()), vec![(6, 1)]);
    }
}
