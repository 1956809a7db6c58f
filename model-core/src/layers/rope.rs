//! Rotary position embeddings with a precomputed cos/sin table.

use crate::config::{ModelConfig, RopeScaling, RopeStyle};

pub struct Rope {
    style: RopeStyle,
    half: usize,
    /// `(positions, half)` cos and sin of `position * freq[i]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    pub fn new(cfg: &ModelConfig) -> Self {
        let half = cfg.head_dim / 2;
        let freqs = frequencies(cfg);
        let positions = cfg.context_length;
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        let theta_scale = cfg.rope_theta.powf(-2.0 / cfg.head_dim as f32);
        for p in 0..positions {
            if cfg.rope_scaling == RopeScaling::None {
                // Same f32 arithmetic as ggml (theta starts at the position and is multiplied by
                // theta_scale per pair), so angles round identically to the reference.
                let mut theta = p as f32;
                for _ in 0..half {
                    cos.push(theta.cos());
                    sin.push(theta.sin());
                    theta *= theta_scale;
                }
            } else {
                for &f in &freqs {
                    let theta = p as f32 * f;
                    cos.push(theta.cos());
                    sin.push(theta.sin());
                }
            }
        }
        Rope {
            style: cfg.rope_style,
            half,
            cos,
            sin,
        }
    }

    pub fn max_positions(&self) -> usize {
        self.cos.len() / self.half.max(1)
    }

    /// Rotates every head of one token's `(heads, head_dim)` vector in place.
    pub fn apply(&self, x: &mut [f32], heads: usize, pos: usize) {
        let half = self.half;
        let cos = &self.cos[pos * half..(pos + 1) * half];
        let sin = &self.sin[pos * half..(pos + 1) * half];
        for h in 0..heads {
            let head = &mut x[h * 2 * half..(h + 1) * 2 * half];
            match self.style {
                RopeStyle::Interleaved => {
                    for i in 0..half {
                        let (a, b) = (head[2 * i], head[2 * i + 1]);
                        head[2 * i] = a * cos[i] - b * sin[i];
                        head[2 * i + 1] = a * sin[i] + b * cos[i];
                    }
                }
                RopeStyle::Halves => {
                    for i in 0..half {
                        let (a, b) = (head[i], head[i + half]);
                        head[i] = a * cos[i] - b * sin[i];
                        head[i + half] = a * sin[i] + b * cos[i];
                    }
                }
            }
        }
    }
}

/// Per-pair angular frequencies, with the config's scaling applied.
fn frequencies(cfg: &ModelConfig) -> Vec<f32> {
    let half = cfg.head_dim / 2;
    // ggml computes theta_scale = base^(-2/d) once and multiplies it in repeatedly.
    let theta_scale = cfg.rope_theta.powf(-2.0 / cfg.head_dim as f32);
    let mut f = 1.0f32;
    let mut freqs = Vec::with_capacity(half);
    for _ in 0..half {
        freqs.push(f);
        f *= theta_scale;
    }
    match cfg.rope_scaling {
        RopeScaling::None => {}
        RopeScaling::Linear { factor } => freqs.iter_mut().for_each(|f| *f /= factor),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position,
        } => {
            let old = original_max_position as f32;
            let low_wavelen = old / low_freq_factor;
            let high_wavelen = old / high_freq_factor;
            for f in freqs.iter_mut() {
                let wavelen = 2.0 * std::f32::consts::PI / *f;
                if wavelen > low_wavelen {
                    *f /= factor;
                } else if wavelen >= high_wavelen {
                    let smooth =
                        (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                    *f = (1.0 - smooth) * *f / factor + smooth * *f;
                }
            }
        }
    }
    freqs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Architecture;

    fn cfg(style: RopeStyle) -> ModelConfig {
        ModelConfig {
            architecture: Architecture::Llama,
            name: "t".into(),
            vocab_size: 8,
            hidden_size: 8,
            intermediate_size: 8,
            num_layers: 1,
            num_heads: 2,
            num_kv_heads: 1,
            head_dim: 4,
            rms_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_style: style,
            rope_scaling: RopeScaling::None,
            context_length: 16,
            sliding_window: None,
            attention_bias: false,
        }
    }

    #[test]
    fn position_zero_is_identity_and_norm_is_preserved() {
        for style in [RopeStyle::Interleaved, RopeStyle::Halves] {
            let rope = Rope::new(&cfg(style));
            let orig = [1.0f32, 2.0, 3.0, 4.0, -1.0, 0.5, 0.25, 2.0];
            let mut x = orig;
            rope.apply(&mut x, 2, 0);
            assert_eq!(x, orig, "{style:?}");
            rope.apply(&mut x, 2, 7);
            let n0: f32 = orig.iter().map(|v| v * v).sum();
            let n1: f32 = x.iter().map(|v| v * v).sum();
            assert!(
                (n0 - n1).abs() < 1e-4,
                "{style:?}: rotation changed the norm"
            );
            assert_ne!(x, orig);
        }
    }

    #[test]
    fn interleaved_equals_halves_on_permuted_dimensions() {
        // llama.cpp's conversion permutes rows so that interleaved pairs on the permuted vector
        // equal half-split pairs on the original: checks the two layouts agree.
        let a = Rope::new(&cfg(RopeStyle::Interleaved));
        let b = Rope::new(&cfg(RopeStyle::Halves));
        let orig = [0.3f32, -1.2, 0.7, 2.0];
        let mut halves = orig;
        b.apply(&mut halves, 1, 5);
        let mut inter = [orig[0], orig[2], orig[1], orig[3]];
        a.apply(&mut inter, 1, 5);
        let back = [inter[0], inter[2], inter[1], inter[3]];
        for (x, y) in back.iter().zip(halves.iter()) {
            assert!((x - y).abs() < 1e-6);
        }
    }
}
