//! Builds a [`super::Tokenizer`] from a Hugging Face model directory.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;

use super::bytes::{
    ByteEncoding, byte_level_bytes, byte_level_decoder, parse_byte_piece, sentencepiece_bytes,
};
use super::{Parts, TokenizerError, specials};

pub(crate) fn build(dir: &Path) -> Result<Parts, TokenizerError> {
    let json_path = dir.join("tokenizer.json");
    let json = read(&json_path)?;
    let inner = tokenizers::Tokenizer::from_str(&json)
        .map_err(TokenizerError::backend("parsing tokenizer.json"))?;
    let config_path = dir.join("tokenizer_config.json");
    let config = read_optional_json(&config_path)?;
    let generation = read_optional_json(&dir.join("generation_config.json"))?;

    let special_text = |field: &'static str| -> Result<Option<String>, TokenizerError> {
        match config.as_ref().and_then(|c| c.get(field)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Object(o)) => match o.get("content") {
                Some(Value::String(s)) => Ok(Some(s.clone())),
                _ => Err(config_error(
                    &config_path,
                    field,
                    "object without string `content`",
                )),
            },
            Some(_) => Err(config_error(
                &config_path,
                field,
                "expected a string or an object",
            )),
        }
    };
    let id_of = |text: Option<String>| text.and_then(|t| inner.token_to_id(&t));
    let bos = id_of(special_text("bos_token")?);
    let eos = id_of(special_text("eos_token")?);
    let add_bos = match config.as_ref().and_then(|c| c.get("add_bos_token")) {
        Some(Value::Bool(b)) => *b,
        None | Some(Value::Null) => post_processor_adds(&inner, bos)?,
        Some(_) => {
            return Err(config_error(
                &config_path,
                "add_bos_token",
                "expected a bool",
            ));
        }
    };
    let chat_template = chat_template(config.as_ref(), &config_path)?;

    let mut named: Vec<u32> = eos.into_iter().collect();
    named.extend(generation_eos(generation.as_ref()));
    let eog = specials::eog_ids(&named, |t| inner.token_to_id(t));
    let (encoding, strip_leading_space) = decoder_shape(&inner)?;
    let token_bytes = token_bytes(&inner, encoding);
    Ok(Parts {
        inner,
        token_bytes,
        bos,
        eos,
        eog,
        add_bos,
        strip_leading_space,
        chat_template,
    })
}

fn read(path: &Path) -> Result<String, TokenizerError> {
    std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read_optional_json(path: &Path) -> Result<Option<Value>, TokenizerError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = read(path)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| TokenizerError::Json {
            path: path.to_owned(),
            source,
        })
}

fn config_error(path: &Path, field: &'static str, reason: &str) -> TokenizerError {
    TokenizerError::Config {
        path: PathBuf::from(path),
        field,
        reason: reason.to_owned(),
    }
}

/// Without `add_bos_token` in the config, the post-processor decides: ask it.
fn post_processor_adds(
    inner: &tokenizers::Tokenizer,
    bos: Option<u32>,
) -> Result<bool, TokenizerError> {
    let Some(bos) = bos else { return Ok(false) };
    let encoding = inner
        .encode_fast("a", true)
        .map_err(TokenizerError::backend("probing the post-processor"))?;
    Ok(encoding.get_ids().first() == Some(&bos))
}

/// `chat_template` is a string, or a list of named templates of which "default" is used.
fn chat_template(config: Option<&Value>, path: &Path) -> Result<Option<String>, TokenizerError> {
    match config.and_then(|c| c.get("chat_template")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(items)) => {
            let named = |want: Option<&str>| {
                items.iter().find_map(|item| {
                    let name = item.get("name")?.as_str()?;
                    let template = item.get("template")?.as_str()?;
                    (want.is_none() || want == Some(name)).then(|| template.to_owned())
                })
            };
            named(Some("default"))
                .or_else(|| named(None))
                .map(Some)
                .ok_or_else(|| config_error(path, "chat_template", "list without templates"))
        }
        Some(_) => Err(config_error(
            path,
            "chat_template",
            "expected a string or a list",
        )),
    }
}

fn generation_eos(generation: Option<&Value>) -> Vec<u32> {
    let as_id = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    match generation.and_then(|g| g.get("eos_token_id")) {
        Some(Value::Array(ids)) => ids.iter().filter_map(as_id).collect(),
        Some(v) => as_id(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// How the decoder turns token strings into bytes, and whether it drops a leading space.
fn decoder_shape(inner: &tokenizers::Tokenizer) -> Result<(ByteEncoding, bool), TokenizerError> {
    let Some(decoder) = inner.get_decoder() else {
        return Ok((ByteEncoding::Raw, false));
    };
    let json = serde_json::to_value(decoder).map_err(|e| TokenizerError::Backend {
        context: "inspecting the decoder",
        source: e.into(),
    })?;
    let mut types = Vec::new();
    collect_decoders(&json, &mut types);
    let has = |name: &str| types.iter().any(|(t, _)| t == name);
    let encoding = if has("ByteLevel") {
        ByteEncoding::ByteLevel
    } else if has("ByteFallback") || has("Metaspace") {
        ByteEncoding::SentencePiece
    } else {
        ByteEncoding::Raw
    };
    let strips = types.iter().any(|(t, node)| match t.as_str() {
        "Strip" => node.get("start").and_then(Value::as_u64).unwrap_or(0) > 0,
        "Metaspace" => node
            .get("prepend_scheme")
            .and_then(Value::as_str)
            .is_some_and(|scheme| scheme != "never"),
        _ => false,
    });
    Ok((encoding, strips))
}

fn collect_decoders(node: &Value, out: &mut Vec<(String, Value)>) {
    if let Some(t) = node.get("type").and_then(Value::as_str) {
        out.push((t.to_owned(), node.clone()));
    }
    if let Some(children) = node.get("decoders").and_then(Value::as_array) {
        for child in children {
            collect_decoders(child, out);
        }
    }
}

fn token_bytes(inner: &tokenizers::Tokenizer, encoding: ByteEncoding) -> Vec<Vec<u8>> {
    let added = inner.get_added_tokens_decoder();
    let vocab = inner.get_vocab(true);
    let size = vocab.values().map(|id| *id as usize + 1).max().unwrap_or(0);
    let table = byte_level_decoder();
    let mut out = vec![Vec::new(); size];
    for (text, id) in vocab {
        let bytes = if added.contains_key(&id) {
            text.into_bytes()
        } else {
            match encoding {
                ByteEncoding::ByteLevel => byte_level_bytes(&table, &text),
                ByteEncoding::SentencePiece => match parse_byte_piece(&text) {
                    Some(b) => vec![b],
                    None => sentencepiece_bytes(&text),
                },
                ByteEncoding::Raw => text.into_bytes(),
            }
        };
        out[id as usize] = bytes;
    }
    out
}
