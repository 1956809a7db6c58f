//! SamplingParams: every bad input gets its own typed error; good input is kept as given.

use std::collections::BTreeMap;

use enclave_model_core::sampling::{
    MAX_STOP_SEQUENCE_BYTES, RawSamplingParams, SamplingError, SamplingParams,
};

use super::{LIMITS, parse};

#[test]
fn bad_sampling_values_get_typed_errors() {
    use SamplingError as E;
    let long_stop = "x".repeat(MAX_STOP_SEQUENCE_BYTES + 1);
    let stops = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let bias = |id: u32, v: f32| Some(BTreeMap::from([(id, v)]));
    // (what, input, expected error, a fragment of the message stating the limit)
    let cases: Vec<(&str, RawSamplingParams, E, &str)> = vec![
        (
            "negative temperature",
            with(|r| r.temperature = Some(-0.1)),
            E::Temperature { value: -0.1 },
            "from 0 to 2",
        ),
        (
            "temperature above 2",
            with(|r| r.temperature = Some(2.5)),
            E::Temperature { value: 2.5 },
            "from 0 to 2",
        ),
        (
            "infinite temperature",
            with(|r| r.temperature = Some(f32::INFINITY)),
            E::Temperature {
                value: f32::INFINITY,
            },
            "finite",
        ),
        (
            "top_p zero",
            with(|r| r.top_p = Some(0.0)),
            E::TopP { value: 0.0 },
            "greater than 0 and at most 1",
        ),
        (
            "top_p above 1",
            with(|r| r.top_p = Some(1.01)),
            E::TopP { value: 1.01 },
            "at most 1",
        ),
        (
            "negative min_p",
            with(|r| r.min_p = Some(-0.5)),
            E::MinP { value: -0.5 },
            "from 0 to 1",
        ),
        (
            "min_p above 1",
            with(|r| r.min_p = Some(1.5)),
            E::MinP { value: 1.5 },
            "from 0 to 1",
        ),
        (
            "zero repetition penalty",
            with(|r| r.repetition_penalty = Some(0.0)),
            E::RepetitionPenalty { value: 0.0 },
            "greater than 0",
        ),
        (
            "negative repetition penalty",
            with(|r| r.repetition_penalty = Some(-1.0)),
            E::RepetitionPenalty { value: -1.0 },
            "greater than 0",
        ),
        (
            "frequency penalty above 2",
            with(|r| r.frequency_penalty = Some(2.5)),
            E::FrequencyPenalty { value: 2.5 },
            "from -2 to 2",
        ),
        (
            "frequency penalty below -2",
            with(|r| r.frequency_penalty = Some(-3.0)),
            E::FrequencyPenalty { value: -3.0 },
            "from -2 to 2",
        ),
        (
            "presence penalty above 2",
            with(|r| r.presence_penalty = Some(2.01)),
            E::PresencePenalty { value: 2.01 },
            "from -2 to 2",
        ),
        (
            "logit_bias id past vocab",
            with(|r| r.logit_bias = bias(50, 1.0)),
            E::LogitBiasToken {
                id: 50,
                vocab_size: 50,
            },
            "vocabulary of 50",
        ),
        (
            "logit_bias above 100",
            with(|r| r.logit_bias = bias(3, 100.5)),
            E::LogitBiasValue {
                id: 3,
                value: 100.5,
            },
            "from -100 to 100",
        ),
        (
            "logit_bias below -100",
            with(|r| r.logit_bias = bias(3, -101.0)),
            E::LogitBiasValue {
                id: 3,
                value: -101.0,
            },
            "from -100 to 100",
        ),
        (
            "too many stops",
            with(|r| r.stop = stops(&["a", "b", "c", "d", "e"])),
            E::TooManyStops { count: 5, max: 4 },
            "at most 4",
        ),
        (
            "empty stop",
            with(|r| r.stop = stops(&["a", ""])),
            E::EmptyStop { index: 1 },
            "stop sequence 1",
        ),
        (
            "stop too long",
            with(|r| r.stop = Some(vec![long_stop.clone()])),
            E::StopTooLong { index: 0, len: 257 },
            "at most 256 bytes",
        ),
        (
            "too many logprobs",
            with(|r| r.logprobs = Some(21)),
            E::TooManyLogprobs {
                requested: 21,
                max: 20,
            },
            "at most 20",
        ),
    ];
    for (what, raw, want, fragment) in cases {
        let err = SamplingParams::parse(raw, &LIMITS).expect_err(what);
        assert_eq!(err, want, "{what}: wrong error");
        let msg = err.to_string();
        let field = err.field();
        assert!(
            msg.contains(field),
            "{what}: message {msg:?} does not name field {field}"
        );
        assert!(
            msg.contains(fragment),
            "{what}: message {msg:?} lacks the limit {fragment:?}"
        );
        assert_eq!(err.code(), format!("invalid_{field}"), "{what}: code");
    }
}

/// Default parameters with one edit.
fn with(edit: impl FnOnce(&mut RawSamplingParams)) -> RawSamplingParams {
    let mut raw = RawSamplingParams::default();
    edit(&mut raw);
    raw
}

#[test]
fn nan_inputs_are_rejected_for_every_float_field() {
    let d = RawSamplingParams::default;
    let nan = Some(f32::NAN);
    let cases = [
        (
            "temperature",
            RawSamplingParams {
                temperature: nan,
                ..d()
            },
        ),
        ("top_p", RawSamplingParams { top_p: nan, ..d() }),
        ("min_p", RawSamplingParams { min_p: nan, ..d() }),
        (
            "repetition_penalty",
            RawSamplingParams {
                repetition_penalty: nan,
                ..d()
            },
        ),
        (
            "frequency_penalty",
            RawSamplingParams {
                frequency_penalty: nan,
                ..d()
            },
        ),
        (
            "presence_penalty",
            RawSamplingParams {
                presence_penalty: nan,
                ..d()
            },
        ),
        (
            "logit_bias",
            RawSamplingParams {
                logit_bias: Some(BTreeMap::from([(1, f32::NAN)])),
                ..d()
            },
        ),
    ];
    for (field, raw) in cases {
        let err = SamplingParams::parse(raw, &LIMITS).expect_err(field);
        assert_eq!(
            err.field(),
            field,
            "NaN {field} reported against the wrong field"
        );
    }
}

#[test]
fn boundary_values_are_accepted_and_kept() {
    let raw = RawSamplingParams {
        temperature: Some(2.0),
        top_k: Some(7),
        top_p: Some(1.0),
        min_p: Some(1.0),
        repetition_penalty: Some(0.5),
        repeat_last_n: Some(64),
        frequency_penalty: Some(-2.0),
        presence_penalty: Some(2.0),
        logit_bias: Some(BTreeMap::from([(49, 100.0), (0, -100.0), (5, 0.0)])),
        seed: Some(42),
        stop: Some(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
        logprobs: Some(20),
        ignore_eos: Some(true),
    };
    let p = parse(raw);
    assert_eq!(p.temperature(), 2.0);
    assert_eq!(p.top_k(), 7);
    assert_eq!((p.top_p(), p.min_p()), (1.0, 1.0));
    assert_eq!((p.repetition_penalty(), p.repeat_last_n()), (0.5, Some(64)));
    assert_eq!((p.frequency_penalty(), p.presence_penalty()), (-2.0, 2.0));
    assert_eq!(
        p.logit_bias(),
        &[(0, -100.0), (49, 100.0)],
        "sorted by id, zero bias dropped"
    );
    assert_eq!(p.seed(), Some(42));
    assert_eq!(p.stop().len(), 4);
    assert_eq!(p.logprobs(), Some(20));
    assert!(p.ignore_eos());
    assert!(!p.is_greedy());
    assert!(
        parse(RawSamplingParams {
            temperature: Some(0.0),
            ..Default::default()
        })
        .is_greedy()
    );
}

#[test]
fn defaults_match_the_documented_ones() {
    assert_eq!(
        parse(RawSamplingParams::default()),
        SamplingParams::default()
    );
    let p = SamplingParams::default();
    assert_eq!(
        (p.temperature(), p.top_k(), p.top_p(), p.min_p()),
        (1.0, 0, 1.0, 0.0)
    );
    assert_eq!(
        (
            p.repetition_penalty(),
            p.frequency_penalty(),
            p.presence_penalty()
        ),
        (1.0, 0.0, 0.0)
    );
    assert!(p.seed().is_none() && p.stop().is_empty() && p.logprobs().is_none() && !p.ignore_eos());
}

#[test]
fn raw_params_deserialize_openai_shapes() {
    let one: RawSamplingParams = serde_json::from_str(
        r#"{"temperature": 0.5, "stop": "END", "logit_bias": {"7": -100}, "seed": 3}"#,
    )
    .expect("valid JSON");
    assert_eq!(one.stop, Some(vec!["END".to_string()]));
    assert_eq!(one.logit_bias, Some(BTreeMap::from([(7, -100.0)])));
    assert_eq!((one.temperature, one.seed), (Some(0.5), Some(3)));
    let many: RawSamplingParams =
        serde_json::from_str(r#"{"stop": ["a", "b"], "top_p": null}"#).expect("valid JSON");
    assert_eq!(many.stop, Some(vec!["a".to_string(), "b".to_string()]));
    assert_eq!(many.top_p, None);
    let none: RawSamplingParams = serde_json::from_str(r#"{"stop": null}"#).expect("valid JSON");
    assert_eq!(none, RawSamplingParams::default());
    assert!(serde_json::from_str::<RawSamplingParams>(r#"{"logit_bias": {"x": 1}}"#).is_err());
}
