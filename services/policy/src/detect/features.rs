//! Hashed character n-gram features over normalised text.

use crate::normalize::normalize;

/// FNV-1a, seeded with the n-gram length so "a" and "aa" prefixes do not share buckets by design.
fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x100_0000_01b3);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Sparse L2-normalised feature vector: (bucket, value), buckets sorted and unique.
pub(crate) fn featurize(text: &str, n_min: usize, n_max: usize, dims: u32) -> Vec<(u32, f32)> {
    let norm = normalize(text);
    // Collapse whitespace runs so layout does not change features.
    let norm: String = norm.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars: Vec<(usize, char)> = norm.char_indices().collect();
    let mut buckets: Vec<u32> = Vec::new();
    for n in n_min..=n_max {
        if chars.len() < n {
            break;
        }
        for w in 0..=chars.len() - n {
            let start = chars[w].0;
            let end = chars.get(w + n).map_or(norm.len(), |c| c.0);
            buckets.push((fnv1a(&norm.as_bytes()[start..end], n as u64) % u64::from(dims)) as u32);
        }
    }
    buckets.sort_unstable();
    let mut out: Vec<(u32, f32)> = Vec::new();
    for b in buckets {
        match out.last_mut() {
            Some((last, v)) if *last == b => *v += 1.0,
            _ => out.push((b, 1.0)),
        }
    }
    let norm2: f32 = out.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
    if norm2 > 0.0 {
        for (_, v) in &mut out {
            *v /= norm2;
        }
    }
    out
}

/// Deterministic PRNG (SplitMix64) for shuffling; no dependency, stable across platforms.
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Stable hash of a text, used for the held-out split.
pub(crate) fn text_hash(text: &str) -> u64 {
    fnv1a(text.as_bytes(), 0x5eed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_normalised_and_case_insensitive() {
        let a = featurize("Hello  WORLD", 1, 3, 1 << 16);
        let b = featurize("hello world", 1, 3, 1 << 16);
        assert_eq!(a, b);
        let n: f32 = a.iter().map(|(_, v)| v * v).sum();
        assert!((n - 1.0).abs() < 1e-4);
    }
}
