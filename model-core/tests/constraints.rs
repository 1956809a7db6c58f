//! Output-format constraints against the demo model's real vocabulary.
//!
//! No model forward pass is needed for the validity property: a mask-driven driver picks, at
//! each step, a seeded-random token the mask allows (biased towards tokens that close
//! structures, so most runs finish within the step budget) and the finished output is checked
//! with an independent validator: the `jsonschema` crate, the `regex` crate, `quick-xml`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::Content;
use enclave_model_core::constraints::{
    Constraint, ConstraintCompiler, ConstraintError, ResponseFormat,
};
use enclave_model_core::tokenizer::Tokenizer;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const MAX_STEPS: usize = 400;

fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../models")
            .join(MODEL);
        let mut file = File::open(&path).unwrap_or_else(|e| {
            panic!(
                "demo model missing at {} ({e}); run the setup script from the README first",
                path.display()
            )
        });
        let content = Content::read(&mut file).unwrap();
        Tokenizer::from_gguf(&content).unwrap()
    })
}

fn compiler() -> &'static ConstraintCompiler {
    static COMPILER: OnceLock<ConstraintCompiler> = OnceLock::new();
    COMPILER.get_or_init(|| ConstraintCompiler::new(tokenizer()).unwrap())
}

fn format(v: Value) -> ResponseFormat {
    ResponseFormat::from_json(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn constraint(v: Value) -> Constraint {
    compiler()
        .compile(&format(v.clone()))
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .expect("a constrained format")
}

struct Run {
    text: String,
    complete: bool,
}

fn allowed_ids(mask: &enclave_model_core::sampling::TokenMask) -> Vec<u32> {
    (0..mask.len() as u32)
        .filter(|&id| mask.allows(id))
        .collect()
}

fn is_closer(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .any(|b| matches!(b, b'"' | b'}' | b']' | b'<' | b'>' | b'/'))
}

/// Drives `c` with seeded random picks until it finishes or `MAX_STEPS` pass. Checks on every
/// step that the mask is never empty and allows EOS only when the output is complete.
fn drive(mut c: Constraint, seed: u64) -> Run {
    let tok = tokenizer();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut bytes = Vec::new();
    for _ in 0..MAX_STEPS {
        let mask = c.compute_mask().unwrap();
        let allowed = allowed_ids(&mask);
        assert!(
            !allowed.is_empty(),
            "empty mask after {:?}",
            String::from_utf8_lossy(&bytes)
        );
        let eos_allowed = tok.eos_ids().iter().any(|&e| mask.allows(e));
        assert_eq!(
            eos_allowed,
            c.is_accepting(),
            "EOS allowed iff complete, after {:?}",
            String::from_utf8_lossy(&bytes)
        );
        let normal: Vec<u32> = allowed
            .iter()
            .copied()
            .filter(|&t| !tok.is_eos(t))
            .collect();
        if eos_allowed && (normal.is_empty() || rng.random_bool(0.6)) {
            let eos = *allowed.iter().find(|&&t| tok.is_eos(t)).unwrap();
            assert!(
                c.commit(eos).unwrap().stop,
                "committing EOS ends the output"
            );
            return Run {
                text: String::from_utf8_lossy(&bytes).into_owned(),
                complete: true,
            };
        }
        let closers: Vec<u32> = normal
            .iter()
            .copied()
            .filter(|&t| is_closer(tok.token_bytes(t).unwrap()))
            .collect();
        let pool = if !closers.is_empty() && rng.random_bool(0.5) {
            &closers
        } else {
            &normal
        };
        let pick = pool[rng.random_range(0..pool.len())];
        bytes.extend_from_slice(tok.token_bytes(pick).unwrap());
        let outcome = c.commit(pick).unwrap();
        if outcome.stop {
            assert!(outcome.accepting && c.is_finished());
            return Run {
                text: String::from_utf8_lossy(&bytes).into_owned(),
                complete: true,
            };
        }
    }
    let complete = c.is_accepting();
    assert!(!c.is_finished());
    // Out of steps: the output is cut off (even if it happens to be complete here, the
    // driver did not end it, so it is not counted).
    let _ = complete;
    Run {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        complete: false,
    }
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
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect()
}

#[test]
fn json_schema_corpus_outputs_validate() {
    let schemas = corpus();
    assert!(
        schemas.len() >= 200,
        "corpus has only {} schemas",
        schemas.len()
    );
    let (mut runs, mut completed) = (0usize, 0usize);
    let mut failures = Vec::new();
    for (i, (path, schema)) in schemas.iter().enumerate() {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .unwrap_or_else(|e| panic!("{}: not a valid schema: {e}", path.display()));
        let rf = json!({"type": "json_schema",
                        "json_schema": {"name": "corpus", "schema": schema, "strict": true}});
        let c = constraint(rf);
        for seed in 0..2u64 {
            runs += 1;
            let run = drive(c.clone(), i as u64 * 10 + seed);
            if !run.complete {
                continue;
            }
            completed += 1;
            let verdict = serde_json::from_str::<Value>(&run.text)
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    validator
                        .validate(&v)
                        .map_err(|e| format!("{e} at {}", e.instance_path()))
                });
            if let Err(e) = verdict {
                failures.push(format!("{}: {e}\n  output: {}", path.display(), run.text));
            }
        }
    }
    eprintln!("json corpus: {completed}/{runs} runs completed within {MAX_STEPS} tokens");
    assert!(
        failures.is_empty(),
        "{} invalid outputs:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        completed * 10 >= runs * 8,
        "only {completed}/{runs} runs completed"
    );
}

#[test]
fn json_object_outputs_are_objects() {
    for seed in 0..8 {
        let run = drive(constraint(json!({"type": "json_object"})), seed);
        if run.complete {
            let v: Value =
                serde_json::from_str(&run.text).unwrap_or_else(|e| panic!("{e}: {}", run.text));
            assert!(v.is_object(), "{}", run.text);
        }
    }
}

#[test]
fn regex_outputs_match() {
    let patterns = [
        r"[0-9]{3}-[0-9]{4}",
        r"(yes|no|maybe)",
        r"[A-Z][a-z]{2,8}( [A-Z][a-z]{2,8}){0,2}\.",
        r"\d{4}-\d{2}-\d{2}",
        r"(0|[1-9][0-9]*)(\.[0-9]{1,3})?",
        r"[a-z]{1,8}@[a-z]{1,8}\.(com|org)",
    ];
    for (i, p) in patterns.iter().enumerate() {
        let re = regex::Regex::new(&format!("^(?:{p})$")).unwrap();
        let mut done = 0;
        for seed in 0..6 {
            let run = drive(
                constraint(json!({"type": "regex", "regex": {"pattern": p}})),
                i as u64 * 100 + seed,
            );
            if run.complete {
                done += 1;
                assert!(re.is_match(&run.text), "{p}: {:?}", run.text);
            }
        }
        assert!(done > 0, "{p}: no run completed");
    }
}

#[test]
fn xml_outputs_are_well_formed_with_the_root() {
    let specs = [
        json!({"root": "answer"}),
        json!({"root": "person", "schema": {
            "attributes": [{"name": "id", "required": true}, {"name": "lang"}],
            "children": [
                {"name": "name", "content": "text"},
                {"name": "age", "content": "integer"},
                {"name": "score", "content": "number", "min_occurs": 0},
                {"name": "admin", "content": "boolean"},
                {"name": "tag", "min_occurs": 0, "max_occurs": "unbounded"},
                {"name": "address", "children": [
                    {"name": "city"}, {"name": "zip", "content": "integer"}, {"name": "flag", "content": "empty"}]}]}}),
        json!({"root": "list", "schema": {"children": [
            {"name": "item", "min_occurs": 1, "max_occurs": 4, "attributes": [{"name": "n", "required": true}]}]}}),
    ];
    for (i, spec) in specs.iter().enumerate() {
        let root = spec["root"].as_str().unwrap();
        let mut done = 0;
        for seed in 0..6 {
            let run = drive(
                constraint(json!({"type": "xml", "xml": spec})),
                i as u64 * 100 + seed,
            );
            if run.complete {
                done += 1;
                xml_well_formed(&run.text, root).unwrap_or_else(|e| panic!("{e}: {}", run.text));
            }
        }
        assert!(done > 0, "{spec}: no run completed");
    }
}

/// Full well-formedness check: one root with the wanted name, balanced tags (quick-xml checks
/// end names), valid attributes, only the predefined entities, nothing but space outside the root.
fn xml_well_formed(text: &str, root: &str) -> Result<(), String> {
    use quick_xml::events::{BytesStart, Event};
    fn open(e: &BytesStart<'_>, depth: usize, roots: &mut usize, root: &str) -> Result<(), String> {
        if depth == 0 {
            *roots += 1;
            let name = e.name().as_ref().to_owned();
            if name != root {
                return Err(format!("root is <{name}>, want <{root}>"));
            }
        }
        for a in e.attributes() {
            let a = a.map_err(|e| format!("bad attribute: {e}"))?;
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| format!("bad attribute value: {e}"))?;
        }
        Ok(())
    }
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let (mut depth, mut roots) = (0usize, 0usize);
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("not well-formed: {e}"))?
        {
            Event::Start(e) => {
                open(&e, depth, &mut roots, root)?;
                depth += 1;
            }
            Event::Empty(e) => open(&e, depth, &mut roots, root)?,
            Event::End(_) => depth -= 1,
            Event::Text(t) => {
                if depth == 0 && !t.chars().all(|c| c.is_ascii_whitespace()) {
                    return Err("text outside the root".into());
                }
            }
            Event::GeneralRef(r) => {
                let name: &str = &r;
                if depth == 0 || !matches!(name, "amp" | "lt" | "gt" | "quot" | "apos") {
                    return Err(format!("entity &{name}; at depth {depth}"));
                }
            }
            Event::Eof => break,
            other => return Err(format!("unexpected {other:?}")),
        }
        if roots > 1 {
            return Err("more than one root element".into());
        }
    }
    if roots != 1 || depth != 0 {
        return Err(format!("{roots} roots, depth {depth} at the end"));
    }
    Ok(())
}

#[test]
fn control_tokens_are_never_text() {
    let tok = tokenizer();
    let im_start = tok.token_to_id("<|im_start|>").unwrap();
    let mut c = constraint(json!({"type": "regex", "regex": {"pattern": "(.|\\n)*"}}));
    let mask = c.compute_mask().unwrap();
    assert!(
        !mask.allows(im_start),
        "a control token would spell its text"
    );
    assert!(mask.allows(tok.encode("Hello", false).unwrap()[0]));
    for &eos in tok.eos_ids() {
        assert!(
            mask.allows(eos),
            "the empty output is complete, so EOS {eos} is allowed"
        );
    }
}

#[test]
fn finished_grammar_stops_and_then_allows_only_eos() {
    let tok = tokenizer();
    let mut c = constraint(json!({"type": "regex", "regex": {"pattern": "yes"}}));
    let mask = c.compute_mask().unwrap();
    assert!(
        tok.eos_ids().iter().all(|&e| !mask.allows(e)),
        "empty output is incomplete"
    );
    let ids = tok.encode("yes", false).unwrap();
    let mut last = None;
    for &id in &ids {
        assert!(c.compute_mask().unwrap().allows(id));
        last = Some(c.commit(id).unwrap());
    }
    let last = last.unwrap();
    assert!(
        last.stop && last.accepting,
        "nothing can extend `yes`: {last:?}"
    );
    let mask = c.compute_mask().unwrap();
    let allowed = allowed_ids(&mask);
    let mut eos = tok.eos_ids().to_vec();
    eos.sort();
    assert_eq!(allowed, eos, "only end-of-generation may follow");
}

#[test]
fn rejected_token_is_typed_and_sticky() {
    let tok = tokenizer();
    let mut c = constraint(json!({"type": "regex", "regex": {"pattern": "[0-9]+"}}));
    let letter = tok.encode("abc", false).unwrap()[0];
    assert!(!c.compute_mask().unwrap().allows(letter));
    let err = c.commit(letter).unwrap_err();
    assert_eq!(err.code(), "constraint_token_rejected", "{err}");
    assert!(!err.is_caller_fault());
    assert!(c.is_failed());
    assert!(
        c.compute_mask().is_err(),
        "a failed constraint stays failed"
    );
}

#[test]
fn clone_and_rollback_preserve_state() {
    let tok = tokenizer();
    let mut c = constraint(
        json!({"type": "json_schema", "json_schema": {"name": "p", "schema": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
        "required": ["a", "b"], "additionalProperties": false}}}),
    );
    let prefix = tok.encode("{\"a\": 12", false).unwrap();
    for &id in &prefix {
        c.commit(id).unwrap();
    }
    let before = c.compute_mask().unwrap();
    let mut fork = c.clone();
    assert_eq!(
        fork.compute_mask().unwrap(),
        before,
        "a clone continues from the same state"
    );
    let comma = tok.encode(",", false).unwrap();
    fork.commit(comma[0]).unwrap();
    assert_ne!(fork.compute_mask().unwrap(), before);
    assert_eq!(
        c.compute_mask().unwrap(),
        before,
        "the original is independent of its clone"
    );
    fork.rollback(1).unwrap();
    assert_eq!(
        fork.compute_mask().unwrap(),
        before,
        "rollback undoes the commit"
    );
    fork.reset().unwrap();
    assert_eq!(fork.committed(), 0);
    let open = tok.encode("{", false).unwrap()[0];
    assert!(fork.compute_mask().unwrap().allows(open));
}

#[test]
fn masks_of_a_batch_compute_in_parallel() {
    use rayon::prelude::*;
    let rf = json!({"type": "json_schema", "json_schema": {"name": "p", "schema": {
        "type": "object", "properties": {"n": {"type": "string", "maxLength": 8}}, "required": ["n"]}}});
    let mut batch: Vec<Constraint> = (0..8).map(|_| constraint(rf.clone())).collect();
    let tok = tokenizer();
    let prefix = tok.encode("{\"n\": \"ab", false).unwrap();
    for (i, c) in batch.iter_mut().enumerate() {
        for &id in &prefix[..(i % prefix.len()) + 1] {
            c.commit(id).unwrap();
        }
    }
    let mut serial_batch: Vec<Constraint> = batch.clone();
    let parallel: Vec<_> = batch
        .par_iter_mut()
        .map(|c| c.compute_mask().unwrap())
        .collect();
    let serial: Vec<_> = serial_batch
        .iter_mut()
        .map(|c| c.compute_mask().unwrap())
        .collect();
    assert_eq!(parallel, serial);
}

#[test]
fn compiled_grammars_are_cached_by_format() {
    let compiler = ConstraintCompiler::with_cache_capacity(tokenizer(), 2).unwrap();
    let a = format(json!({"type": "regex", "regex": {"pattern": "a+"}}));
    let b = format(json!({"type": "regex", "regex": {"pattern": "b+"}}));
    let c = format(json!({"type": "grammar", "grammar": {"lark": "start: \"c\""}}));
    compiler.check(&a).unwrap();
    compiler.check(&a).unwrap();
    assert_eq!(compiler.cached(), 1, "same format, one entry");
    compiler.check(&b).unwrap();
    compiler.check(&c).unwrap();
    assert_eq!(compiler.cached(), 2, "capacity bounds the cache");
    assert!(
        compiler
            .compile(&format(json!({"type": "text"})))
            .unwrap()
            .is_none()
    );
}

#[test]
fn bad_formats_are_typed_errors_before_generation() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "not": {"type": "null"}}}}),
            "unsupported_schema_keyword",
            "not",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array", "uniqueItems": true}}}),
            "unsupported_schema_keyword",
            "uniqueItems",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "format": "credit-card"}}}),
            "unsupported_schema_feature",
            "credit-card",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]}}}),
            "unsupported_schema_feature",
            "oneOf",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strng"}}}),
            "invalid_json_schema",
            "strng",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/missing"}}}),
            "invalid_json_schema",
            "missing",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "integer", "minimum": 5, "maximum": 1}}}),
            "unsatisfiable_schema",
            "",
        ),
        (
            json!({"type": "regex", "regex": {"pattern": "(ab"}}),
            "invalid_regex",
            "",
        ),
        (
            json!({"type": "grammar", "grammar": {"lark": "start: undefined_rule"}}),
            "invalid_grammar",
            "undefined_rule",
        ),
        (
            json!({"type": "template", "template": {"id": "report"}}),
            "template_not_resolved",
            "report",
        ),
    ];
    for (value, code, mention) in cases {
        let err: ConstraintError = compiler()
            .compile(&format(value.clone()))
            .map(|_| ())
            .expect_err(&value.to_string());
        assert_eq!(err.code(), code, "{value}: {err}");
        assert!(
            err.to_string().contains(mention),
            "{value}: `{err}` should mention `{mention}`"
        );
    }
}
