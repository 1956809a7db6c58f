//! Bodies of the policy routes: versions of a tenant's policy document, activation, dry runs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A new version of the caller's tenant policy. The document uses the schema of
/// `policies/README.md` and is layered on top of the platform baseline (its categories cannot be
/// redefined). A document that does not validate is answered 422 and stores nothing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePolicyRequest {
    /// The document text, in `format`.
    #[schema(
        example = "[[category]]\nname = \"codenames\"\naction = \"block\"\nwords = [\"project falcon\"]\n"
    )]
    pub document: String,
    /// `toml` (default) or `json` (the same schema as a JSON object).
    #[serde(default)]
    pub format: Option<String>,
    /// Free text kept with the version (at most 1000 characters).
    #[serde(default)]
    pub comment: Option<String>,
    /// Make the new version the active one (default true).
    #[serde(default)]
    pub activate: Option<bool>,
}

/// A version of a tenant's policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersion {
    pub tenant_id: Uuid,
    /// 1, 2, ... in creation order; versions never change.
    pub version: u32,
    /// `toml` or `json`: how the document was submitted.
    pub format: String,
    /// The document's own `name`, if it has one.
    pub name: Option<String>,
    pub comment: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// Whether this version is the one enforced now.
    pub active: bool,
    /// Categories the version defines (the baseline's not included).
    pub categories: Option<Vec<PolicyCategory>>,
    /// The document as submitted (only when one version is fetched).
    pub document: Option<String>,
}

/// One category of a policy, summarised.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyCategory {
    pub name: String,
    /// `block`, `mask` or `flag`.
    pub action: String,
    /// `input`, `output` or `both`.
    pub scope: String,
    pub words: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersionList {
    /// Newest first.
    pub data: Vec<PolicyVersion>,
    /// The active version; absent when only the platform baseline applies.
    pub active_version: Option<u32>,
}

/// Tests a policy against a text without generating anything.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    /// The text to check (at most 1 MiB).
    pub text: String,
    /// `input` (a prompt) or `output` (an answer, the default).
    #[serde(default)]
    pub scope: Option<String>,
    /// A stored version to test; default the active one (or the baseline alone if none).
    #[serde(default)]
    pub version: Option<u32>,
    /// An unsaved document to test instead of a stored version (layered on the baseline).
    #[serde(default)]
    pub document: Option<String>,
    /// Format of `document`: `toml` (default) or `json`.
    #[serde(default)]
    pub format: Option<String>,
}

/// What enforcing the policy on the text would do.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DryRunResult {
    /// The version tested; absent for the baseline alone or an unsaved document.
    pub version: Option<u32>,
    pub scope: String,
    /// Every match in text order (all of them, also after a blocking one).
    pub matches: Vec<PolicyMatch>,
    /// The text as it would be released: masked spans replaced, cut before a blocking match.
    pub text: String,
    /// The first blocking match, if any: the request (input) or the answer (output) is stopped.
    pub blocked: Option<PolicyMatch>,
}

/// One match with its span in the submitted text.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PolicyMatch {
    pub category: String,
    /// `word:<normalised word>`, `regex:<rule name>`, `pii:<kind>` or `detector:<name>`.
    pub rule: String,
    /// `block`, `mask` or `flag`.
    pub action: String,
    /// Byte offsets (UTF-8) of the span: `text[start..end]`.
    pub start: usize,
    pub end: usize,
    /// Character (Unicode scalar) offsets of the same span.
    pub char_start: usize,
    pub char_end: usize,
    /// The original text of the span.
    pub matched: String,
}

/// The `event: policy` of a stream the content policy stopped (sent before the final chunk,
/// whose `finish_reason` is `content_filter`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyStopEvent {
    /// Always true: the answer was stopped.
    pub blocked: bool,
    /// The category that stopped it.
    pub category: String,
    /// `block`.
    pub action: String,
}
