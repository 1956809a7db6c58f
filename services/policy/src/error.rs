//! The crate's error type. Every variant names the offending category/rule and carries a stable
//! machine code (`code()`), so the gateway can map it to an API error without parsing messages.

use std::path::PathBuf;

/// Why a policy document (or a trained model) was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("policy document is not valid TOML or has an unknown/mistyped field: {0}")]
    Document(#[source] Box<toml::de::Error>),
    #[error("policy document is not valid JSON or has an unknown/mistyped field: {0}")]
    JsonDocument(#[source] Box<serde_json::Error>),
    #[error("unsupported policy schema version {found} (this build understands version 1)")]
    UnsupportedVersion { found: u32 },
    #[error("category name {name:?} is invalid: use 1-64 characters from a-z, 0-9, '_' and '-'")]
    InvalidCategoryName { name: String },
    #[error("category {category:?}: unknown action {value:?} (expected block, mask or flag)")]
    UnknownAction { category: String, value: String },
    #[error("category {category:?}: unknown scope {value:?} (expected input, output or both)")]
    UnknownScope { category: String, value: String },
    #[error(
        "category {category:?}: unknown mask style {value:?} (expected fixed, per_char or label)"
    )]
    UnknownMaskStyle { category: String, value: String },
    #[error("category {category:?}: mask_text must be 1-64 characters")]
    InvalidMaskText { category: String },
    #[error("category {category:?}: unknown PII detector {value:?} (expected one of {expected})")]
    UnknownPii {
        category: String,
        value: String,
        expected: &'static str,
    },
    #[error(
        "category {category:?} is empty: it has no words, regex rules, PII detectors or model detector"
    )]
    EmptyCategory { category: String },
    #[error("category {category:?} is defined twice{}", layer_note(layer))]
    DuplicateCategory {
        category: String,
        layer: Option<&'static str>,
    },
    #[error("too many categories: {count} (limit {limit})")]
    TooManyCategories { count: usize, limit: usize },
    #[error("category {category:?}: word #{index} is empty after normalisation")]
    EmptyWord { category: String, index: usize },
    #[error("category {category:?}: word #{index} has {chars} characters (limit {limit})")]
    WordTooLong {
        category: String,
        index: usize,
        chars: usize,
        limit: usize,
    },
    #[error("word lists hold {count} words (limit {limit} per policy)")]
    TooManyWords { count: usize, limit: usize },
    #[error("word lists hold {bytes} bytes (limit {limit} per policy)")]
    WordListTooLarge { bytes: u64, limit: usize },
    #[error(
        "category {category:?}: word file {path:?} cannot be used without a policy file path (use PolicyDocument::load)"
    )]
    WordFileUnresolved { category: String, path: String },
    #[error(
        "category {category:?}: word file {path:?} must be a relative path inside the policy directory"
    )]
    WordFilePath { category: String, path: String },
    #[error("category {category:?}: cannot read word file {path:?}")]
    WordFileRead {
        category: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read policy file {path:?}")]
    PolicyFileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("category {category:?}: regex rule name {rule:?} is invalid or repeated")]
    InvalidRuleName { category: String, rule: String },
    #[error("category {category:?}, rule {rule:?}: invalid regex: {message}")]
    InvalidRegex {
        category: String,
        rule: String,
        message: String,
    },
    #[error("category {category:?}, rule {rule:?}: unsupported construct: {message}")]
    UnsupportedRegex {
        category: String,
        rule: String,
        message: String,
    },
    #[error("category {category:?}, rule {rule:?}: catastrophic pattern: {reason}")]
    CatastrophicPattern {
        category: String,
        rule: String,
        reason: &'static str,
    },
    #[error("category {category:?}, rule {rule:?}: pattern can match the empty string")]
    EmptyMatchPattern { category: String, rule: String },
    #[error(
        "category {category:?}, rule {rule:?}: compiled pattern exceeds the size limit of {limit} bytes"
    )]
    PatternTooLarge {
        category: String,
        rule: String,
        limit: usize,
    },
    #[error("too many regex rules: {count} (limit {limit} per policy)")]
    TooManyRules { count: usize, limit: usize },
    #[error("combined patterns exceed the size limit of {limit} bytes")]
    PatternsTooLarge { limit: usize },
    #[error(
        "normalization: separator {value:?} is invalid: separators must be single non-alphanumeric, visible characters"
    )]
    InvalidSeparator { value: String },
    #[error("normalization: max_separator_run {value} is out of range 1..={limit}")]
    InvalidSeparatorRun { value: u32, limit: u32 },
    #[error("detector {detector:?}: {problem}")]
    InvalidDetector { detector: String, problem: String },
    #[error("detector {detector:?}: unknown kind {value:?} (expected classifier or judge)")]
    UnknownDetectorKind { detector: String, value: String },
    #[error("word matcher could not be built")]
    WordMatcher(#[source] aho_corasick::BuildError),
    #[error("pattern matcher could not be built: {message}")]
    PatternMatcher { message: String },
}

fn layer_note(layer: &Option<&'static str>) -> String {
    layer
        .map(|l| format!(" (also defined in the {l} layer)"))
        .unwrap_or_default()
}

impl PolicyError {
    /// Stable machine-readable code for API errors and audit records.
    pub fn code(&self) -> &'static str {
        use PolicyError::*;
        match self {
            Document(_) | JsonDocument(_) => "invalid_document",
            UnsupportedVersion { .. } => "unsupported_version",
            InvalidCategoryName { .. } => "invalid_category_name",
            UnknownAction { .. } => "unknown_action",
            UnknownScope { .. } => "unknown_scope",
            UnknownMaskStyle { .. } => "unknown_mask_style",
            InvalidMaskText { .. } => "invalid_mask_text",
            UnknownPii { .. } => "unknown_pii_detector",
            EmptyCategory { .. } => "empty_category",
            DuplicateCategory { .. } => "duplicate_category",
            TooManyCategories { .. } => "too_many_categories",
            EmptyWord { .. } => "empty_word",
            WordTooLong { .. } => "word_too_long",
            TooManyWords { .. } => "word_list_too_large",
            WordListTooLarge { .. } => "word_list_too_large",
            WordFileUnresolved { .. } => "word_file_unresolved",
            WordFilePath { .. } => "word_file_path",
            WordFileRead { .. } => "word_file_unreadable",
            PolicyFileRead { .. } => "policy_file_unreadable",
            InvalidRuleName { .. } => "invalid_rule_name",
            InvalidRegex { .. } => "invalid_regex",
            UnsupportedRegex { .. } => "unsupported_regex",
            CatastrophicPattern { .. } => "catastrophic_pattern",
            EmptyMatchPattern { .. } => "empty_match_pattern",
            PatternTooLarge { .. } => "pattern_too_large",
            TooManyRules { .. } => "too_many_rules",
            PatternsTooLarge { .. } => "pattern_too_large",
            InvalidSeparator { .. } => "invalid_separator",
            InvalidSeparatorRun { .. } => "invalid_separator_run",
            InvalidDetector { .. } => "invalid_detector",
            UnknownDetectorKind { .. } => "unknown_detector_kind",
            WordMatcher(_) => "matcher_build_failed",
            PatternMatcher { .. } => "matcher_build_failed",
        }
    }
}

impl From<toml::de::Error> for PolicyError {
    fn from(e: toml::de::Error) -> Self {
        PolicyError::Document(Box::new(e))
    }
}
