//! Frequencies over many seeded draws match the distribution each knob should produce.

use enclave_model_core::sampling::{RawSamplingParams, Sampler, SamplingParams, TokenHistory};

use super::seeded;

/// Frequencies of each token over `n` draws from the same logits.
fn frequencies(params: &SamplingParams, logits: &[f32], n: usize) -> Vec<f64> {
    let mut sampler = Sampler::new(params);
    let history = TokenHistory::new(&[], params);
    let mut counts = vec![0usize; logits.len()];
    let mut buf = logits.to_vec();
    for _ in 0..n {
        buf.copy_from_slice(logits);
        counts[sampler.sample(&mut buf, &history, None).expect("finite").id as usize] += 1;
    }
    counts.iter().map(|&c| c as f64 / n as f64).collect()
}

fn normalised(weights: &[f64]) -> Vec<f64> {
    let sum: f64 = weights.iter().sum();
    weights.iter().map(|w| w / sum).collect()
}

/// With 20,000 draws one frequency's standard deviation is at most 0.0036; 0.02 is over 5σ, and
/// the seed is fixed, so this cannot flake. Zero-probability tokens must never appear.
fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if *w == 0.0 {
            assert_eq!(
                *g, 0.0,
                "{what}: token {i} must be excluded, got frequency {g}"
            );
        } else {
            assert!(
                (g - w).abs() < 0.02,
                "{what}: token {i} frequency {g:.4}, expected {w:.4}"
            );
        }
    }
}

const PROBS: [f64; 5] = [0.45, 0.25, 0.15, 0.10, 0.05];
const N: usize = 20_000;

fn probs_logits() -> Vec<f32> {
    PROBS.iter().map(|p| p.ln() as f32).collect()
}

fn dist_params(raw: RawSamplingParams) -> SamplingParams {
    seeded(raw, 77)
}

#[test]
fn temperature_one_reproduces_the_softmax() {
    let got = frequencies(
        &dist_params(RawSamplingParams::default()),
        &probs_logits(),
        N,
    );
    assert_close("T=1", &got, &PROBS);
}

#[test]
fn temperature_sharpens_and_flattens() {
    for t in [0.5f64, 2.0] {
        let params = dist_params(RawSamplingParams {
            temperature: Some(t as f32),
            ..Default::default()
        });
        let want = normalised(&PROBS.map(|p| p.powf(1.0 / t)));
        assert_close(
            &format!("T={t}"),
            &frequencies(&params, &probs_logits(), N),
            &want,
        );
    }
}

#[test]
fn top_p_keeps_the_smallest_prefix_reaching_p() {
    // 0.45 + 0.25 = 0.70 < 0.8, so the nucleus takes 0.15 too.
    let params = dist_params(RawSamplingParams {
        top_p: Some(0.8),
        ..Default::default()
    });
    let want = normalised(&[0.45, 0.25, 0.15, 0.0, 0.0]);
    assert_close(
        "top_p=0.8",
        &frequencies(&params, &probs_logits(), N),
        &want,
    );
    // With top_k the nucleus is measured over the k survivors: 0.45/0.7 = 0.64 < 0.65.
    let params = dist_params(RawSamplingParams {
        top_k: Some(2),
        top_p: Some(0.65),
        ..Default::default()
    });
    let want = normalised(&[0.45, 0.25, 0.0, 0.0, 0.0]);
    assert_close(
        "top_k=2,top_p=0.65",
        &frequencies(&params, &probs_logits(), N),
        &want,
    );
}

#[test]
fn top_k_keeps_k_tokens() {
    let params = dist_params(RawSamplingParams {
        top_k: Some(3),
        ..Default::default()
    });
    let want = normalised(&[0.45, 0.25, 0.15, 0.0, 0.0]);
    assert_close("top_k=3", &frequencies(&params, &probs_logits(), N), &want);
}

#[test]
fn min_p_drops_tokens_below_a_fraction_of_the_best() {
    // Keep p >= 0.3 * 0.45 = 0.135.
    let params = dist_params(RawSamplingParams {
        min_p: Some(0.3),
        ..Default::default()
    });
    let want = normalised(&[0.45, 0.25, 0.15, 0.0, 0.0]);
    assert_close(
        "min_p=0.3",
        &frequencies(&params, &probs_logits(), N),
        &want,
    );
    // Applied after temperature: at T=2 probabilities are ∝ sqrt(p); 0.05 vs 0.45 is 1/3 > 0.3.
    let params = dist_params(RawSamplingParams {
        temperature: Some(2.0),
        min_p: Some(0.3),
        ..Default::default()
    });
    let want = normalised(&PROBS.map(f64::sqrt));
    assert_close(
        "T=2,min_p=0.3",
        &frequencies(&params, &probs_logits(), N),
        &want,
    );
    // Combined with top_p: the nucleus (0.45, 0.25, 0.15) then min_p 0.5 leaves 0.45 and 0.25.
    let params = dist_params(RawSamplingParams {
        top_p: Some(0.8),
        min_p: Some(0.5),
        ..Default::default()
    });
    let want = normalised(&[0.45, 0.25, 0.0, 0.0, 0.0]);
    assert_close(
        "top_p=0.8,min_p=0.5",
        &frequencies(&params, &probs_logits(), N),
        &want,
    );
}

#[test]
fn top_p_on_a_large_flat_tail_stays_exact() {
    // One strong token and 3,000 weak ones (weight e^-10 each, under the sampler's first
    // candidate threshold) holding 12% of the mass: a 0.95 nucleus reaches deep into the tail.
    let mut logits = vec![-10.0f32; 3001];
    logits[0] = 0.0;
    let params = dist_params(RawSamplingParams {
        top_p: Some(0.95),
        ..Default::default()
    });
    let freq = frequencies(&params, &logits, N);
    let tail_weight = (-10.0f64).exp();
    let total = 1.0 + 3000.0 * tail_weight;
    let kept_tail = ((0.95 * total - 1.0) / tail_weight).ceil() as usize;
    assert!(
        kept_tail > 1000 && kept_tail < 3000,
        "test setup: {kept_tail}"
    );
    let want_top = 1.0 / (1.0 + kept_tail as f64 * tail_weight);
    assert!(
        (freq[0] - want_top).abs() < 0.01,
        "top token {:.4} vs {want_top:.4}",
        freq[0]
    );
    // Equal logits are ordered by id, so the nucleus is the lowest tail ids.
    let inside: f64 = freq[1..=kept_tail].iter().sum();
    assert!(inside > 0.0, "the tail inside the nucleus was never drawn");
    let beyond: f64 = freq[1 + kept_tail..].iter().sum();
    assert_eq!(beyond, 0.0, "tokens outside the nucleus were drawn");
}
