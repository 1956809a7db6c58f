//! Chat templates: a model's Jinja template (GGUF `tokenizer.chat_template` or
//! `tokenizer_config.json`) rendered with minijinja, or ChatML when the model ships none.
//!
//! Templates come from model files, so rendering is sandboxed: no template loader (no
//! `include`/`import` of anything), a fuel limit against runaway loops, and only the helpers
//! Hugging Face templates expect (`raise_exception`, Python string methods, `tojson`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, ErrorKind, Value, context};
use serde::{Deserialize, Serialize};

use crate::tokenizer::Tokenizer;

const TEMPLATE_NAME: &str = "chat";

/// Upper bound on template instructions per render: generous for any real conversation,
/// small enough that a hostile template fails fast.
const FUEL: u64 = 2_000_000;

const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + \
    message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ \
    '<|im_start|>assistant\\n' }}{% endif %}";

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }
}

impl FromStr for Role {
    type Err = ChatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system" => Ok(Self::System),
            "user" => Ok(Self::User),
            "assistant" => Ok(Self::Assistant),
            "tool" => Ok(Self::Tool),
            other => Err(ChatError::UnknownRole(other.to_owned())),
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    #[error("chat template does not compile")]
    Syntax(#[source] minijinja::Error),
    #[error("chat template failed to render")]
    Render(#[source] minijinja::Error),
    #[error("a chat needs at least one message")]
    EmptyMessages,
    #[error("unknown chat role `{0}` (expected system, user, assistant or tool)")]
    UnknownRole(String),
}

/// A compiled chat template plus the special-token texts it may reference.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source` once; `bos_token` / `eos_token` are the texts templates see as
    /// `{{ bos_token }}` / `{{ eos_token }}`.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, ChatError> {
        let mut env = Environment::new();
        // Hugging Face renders chat templates with trim_blocks and lstrip_blocks on.
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(ChatError::Syntax)?;
        env.set_syntax(syntax);
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(ChatError::Syntax)?;
        Ok(Self {
            env,
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
        })
    }

    /// The ChatML template (`<|im_start|>role\ncontent<|im_end|>\n`), for models without one.
    pub fn chatml() -> Self {
        // INVARIANT: CHATML is a fixed template covered by tests; it always compiles.
        Self::new(CHATML, "", "<|im_end|>").expect("built-in ChatML template compiles")
    }

    /// The tokenizer's own template, or ChatML when the model has none.
    pub fn for_tokenizer(tokenizer: &Tokenizer) -> Result<Self, ChatError> {
        let bos = tokenizer.bos_token().unwrap_or("");
        let eos = tokenizer.eos_token().unwrap_or("");
        match tokenizer.chat_template() {
            Some(source) => Self::new(source, bos, eos),
            None => Ok(Self::chatml()),
        }
    }

    /// Renders the conversation; with `add_generation_prompt` the text ends where the
    /// assistant's reply begins.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ChatError> {
        if messages.is_empty() {
            return Err(ChatError::EmptyMessages);
        }
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(ChatError::Render)?;
        // Templates index messages like dicts: `message['role']`, `message.content`.
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                Value::from(BTreeMap::from([
                    ("role", Value::from(m.role.as_str())),
                    ("content", Value::from(m.content.as_str())),
                ]))
            })
            .collect();
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(ChatError::Render)
    }
}

/// Templates call `raise_exception('...')` to reject a conversation (e.g. roles that do not
/// alternate).
fn raise_exception(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

/// `tojson` as Python's `json.dumps(ensure_ascii=False)` writes it (`", "` and `": "`
/// separators, optional `indent`), which is what templates were written against; minijinja's
/// built-in escapes HTML characters and uses compact separators.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let json = to_json(&value)?;
    let mut out = String::new();
    write_py_json(&mut out, &json, indent, 0);
    Ok(Value::from_safe_string(out))
}

fn to_json(value: &Value) -> Result<serde_json::Value, minijinja::Error> {
    use serde_json::Value as J;
    Ok(match value.kind() {
        ValueKind::Undefined | ValueKind::None => J::Null,
        ValueKind::Bool => J::Bool(value.is_true()),
        ValueKind::Number => match value.as_i64() {
            Some(i) => J::from(i),
            None => J::from(f64::try_from(value.clone())?),
        },
        ValueKind::String => J::String(value.as_str().unwrap_or_default().to_owned()),
        ValueKind::Seq | ValueKind::Iterable => J::Array(
            value
                .try_iter()?
                .map(|v| to_json(&v))
                .collect::<Result<_, _>>()?,
        ),
        ValueKind::Map => {
            let mut map = serde_json::Map::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                let key = key.as_str().map_or_else(|| key.to_string(), str::to_owned);
                map.insert(key, to_json(&item)?);
            }
            J::Object(map)
        }
        _ => J::String(value.to_string()),
    })
}

fn write_py_json(out: &mut String, value: &serde_json::Value, indent: Option<usize>, depth: usize) {
    use serde_json::Value as J;
    let newline = |out: &mut String, depth: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', width * depth));
        }
    };
    let separator = if indent.is_some() { "," } else { ", " };
    match value {
        J::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                newline(out, depth + 1);
                write_py_json(out, item, indent, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        J::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                newline(out, depth + 1);
                let _ = write!(out, "{}: ", J::String(key.clone()));
                write_py_json(out, item, indent, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn convo() -> Vec<ChatMessage> {
        vec![
            ChatMessage::new(Role::System, "Be brief."),
            ChatMessage::new(Role::User, "Hi"),
            ChatMessage::new(Role::Assistant, "Hello."),
            ChatMessage::new(Role::User, "Bye"),
        ]
    }

    #[test]
    fn chatml_renders_every_turn_and_the_generation_prompt() {
        let text = ChatTemplate::chatml().render(&convo(), true).unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n\
             <|im_start|>assistant\n"
        );
        let without = ChatTemplate::chatml().render(&convo(), false).unwrap();
        assert!(without.ends_with("Bye<|im_end|>\n"), "{without}");
    }

    #[test]
    fn empty_conversation_is_refused() {
        let err = ChatTemplate::chatml().render(&[], true).unwrap_err();
        assert!(matches!(err, ChatError::EmptyMessages), "{err:?}");
    }

    #[test]
    fn syntax_errors_are_typed() {
        let err = ChatTemplate::new("{% for m in messages %}{{ m.content }", "", "").unwrap_err();
        assert!(matches!(err, ChatError::Syntax(_)), "{err:?}");
    }

    #[test]
    fn raise_exception_becomes_a_render_error_with_the_message() {
        let t = ChatTemplate::new(
            "{% if messages[0].role != 'user' %}{{ raise_exception('first turn must be user') }}{% endif %}",
            "",
            "",
        )
        .unwrap();
        let err = t.render(&convo(), false).unwrap_err();
        assert!(matches!(err, ChatError::Render(_)), "{err:?}");
        let chain = error_chain(&err);
        assert!(chain.contains("first turn must be user"), "{chain}");
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let t = ChatTemplate::new(
            "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        let err = t.render(&convo(), false).unwrap_err();
        let ChatError::Render(inner) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(inner.kind(), ErrorKind::OutOfFuel);
    }

    #[test]
    fn templates_cannot_include_other_files() {
        let t = ChatTemplate::new("{% include '/etc/passwd' %}", "", "").unwrap();
        assert!(matches!(
            t.render(&convo(), false),
            Err(ChatError::Render(_))
        ));
    }

    #[test]
    fn python_string_methods_and_special_tokens_are_available() {
        let t = ChatTemplate::new(
            "{{ bos_token }}{% for m in messages %}{% if m.content.strip().startswith('Be') %}\
             [{{ m.role | upper }}]{% endif %}{% endfor %}{{ eos_token }}",
            "<s>",
            "</s>",
        )
        .unwrap();
        assert_eq!(t.render(&convo(), false).unwrap(), "<s>[SYSTEM]</s>");
    }

    #[test]
    fn tojson_matches_python_json_dumps() {
        let t = ChatTemplate::new(
            "{{ {'a': [1, 2], 'b': '<x> é'} | tojson }}|{{ [] | tojson(indent=2) }}|\
             {{ {'k': [1]} | tojson(indent=2) }}",
            "",
            "",
        )
        .unwrap();
        assert_eq!(
            t.render(&convo(), false).unwrap(),
            "{\"a\": [1, 2], \"b\": \"<x> é\"}|[]|{\n  \"k\": [\n    1\n  ]\n}"
        );
    }

    #[test]
    fn roles_parse_and_print() {
        for role in [Role::System, Role::User, Role::Assistant, Role::Tool] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!(matches!("bot".parse::<Role>(), Err(ChatError::UnknownRole(r)) if r == "bot"));
    }

    /// An error with its source chain, like anyhow's `{:#}`.
    fn error_chain(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            let _ = write!(text, ": {s}");
            source = s.source();
        }
        text
    }
}
