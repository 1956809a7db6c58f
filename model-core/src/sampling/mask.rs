//! [`TokenMask`]: the set of tokens a constraint allows at one step.

/// A bitset over token ids: bit `id % 32` of word `id / 32`, least significant bit first, the
/// same layout as toktrie's `SimpleVob`, so a constraint's mask converts without reshuffling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMask {
    words: Vec<u32>,
    len: usize,
}

impl TokenMask {
    /// A mask over `len` tokens with none allowed.
    pub fn allow_none(len: usize) -> Self {
        TokenMask {
            words: vec![0; len.div_ceil(32)],
            len,
        }
    }

    /// A mask over `len` tokens with all allowed.
    pub fn allow_all(len: usize) -> Self {
        let mut mask = TokenMask {
            words: vec![u32::MAX; len.div_ceil(32)],
            len,
        };
        mask.clear_tail();
        mask
    }

    /// Wraps words in `SimpleVob` layout. Missing words mean "not allowed"; bits at or past
    /// `len` are ignored.
    pub fn from_words(mut words: Vec<u32>, len: usize) -> Self {
        words.resize(len.div_ceil(32), 0);
        let mut mask = TokenMask { words, len };
        mask.clear_tail();
        mask
    }

    /// Number of token ids the mask covers.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `id` may be sampled; ids at or past [`len`](Self::len) never may.
    pub fn allows(&self, id: u32) -> bool {
        let i = id as usize;
        i < self.len && self.words[i / 32] & (1 << (i % 32)) != 0
    }

    /// Allows `id`; ids at or past [`len`](Self::len) are ignored.
    pub fn allow(&mut self, id: u32) {
        let i = id as usize;
        if i < self.len {
            self.words[i / 32] |= 1 << (i % 32);
        }
    }

    /// Disallows `id`; ids at or past [`len`](Self::len) are ignored.
    pub fn disallow(&mut self, id: u32) {
        let i = id as usize;
        if i < self.len {
            self.words[i / 32] &= !(1 << (i % 32));
        }
    }

    /// Number of allowed tokens.
    pub fn count_allowed(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The raw words, `SimpleVob` layout.
    pub fn words(&self) -> &[u32] {
        &self.words
    }

    /// Sets every disallowed logit to -inf, including logits past the mask's length (a model's
    /// vocabulary is often padded beyond its tokenizer's).
    pub(crate) fn apply(&self, logits: &mut [f32]) {
        for (w, chunk) in logits.chunks_mut(32).enumerate() {
            let word = self.words.get(w).copied().unwrap_or(0);
            if word == u32::MAX {
                continue;
            }
            for (bit, logit) in chunk.iter_mut().enumerate() {
                if word & (1 << bit) == 0 {
                    *logit = f32::NEG_INFINITY;
                }
            }
        }
    }

    fn clear_tail(&mut self) {
        let rem = self.len % 32;
        if rem != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u32 << rem) - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_and_disallow_round_trip() {
        let mut m = TokenMask::allow_none(70);
        assert_eq!(m.count_allowed(), 0);
        m.allow(0);
        m.allow(33);
        m.allow(69);
        m.allow(70); // out of range: ignored
        assert!(m.allows(0) && m.allows(33) && m.allows(69));
        assert!(!m.allows(1) && !m.allows(70) && !m.allows(u32::MAX));
        assert_eq!(m.count_allowed(), 3);
        m.disallow(33);
        assert!(!m.allows(33));
    }

    #[test]
    fn allow_all_covers_exactly_len() {
        let m = TokenMask::allow_all(33);
        assert_eq!(m.count_allowed(), 33);
        assert!(m.allows(32) && !m.allows(33));
    }

    #[test]
    fn apply_masks_disallowed_and_tail() {
        let mut m = TokenMask::allow_all(40);
        m.disallow(5);
        let mut logits = vec![1.0f32; 45];
        m.apply(&mut logits);
        for (i, l) in logits.iter().enumerate() {
            let want_masked = i == 5 || i >= 40;
            assert_eq!(*l == f32::NEG_INFINITY, want_masked, "token {i}");
        }
    }

    #[test]
    fn from_words_ignores_bits_past_len() {
        let m = TokenMask::from_words(vec![u32::MAX, u32::MAX], 36);
        assert_eq!(m.count_allowed(), 36);
        let short = TokenMask::from_words(vec![1], 64);
        assert_eq!(short.count_allowed(), 1);
    }
}
