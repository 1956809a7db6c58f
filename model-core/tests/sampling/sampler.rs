//! Greedy decoding, top-k = 1, and seeded determinism.

use enclave_model_core::sampling::{RawSamplingParams, Sampler, SamplingParams, TokenHistory};

use super::{manual_argmax, parse, seeded, test_logits};

#[test]
fn greedy_is_argmax_with_ties_to_lowest_id() {
    let params = SamplingParams::greedy();
    let mut sampler = Sampler::new(&params);
    let history = TokenHistory::new(&[], &params);
    for salt in 0..50 {
        let logits = test_logits(1000, salt);
        let want = manual_argmax(&logits);
        let got = sampler
            .sample(&mut logits.clone(), &history, None)
            .expect("finite logits");
        assert_eq!(got.id, want, "salt {salt}");
        assert_eq!(
            (got.logprob, got.top.len()),
            (None, 0),
            "no logprobs unless asked"
        );
    }
    let mut tied = vec![0.0, 5.0, 1.0, 5.0, 5.0];
    assert_eq!(
        sampler
            .sample(&mut tied, &history, None)
            .expect("finite")
            .id,
        1
    );
}

#[test]
fn top_k_one_equals_greedy_at_any_temperature() {
    for temperature in [0.1f32, 0.7, 1.0, 2.0] {
        let params = seeded(
            RawSamplingParams {
                temperature: Some(temperature),
                top_k: Some(1),
                ..Default::default()
            },
            9,
        );
        let mut sampler = Sampler::new(&params);
        let history = TokenHistory::new(&[], &params);
        for salt in 0..30 {
            let logits = test_logits(5000, salt);
            let got = sampler
                .sample(&mut logits.clone(), &history, None)
                .expect("finite logits");
            assert_eq!(
                got.id,
                manual_argmax(&logits),
                "temperature {temperature}, salt {salt}"
            );
        }
    }
}

fn draw_sequence(params: &SamplingParams, steps: u64) -> Vec<u32> {
    let mut sampler = Sampler::new(params);
    let mut history = TokenHistory::new(&[1, 2, 3], params);
    (0..steps)
        .map(|step| {
            let mut logits = test_logits(2000, step % 7);
            let id = sampler
                .sample(&mut logits, &history, None)
                .expect("finite logits")
                .id;
            history.push(id);
            id
        })
        .collect()
}

#[test]
fn same_seed_same_draws_different_seed_different_draws() {
    let raw = RawSamplingParams {
        temperature: Some(1.5),
        top_p: Some(0.95),
        repetition_penalty: Some(1.1),
        ..Default::default()
    };
    let a = draw_sequence(&seeded(raw.clone(), 1234), 200);
    assert_eq!(
        a,
        draw_sequence(&seeded(raw.clone(), 1234), 200),
        "same seed must reproduce"
    );
    assert_ne!(
        a,
        draw_sequence(&seeded(raw.clone(), 1235), 200),
        "different seeds must differ"
    );
    let distinct: std::collections::HashSet<_> = a.iter().collect();
    assert!(
        distinct.len() > 20,
        "a sampled sequence should vary: {} distinct",
        distinct.len()
    );
}

#[test]
fn random_seed_is_reported_and_reproduces() {
    let params = parse(RawSamplingParams {
        temperature: Some(1.0),
        ..Default::default()
    });
    let first = Sampler::new(&params);
    let second = Sampler::new(&params);
    assert_ne!(
        first.seed_used(),
        second.seed_used(),
        "unseeded samplers draw fresh seeds"
    );
    let reseeded = parse(RawSamplingParams {
        seed: Some(first.seed_used()),
        ..Default::default()
    });
    let mut a = first;
    let mut b = Sampler::new(&reseeded);
    assert_eq!(b.seed_used(), a.seed_used());
    let history = TokenHistory::new(&[], &params);
    for salt in 0..100 {
        let logits = test_logits(500, salt);
        let x = a
            .sample(&mut logits.clone(), &history, None)
            .expect("finite")
            .id;
        let y = b
            .sample(&mut logits.clone(), &history, None)
            .expect("finite")
            .id;
        assert_eq!(x, y, "step {salt}");
    }
}
