//! Vectorisable kernels for the sampler's vocabulary passes. Plain IEEE arithmetic in a fixed
//! order (Rust never fuses multiply-adds on its own), so results are bit-identical on every
//! platform, unlike libm's `exp`, and the fixed-width lane loops compile to SIMD on any x86-64.

/// Lane count of the vocabulary loops.
pub(crate) const LANES: usize = 16;

/// Below this, e^x is under f32's normal range; such weights count as exactly 0, which also
/// maps -inf (masked) logits to 0.
const EXP_MIN_ARG: f32 = -87.336_54;

/// e^x for x <= 0 (up to ~88 works too), relative error about 2e-7: Cephes' expf polynomial on
/// x - n·ln2, times 2^n built from the exponent bits. Returns exactly 0 below [`EXP_MIN_ARG`].
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding and subtracting it rounds to the nearest integer without SSE4.1.
    const ROUND: f32 = 12_582_912.0;
    let xc = if x < EXP_MIN_ARG { EXP_MIN_ARG } else { x };
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n from the bits of ROUND + (n + 127), whose low mantissa bits hold n + 127: integer
    // operations only, where an `as i32` cast would add saturation checks to every lane.
    let biased = (n + 127.0 + ROUND).to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(biased << 23);
    if x < EXP_MIN_ARG { 0.0 } else { y * scale }
}

/// Weights exp((l - m)·inv_t) of one chunk (padded with 0 past its end) and their sum, added
/// in a fixed pairwise order so every caller gets the same bits for the same chunk.
#[inline(always)]
pub(crate) fn chunk_weights(chunk: &[f32], m: f32, inv_t: f32) -> ([f32; LANES], f32) {
    let mut w = [0.0f32; LANES];
    if chunk.len() == LANES {
        for j in 0..LANES {
            w[j] = exp((chunk[j] - m) * inv_t);
        }
    } else {
        for (j, &l) in chunk.iter().enumerate() {
            w[j] = exp((l - m) * inv_t);
        }
    }
    let mut s = w;
    let mut width = LANES / 2;
    while width > 0 {
        for j in 0..width {
            s[j] += s[j + width];
        }
        width /= 2;
    }
    (w, s[0])
}

/// Σ exp((l - m)·inv_t) over all logits, chunk by chunk in id order.
pub(crate) fn total_weight(logits: &[f32], m: f32, inv_t: f32) -> f64 {
    logits
        .chunks(LANES)
        .map(|c| f64::from(chunk_weights(c, m, inv_t).1))
        .sum()
}

/// Result of one argmax pass: the best finite value with its lowest index, or the first index
/// holding NaN or +inf.
pub(crate) enum ArgMax {
    Best(u32, f32),
    Bad(u32),
    Empty,
}

/// One pass over the logits in 16 independent lanes (each keeps its first maximum), then a
/// reduction that prefers the lowest index among equal maxima.
pub(crate) fn argmax_lanes(logits: &[f32]) -> ArgMax {
    let mut best = [f32::NEG_INFINITY; LANES];
    let mut best_i = [u32::MAX; LANES];
    let mut bad = [0u32; LANES];
    let chunks = logits.chunks_exact(LANES);
    let tail_start = logits.len() - chunks.remainder().len();
    for (c, chunk) in chunks.enumerate() {
        let base = (c * LANES) as u32;
        for j in 0..LANES {
            let x = chunk[j];
            bad[j] |= u32::from(is_bad(x));
            let better = x > best[j];
            best[j] = if better { x } else { best[j] };
            best_i[j] = if better { base + j as u32 } else { best_i[j] };
        }
    }
    if bad.iter().any(|&b| b != 0) || logits[tail_start..].iter().any(|&x| is_bad(x)) {
        let i = logits.iter().position(|&x| is_bad(x)).unwrap_or(0);
        return ArgMax::Bad(i as u32);
    }
    let mut out: Option<(u32, f32)> = None;
    let lanes = best_i.iter().zip(&best).map(|(&i, &v)| (i, v));
    let tail = logits[tail_start..]
        .iter()
        .enumerate()
        .map(|(k, &v)| ((tail_start + k) as u32, v));
    for (i, v) in lanes.chain(tail) {
        if i == u32::MAX || v == f32::NEG_INFINITY {
            continue;
        }
        if out.is_none_or(|(bi, bv)| v > bv || (v == bv && i < bi)) {
            out = Some((i, v));
        }
    }
    match out {
        Some((i, v)) => ArgMax::Best(i, v),
        None => ArgMax::Empty,
    }
}

/// A logit the model should never produce: NaN or +inf (-inf is a legitimate "impossible").
#[inline(always)]
fn is_bad(x: f32) -> bool {
    x.is_nan() || x == f32::INFINITY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_over_the_sampling_range() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 10.0 {
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_37;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
    }

    #[test]
    fn argmax_lanes_handles_ties_tails_and_bad_values() {
        let mut v = vec![0.0f32; 37];
        v[20] = 5.0;
        v[4] = 5.0;
        v[36] = 5.0;
        assert!(matches!(argmax_lanes(&v), ArgMax::Best(4, 5.0)));
        v[35] = 6.0;
        assert!(matches!(argmax_lanes(&v), ArgMax::Best(35, 6.0)));
        v[7] = f32::NAN;
        assert!(matches!(argmax_lanes(&v), ArgMax::Bad(7)));
        assert!(matches!(
            argmax_lanes(&[f32::NEG_INFINITY; 40]),
            ArgMax::Empty
        ));
        assert!(matches!(argmax_lanes(&[]), ArgMax::Empty));
    }
}
