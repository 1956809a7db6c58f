//! Output-format control: constrained decoding with llguidance.
//!
//! A request's `response_format` is parsed into a [`ResponseFormat`] (cheap shape checks), a
//! per-model [`ConstraintCompiler`] compiles it into a per-sequence [`Constraint`] (schema,
//! regex and grammar errors surface here, before generation), and the engine asks the
//! constraint for a [`crate::sampling::TokenMask`] each step and commits the sampled token.
//!
//! ```text
//! startup:   let compiler = ConstraintCompiler::new(&tokenizer)?;           // once per model
//! request:   let fmt = ResponseFormat::from_json(&body["response_format"])?;
//!            let constraint = compiler.compile(&fmt)?;                         // None for text
//! each step: let mask = constraint.compute_mask()?;    // rayon task, during the forward pass
//!            let tok  = sampler.sample(logits, history, Some(&mask));
//!            if constraint.commit(tok)?.stop { /* finish reason: stop */ }
//! max_tokens: constraint.is_accepting() == false  =>  output is incomplete
//! ```

mod compiler;
mod constraint;
mod error;
mod format;
mod schema_prep;
mod tok_env;
mod xml;

pub use compiler::{ConstraintCompiler, DEFAULT_CACHE_CAPACITY};
pub use constraint::{CommitOutcome, Constraint, ConstraintKind};
pub use error::ConstraintError;
pub use format::{
    GrammarFormat, JsonSchemaFormat, MAX_GRAMMAR_BYTES, MAX_REGEX_BYTES, MAX_SCHEMA_BYTES,
    MAX_SCHEMA_NAME_CHARS, MAX_TEMPLATE_ID_CHARS, RawGrammar, RawJsonSchema, RawRegex,
    RawResponseFormat, RawTemplate, RawXml, RegexFormat, ResponseFormat, TemplateRef,
};
pub use xml::{
    MAX_XML_DEPTH, MAX_XML_ELEMENTS, MAX_XML_OCCURS, RawMaxOccurs, RawXmlAttribute, RawXmlElement,
    XmlContentKind, XmlFormat,
};

#[cfg(test)]
mod send_sync {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn engine_can_share_and_move_them() {
        assert_send::<super::Constraint>();
        assert_send_sync::<super::ConstraintCompiler>();
        assert_send_sync::<super::ResponseFormat>();
    }
}
