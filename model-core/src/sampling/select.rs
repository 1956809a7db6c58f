//! The hot loops: argmax, truncation (top-k, top-p, min-p) and the categorical draw. Everything
//! here works on processed logits that contain only finite values and -inf (the caller has
//! rejected NaN and +inf), and writes only into the caller-owned candidate buffer.

use std::cmp::Ordering;

use super::error::SampleError;
use super::fastmath::{ArgMax, LANES, argmax_lanes, chunk_weights, exp, total_weight};

/// A token still in the running. `key` is its logit until weights are computed, then its weight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cand {
    pub(crate) key: f32,
    pub(crate) id: u32,
}

/// Larger key first, then lower id: a total order, so truncation never depends on sort stability.
pub(crate) fn by_key_desc(a: &Cand, b: &Cand) -> Ordering {
    b.key.total_cmp(&a.key).then(a.id.cmp(&b.id))
}

/// Weight of a logit relative to the maximum `m` at inverse temperature `inv_t`: exp((l-m)/T).
/// Same operations as [`chunk_weights`], so a token's weight is the same bits everywhere.
#[inline]
pub(crate) fn weight(l: f32, m: f32, inv_t: f32) -> f32 {
    exp((l - m) * inv_t)
}

/// One pass: the maximum logit and the lowest id holding it. Rejects NaN and +inf (the model
/// misbehaved) and an all -inf vector (nothing can be sampled).
pub(crate) fn argmax(logits: &[f32]) -> Result<(u32, f32), SampleError> {
    match argmax_lanes(logits) {
        ArgMax::Best(id, value) => Ok((id, value)),
        ArgMax::Bad(id) => Err(SampleError::NonFiniteLogit {
            id,
            value: logits[id as usize],
        }),
        ArgMax::Empty => Err(SampleError::NoCandidates {
            vocab_size: logits.len(),
        }),
    }
}

/// Logit gaps below the maximum tried in turn when gathering top-k candidates: most steps have
/// k tokens within a few logits of the maximum, so the selection runs over a short list.
const TOP_K_GAPS: [f32; 3] = [4.0, 16.0, f32::INFINITY];

/// Leaves the `k` largest logits in `out`, sorted by [`by_key_desc`] (fewer if fewer are finite).
pub(crate) fn top_k_sorted(logits: &[f32], m: f32, k: usize, out: &mut Vec<Cand>) {
    for gap in TOP_K_GAPS {
        out.clear();
        let threshold = m - gap;
        for (i, &l) in logits.iter().enumerate() {
            if l >= threshold && l > f32::NEG_INFINITY {
                out.push(Cand {
                    key: l,
                    id: i as u32,
                });
            }
        }
        if out.len() >= k {
            break;
        }
    }
    if out.len() > k {
        out.select_nth_unstable_by(k - 1, by_key_desc);
        out.truncate(k);
    }
    out.sort_unstable_by(by_key_desc);
}

/// Ladder of weight thresholds for gathering nucleus candidates without top-k. The tokens above
/// a threshold are a prefix of the sorted order, so once their mass reaches `top_p` the nucleus
/// lies inside them and the rest need no sorting; 0 means "every finite token".
const TOP_P_WEIGHT_FLOORS: [f32; 3] = [1e-4, 1e-8, 0.0];

/// Gathers candidates for top-p (with optional min-p) over the whole vocabulary, sorted by logit,
/// and returns the total weight of the vocabulary. With `min_p > 0`, one pass at threshold
/// `min_p` is exact: if the tokens above it hold less than the nucleus mass, the nucleus
/// contains all of them and min-p then removes everything else anyway.
pub(crate) fn nucleus_candidates(
    logits: &[f32],
    m: f32,
    inv_t: f32,
    top_p: f32,
    min_p: f32,
    out: &mut Vec<Cand>,
) -> f64 {
    let floors: &[f32] = if min_p > 0.0 {
        &[min_p]
    } else {
        &TOP_P_WEIGHT_FLOORS
    };
    let mut total = None;
    for &floor in floors {
        out.clear();
        let threshold = if floor > 0.0 {
            m + floor.ln() / inv_t
        } else {
            f32::NEG_INFINITY
        };
        let mut all = 0.0f64;
        let mut gathered = 0.0f64;
        for (c, chunk) in logits.chunks(LANES).enumerate() {
            let (w, sum) = chunk_weights(chunk, m, inv_t);
            all += f64::from(sum);
            for (j, &l) in chunk.iter().enumerate() {
                if l >= threshold && l > f32::NEG_INFINITY {
                    gathered += f64::from(w[j]);
                    out.push(Cand {
                        key: l,
                        id: (c * LANES + j) as u32,
                    });
                }
            }
        }
        total = Some(all);
        if min_p > 0.0 || gathered >= f64::from(top_p) * all || floor == 0.0 {
            break;
        }
    }
    out.sort_unstable_by(by_key_desc);
    total.unwrap_or(0.0)
}

/// Replaces the logits of sorted candidates by weights and cuts the list to the nucleus: the
/// shortest prefix whose weight reaches `top_p` of `total` (the token crossing the line stays).
/// Returns the weight of what is left.
pub(crate) fn cut_top_p(cands: &mut Vec<Cand>, m: f32, inv_t: f32, top_p: f32, total: f64) -> f64 {
    let target = f64::from(top_p) * total;
    let mut cum = 0.0f64;
    let mut keep = cands.len();
    for (i, c) in cands.iter_mut().enumerate() {
        c.key = weight(c.key, m, inv_t);
        cum += f64::from(c.key);
        if cum >= target {
            keep = i + 1;
            break;
        }
    }
    cands.truncate(keep);
    cands.iter().map(|c| f64::from(c.key)).sum()
}

/// Cuts weight-sorted candidates below `min_p` of the best one (whose weight is 1, being the
/// maximum logit). Returns the weight of what is left.
pub(crate) fn cut_min_p(cands: &mut Vec<Cand>, min_p: f32) -> f64 {
    if min_p > 0.0 {
        let keep = cands
            .iter()
            .position(|c| c.key < min_p)
            .unwrap_or(cands.len());
        cands.truncate(keep.max(1));
    }
    cands.iter().map(|c| f64::from(c.key)).sum()
}

/// Tokens with weight at least `min_p`, in id order: min-p alone needs no sorting.
pub(crate) fn min_p_candidates(
    logits: &[f32],
    m: f32,
    inv_t: f32,
    min_p: f32,
    out: &mut Vec<Cand>,
) -> f64 {
    out.clear();
    let threshold = m + min_p.ln() / inv_t;
    let mut total = 0.0f64;
    for (i, &l) in logits.iter().enumerate() {
        if l >= threshold && l > f32::NEG_INFINITY {
            let w = weight(l, m, inv_t);
            total += f64::from(w);
            out.push(Cand {
                key: w,
                id: i as u32,
            });
        }
    }
    total
}

/// Draws from weighted candidates: `u` in [0, 1) picks the first whose running weight passes
/// `u * total`. `total` must be the in-order sum of the weights.
pub(crate) fn draw_from(cands: &[Cand], total: f64, u: f64) -> Option<u32> {
    let target = u * total;
    let mut cum = 0.0f64;
    for c in cands {
        cum += f64::from(c.key);
        if cum > target {
            return Some(c.id);
        }
    }
    // Rounding can leave `target` at the very end; the last token with weight is the answer.
    cands.iter().rev().find(|c| c.key > 0.0).map(|c| c.id)
}

/// Draws from the whole vocabulary at temperature 1/`inv_t` without building a candidate list:
/// one pass for the normaliser, a second (stopping early) chunk by chunk with the same chunk
/// sums, then token by token inside the chunk where the running weight passes the target.
pub(crate) fn draw_full(logits: &[f32], m: f32, inv_t: f32, u: f64) -> Option<u32> {
    let target = u * total_weight(logits, m, inv_t);
    let mut cum = 0.0f64;
    let mut last = None;
    for (c, chunk) in logits.chunks(LANES).enumerate() {
        let (w, sum) = chunk_weights(chunk, m, inv_t);
        if sum <= 0.0 {
            continue;
        }
        let positive = w.iter().rposition(|&x| x > 0.0).unwrap_or(0);
        last = Some((c * LANES + positive) as u32);
        if cum + f64::from(sum) > target {
            let mut inner = cum;
            for (j, &x) in w.iter().enumerate() {
                inner += f64::from(x);
                if x > 0.0 && inner > target {
                    return Some((c * LANES + j) as u32);
                }
            }
            // The in-chunk order can round below the chunk sum; the chunk's last token wins.
            return last;
        }
        cum += f64::from(sum);
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_prefers_lowest_id_on_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), Ok((1, 3.0)));
    }

    #[test]
    fn argmax_rejects_nan_and_pos_inf_and_all_masked() {
        assert!(matches!(
            argmax(&[1.0, f32::NAN]),
            Err(SampleError::NonFiniteLogit { id: 1, .. })
        ));
        assert!(matches!(
            argmax(&[f32::NAN, 1.0]),
            Err(SampleError::NonFiniteLogit { id: 0, .. })
        ));
        assert!(matches!(
            argmax(&[1.0, f32::INFINITY]),
            Err(SampleError::NonFiniteLogit { id: 1, .. })
        ));
        let masked = [f32::NEG_INFINITY; 3];
        assert_eq!(
            argmax(&masked),
            Err(SampleError::NoCandidates { vocab_size: 3 })
        );
        assert_eq!(
            argmax(&[]),
            Err(SampleError::NoCandidates { vocab_size: 0 })
        );
    }

    #[test]
    fn top_k_keeps_largest_even_far_below_max() {
        // The 3rd largest is 100 below the max, past every gap but the last.
        let logits = [0.0, 200.0, -1e30, 100.0, f32::NEG_INFINITY, 199.0];
        let mut out = Vec::new();
        top_k_sorted(&logits, 200.0, 3, &mut out);
        let ids: Vec<u32> = out.iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![1, 5, 3]);
        top_k_sorted(&logits, 200.0, 10, &mut out);
        assert_eq!(out.len(), 5, "-inf is never a candidate");
    }

    #[test]
    fn nucleus_falls_back_when_distribution_is_flat() {
        // One token at weight 1 and a tail of 9,999 at e^-10 ≈ 4.5e-5 each (below the first
        // floor) holding 31% of the mass: the first pass gathers too little, the ladder goes lower.
        let mut logits = vec![-10.0f32; 10_000];
        logits[0] = 0.0;
        let mut out = Vec::new();
        let total = nucleus_candidates(&logits, 0.0, 1.0, 0.9, 0.0, &mut out);
        assert_eq!(out.len(), 10_000, "nucleus needs nearly all the tail");
        let kept = cut_top_p(&mut out, 0.0, 1.0, 0.9, total);
        assert!(kept >= 0.9 * total);
        assert!(out.len() > 1000 && out.len() < 10_000, "{}", out.len());
    }

    #[test]
    fn draw_from_covers_edges() {
        let c = [
            Cand { key: 1.0, id: 7 },
            Cand { key: 3.0, id: 9 },
            Cand { key: 0.0, id: 11 },
        ];
        assert_eq!(draw_from(&c, 4.0, 0.0), Some(7));
        assert_eq!(draw_from(&c, 4.0, 0.2499), Some(7));
        assert_eq!(draw_from(&c, 4.0, 0.25), Some(9));
        assert_eq!(draw_from(&c, 4.0, 0.999_999), Some(9));
        assert_eq!(
            draw_from(&c, 4.0, 1.0),
            Some(9),
            "rounding fallback skips zero weights"
        );
        assert_eq!(draw_from(&[], 0.0, 0.5), None);
    }
}
