//! The Llama decoder family (Llama 2/3, Mistral, DeepSeek-LLM, SmolLM2, Qwen2 with q/k/v bias).
//! One forward call runs a whole scheduler step: every linear layer once over the tokens of all
//! sequences, attention per sequence over its own KV blocks.

use std::sync::Arc;

use enclave_kernels::{KernelError, QMatrix};

use crate::adapters::{LoraAdapter, Target, apply_lora};
use crate::config::ModelConfig;
use crate::error::LoadError;
use crate::kv::KvStore;
use crate::layers::attention::{AttnSeq, AttnShape, attention};
use crate::layers::linear::Linear;
use crate::layers::rope::Rope;
use crate::loader::{TensorName, WeightSource, stacked_matrix};

struct Layer {
    attn_norm: Vec<f32>,
    /// q, k and v stacked: output `(tokens, q_dim + 2 kv_dim)`.
    qkv: Linear,
    o: Linear,
    ffn_norm: Vec<f32>,
    /// gate and up stacked: output `(tokens, 2 intermediate)`.
    gate_up: Linear,
    down: Linear,
}

pub struct LlamaModel {
    cfg: ModelConfig,
    embed: Arc<QMatrix>,
    lm_head: Arc<QMatrix>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    rope: Rope,
}

/// One sequence's part of a step.
pub struct StepSeq<'a> {
    pub tokens: &'a [u32],
    /// Tokens of this sequence already in the cache (the position of `tokens[0]`).
    pub start_pos: usize,
    /// KV blocks covering at least `start_pos + tokens.len()` positions.
    pub blocks: &'a [u32],
    /// Whether the caller needs logits for the last token of this chunk.
    pub logits: bool,
    /// The LoRA adapter this sequence runs with (`None`: the base model).
    pub adapter: Option<&'a LoraAdapter>,
}

/// Activation buffers reused across steps (sized to the largest step seen).
#[derive(Default)]
pub struct Scratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    qkv: Vec<f32>,
    q: Vec<f32>,
    attn: Vec<f32>,
    proj: Vec<f32>,
    gate_up: Vec<f32>,
    hidden: Vec<f32>,
    last: Vec<f32>,
    logits: Vec<f32>,
}

fn resize(v: &mut Vec<f32>, n: usize) {
    v.resize(n, 0.0);
}

fn stacked(
    src: &dyn WeightSource,
    parts: &[(TensorName, usize)],
    cols: usize,
) -> Result<QMatrix, LoadError> {
    if let Some(m) = stacked_matrix(src, parts, cols)? {
        return Ok(m);
    }
    // Mixed formats (some GGUF mixes use e.g. Q6_K for v): stack as f32 rows instead.
    let rows: usize = parts.iter().map(|(_, r)| r).sum();
    let mut values = Vec::with_capacity(rows * cols);
    for (name, r) in parts {
        let m = src.matrix(name, *r, cols)?.into_qmatrix(name)?;
        let mut row = vec![0.0f32; cols];
        for i in 0..*r {
            m.dequantize_row(i, &mut row)
                .map_err(|e| LoadError::Weights {
                    tensor: name.to_string(),
                    reason: e.to_string(),
                })?;
            values.extend_from_slice(&row);
        }
    }
    QMatrix::from_f32(rows, cols, &values).map_err(|e| LoadError::Weights {
        tensor: parts[0].0.to_string(),
        reason: e.to_string(),
    })
}

impl LlamaModel {
    pub fn load(src: &dyn WeightSource) -> Result<Self, LoadError> {
        let cfg = src.config().clone();
        let (h, v, ff) = (cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size);
        let (qd, kvd) = (cfg.q_dim(), cfg.kv_dim());
        let embed_name = TensorName::TokenEmbedding;
        let embed = Arc::new(src.matrix(&embed_name, v, h)?.into_qmatrix(&embed_name)?);
        let lm_head = if src.has(&TensorName::Output) {
            Arc::new(
                src.matrix(&TensorName::Output, v, h)?
                    .into_qmatrix(&TensorName::Output)?,
            )
        } else {
            Arc::clone(&embed)
        };
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for l in 0..cfg.num_layers {
            let qkv_bias = if cfg.attention_bias {
                let mut b = src.vector(&TensorName::QBias(l), qd)?;
                b.extend(src.vector(&TensorName::KBias(l), kvd)?);
                b.extend(src.vector(&TensorName::VBias(l), kvd)?);
                Some(b)
            } else {
                None
            };
            let qkv = stacked(
                src,
                &[
                    (TensorName::Q(l), qd),
                    (TensorName::K(l), kvd),
                    (TensorName::V(l), kvd),
                ],
                h,
            )?;
            let gate_up = stacked(
                src,
                &[(TensorName::Gate(l), ff), (TensorName::Up(l), ff)],
                h,
            )?;
            let o = src
                .matrix(&TensorName::O(l), h, qd)?
                .into_qmatrix(&TensorName::O(l))?;
            let down = src
                .matrix(&TensorName::Down(l), h, ff)?
                .into_qmatrix(&TensorName::Down(l))?;
            layers.push(Layer {
                attn_norm: src.vector(&TensorName::AttnNorm(l), h)?,
                qkv: Linear::new(qkv, qkv_bias),
                o: Linear::new(o, None),
                ffn_norm: src.vector(&TensorName::FfnNorm(l), h)?,
                gate_up: Linear::new(gate_up, None),
                down: Linear::new(down, None),
            });
        }
        let output_norm = src.vector(&TensorName::OutputNorm, h)?;
        let rope = Rope::new(&cfg);
        Ok(LlamaModel {
            cfg,
            embed,
            lm_head,
            output_norm,
            layers,
            rope,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Bytes of weights held in memory.
    pub fn weight_bytes(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                l.qkv.weight.size_bytes()
                    + l.o.weight.size_bytes()
                    + l.gate_up.weight.size_bytes()
                    + l.down.weight.size_bytes()
            })
            .sum();
        let head = if Arc::ptr_eq(&self.embed, &self.lm_head) {
            0
        } else {
            self.lm_head.size_bytes()
        };
        layers + self.embed.size_bytes() + head
    }

    /// Runs one step; returns logits `(rows, vocab)` for the sequences with `logits == true`, in order.
    pub fn forward<'s>(
        &self,
        seqs: &[StepSeq<'_>],
        kv: &mut KvStore,
        s: &'s mut Scratch,
    ) -> Result<&'s [f32], KernelError> {
        let cfg = &self.cfg;
        let (h, ff) = (cfg.hidden_size, cfg.intermediate_size);
        let (qd, kvd) = (cfg.q_dim(), cfg.kv_dim());
        let tokens: usize = seqs.iter().map(|q| q.tokens.len()).sum();
        for v in [&mut s.x, &mut s.xn] {
            resize(v, tokens * h);
        }
        resize(&mut s.qkv, tokens * (qd + 2 * kvd));
        resize(&mut s.q, tokens * qd);
        resize(&mut s.attn, tokens * qd);
        resize(&mut s.proj, tokens * h);
        resize(&mut s.gate_up, tokens * 2 * ff);
        resize(&mut s.hidden, tokens * ff);

        // Embeddings, and each sequence's rows in the step.
        let mut attn_seqs = Vec::with_capacity(seqs.len());
        let mut row = 0;
        for seq in seqs {
            for (i, &t) in seq.tokens.iter().enumerate() {
                let r = row + i;
                self.embed
                    .dequantize_row(t as usize, &mut s.x[r * h..(r + 1) * h])?;
            }
            attn_seqs.push(AttnSeq {
                blocks: seq.blocks,
                start_pos: seq.start_pos,
                row,
                len: seq.tokens.len(),
            });
            row += seq.tokens.len();
        }
        let shape = AttnShape {
            heads: cfg.num_heads,
            kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            sliding_window: cfg.sliding_window,
        };
        let qkv_w = qd + 2 * kvd;
        // Each row's adapter (None: base model), for the low-rank updates after each projection.
        let row_adapters: Vec<Option<&LoraAdapter>> = seqs
            .iter()
            .flat_map(|q| std::iter::repeat_n(q.adapter, q.tokens.len()))
            .collect();

        for (l, layer) in self.layers.iter().enumerate() {
            rms_norm_rows(&s.x, &layer.attn_norm, cfg.rms_eps, &mut s.xn, h)?;
            layer.qkv.forward(&s.xn, tokens, &mut s.qkv)?;
            let qkv_parts = [(Target::Q, 0), (Target::K, qd), (Target::V, qd + kvd)];
            apply_lora(&row_adapters, l, &qkv_parts, &s.xn, h, &mut s.qkv, qkv_w)?;
            // RoPE on q and k, copy q out, write k and v to the cache.
            for a in &attn_seqs {
                for i in 0..a.len {
                    let r = a.row + i;
                    let pos = a.start_pos + i;
                    let t = &mut s.qkv[r * qkv_w..(r + 1) * qkv_w];
                    let (q, kv_part) = t.split_at_mut(qd);
                    self.rope.apply(q, cfg.num_heads, pos);
                    let (k, v) = kv_part.split_at_mut(kvd);
                    self.rope.apply(k, cfg.num_kv_heads, pos);
                    s.q[r * qd..(r + 1) * qd].copy_from_slice(q);
                    kv.write(l, a.blocks, pos, k, v)?;
                }
            }
            attention(&shape, &s.q, kv.layer(l), &attn_seqs, &mut s.attn);
            layer.o.forward(&s.attn, tokens, &mut s.proj)?;
            apply_lora(
                &row_adapters,
                l,
                &[(Target::O, 0)],
                &s.attn,
                qd,
                &mut s.proj,
                h,
            )?;
            enclave_kernels::add_inplace(&mut s.x, &s.proj)?;

            rms_norm_rows(&s.x, &layer.ffn_norm, cfg.rms_eps, &mut s.xn, h)?;
            layer.gate_up.forward(&s.xn, tokens, &mut s.gate_up)?;
            let gu_parts = [(Target::Gate, 0), (Target::Up, ff)];
            apply_lora(
                &row_adapters,
                l,
                &gu_parts,
                &s.xn,
                h,
                &mut s.gate_up,
                2 * ff,
            )?;
            for r in 0..tokens {
                let gu = &mut s.gate_up[r * 2 * ff..(r + 1) * 2 * ff];
                let (gate, up) = gu.split_at_mut(ff);
                enclave_kernels::silu_mul(gate, up)?;
                s.hidden[r * ff..(r + 1) * ff].copy_from_slice(gate);
            }
            layer.down.forward(&s.hidden, tokens, &mut s.proj)?;
            apply_lora(
                &row_adapters,
                l,
                &[(Target::Down, 0)],
                &s.hidden,
                ff,
                &mut s.proj,
                h,
            )?;
            enclave_kernels::add_inplace(&mut s.x, &s.proj)?;
        }

        // Final norm and logits only for the rows that need them.
        let wanted: Vec<usize> = attn_seqs
            .iter()
            .zip(seqs)
            .filter(|(_, q)| q.logits && !q.tokens.is_empty())
            .map(|(a, _)| a.row + a.len - 1)
            .collect();
        resize(&mut s.last, wanted.len() * h);
        for (i, &r) in wanted.iter().enumerate() {
            enclave_kernels::rms_norm(
                &s.x[r * h..(r + 1) * h],
                &self.output_norm,
                cfg.rms_eps,
                &mut s.last[i * h..(i + 1) * h],
            )?;
        }
        resize(&mut s.logits, wanted.len() * cfg.vocab_size);
        if !wanted.is_empty() {
            enclave_kernels::matmul(&self.lm_head, &s.last, wanted.len(), &mut s.logits)?;
        }
        Ok(&s.logits)
    }
}

fn rms_norm_rows(
    x: &[f32],
    w: &[f32],
    eps: f32,
    out: &mut [f32],
    h: usize,
) -> Result<(), KernelError> {
    for (xr, or) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        enclave_kernels::rms_norm(xr, w, eps, or)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::BlockAllocator;
    use crate::loader::MemorySource;

    /// Logits of the last token after feeding `tokens` in chunks of the given sizes.
    fn logits_in_chunks(model: &LlamaModel, tokens: &[u32], chunks: &[usize]) -> Vec<f32> {
        let cfg = model.config();
        let alloc = BlockAllocator::new(64, 4);
        let mut kv = KvStore::new(cfg.num_layers, 64, 4, cfg.kv_dim());
        let mut blocks = alloc.new_sequence();
        let mut scratch = Scratch::default();
        let mut pos = 0;
        let mut last = Vec::new();
        for &n in chunks {
            assert!(blocks.reserve(pos + n));
            let step = [StepSeq {
                tokens: &tokens[pos..pos + n],
                start_pos: pos,
                blocks: blocks.ids(),
                logits: true,
                adapter: None,
            }];
            last = model
                .forward(&step, &mut kv, &mut scratch)
                .expect("forward")
                .to_vec();
            pos += n;
        }
        assert_eq!(pos, tokens.len());
        last
    }

    #[test]
    fn chunked_prefill_and_token_by_token_decode_agree_with_one_shot_prefill() {
        let model = LlamaModel::load(&MemorySource::random(MemorySource::tiny_config(), 42))
            .expect("loads");
        let tokens: Vec<u32> = (0..23).map(|i| (i * 7 % 96) as u32).collect();
        let once = logits_in_chunks(&model, &tokens, &[23]);
        let chunked = logits_in_chunks(&model, &tokens, &[5, 9, 1, 8]);
        let stepwise = logits_in_chunks(&model, &tokens, &[1; 23]);
        assert_eq!(once.len(), 96);
        for (a, b) in once.iter().zip(&chunked) {
            assert!((a - b).abs() < 1e-4, "chunked prefill differs: {a} vs {b}");
        }
        for (a, b) in once.iter().zip(&stepwise) {
            assert!((a - b).abs() < 1e-4, "token-by-token differs: {a} vs {b}");
        }
    }

    #[test]
    fn sequences_in_one_step_do_not_see_each_other() {
        let model =
            LlamaModel::load(&MemorySource::random(MemorySource::tiny_config(), 7)).expect("loads");
        let cfg = model.config();
        let a: Vec<u32> = vec![3, 14, 15, 92, 65];
        let b: Vec<u32> = vec![27, 18, 28];
        let alone_a = logits_in_chunks(&model, &a, &[5]);
        let alone_b = logits_in_chunks(&model, &b, &[3]);
        let alloc = BlockAllocator::new(16, 4);
        let mut kv = KvStore::new(cfg.num_layers, 16, 4, cfg.kv_dim());
        let (mut ba, mut bb) = (alloc.new_sequence(), alloc.new_sequence());
        assert!(ba.reserve(5) && bb.reserve(3));
        let mut scratch = Scratch::default();
        let step = [
            StepSeq {
                tokens: &a,
                start_pos: 0,
                blocks: ba.ids(),
                logits: true,
                adapter: None,
            },
            StepSeq {
                tokens: &b,
                start_pos: 0,
                blocks: bb.ids(),
                logits: true,
                adapter: None,
            },
        ];
        let both = model
            .forward(&step, &mut kv, &mut scratch)
            .expect("forward")
            .to_vec();
        let v = cfg.vocab_size;
        for (x, y) in both[..v].iter().zip(&alone_a) {
            assert!((x - y).abs() < 1e-4);
        }
        for (x, y) in both[v..].iter().zip(&alone_b) {
            assert!((x - y).abs() < 1e-4);
        }
    }
}
