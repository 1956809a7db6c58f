//! Operator-configurable bounds on what a single policy document may contain.

/// Bounds checked while parsing and compiling a policy document. One document is one layer
/// (platform baseline or tenant policy); the limits apply to each layer separately.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Words across all categories of one document.
    pub max_words: usize,
    /// Bytes of word lists (inline + files) across one document.
    pub max_word_bytes: usize,
    /// Characters in one word, before normalisation.
    pub max_word_chars: usize,
    /// Regex rules across one document (PII detectors not counted).
    pub max_regex_rules: usize,
    /// Categories in one document.
    pub max_categories: usize,
    /// Compiled size (NFA bytes) of one regex rule.
    pub regex_size_limit: usize,
    /// Size of the combined matcher's NFA / DFA for all regex rules of a scope.
    pub combined_regex_size_limit: usize,
    /// Upper bound on `max_separator_run` in documents.
    pub max_separator_run: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_words: 100_000,
            max_word_bytes: 8 * 1024 * 1024,
            max_word_chars: 64,
            max_regex_rules: 256,
            max_categories: 256,
            regex_size_limit: 1024 * 1024,
            combined_regex_size_limit: 32 * 1024 * 1024,
            max_separator_run: 8,
        }
    }
}
