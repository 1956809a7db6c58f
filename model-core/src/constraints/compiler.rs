//! [`ConstraintCompiler`]: one per model; turns a [`ResponseFormat`] into a fresh [`Constraint`].
//!
//! Compiling a JSON schema or grammar takes milliseconds, so compiled grammars are cached,
//! keyed by the exact grammar llguidance receives (JSON object key order is kept, and it
//! matters: it is the order properties are generated in). A cache hit costs one clone of the
//! compiled matcher.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::{Value, json};

use super::constraint::{Constraint, ConstraintKind};
use super::error::ConstraintError;
use super::format::ResponseFormat;
use crate::tokenizer::Tokenizer;

/// Compiled grammars kept by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 256;

/// Compiles response formats against one model's vocabulary. `Send + Sync`: share it (e.g. in
/// an `Arc`) between the engine thread and request validation.
pub struct ConstraintCompiler {
    factory: ParserFactory,
    vocab_size: usize,
    eos_ids: Arc<[u32]>,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for ConstraintCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstraintCompiler")
            .field("vocab_size", &self.vocab_size)
            .field("cached", &self.cached())
            .finish_non_exhaustive()
    }
}

struct Cache {
    capacity: usize,
    entries: HashMap<String, Matcher>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<String>,
}

impl ConstraintCompiler {
    /// Builds the token table and llguidance's per-vocabulary tables (tens of milliseconds for
    /// a 50k vocabulary: do it once at engine start).
    pub fn new(tokenizer: &Tokenizer) -> Result<Self, ConstraintError> {
        Self::with_cache_capacity(tokenizer, DEFAULT_CACHE_CAPACITY)
    }

    pub fn with_cache_capacity(
        tokenizer: &Tokenizer,
        capacity: usize,
    ) -> Result<Self, ConstraintError> {
        let env = super::tok_env::build(tokenizer)?;
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| ConstraintError::TokenTable {
                message: e.to_string(),
            })?;
        // Grammar warnings go to the constraint's error values, not to the process's stderr.
        factory.quiet();
        Ok(Self {
            factory,
            vocab_size: tokenizer.vocab_size(),
            eos_ids: tokenizer.eos_ids().into(),
            cache: Mutex::new(Cache {
                capacity,
                entries: HashMap::new(),
                order: VecDeque::new(),
            }),
        })
    }

    /// A fresh constraint for `format`, or `None` for [`ResponseFormat::Text`]. Every fault of
    /// the format (bad schema, unsupported keyword, bad regex or grammar) is reported here,
    /// before generation starts.
    pub fn compile(&self, format: &ResponseFormat) -> Result<Option<Constraint>, ConstraintError> {
        let Some((kind, grammar)) = to_grammar(format)? else {
            return Ok(None);
        };
        let key = format!(
            "{}\u{0}{}",
            kind.as_str(),
            serde_json::to_string(&grammar).map_err(|e| ConstraintError::Matcher {
                message: e.to_string()
            })?
        );
        if let Some(matcher) = self.lookup(&key) {
            return Ok(Some(self.wrap(matcher, kind)));
        }
        let parser = self.factory.create_parser(grammar);
        let matcher = Matcher::new(parser);
        if let Some(message) = matcher.get_error() {
            return Err(classify(kind, message));
        }
        self.insert(key, &matcher);
        Ok(Some(self.wrap(matcher, kind)))
    }

    /// Compiles (and caches) `format` without starting a constraint: request validation.
    pub fn check(&self, format: &ResponseFormat) -> Result<(), ConstraintError> {
        self.compile(format).map(|_| ())
    }

    /// Number of compiled grammars in the cache.
    pub fn cached(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.entries.len())
    }

    /// Size of the vocabulary masks cover.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn wrap(&self, matcher: Matcher, kind: ConstraintKind) -> Constraint {
        Constraint::new(matcher, self.vocab_size, Arc::clone(&self.eos_ids), kind)
    }

    fn lookup(&self, key: &str) -> Option<Matcher> {
        // A poisoned cache only loses cached work: compile afresh.
        let cache = self.cache.lock().ok()?;
        cache.entries.get(key).map(Matcher::deep_clone)
    }

    fn insert(&self, key: String, matcher: &Matcher) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.capacity == 0 || cache.entries.contains_key(&key) {
            return;
        }
        while cache.entries.len() >= cache.capacity {
            let Some(old) = cache.order.pop_front() else {
                break;
            };
            cache.entries.remove(&old);
        }
        cache.entries.insert(key.clone(), matcher.deep_clone());
        cache.order.push_back(key);
    }
}

/// JSON output without free whitespace: a model cannot stall in endless blank space, and
/// separators match what `json.dumps` writes, which models have seen most.
fn json_options() -> Value {
    json!({
        "whitespace_flexible": false,
        "item_separator": ", ",
        "key_separator": ": ",
    })
}

fn to_grammar(
    format: &ResponseFormat,
) -> Result<Option<(ConstraintKind, TopLevelGrammar)>, ConstraintError> {
    Ok(Some(match format {
        ResponseFormat::Text => return Ok(None),
        ResponseFormat::Template(t) => {
            return Err(ConstraintError::TemplateNotResolved {
                id: t.id().to_owned(),
            });
        }
        ResponseFormat::JsonObject => (
            ConstraintKind::JsonObject,
            TopLevelGrammar::from_json_schema({
                let mut schema = super::schema_prep::narrow(&json!({"type": "object"}));
                if let Value::Object(map) = &mut schema {
                    map.insert("x-guidance".into(), json_options());
                }
                schema
            }),
        ),
        ResponseFormat::JsonSchema(s) => {
            let mut schema = super::schema_prep::narrow(s.schema());
            if let Value::Object(map) = &mut schema {
                // The caller's own `x-guidance` would let them loosen the guarantees above.
                map.insert("x-guidance".into(), json_options());
            }
            (
                ConstraintKind::JsonSchema,
                TopLevelGrammar::from_json_schema(schema),
            )
        }
        ResponseFormat::Regex(r) => (
            ConstraintKind::Regex,
            TopLevelGrammar::from_regex(r.pattern()),
        ),
        ResponseFormat::Grammar(g) => (
            ConstraintKind::Grammar,
            TopLevelGrammar::from_lark(g.lark().to_owned()),
        ),
        ResponseFormat::Xml(x) => (ConstraintKind::Xml, TopLevelGrammar::from_lark(x.to_lark())),
    }))
}

/// Maps llguidance's compile error text to a typed error. llguidance reports errors as text;
/// the prefixes matched here are the ones its JSON compiler emits for these cases.
fn classify(kind: ConstraintKind, message: String) -> ConstraintError {
    match kind {
        ConstraintKind::Regex => ConstraintError::InvalidRegex { message },
        ConstraintKind::Grammar => ConstraintError::InvalidGrammar { message },
        // Our own generated grammar failed: not the caller's fault.
        ConstraintKind::Xml => ConstraintError::Matcher { message },
        ConstraintKind::JsonObject | ConstraintKind::JsonSchema => classify_schema(message),
    }
}

fn classify_schema(message: String) -> ConstraintError {
    if let Some(keys) = unimplemented_keys(&message) {
        return ConstraintError::UnsupportedSchemaKeyword { keywords: keys };
    }
    if message.contains("not supported") || message.contains("Unknown format") {
        return ConstraintError::UnsupportedSchemaFeature { message };
    }
    if message.contains("Unsatisfiable schema") {
        return ConstraintError::UnsatisfiableSchema { message };
    }
    ConstraintError::InvalidJsonSchema { message }
}

/// Parses `Unimplemented keys: ["a", "b"]` out of an llguidance error message.
fn unimplemented_keys(message: &str) -> Option<Vec<String>> {
    let rest = &message[message.find("Unimplemented keys: ")? + "Unimplemented keys: ".len()..];
    let list = &rest[..=rest.find(']')?];
    serde_json::from_str(list).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unimplemented_keys_are_extracted() {
        let msg = "error at x: Unimplemented keys: [\"foo\", \"not\"] (at /y)";
        assert_eq!(
            unimplemented_keys(msg),
            Some(vec!["foo".to_owned(), "not".to_owned()])
        );
        assert_eq!(unimplemented_keys("something else"), None);
    }
}
