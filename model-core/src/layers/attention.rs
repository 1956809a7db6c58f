//! Causal self-attention of each sequence over its own KV blocks.

use rayon::prelude::*;

use crate::kv::store::LayerView;

/// One sequence's slice of the step: its rows in the batch and where they sit in its cache.
#[derive(Clone, Copy)]
pub struct AttnSeq<'a> {
    pub blocks: &'a [u32],
    /// Position of the first token of this step's chunk (= tokens already cached before it).
    pub start_pos: usize,
    /// Row of the chunk's first token in the step's activations.
    pub row: usize,
    pub len: usize,
}

pub struct AttnShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub sliding_window: Option<usize>,
}

/// Raw output pointer shared by the parallel tasks; each task writes a disjoint `head_dim` run.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint ranges (distinct (row, head) pairs) and the buffer outlives the
// parallel loop, which joins before `attention` returns.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Going through a method makes closures capture the whole (Sync) wrapper, not the raw field.
    /// # Safety
    /// `offset` must lie within the output buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: guaranteed by the caller.
        unsafe { self.0.add(offset) }
    }
}

const ROWS_PER_TASK: usize = 16;

/// `q`: `(tokens, heads, head_dim)` after RoPE; `out`: `(tokens, heads, head_dim)`.
pub fn attention(
    shape: &AttnShape,
    q: &[f32],
    kv: LayerView<'_>,
    seqs: &[AttnSeq<'_>],
    out: &mut [f32],
) {
    let q_dim = shape.heads * shape.head_dim;
    assert_eq!(q.len(), out.len(), "q and out must have the same shape");
    let mut tasks = Vec::new();
    for (s, seq) in seqs.iter().enumerate() {
        for h in 0..shape.heads {
            let mut i = 0;
            while i < seq.len {
                tasks.push((s, h, i, (i + ROWS_PER_TASK).min(seq.len)));
                i += ROWS_PER_TASK;
            }
        }
    }
    let out_ptr = OutPtr(out.as_mut_ptr());
    let out_len = out.len();
    let group = shape.heads / shape.kv_heads;
    let scale = 1.0 / (shape.head_dim as f32).sqrt();
    tasks.par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(scores, q16): &mut (Vec<f32>, Vec<f32>), &(s, h, from, to)| {
            let seq = &seqs[s];
            let kv_head = h / group;
            let d = shape.head_dim;
            for i in from..to {
                let row = seq.row + i;
                let pos = seq.start_pos + i;
                let first = match shape.sliding_window {
                    Some(w) => (pos + 1).saturating_sub(w),
                    None => 0,
                };
                // Numerics follow llama.cpp's CPU path over an f16 cache: the query is rounded to
                // f16 for the q·k products, the softmax sums in f64, and the probabilities are rounded
                // to f16 before weighting the values. Matching it keeps greedy outputs identical to
                // the reference at near-ties.
                let qv = &q[row * q_dim + h * d..row * q_dim + (h + 1) * d];
                q16.clear();
                q16.extend(qv.iter().map(|&x| half::f16::from_f32(x).to_f32()));
                scores.clear();
                let mut max = f32::NEG_INFINITY;
                for p in first..=pos {
                    let s = enclave_kernels::dot_f16_f32(kv.key(seq.blocks, p, kv_head, d), q16)
                        * scale;
                    max = max.max(s);
                    scores.push(s);
                }
                let mut sum = 0.0f64;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    sum += f64::from(*s);
                }
                let inv = (1.0 / sum) as f32;
                for s in scores.iter_mut() {
                    *s = half::f16::from_f32(*s * inv).to_f32();
                }
                let at = row * q_dim + h * d;
                debug_assert!(at + d <= out_len);
                // SAFETY: `at..at + d` is within `out` (row < tokens, h < heads) and no other task
                // writes this (row, head) pair; see OutPtr.
                let o = unsafe { std::slice::from_raw_parts_mut(out_ptr.at(at), d) };
                o.fill(0.0);
                for (k, p) in (first..=pos).enumerate() {
                    enclave_kernels::axpy_f16_f32(
                        scores[k],
                        kv.value(seq.blocks, p, kv_head, d),
                        o,
                    );
                }
            }
        },
    );
}
