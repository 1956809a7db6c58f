//! Constrained decoding through the engine on the real demo model: every completed output of the
//! schema corpus validates (checked with the `jsonschema` crate), XML is well-formed with the
//! requested root, regex outputs match, unconstrained neighbours in the batch are unaffected,
//! preemption mid-structure keeps the output valid, and bad formats are refused before any
//! generation.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use enclave_model_core::constraints::ResponseFormat;
use enclave_model_core::engine::{
    Engine, EngineConfig, FinishReason, GenerateRequest, GenerationEvent, GenerationStream,
    PromptInput, RequestError, RequestOptions,
};
use enclave_model_core::kv::KvStore;
use enclave_model_core::sampling::RawSamplingParams;
use serde_json::{Value, json};

fn model_path() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "demo model missing at {}: run deploy/local/setup.sh",
        p.display()
    );
    p
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let cfg = EngineConfig {
            max_running: 128,
            max_batch_tokens: 1024,
            max_context: Some(512),
            ..Default::default()
        };
        Engine::load(&model_path(), cfg).expect("demo model loads")
    })
}

fn greedy() -> RawSamplingParams {
    RawSamplingParams {
        temperature: Some(0.0),
        ..Default::default()
    }
}

fn sampled(seed: u64) -> RawSamplingParams {
    RawSamplingParams {
        temperature: Some(0.8),
        seed: Some(seed),
        ..Default::default()
    }
}

fn format(v: Value) -> ResponseFormat {
    ResponseFormat::from_json(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn submit(
    engine: &Engine,
    prompt: &str,
    sampling: RawSamplingParams,
    max: u32,
    rf: Option<ResponseFormat>,
) -> GenerationStream {
    let req = GenerateRequest {
        prompt: PromptInput::Text(prompt.to_owned()),
        sampling,
        max_tokens: Some(max),
    };
    let prepared = engine
        .prepare_with(
            req,
            RequestOptions {
                response_format: rf,
                ..RequestOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{prompt}: {e}"));
    engine.submit(prepared).expect("accepted")
}

struct Output {
    ids: Vec<u32>,
    text: String,
    reason: FinishReason,
}

fn collect(mut stream: GenerationStream) -> Output {
    let (mut ids, mut text) = (Vec::new(), String::new());
    while let Some(ev) = stream.blocking_next() {
        match ev {
            GenerationEvent::Token { id, text: t, .. } => {
                ids.push(id);
                text.push_str(&t);
            }
            GenerationEvent::Finished {
                reason, text: t, ..
            } => {
                text.push_str(&t);
                return Output { ids, text, reason };
            }
            GenerationEvent::Failed { message } => panic!("generation failed: {message}"),
        }
    }
    panic!("stream ended without a final event");
}

fn corpus() -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/json_schemas");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.clone(),
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect()
}

const PROMPTS: [&str; 6] = [
    "Return the data as JSON:",
    "Here is a record describing a customer order, in JSON:\n",
    "Q: Give me an example value.\nA:",
    "The configuration file reads",
    "Write a short JSON answer about the weather in Paris.",
    "Data export:\n",
];

#[test]
fn json_schema_corpus_outputs_validate_through_the_engine() {
    let engine = engine();
    let schemas = corpus();
    assert!(
        schemas.len() >= 200,
        "corpus has only {} schemas",
        schemas.len()
    );
    // Everything in one engine at once: the batch mixes every schema.
    let streams: Vec<_> = schemas
        .iter()
        .enumerate()
        .map(|(i, (_, schema))| {
            let rf = format(json!({"type": "json_schema", "json_schema": {"name": "corpus", "schema": schema, "strict": true}}));
            let sampling = if i % 2 == 0 { greedy() } else { sampled(i as u64) };
            submit(engine, PROMPTS[i % PROMPTS.len()], sampling, 64, Some(rf))
        })
        .collect();
    let (mut completed, mut cut) = (0, 0);
    let mut failures = Vec::new();
    for ((path, schema), stream) in schemas.iter().zip(streams) {
        let out = collect(stream);
        match out.reason {
            FinishReason::EndOfSequence => completed += 1,
            FinishReason::LengthIncompleteFormat => {
                cut += 1;
                continue;
            }
            // Cut at max_tokens but already a complete value (e.g. a long number): still valid.
            FinishReason::Length => completed += 1,
            other => panic!("{}: unexpected finish {other:?}", path.display()),
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .unwrap();
        let verdict = serde_json::from_str::<Value>(&out.text)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                validator
                    .validate(&v)
                    .map_err(|e| format!("{e} at {}", e.instance_path()))
            });
        if let Err(e) = verdict {
            failures.push(format!("{}: {e}\n  output: {}", path.display(), out.text));
        }
    }
    eprintln!("engine json corpus: {completed} completed, {cut} cut at max_tokens");
    assert!(
        failures.is_empty(),
        "{} invalid outputs:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        completed * 3 >= schemas.len(),
        "only {completed}/{} completed",
        schemas.len()
    );
}

#[test]
fn xml_outputs_are_well_formed_with_the_requested_root() {
    let engine = engine();
    let formats = [
        json!({"type": "xml", "xml": {"root": "answer"}}),
        json!({"type": "xml", "xml": {"root": "person", "schema": {"children": [
            {"name": "name", "content": "text"}, {"name": "age", "content": "integer"}]}}}),
        json!({"type": "xml", "xml": {"root": "list", "schema": {"children": [
            {"name": "item", "content": "text", "max_occurs": 3}]}}}),
    ];
    let mut streams = Vec::new();
    for (i, f) in formats.iter().enumerate() {
        for (j, prompt) in PROMPTS.iter().take(3).enumerate() {
            let root = f["xml"]["root"].as_str().unwrap().to_owned();
            let rf = ResponseFormat::from_json(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            streams.push((
                root,
                submit(engine, prompt, sampled((i * 10 + j) as u64), 96, Some(rf)),
            ));
        }
    }
    let mut completed = 0;
    for (root, stream) in streams {
        let out = collect(stream);
        if out.reason == FinishReason::LengthIncompleteFormat {
            continue;
        }
        completed += 1;
        assert_eq!(
            xml_root(&out.text),
            Ok(root.clone()),
            "output: {}",
            out.text
        );
    }
    assert!(completed >= 3, "only {completed} XML outputs completed");
}

/// Parses `text` fully with quick-xml and returns the root element's name.
fn xml_root(text: &str) -> Result<String, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let (mut root, mut depth, mut closed) = (None, 0usize, false);
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                if closed {
                    return Err("content after the root element".into());
                }
                if depth == 0 {
                    root = Some(e.name().into_inner().to_owned());
                }
                depth += 1;
            }
            Event::End(_) => {
                depth -= 1;
                closed |= depth == 0;
            }
            Event::Empty(e) if depth == 0 => {
                root = Some(e.name().into_inner().to_owned());
                closed = true;
            }
            Event::Text(t)
                if depth == 0
                    && !AsRef::<[u8]>::as_ref(&*t)
                        .iter()
                        .all(u8::is_ascii_whitespace) =>
            {
                return Err("text outside the root element".into());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 || !closed {
        return Err("unclosed root element".into());
    }
    root.ok_or_else(|| "no root element".into())
}

#[test]
fn regex_outputs_match() {
    let engine = engine();
    let patterns = [
        r"[0-9]{3}-[0-9]{4}",
        r"(yes|no|maybe)",
        r"[A-Z][a-z]{2,8}( [A-Z][a-z]{2,8}){0,2}\.",
        r"[a-z]{1,10}@[a-z]{1,10}\.(com|org)",
    ];
    let mut streams = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        for (j, prompt) in PROMPTS.iter().take(3).enumerate() {
            let rf = format(json!({"type": "regex", "regex": {"pattern": p}}));
            streams.push((
                *p,
                submit(engine, prompt, sampled((i * 10 + j) as u64), 48, Some(rf)),
            ));
        }
    }
    for (p, stream) in streams {
        let out = collect(stream);
        assert_eq!(out.reason, FinishReason::EndOfSequence, "{p}: {}", out.text);
        let re = regex::Regex::new(&format!("^(?:{p})$")).unwrap();
        assert!(re.is_match(&out.text), "{p} does not match {:?}", out.text);
    }
}

#[test]
fn unconstrained_sequences_get_the_same_tokens_next_to_constrained_ones() {
    let engine = engine();
    let prompts = [
        "The capital of France is",
        "Once upon a time",
        "def fibonacci(n):",
    ];
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| collect(submit(engine, p, greedy(), 24, None)).ids)
        .collect();
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a", "b"]});
    let mut constrained = Vec::new();
    let mut plain = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let rf =
            format(json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}));
        constrained.push(submit(engine, PROMPTS[i], greedy(), 32, Some(rf)));
        plain.push(submit(engine, p, greedy(), 24, None));
        constrained.push(submit(
            engine,
            PROMPTS[i + 1],
            sampled(i as u64),
            32,
            Some(format(json!({"type": "json_object"}))),
        ));
    }
    let mixed: Vec<Vec<u32>> = plain.into_iter().map(|s| collect(s).ids).collect();
    for s in constrained {
        collect(s);
    }
    assert_eq!(
        alone, mixed,
        "unconstrained outputs changed when batched with constrained ones"
    );
}

#[test]
fn preemption_mid_structure_still_yields_valid_output() {
    // A cache of 24 blocks of 16 positions: sixteen sequences of up to ~130 positions cannot
    // all fit, so some are preempted and recomputed mid-output.
    let (layers, kv_dim) = (30, 192);
    let cfg = EngineConfig {
        kv_cache_bytes: 24 * KvStore::bytes_per_block(layers, 16, kv_dim),
        max_context: Some(256),
        max_running: 16,
        ..Default::default()
    };
    let engine = Engine::load(&model_path(), cfg).expect("demo model loads");
    let schema = json!({"type": "object", "properties": {
        "title": {"type": "string", "minLength": 20, "maxLength": 60},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 4},
        "score": {"type": "integer"}}, "required": ["title", "tags", "score"]});
    let validator = jsonschema::validator_for(&schema).unwrap();
    let streams: Vec<_> = (0..16)
        .map(|i| {
            let rf = format(
                json!({"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}),
            );
            submit(
                &engine,
                PROMPTS[i % PROMPTS.len()],
                sampled(i as u64),
                120,
                Some(rf),
            )
        })
        .collect();
    let mut completed = 0;
    for stream in streams {
        let out = collect(stream);
        if out.reason == FinishReason::LengthIncompleteFormat {
            continue;
        }
        completed += 1;
        let v: Value =
            serde_json::from_str(&out.text).unwrap_or_else(|e| panic!("{e}: {}", out.text));
        assert!(validator.is_valid(&v), "{}", out.text);
    }
    assert!(
        engine.metrics().preemptions_total > 0,
        "the cache was large enough: no preemption happened"
    );
    assert!(completed >= 8, "only {completed}/16 completed");
}

#[test]
fn max_tokens_mid_structure_is_length_with_the_incomplete_flag() {
    let engine = engine();
    let schema = json!({"type": "object", "properties": {"story": {"type": "string", "minLength": 50}}, "required": ["story"]});
    let rf = format(json!({"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}));
    let out = collect(submit(engine, "Tell me a story.", greedy(), 6, Some(rf)));
    assert_eq!(out.reason, FinishReason::LengthIncompleteFormat);
    assert_eq!(out.reason.as_openai_str(), "length");
    assert!(out.reason.output_incomplete());
    assert!(out.text.starts_with("{\"story\": \""), "{}", out.text);
    // Unconstrained requests cut at max_tokens are plain `length`.
    let plain = collect(submit(
        engine,
        "Count from one to one hundred: one, two,",
        greedy(),
        6,
        None,
    ));
    assert_eq!(plain.reason, FinishReason::Length);
    assert!(!plain.reason.output_incomplete());
}

#[test]
fn bad_formats_are_refused_before_generation() {
    let engine = engine();
    let cases = [
        (
            json!({"type": "regex", "regex": {"pattern": "(ab"}}),
            "invalid_regex",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "not": {"type": "null"}}}}),
            "unsupported_schema_keyword",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strng"}}}),
            "invalid_json_schema",
        ),
        (
            json!({"type": "grammar", "grammar": {"lark": "start: undefined_rule"}}),
            "invalid_grammar",
        ),
    ];
    for (f, code) in cases {
        let rf = format(f.clone());
        let req = GenerateRequest {
            prompt: PromptInput::Text("Hi".into()),
            sampling: greedy(),
            max_tokens: Some(8),
        };
        let err = engine
            .prepare_with(
                req,
                RequestOptions {
                    response_format: Some(rf),
                    ..RequestOptions::default()
                },
            )
            .expect_err("must be refused");
        assert!(matches!(err, RequestError::Format(_)), "{f}: {err:?}");
        assert_eq!(err.code(), code, "{f}: {err}");
        assert!(err.is_caller_fault(), "{f}");
        assert!(
            err.field()
                .is_some_and(|x| x.starts_with("response_format")),
            "{f}"
        );
    }
}
