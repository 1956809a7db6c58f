//! Logit bias, penalties, the mask, non-finite logits and logprobs, checked on exact values.

use std::collections::BTreeMap;

use enclave_model_core::sampling::{
    RawSamplingParams, SampleError, Sampler, SamplingParams, TokenHistory, TokenMask,
};

use super::{parse, seeded, test_logits};

/// Runs one greedy step and returns the processed logits the sampler leaves in place.
fn processed(
    raw: RawSamplingParams,
    logits: &[f32],
    prompt: &[u32],
    generated: &[u32],
) -> Vec<f32> {
    let params = parse(RawSamplingParams {
        temperature: Some(0.0),
        ..raw
    });
    let mut history = TokenHistory::new(prompt, &params);
    for &id in generated {
        history.push(id);
    }
    let mut out = logits.to_vec();
    Sampler::new(&params)
        .sample(&mut out, &history, None)
        .expect("finite");
    out
}

const BASE: [f32; 6] = [2.0, -2.0, 1.0, 0.5, 3.0, -1.0];

#[test]
fn repetition_penalty_divides_positive_and_multiplies_negative() {
    let raw = RawSamplingParams {
        repetition_penalty: Some(2.0),
        ..Default::default()
    };
    let got = processed(raw, &BASE, &[0, 1], &[2, 2, 3]);
    assert_eq!(
        got,
        vec![1.0, -4.0, 0.5, 0.25, 3.0, -1.0],
        "tokens 4 and 5 never appeared"
    );
}

#[test]
fn repetition_penalty_window_covers_only_the_last_n() {
    let raw = RawSamplingParams {
        repetition_penalty: Some(2.0),
        repeat_last_n: Some(2),
        ..Default::default()
    };
    let got = processed(raw, &BASE, &[0, 1], &[2, 2, 3]);
    assert_eq!(
        got,
        vec![2.0, -2.0, 0.5, 0.25, 3.0, -1.0],
        "window is [2, 3]"
    );
    let off = RawSamplingParams {
        repetition_penalty: Some(2.0),
        repeat_last_n: Some(0),
        ..Default::default()
    };
    assert_eq!(
        processed(off, &BASE, &[0, 1], &[2, 2, 3]),
        BASE.to_vec(),
        "window 0 is off"
    );
}

#[test]
fn frequency_and_presence_penalties_count_generated_tokens_only() {
    let raw = RawSamplingParams {
        frequency_penalty: Some(0.5),
        presence_penalty: Some(0.25),
        ..Default::default()
    };
    let got = processed(raw, &BASE, &[0, 1, 4], &[2, 2, 3]);
    // token 2: 1 - (2 * 0.5 + 0.25); token 3: 0.5 - (0.5 + 0.25); prompt tokens untouched.
    assert_eq!(got, vec![2.0, -2.0, -0.25, -0.25, 3.0, -1.0]);
    let negative = RawSamplingParams {
        presence_penalty: Some(-1.0),
        ..Default::default()
    };
    assert_eq!(
        processed(negative, &BASE, &[], &[5])[5],
        0.0,
        "a negative penalty encourages"
    );
}

#[test]
fn logit_bias_applies_before_penalties() {
    let raw = RawSamplingParams {
        logit_bias: Some(BTreeMap::from([(1, 6.0), (4, -100.0), (5, 1.0)])),
        repetition_penalty: Some(2.0),
        ..Default::default()
    };
    // token 1: (-2 + 6) / 2 (penalised after the bias made it positive); 4: biased down; 5: +1.
    let got = processed(raw, &BASE, &[1], &[]);
    assert_eq!(got, vec![2.0, 2.0, 1.0, 0.5, -97.0, 0.0]);
}

#[test]
fn logit_bias_can_force_and_ban_tokens() {
    let force = parse(RawSamplingParams {
        logit_bias: Some(BTreeMap::from([(5, 100.0)])),
        seed: Some(1),
        ..Default::default()
    });
    let ban = parse(RawSamplingParams {
        logit_bias: Some(BTreeMap::from([(4, -100.0)])),
        temperature: Some(0.0),
        ..Default::default()
    });
    let history = TokenHistory::new(&[], &force);
    let mut sampler = Sampler::new(&force);
    for _ in 0..100 {
        assert_eq!(
            sampler
                .sample(&mut BASE.to_vec(), &history, None)
                .expect("finite")
                .id,
            5
        );
    }
    assert_eq!(
        Sampler::new(&ban)
            .sample(&mut BASE.to_vec(), &history, None)
            .expect("finite")
            .id,
        0
    );
}

#[test]
fn mask_restricts_choices_and_empty_mask_is_an_error() {
    let params = seeded(
        RawSamplingParams {
            temperature: Some(2.0),
            ..Default::default()
        },
        5,
    );
    let history = TokenHistory::new(&[], &params);
    let mut mask = TokenMask::allow_none(6);
    mask.allow(1);
    mask.allow(3);
    let mut sampler = Sampler::new(&params);
    let mut seen = [false; 6];
    for _ in 0..500 {
        let mut logits = BASE.to_vec();
        let id = sampler
            .sample(&mut logits, &history, Some(&mask))
            .expect("two tokens allowed")
            .id;
        seen[id as usize] = true;
        assert!(
            logits
                .iter()
                .enumerate()
                .all(|(i, l)| mask.allows(i as u32) || *l == f32::NEG_INFINITY)
        );
    }
    assert_eq!(seen, [false, true, false, true, false, false]);
    let greedy = SamplingParams::greedy();
    let got = Sampler::new(&greedy)
        .sample(&mut BASE.to_vec(), &history, Some(&mask))
        .expect("allowed");
    assert_eq!(got.id, 3, "best allowed token");
    // A mask shorter than the logits disallows the uncovered ids.
    let short = TokenMask::allow_all(4);
    assert_eq!(
        Sampler::new(&greedy)
            .sample(&mut BASE.to_vec(), &history, Some(&short))
            .expect("ok")
            .id,
        0
    );
    let none = TokenMask::allow_none(6);
    assert_eq!(
        Sampler::new(&greedy).sample(&mut BASE.to_vec(), &history, Some(&none)),
        Err(SampleError::NoCandidates { vocab_size: 6 })
    );
}

#[test]
fn non_finite_logits_are_errors_not_panics() {
    let params = seeded(
        RawSamplingParams {
            top_p: Some(0.9),
            ..Default::default()
        },
        3,
    );
    let history = TokenHistory::new(&[], &params);
    let mut sampler = Sampler::new(&params);
    let mut nan = vec![0.0, f32::NAN, 1.0];
    assert!(matches!(
        sampler.sample(&mut nan, &history, None),
        Err(SampleError::NonFiniteLogit { id: 1, .. })
    ));
    let mut inf = vec![0.0, 1.0, f32::INFINITY];
    assert!(matches!(
        sampler.sample(&mut inf, &history, None),
        Err(SampleError::NonFiniteLogit { id: 2, .. })
    ));
    assert!(matches!(
        sampler.sample(&mut [], &history, None),
        Err(SampleError::NoCandidates { .. })
    ));
}

#[test]
fn logprobs_are_a_distribution_ordered_best_first() {
    let logits = test_logits(20, 4);
    for temperature in [0.0f32, 0.3, 1.7] {
        let params = seeded(
            RawSamplingParams {
                temperature: Some(temperature),
                logprobs: Some(20),
                ..Default::default()
            },
            8,
        );
        let history = TokenHistory::new(&[], &params);
        let got = Sampler::new(&params)
            .sample(&mut logits.clone(), &history, None)
            .expect("finite");
        assert_eq!(got.top.len(), 20);
        let total: f64 = got.top.iter().map(|(_, lp)| f64::from(*lp).exp()).sum();
        assert!(
            (total - 1.0).abs() < 1e-5,
            "T={temperature}: probabilities sum to {total}"
        );
        assert!(
            got.top.windows(2).all(|w| w[0].1 >= w[1].1),
            "T={temperature}: not best first"
        );
        let sampled = got
            .top
            .iter()
            .find(|(id, _)| *id == got.id)
            .expect("sampled token listed");
        assert_eq!(
            got.logprob,
            Some(sampled.1),
            "T={temperature}: sampled logprob"
        );
        // Independent of temperature: the log-softmax of the logits themselves.
        let lse = logits.iter().map(|&l| f64::from(l).exp()).sum::<f64>().ln();
        for (id, lp) in &got.top {
            let want = f64::from(logits[*id as usize]) - lse;
            assert!(
                (f64::from(*lp) - want).abs() < 1e-5,
                "T={temperature}: token {id}: {lp} vs {want}"
            );
        }
    }
}

#[test]
fn logprobs_reflect_bias_and_mask() {
    let params = parse(RawSamplingParams {
        temperature: Some(0.0),
        logprobs: Some(2),
        logit_bias: Some(BTreeMap::from([(5, 10.0)])),
        ..Default::default()
    });
    let history = TokenHistory::new(&[], &params);
    let mut mask = TokenMask::allow_all(6);
    mask.disallow(4);
    let got = Sampler::new(&params)
        .sample(&mut BASE.to_vec(), &history, Some(&mask))
        .expect("finite");
    // Processed logits: [2, -2, 1, 0.5, -inf, 9]; top two are 5 then 0.
    assert_eq!(got.id, 5);
    assert_eq!(
        got.top.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![5, 0]
    );
    let lse = [2.0f64, -2.0, 1.0, 0.5, 9.0]
        .iter()
        .map(|l| l.exp())
        .sum::<f64>()
        .ln();
    let lp = got.logprob.expect("requested");
    assert!((f64::from(lp) - (9.0 - lse)).abs() < 1e-5, "{lp}");
}
