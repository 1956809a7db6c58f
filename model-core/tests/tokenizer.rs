//! Tokenizer and chat-template tests against llama.cpp reference data for the demo model.
//!
//! The reference JSON files in tests/data were produced by the generator scripts next to them
//! (llama-cpp-python loading the same GGUF); they are not regenerated in CI.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::{Content, Value as GgufValue};
use enclave_model_core::chat::{ChatError, ChatMessage, ChatTemplate, Role};
use enclave_model_core::tokenizer::{IncrementalDecoder, Tokenizer, TokenizerError};
use proptest::prelude::*;
use serde::Deserialize;

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("models")
        .join(MODEL)
}

fn read_content() -> Content {
    let path = model_path();
    let mut file = File::open(&path).unwrap_or_else(|e| {
        panic!(
            "demo model missing at {} ({e}); run the setup script from the README first \
             (it downloads the model into models/)",
            path.display()
        )
    });
    Content::read(&mut file).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| Tokenizer::from_gguf(&read_content()).expect("tokenizer from GGUF"))
}

#[derive(Deserialize)]
struct TokenizerReference {
    n_vocab: usize,
    bos_id: u32,
    eos_id: u32,
    eog_ids: Vec<u32>,
    token_pieces_hex: Vec<(u32, String)>,
    cases: Vec<TokenizerCase>,
}

#[derive(Deserialize)]
struct TokenizerCase {
    text: String,
    ids_parse_special_false: Vec<u32>,
    ids_parse_special_true: Vec<u32>,
}

#[derive(Deserialize)]
struct GreedyReference {
    cases: Vec<GreedyCase>,
}

#[derive(Deserialize)]
struct GreedyCase {
    name: String,
    prompt: String,
    parse_special: bool,
    prompt_ids: Vec<u32>,
    generated_ids: Vec<u32>,
    #[serde(default)]
    messages: Vec<ReferenceMessage>,
    #[serde(default)]
    add_generation_prompt: bool,
    #[serde(default)]
    bos_token: String,
    #[serde(default)]
    eos_token: String,
}

#[derive(Deserialize)]
struct ReferenceMessage {
    role: String,
    content: String,
}

fn data(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn tokenizer_reference() -> TokenizerReference {
    serde_json::from_str(&data("tokenizer_reference.json")).expect("tokenizer_reference.json")
}

fn greedy_reference() -> GreedyReference {
    serde_json::from_str(&data("greedy_reference.json")).expect("greedy_reference.json")
}

#[test]
fn ids_match_llama_cpp_for_tricky_strings_in_both_special_modes() {
    let tok = tokenizer();
    let reference = tokenizer_reference();
    assert!(reference.cases.len() >= 40, "reference data too small");
    let mut failures = Vec::new();
    for case in &reference.cases {
        for (parse_special, expected) in [
            (false, &case.ids_parse_special_false),
            (true, &case.ids_parse_special_true),
        ] {
            let ours = tok.encode(&case.text, parse_special).expect("encode");
            if &ours != expected {
                failures.push(format!(
                    "{:?} (parse_special={parse_special}):\n  ours      {ours:?}\n  llama.cpp {expected:?}",
                    case.text
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn greedy_reference_prompts_encode_to_the_ids_llama_cpp_fed() {
    let tok = tokenizer();
    let reference = greedy_reference();
    assert_eq!(reference.cases.len(), 5);
    for case in &reference.cases {
        // The demo GGUF says add_bos_token=false, so the prompt ids carry no BOS.
        let ours = tok
            .encode_prompt(&case.prompt, case.parse_special)
            .expect("encode");
        assert_eq!(ours, case.prompt_ids, "prompt `{}`", case.name);
    }
    let long = reference
        .cases
        .iter()
        .find(|c| c.name == "long")
        .expect("long case");
    assert!((1900..=2000).contains(&long.prompt_ids.len()));
}

#[test]
fn special_ids_eog_set_and_token_bytes_match_llama_cpp() {
    let tok = tokenizer();
    let reference = tokenizer_reference();
    assert_eq!(tok.vocab_size(), reference.n_vocab);
    assert_eq!(tok.bos_id(), Some(reference.bos_id));
    assert_eq!(tok.eos_id(), Some(reference.eos_id));
    assert_eq!(tok.eos_ids(), reference.eog_ids.as_slice());
    assert!(!tok.adds_bos());
    assert_eq!(tok.bos_token(), Some("<|im_start|>"));
    assert_eq!(tok.eos_token(), Some("<|im_end|>"));
    assert_eq!(tok.token_to_id("<|im_end|>"), Some(2));
    assert!(
        tok.token_bytes(u32::try_from(reference.n_vocab).unwrap())
            .is_none()
    );
    for (id, hex) in &reference.token_pieces_hex {
        let expected: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            tok.token_bytes(*id),
            Some(expected.as_slice()),
            "token {id}"
        );
    }
}

#[test]
fn decode_inverts_encode() {
    let tok = tokenizer();
    for case in tokenizer_reference().cases {
        for parse_special in [false, true] {
            let ids = tok.encode(&case.text, parse_special).unwrap();
            assert_eq!(
                tok.decode(&ids).unwrap(),
                case.text,
                "parse_special={parse_special}"
            );
        }
    }
}

#[test]
fn decode_rejects_ids_outside_the_vocabulary() {
    let err = tokenizer().decode(&[5, 1_000_000]).unwrap_err();
    assert!(
        matches!(
            err,
            TokenizerError::TokenOutOfRange {
                id: 1_000_000,
                vocab_size: 49152
            }
        ),
        "{err:?}"
    );
}

#[test]
fn chat_template_renders_what_the_reference_fed_llama_cpp() {
    let tok = tokenizer();
    let case = greedy_reference()
        .cases
        .into_iter()
        .find(|c| c.name == "chat")
        .expect("chat");
    let messages: Vec<ChatMessage> = case
        .messages
        .iter()
        .map(|m| ChatMessage::new(m.role.parse::<Role>().unwrap(), m.content.clone()))
        .collect();
    let source = tok
        .chat_template()
        .expect("demo GGUF ships a chat template");
    let template = ChatTemplate::new(source, &case.bos_token, &case.eos_token).unwrap();
    let text = template
        .render(&messages, case.add_generation_prompt)
        .unwrap();
    assert_eq!(text, case.prompt);
    let via_tokenizer = ChatTemplate::for_tokenizer(tok).unwrap();
    assert_eq!(via_tokenizer.render(&messages, true).unwrap(), case.prompt);
    // The model's reply ended with an end-of-generation id.
    assert!(tok.is_eos(*case.generated_ids.last().unwrap()));
}

#[test]
fn chatml_fallback_and_template_errors_are_typed() {
    let messages = [ChatMessage::new(Role::User, "Hi")];
    let text = ChatTemplate::chatml().render(&messages, true).unwrap();
    assert_eq!(
        text,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let ids = tokenizer().encode(&text, true).unwrap();
    assert_eq!(
        ids.first(),
        Some(&1),
        "ChatML markers are single control tokens here"
    );
    assert!(matches!(
        ChatTemplate::new("{% if %}", "", ""),
        Err(ChatError::Syntax(_))
    ));
    assert!(matches!(
        ChatTemplate::chatml().render(&[], true),
        Err(ChatError::EmptyMessages)
    ));
}

fn with_metadata(key: &str, value: Option<GgufValue>) -> Result<Tokenizer, TokenizerError> {
    let mut content = read_content();
    match value {
        Some(v) => content.metadata.insert(key.to_owned(), v),
        None => content.metadata.remove(key),
    };
    Tokenizer::from_gguf(&content)
}

#[test]
fn bad_gguf_metadata_gives_typed_errors() {
    let err = with_metadata(
        "tokenizer.ggml.pre",
        Some(GgufValue::String("mystery".into())),
    )
    .unwrap_err();
    assert!(
        matches!(&err, TokenizerError::UnsupportedPreTokenizer(p) if p == "mystery"),
        "{err}"
    );
    let err = with_metadata(
        "tokenizer.ggml.model",
        Some(GgufValue::String("bert".into())),
    )
    .unwrap_err();
    assert!(
        matches!(&err, TokenizerError::UnsupportedModel(m) if m == "bert"),
        "{err}"
    );
    let err = with_metadata("tokenizer.ggml.tokens", None).unwrap_err();
    assert!(
        matches!(&err, TokenizerError::MissingMetadata { key } if key == "tokenizer.ggml.tokens")
    );
    let err = with_metadata("tokenizer.ggml.merges", None).unwrap_err();
    assert!(
        matches!(&err, TokenizerError::MissingMetadata { key } if key == "tokenizer.ggml.merges")
    );
    let err = with_metadata("tokenizer.ggml.token_type", Some(GgufValue::U32(3))).unwrap_err();
    assert!(matches!(&err, TokenizerError::MetadataType { .. }), "{err}");
}

#[test]
fn hf_directory_with_the_exported_tokenizer_json_behaves_the_same() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokenizer.json"),
        tok.hf_tokenizer_json().unwrap(),
    )
    .unwrap();
    let config = serde_json::json!({
        "bos_token": "<|im_start|>",
        "eos_token": {"content": "<|im_end|>", "special": true},
        "add_bos_token": false,
        "chat_template": tok.chat_template(),
    });
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let hf = Tokenizer::from_hf_dir(dir.path()).unwrap();

    for case in tokenizer_reference().cases {
        for parse_special in [false, true] {
            assert_eq!(
                hf.encode(&case.text, parse_special).unwrap(),
                tok.encode(&case.text, parse_special).unwrap(),
                "{:?} parse_special={parse_special}",
                case.text
            );
        }
    }
    assert_eq!(hf.vocab_size(), tok.vocab_size());
    assert_eq!((hf.bos_id(), hf.eos_id()), (tok.bos_id(), tok.eos_id()));
    assert_eq!(hf.eos_ids(), tok.eos_ids());
    assert_eq!(hf.chat_template(), tok.chat_template());
    for id in (0..tok.vocab_size() as u32).step_by(31) {
        assert_eq!(hf.token_bytes(id), tok.token_bytes(id), "token {id}");
    }
}

#[test]
fn hf_directory_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err();
    assert!(matches!(&err, TokenizerError::Io { path, .. } if path.ends_with("tokenizer.json")));
    std::fs::write(
        dir.path().join("tokenizer.json"),
        tokenizer().hf_tokenizer_json().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("tokenizer_config.json"), "{not json").unwrap();
    let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&err, TokenizerError::Json { path, .. } if path.ends_with("tokenizer_config.json"))
    );
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"add_bos_token": "yes"}"#,
    )
    .unwrap();
    let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err();
    assert!(
        matches!(
            &err,
            TokenizerError::Config {
                field: "add_bos_token",
                ..
            }
        ),
        "{err}"
    );
}

fn stream(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    let mut decoder = IncrementalDecoder::new(tok);
    let mut chunks: Vec<String> = ids.iter().map(|&id| decoder.push(id)).collect();
    chunks.push(decoder.finish());
    chunks
}

#[test]
fn incremental_decoder_holds_back_split_characters() {
    let tok = tokenizer();
    // Emoji and CJK are spread over several byte-level tokens each.
    let text = "家族 👨‍👩‍👧 ok";
    let ids = tok.encode(text, false).unwrap();
    let chunks = stream(tok, &ids);
    assert!(chunks.iter().all(|c| !c.contains('\u{FFFD}')), "{chunks:?}");
    assert!(
        ids.len() > text.chars().count() / 2,
        "expected multi-token characters: {ids:?}"
    );
    assert!(
        chunks.iter().any(String::is_empty),
        "some token must complete nothing: {chunks:?}"
    );
    assert_eq!(chunks.concat(), text);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn incremental_chunks_concatenate_to_the_whole_decode(
        ids in proptest::collection::vec(0u32..49152, 0..64)
    ) {
        let tok = tokenizer();
        prop_assert_eq!(stream(tok, &ids).concat(), tok.decode(&ids).unwrap());
    }

    #[test]
    fn incremental_chunks_of_valid_text_never_contain_replacement_chars(text in "\\PC{0,40}") {
        let tok = tokenizer();
        let ids = tok.encode(&text, false).unwrap();
        let chunks = stream(tok, &ids);
        let replaced = chunks.iter().any(|c| c.contains(char::REPLACEMENT_CHARACTER));
        prop_assert!(!replaced || text.contains(char::REPLACEMENT_CHARACTER), "{:?}", chunks);
        prop_assert_eq!(chunks.concat(), text);
    }
}

/// llama.cpp's own tokenizer test vectors (`models/ggml-vocab-*.gguf` with `.inp`/`.out` in
/// the llama.cpp source tree) for the other supported `pre` values and the SentencePiece path.
/// The vocabularies are megabytes and carry their models' licences, so they are not committed:
/// run with `LLAMA_CPP_VOCAB_DIR=/path/to/llama.cpp/models cargo test -p enclave-model-core
/// --test tokenizer -- --ignored`.
#[test]
#[ignore = "needs LLAMA_CPP_VOCAB_DIR pointing at llama.cpp's models/ directory"]
fn llama_cpp_vocab_test_vectors_match() {
    let dir = PathBuf::from(
        std::env::var_os("LLAMA_CPP_VOCAB_DIR")
            .expect("set LLAMA_CPP_VOCAB_DIR to llama.cpp's models/"),
    );
    let names = [
        "llama-spm",
        "phi-3",
        "llama-bpe",
        "qwen2",
        "deepseek-llm",
        "deepseek-coder",
        "gpt-2",
        "starcoder",
        "refact",
        "command-r",
        "falcon",
        "mpt",
    ];
    let mut failures = Vec::new();
    for name in names {
        let base = dir.join(format!("ggml-vocab-{name}.gguf"));
        let mut file = File::open(&base).unwrap_or_else(|e| panic!("{}: {e}", base.display()));
        let tok = Tokenizer::from_gguf(&Content::read(&mut file).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let inputs = std::fs::read_to_string(base.with_extension("gguf.inp")).unwrap();
        let outputs = std::fs::read_to_string(base.with_extension("gguf.out")).unwrap();
        for (text, line) in inputs.split("\n__ggml_vocab_test__\n").zip(outputs.lines()) {
            let want: Vec<u32> = line
                .split_whitespace()
                .map(|t| t.parse().unwrap())
                .collect();
            let got = tok.encode(text, false).unwrap();
            if got != want {
                failures.push(format!("{name} {text:?}: ours {got:?}, llama.cpp {want:?}"));
            }
            assert_eq!(tok.decode(&got).unwrap(), text, "{name} round trip");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
