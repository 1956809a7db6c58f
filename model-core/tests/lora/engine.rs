//! Adapters through the engine: a mixed batch equals each request alone, an in-flight request
//! keeps (and pins) its version, loading never stalls running sequences, and an invalid adapter
//! leaves nothing resident. Uses the demo model.

use std::path::Path;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use enclave_model_core::adapters::{AdapterLease, Target};
use enclave_model_core::engine::{
    Engine, EngineConfig, GenerateRequest, GenerationEvent, GenerationStream, PromptInput,
    RequestOptions,
};
use enclave_model_core::sampling::RawSamplingParams;

use super::{config_json, random_factors, safetensors_of};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
        let cfg = EngineConfig {
            adapter_memory_bytes: 512 << 20,
            ..Default::default()
        };
        Engine::load(&p, cfg).expect("demo model loads")
    })
}

/// A random PEFT adapter for the demo model, leased from the engine's resident set.
fn lease(engine: &Engine, id: &str, targets: &[Target], rank: usize, seed: u64) -> AdapterLease {
    let cfg = engine.model_config().clone();
    engine
        .acquire_adapter(id, || {
            let f = random_factors(&cfg, targets, rank, seed);
            Ok((
                config_json(targets, rank, 2.0 * rank as f32),
                safetensors_of(&f, &cfg),
            ))
        })
        .expect("adapter loads")
}

fn submit(
    engine: &Engine,
    prompt: &str,
    adapter: Option<&AdapterLease>,
    max_tokens: u32,
) -> GenerationStream {
    let sampling = RawSamplingParams {
        temperature: Some(0.0),
        logprobs: Some(3),
        // Full length: longer comparisons, and a long request stays in flight on purpose.
        ignore_eos: Some(true),
        ..Default::default()
    };
    let req = GenerateRequest {
        prompt: PromptInput::Text(prompt.into()),
        sampling,
        max_tokens: Some(max_tokens),
    };
    let options = RequestOptions {
        adapter: adapter.cloned(),
        ..Default::default()
    };
    engine
        .submit(engine.prepare_with(req, options).expect("valid"))
        .expect("accepted")
}

/// Token ids with their log-probabilities (bits, so equality is exact).
fn collect(mut s: GenerationStream) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    while let Some(ev) = s.blocking_next() {
        match ev {
            GenerationEvent::Token { id, logprobs, .. } => {
                out.push((id, logprobs.map_or(0, |l| l.logprob.to_bits())))
            }
            GenerationEvent::Finished { .. } => return out,
            GenerationEvent::Failed { message } => panic!("failed: {message}"),
        }
    }
    panic!("no final event")
}

#[test]
fn a_mixed_adapter_batch_through_the_engine_equals_each_request_alone() {
    let engine = engine();
    let all = Target::ALL;
    let a = lease(engine, "a-r16-all", &all, 16, 1);
    let b = lease(engine, "b-r1-qv", &[Target::Q, Target::V], 1, 2);
    let c = lease(engine, "c-r128-all", &all, 128, 3);
    let d = lease(
        engine,
        "d-r4-mlp",
        &[Target::Gate, Target::Up, Target::Down, Target::O, Target::K],
        4,
        4,
    );
    let jobs: Vec<(&str, Option<&AdapterLease>)> = vec![
        ("The history of the printing press", Some(&a)),
        ("The history of the printing press", None),
        ("def fibonacci(n):", Some(&b)),
        ("Three facts about volcanoes:", Some(&c)),
        ("The history of the printing press", Some(&d)),
        ("Once upon a time", Some(&a)),
        ("Once upon a time", None),
    ];
    let alone: Vec<_> = jobs
        .iter()
        .map(|(p, ad)| collect(submit(engine, p, *ad, 12)))
        .collect();
    let streams: Vec<_> = jobs
        .iter()
        .map(|(p, ad)| submit(engine, p, *ad, 12))
        .collect();
    let together: Vec<_> = streams
        .into_iter()
        .map(|s| std::thread::spawn(move || collect(s)))
        .collect();
    for (i, h) in together.into_iter().enumerate() {
        assert_eq!(
            h.join().expect("reader"),
            alone[i],
            "request {i} differs when batched with the others"
        );
    }
    // The adapters really change the output (same prompt: a, none and d all differ).
    assert_ne!(alone[0], alone[1]);
    assert_ne!(alone[4], alone[1]);
    assert_ne!(alone[5], alone[6]);
}

#[test]
fn an_in_flight_request_keeps_its_version_and_pins_it() {
    // A set that holds one rank-64 adapter: loading a second needs the first evicted.
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let one = 64 * 10_176 * 30 * 4;
    let engine = Engine::load(
        &p,
        EngineConfig {
            adapter_memory_bytes: one + one / 2,
            ..Default::default()
        },
    )
    .expect("loads");
    let (all, prompt) = (Target::ALL, "Write a short poem about rain");
    let cfg = engine.model_config().clone();
    let v2_files = (
        config_json(&all, 64, 128.0),
        safetensors_of(&random_factors(&cfg, &all, 64, 12), &cfg),
    );
    let v1 = lease(&engine, "v1", &all, 64, 11);
    let want_v1 = collect(submit(&engine, prompt, Some(&v1), 16));
    // Far longer than loading v2 takes: it is still running when the load is refused.
    let mut running = submit(&engine, prompt, Some(&v1), 2000);
    drop(v1); // only the running request holds v1 now
    let mut got = vec![next_token(&mut running)];
    let err = engine
        .acquire_adapter("v2", || Ok(v2_files.clone()))
        .expect_err("v1 is pinned by the running request");
    assert_eq!(err.code(), "adapter_capacity_busy");
    assert!(engine.adapters().contains("v1"));
    while got.len() < want_v1.len() {
        got.push(next_token(&mut running));
    }
    assert_eq!(got, want_v1, "the running request runs on v1");
    // Cancelled: the engine drops the sequence at its next step, and with it the pin on v1.
    drop(running);
    let deadline = Instant::now() + Duration::from_secs(60);
    let v2 = loop {
        match engine.acquire_adapter("v2", || Ok(v2_files.clone())) {
            Ok(lease) => break lease,
            Err(e) if e.code() == "adapter_capacity_busy" && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("v2 does not load after the request ended: {e}"),
        }
    };
    assert!(!engine.adapters().contains("v1"), "v1 was evicted for v2");
    assert_ne!(collect(submit(&engine, prompt, Some(&v2), 16)), want_v1);
}

/// The next token of a stream (id and logprob bits) that must still be generating.
fn next_token(s: &mut GenerationStream) -> (u32, u32) {
    match s.blocking_next() {
        Some(GenerationEvent::Token { id, logprobs, .. }) => {
            (id, logprobs.map_or(0, |l| l.logprob.to_bits()))
        }
        other => panic!("expected a token, got {other:?}"),
    }
}

#[test]
fn loading_an_adapter_does_not_stall_running_sequences() {
    let engine = engine();
    let running = submit(engine, "Count slowly from one to one hundred:", None, 40);
    let (seen_tx, seen_rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut s = running;
        let mut n = 0;
        while let Some(ev) = s.blocking_next() {
            if let GenerationEvent::Token { .. } = ev {
                n += 1;
                let _ = seen_tx.send(());
            }
        }
        n
    });
    // The load only completes after the running sequence produced 8 more tokens, which
    // it can only do if the engine keeps stepping while the adapter loads.
    let cfg = engine.model_config().clone();
    let lease = engine
        .acquire_adapter("slow-load", || {
            for _ in 0..8 {
                seen_rx
                    .recv_timeout(Duration::from_secs(120))
                    .map_err(|_| std::io::Error::other("engine stalled"))?;
            }
            let f = random_factors(&cfg, &[Target::Q], 2, 5);
            Ok((config_json(&[Target::Q], 2, 4.0), safetensors_of(&f, &cfg)))
        })
        .expect("loads while the engine runs");
    assert_eq!(lease.id(), "slow-load");
    assert!(reader.join().expect("reader") >= 8);
}

#[test]
fn an_invalid_adapter_is_refused_and_nothing_stays_resident() {
    let engine = engine();
    let err = engine
        .acquire_adapter("broken", || {
            Ok((
                br#"{"peft_type":"LORA","r":4,"target_modules":["q_proj"]}"#.to_vec(),
                b"junk".to_vec(),
            ))
        })
        .expect_err("invalid");
    assert_eq!(err.code(), "adapter_invalid_weights");
    assert!(!engine.adapters().contains("broken"));
}
