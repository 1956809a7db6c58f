//! [`ConstraintError`]: every way a response format can be refused or a constraint can fail.
//!
//! Caller faults (a bad `response_format`) are found when the format is parsed or compiled,
//! before any token is generated; they carry a stable [`code`](ConstraintError::code) and the
//! request [`field`](ConstraintError::field) they are about, so the gateway can answer 4xx
//! without inspecting messages. The remaining variants are engine faults (5xx).

/// A response format that cannot be served, or a constraint that failed mid-generation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConstraintError {
    /// The `response_format` object itself is malformed (unknown `type`, missing field, ...).
    #[error("response_format is malformed: {message}")]
    Malformed { message: String },
    /// A field of the format has a value outside what is accepted (empty pattern, bad name, ...).
    #[error("{field} is invalid: {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    /// The JSON schema is not a valid schema (wrong keyword types, unresolvable `$ref`, ...).
    #[error("response_format.json_schema.schema is not a valid JSON schema: {message}")]
    InvalidJsonSchema { message: String },
    /// The JSON schema uses keywords constrained decoding cannot enforce.
    #[error(
        "response_format.json_schema.schema uses unsupported keyword(s) {}: they cannot be \
         enforced during generation",
        keywords.join(", ")
    )]
    UnsupportedSchemaKeyword { keywords: Vec<String> },
    /// The JSON schema uses a supported keyword in a way that cannot be enforced (e.g. `oneOf`).
    #[error("response_format.json_schema.schema uses an unsupported feature: {message}")]
    UnsupportedSchemaFeature { message: String },
    /// The JSON schema admits no value at all, so no output could ever satisfy it.
    #[error("response_format.json_schema.schema cannot be satisfied: {message}")]
    UnsatisfiableSchema { message: String },
    #[error("response_format.regex.pattern is not a valid regular expression: {message}")]
    InvalidRegex { message: String },
    #[error("response_format.grammar.lark is not a valid grammar: {message}")]
    InvalidGrammar { message: String },
    /// The XML element schema is not usable (bad element name, too deep, ...).
    #[error("response_format.xml is invalid: {message}")]
    InvalidXmlSchema { message: String },
    /// A `template` format reached the engine; the gateway resolves templates to their JSON
    /// schema first, so this is a wiring fault rather than a caller fault.
    #[error(
        "response_format template `{id}` was not resolved to its JSON schema before generation"
    )]
    TemplateNotResolved { id: String },
    /// The tokenizer's vocabulary cannot be turned into a constraint token table.
    #[error("cannot build the constraint token table: {message}")]
    TokenTable { message: String },
    /// A committed token is not allowed by the constraint (the engine sampled outside the mask).
    #[error("token {token} is not allowed by the response format at this point: {message}")]
    TokenRejected { token: u32, message: String },
    /// The matcher failed while computing a mask (grammar engine fault or resource limit).
    #[error("constraint matcher failed: {message}")]
    Matcher { message: String },
}

impl ConstraintError {
    /// Stable machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            ConstraintError::Malformed { .. } => "invalid_response_format",
            ConstraintError::InvalidField { .. } => "invalid_response_format",
            ConstraintError::InvalidJsonSchema { .. } => "invalid_json_schema",
            ConstraintError::UnsupportedSchemaKeyword { .. } => "unsupported_schema_keyword",
            ConstraintError::UnsupportedSchemaFeature { .. } => "unsupported_schema_feature",
            ConstraintError::UnsatisfiableSchema { .. } => "unsatisfiable_schema",
            ConstraintError::InvalidRegex { .. } => "invalid_regex",
            ConstraintError::InvalidGrammar { .. } => "invalid_grammar",
            ConstraintError::InvalidXmlSchema { .. } => "invalid_xml_schema",
            ConstraintError::TemplateNotResolved { .. } => "template_not_resolved",
            ConstraintError::TokenTable { .. } => "constraint_token_table",
            ConstraintError::TokenRejected { .. } => "constraint_token_rejected",
            ConstraintError::Matcher { .. } => "constraint_failed",
        }
    }

    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            ConstraintError::Malformed { .. } => "response_format",
            ConstraintError::InvalidField { field, .. } => field,
            ConstraintError::InvalidJsonSchema { .. }
            | ConstraintError::UnsupportedSchemaKeyword { .. }
            | ConstraintError::UnsupportedSchemaFeature { .. }
            | ConstraintError::UnsatisfiableSchema { .. } => "response_format.json_schema.schema",
            ConstraintError::InvalidRegex { .. } => "response_format.regex.pattern",
            ConstraintError::InvalidGrammar { .. } => "response_format.grammar.lark",
            ConstraintError::InvalidXmlSchema { .. } => "response_format.xml",
            ConstraintError::TemplateNotResolved { .. } => "response_format.template.id",
            ConstraintError::TokenTable { .. }
            | ConstraintError::TokenRejected { .. }
            | ConstraintError::Matcher { .. } => "response_format",
        }
    }

    /// Whether the caller is at fault (4xx) rather than the engine (5xx).
    pub fn is_caller_fault(&self) -> bool {
        !matches!(
            self,
            ConstraintError::TemplateNotResolved { .. }
                | ConstraintError::TokenTable { .. }
                | ConstraintError::TokenRejected { .. }
                | ConstraintError::Matcher { .. }
        )
    }
}
