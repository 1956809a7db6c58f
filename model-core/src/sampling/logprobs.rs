//! Log-probabilities reported to the caller.
//!
//! They are the log-softmax of the *processed* logits: after logit bias, penalties and the
//! constraint mask, before temperature and truncation. So they describe what the model (as
//! adjusted by the request) believes, independent of how adventurous the sampling is, and a
//! masked token never shows up as an alternative. vLLM's default reports the raw model output
//! instead (before penalties and bias); with no bias, penalties or mask the two agree.

use super::fastmath::total_weight;
use super::select::{Cand, by_key_desc};

/// log Σ exp(l) over the logits, given their maximum `m` (finite).
pub(crate) fn log_sum_exp(logits: &[f32], m: f32) -> f32 {
    m + total_weight(logits, m, 1.0).ln() as f32
}

/// The `n` largest finite logits, best first (ties: lower id first), in `out` (reused buffer).
pub(crate) fn top_n(logits: &[f32], n: usize, out: &mut Vec<Cand>) {
    out.clear();
    if n == 0 {
        return;
    }
    for (i, &l) in logits.iter().enumerate() {
        if l == f32::NEG_INFINITY {
            continue;
        }
        // Ids arrive in increasing order, so an equal logit never displaces an earlier token.
        if out.len() == n {
            match out.last() {
                Some(worst) if l > worst.key => {
                    out.pop();
                }
                _ => continue,
            }
        }
        let c = Cand {
            key: l,
            id: i as u32,
        };
        let at = out.partition_point(|x| by_key_desc(x, &c).is_lt());
        out.insert(at, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sum_exp_matches_direct_formula() {
        let logits = [1.0f32, 2.0, 3.0, f32::NEG_INFINITY];
        let direct = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() as f32;
        assert!((log_sum_exp(&logits, 3.0) - direct).abs() < 1e-6);
    }

    #[test]
    fn top_n_orders_and_breaks_ties_by_id() {
        let logits = [0.5f32, 2.0, f32::NEG_INFINITY, 2.0, 1.0, 3.0];
        let mut out = Vec::new();
        top_n(&logits, 3, &mut out);
        let got: Vec<(u32, f32)> = out.iter().map(|c| (c.id, c.key)).collect();
        assert_eq!(got, vec![(5, 3.0), (1, 2.0), (3, 2.0)]);
        top_n(&logits, 10, &mut out);
        assert_eq!(out.len(), 5, "-inf never listed");
    }
}
