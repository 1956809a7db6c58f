//! Sensitive-content policy on the inference path.
//!
//! * [`PolicyRuntime`]: the platform baseline (compiled into the binary from `policies/`) and a
//!   cache of each tenant's active version layered on top of it, keyed by version number, so a
//!   request costs one indexed lookup of the active version number.
//! * Input: every prompt text is checked before the engine sees it; a `block` category answers
//!   400 with code `policy_blocked:<category>` and nothing is generated; `mask` rewrites the spans
//!   in the prompt the model receives; `flag` only records.
//! * Output: [`PolicedStream`] wraps the engine's event stream with a [`StreamFilter`], which
//!   holds back only the shortest suffix that could still become a match. A `block` ends the
//!   generation (the engine stream is dropped, which cancels the sequence) and the answer ends with
//!   `finish_reason: "content_filter"`. Whole (non-streamed) answers go through
//!   [`Policy::apply`], which the policy crate guarantees equals the streamed result for every
//!   chunking.
//! * Classifier detectors ([`classifier`]) judge whole texts: on input like the word lists; on
//!   output the whole answer is held back until it is complete when the policy has a classifier
//!   detector for an output category (a whole-text verdict cannot be reached earlier without
//!   leaking), so streamed and whole answers still agree.
//! * Every decision (scope, field, category, rule, action, span) is collected in a
//!   [`PolicyTrail`] attached to the request's extensions, for the audit record.

pub mod classifier;
pub mod judge;
pub mod trail;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use enclave_domain::TenantId;
use enclave_model_core::chat::ChatMessage;
use enclave_model_core::engine::{
    FinishReason, GenerationEvent, GenerationStream, PromptInput, TokenLogprobs, Usage,
};
use enclave_model_core::tokenizer::Tokenizer;
use enclave_policy::{
    Decision, Limits, Match, Policy, PolicyDocument, PolicyError, Scope, StreamFilter,
};
use enclave_store::{PolicyFormat, Store};

use crate::error::ApiError;
use crate::inference::respond::Completed;
use classifier::{BoundDetectors, ClassifierCache};
pub use trail::{PolicyDecision, PolicyTrail, SharedTrail};

/// The platform baseline, shipped with the binary (`policies/` in the repository).
const BASELINE: &str = include_str!("../../../../policies/baseline.toml");
const BASELINE_FILES: &[(&str, &str)] = &[(
    "words/profanity-sample.txt",
    include_str!("../../../../policies/words/profanity-sample.txt"),
)];

/// The `finish_reason` of an answer a policy stopped.
pub const CONTENT_FILTER: &str = "content_filter";

/// A tenant's effective policy: the baseline plus its active version (if any).
#[derive(Clone)]
pub struct ActivePolicy {
    pub version: Option<u32>,
    pub policy: Arc<Policy>,
    /// The policy's classifier detectors, bound to the tenant's stored classifiers.
    pub detectors: Arc<BoundDetectors>,
}

type Compiled = (u32, Arc<Policy>, Arc<BoundDetectors>);

/// Baseline and compiled tenant policies; one per server (cheap to share).
pub struct PolicyRuntime {
    baseline: PolicyDocument,
    baseline_policy: Arc<Policy>,
    limits: Limits,
    cache: Mutex<HashMap<TenantId, Compiled>>,
    classifiers: ClassifierCache,
}

impl std::fmt::Debug for PolicyRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyRuntime").finish_non_exhaustive()
    }
}

impl PolicyRuntime {
    /// The runtime over the baseline compiled into the binary.
    pub fn embedded() -> Result<PolicyRuntime, PolicyError> {
        let limits = Limits::default();
        let baseline = PolicyDocument::parse_toml_with_files(BASELINE, BASELINE_FILES, &limits)?;
        let baseline_policy = Arc::new(Policy::compile(&baseline, &limits)?);
        Ok(PolicyRuntime {
            baseline,
            baseline_policy,
            limits,
            cache: Mutex::new(HashMap::new()),
            classifiers: ClassifierCache::default(),
        })
    }

    /// One runtime per process over the embedded baseline (compiled once).
    pub fn shared() -> Arc<PolicyRuntime> {
        static SHARED: std::sync::OnceLock<Arc<PolicyRuntime>> = std::sync::OnceLock::new();
        SHARED
            .get_or_init(|| {
                // INVARIANT: the embedded baseline is a fixed file that a unit test compiles.
                #[allow(clippy::expect_used)]
                Arc::new(PolicyRuntime::embedded().expect("the embedded policy baseline compiles"))
            })
            .clone()
    }

    pub fn baseline(&self) -> ActivePolicy {
        ActivePolicy {
            version: None,
            policy: self.baseline_policy.clone(),
            detectors: Arc::default(),
        }
    }

    /// Parsed models of the tenants' stored classifiers.
    pub fn classifiers(&self) -> &ClassifierCache {
        &self.classifiers
    }

    /// Drops the tenant's compiled policy, so the next request binds its classifier references
    /// again (after a new classifier version, an unversioned reference means the new one).
    pub fn forget(&self, tenant: &TenantId) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(tenant);
        }
    }

    /// Resolves the classifier detectors of a compiled policy (see [`classifier::bind`]).
    pub async fn bind(
        &self,
        store: Option<&Store>,
        tenant: &TenantId,
        policy: &Policy,
    ) -> Result<Arc<BoundDetectors>, ApiError> {
        judge::check_supported(policy)?;
        classifier::bind(&self.classifiers, store, tenant, policy)
            .await
            .map(Arc::new)
    }

    /// Parses a tenant document (no word files: a tenant's lists are inline).
    pub fn parse(&self, format: PolicyFormat, source: &str) -> Result<PolicyDocument, PolicyError> {
        match format {
            PolicyFormat::Toml => PolicyDocument::parse_toml_with_limits(source, &self.limits),
            PolicyFormat::Json => PolicyDocument::parse_json_with_limits(source, &self.limits),
        }
    }

    /// Parses and compiles a tenant document layered on the baseline: exactly what enforcement
    /// would run, so a document that passes here cannot fail later.
    pub async fn compile(
        &self,
        format: PolicyFormat,
        source: String,
    ) -> Result<(PolicyDocument, Arc<Policy>), PolicyError> {
        let doc = self.parse(format, &source)?;
        let layered = PolicyDocument::layered(&self.baseline, &doc)?;
        let limits = self.limits.clone();
        // Large word lists take a while to compile: off the async workers.
        let policy = tokio::task::spawn_blocking(move || Policy::compile(&layered, &limits))
            .await
            .map_err(|e| PolicyError::PatternMatcher {
                message: e.to_string(),
            })??;
        Ok((doc, Arc::new(policy)))
    }

    /// The tenant's effective policy; the baseline alone without a database.
    pub async fn active(
        &self,
        store: Option<&Store>,
        tenant: &TenantId,
    ) -> Result<ActivePolicy, ApiError> {
        let Some(store) = store else {
            return Ok(self.baseline());
        };
        let Some(version) = store.policies().active_version(tenant).await? else {
            return Ok(self.baseline());
        };
        self.version(store, tenant, version).await
    }

    /// A stored version of the tenant, compiled (cached while it is the latest one asked for).
    pub async fn version(
        &self,
        store: &Store,
        tenant: &TenantId,
        version: u32,
    ) -> Result<ActivePolicy, ApiError> {
        if let Some((policy, detectors)) = self.cached(tenant, version) {
            return Ok(ActivePolicy {
                version: Some(version),
                policy,
                detectors,
            });
        }
        let stored = store.policies().get(tenant, version).await?;
        let (_, policy) = self
            .compile(stored.info.format, stored.source)
            .await
            // Stored versions were validated when created; failing now is the server's fault
            // (e.g. a baseline change that now collides with the tenant's categories).
            .map_err(ApiError::internal)?;
        // References were checked when the version was created and classifier versions are
        // never deleted, so this resolves; an unversioned one takes the newest version.
        let detectors = self
            .bind(Some(store), tenant, &policy)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(*tenant, (version, policy.clone(), detectors.clone()));
        }
        Ok(ActivePolicy {
            version: Some(version),
            policy,
            detectors,
        })
    }

    fn cached(
        &self,
        tenant: &TenantId,
        version: u32,
    ) -> Option<(Arc<Policy>, Arc<BoundDetectors>)> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(tenant)
            .filter(|(v, _, _)| *v == version)
            .map(|(_, p, d)| (p.clone(), d.clone()))
    }
}

/// A rejected document: 422 with the policy crate's stable code (`invalid_regex`,
/// `catastrophic_pattern`, `empty_category`, `unknown_action`, `word_list_too_large`, ...).
pub fn document_error(e: PolicyError) -> ApiError {
    ApiError::Status {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: e.code(),
        message: e.to_string(),
    }
}

/// The error answering a prompt that a `block` category matched. The message names the category
/// only: the rule (a listed word) is not echoed back to the caller.
pub(crate) fn input_blocked(field: &str, m: &Match) -> ApiError {
    ApiError::invalid(
        format!("policy_blocked:{}", m.category),
        format!(
            "{field} matches category {:?}, which this tenant's content policy blocks",
            m.category.as_str()
        ),
        Some(field.to_owned()),
    )
}

/// Checks (and masks) every prompt text before the engine sees it. Token prompts are decoded
/// to be checked; if a mask applies, the masked text replaces them.
pub fn check_input(
    active: &ActivePolicy,
    prompt: PromptInput,
    tokenizer: &Tokenizer,
    trail: &SharedTrail,
) -> Result<PromptInput, ApiError> {
    let policy: &Policy = &active.policy;
    let check = |field: String, text: &str| -> Result<Option<String>, ApiError> {
        let d = policy.apply(text, Scope::Input);
        trail.record(Scope::Input, Some(field.as_str()), &d.matches);
        if let Some(block) = d.matches.iter().find(|m| {
            d.blocked
                .as_ref()
                .is_some_and(|b| b.span == m.span && b.category == m.category)
        }) {
            trail.block(Scope::Input, Some(field.as_str()), block);
            return Err(input_blocked(&field, block));
        }
        match detector_verdict(active, text, Scope::Input, trail, Some(field.as_str())) {
            Verdict::Block(m) => Err(input_blocked(&field, &m)),
            Verdict::Mask(masked) => Ok(Some(masked)),
            Verdict::Pass => Ok((d.text != text).then_some(d.text)),
        }
    };
    Ok(match prompt {
        PromptInput::Text(text) => match check("prompt".to_owned(), &text)? {
            Some(masked) => PromptInput::Text(masked),
            None => PromptInput::Text(text),
        },
        PromptInput::Chat(messages) => {
            let mut out = Vec::with_capacity(messages.len());
            for (i, m) in messages.into_iter().enumerate() {
                let content =
                    check(format!("messages[{i}].content"), &m.content)?.unwrap_or(m.content);
                out.push(ChatMessage {
                    role: m.role,
                    content,
                });
            }
            PromptInput::Chat(out)
        }
        PromptInput::Tokens(ids) => {
            let text = tokenizer.decode(&ids).unwrap_or_default();
            match check("prompt".to_owned(), &text)? {
                Some(masked) => PromptInput::Text(masked),
                None => PromptInput::Tokens(ids),
            }
        }
    })
}

/// A whole answer through the output policy (the non-streamed path). Returns the decision; the
/// caller answers `decision.text` and, if blocked, `finish_reason: "content_filter"`.
pub fn check_output(policy: &Policy, text: &str, trail: &SharedTrail) -> Decision {
    let d = policy.apply(text, Scope::Output);
    trail.record(Scope::Output, None, &d.matches);
    if let Some(b) = &d.blocked
        && let Some(m) = d
            .matches
            .iter()
            .find(|m| m.span == b.span && m.category == b.category)
    {
        trail.block(Scope::Output, None, m);
    }
    d
}

/// The non-streamed path: masks the whole answer (cut before a blocking match) in place.
/// Returns why it was stopped, if it was.
pub fn police_completed(
    active: &ActivePolicy,
    done: &mut Completed,
    trail: &SharedTrail,
) -> Option<Stopped> {
    let d = check_output(&active.policy, &done.text, trail);
    let Some(block) = d.blocked else {
        // Same order as the stream: classifiers judge the whole answer once words passed.
        match detector_verdict(active, &done.text, Scope::Output, trail, None) {
            Verdict::Block(m) => {
                done.text = String::new();
                return Some(Stopped {
                    category: m.category.to_string(),
                    action: "block",
                });
            }
            Verdict::Mask(masked) => done.text = masked,
            Verdict::Pass => done.text = d.text,
        }
        return None;
    };
    done.text = d.text;
    Some(Stopped {
        category: block.category.to_string(),
        action: "block",
    })
}

/// What the classifier detectors decided about a whole text.
enum Verdict {
    /// A `block` category: the match that blocks.
    Block(Match),
    /// A `mask` category: the whole text, masked.
    Mask(String),
    Pass,
}

/// Runs the bound classifier detectors over a whole text and records what they found.
fn detector_verdict(
    active: &ActivePolicy,
    text: &str,
    scope: Scope,
    trail: &SharedTrail,
    field: Option<&str>,
) -> Verdict {
    if active.detectors.is_empty() {
        return Verdict::Pass;
    }
    let matches = active.detectors.check(&active.policy, text, scope);
    trail.record(scope, field, &matches);
    // `check` sorts the strongest action first.
    match matches.into_iter().next() {
        Some(m) if m.action == enclave_policy::Action::Block => {
            trail.block(scope, field, &m);
            Verdict::Block(m)
        }
        Some(m) if m.action == enclave_policy::Action::Mask => Verdict::Mask(
            active
                .policy
                .mask_whole(m.category.as_str(), text)
                .unwrap_or_default(),
        ),
        _ => Verdict::Pass,
    }
}

/// Header naming the category that stopped a whole (non-streamed) answer.
pub const BLOCKED_HEADER: &str = "x-enclave-policy-blocked";

/// Marks a whole answer that a policy stopped.
pub fn mark_response(res: &mut actix_web::HttpResponse, stopped: &Stopped) {
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&stopped.category) {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(BLOCKED_HEADER),
            value,
        );
    }
}

/// Why an answer was stopped, as the stream's final `policy` event and the
/// `X-Enclave-Policy-Blocked` header of whole answers say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub category: String,
    pub action: &'static str,
}

/// An engine event after the output policy.
#[derive(Debug)]
pub enum PolicedEvent {
    /// `text` is what the filter released (possibly empty while a suffix is held back).
    Token {
        id: u32,
        text: String,
        logprobs: Option<TokenLogprobs>,
    },
    Finished {
        reason: FinishReason,
        usage: Usage,
        text: String,
    },
    Failed {
        message: String,
    },
    /// A `block` category matched: `text` is the last safe text; the generation is over.
    Blocked {
        text: String,
        stopped: Stopped,
        usage: Usage,
    },
}

/// The engine's stream with the output policy applied on the fly.
pub struct PolicedStream {
    inner: GenerationStream,
    filter: Option<StreamFilter>,
    trail: SharedTrail,
    completion_tokens: u32,
    active: ActivePolicy,
    /// Set when a classifier judges the whole answer: nothing is released before it has.
    hold: Option<Held>,
}

/// An answer held back for a whole-text verdict.
#[derive(Default)]
struct Held {
    /// As generated (what the classifier reads).
    raw: String,
    /// What the word filter released so far (what is sent if the classifier passes it).
    released: String,
}

impl PolicedStream {
    pub fn new(
        inner: GenerationStream,
        policy: &ActivePolicy,
        trail: SharedTrail,
    ) -> PolicedStream {
        let hold = policy
            .detectors
            .applies_to(&policy.policy, Scope::Output)
            .then(Held::default);
        PolicedStream {
            inner,
            filter: Some(StreamFilter::new(policy.policy.clone())),
            trail,
            completion_tokens: 0,
            active: policy.clone(),
            hold,
        }
    }

    /// The next event; after `Blocked`, `Finished` or `Failed` drop the stream (cancelling the
    /// generation if it is still running).
    pub async fn next_event(&mut self) -> Option<PolicedEvent> {
        let event = self.inner.next_event().await?;
        Some(match event {
            GenerationEvent::Token { id, text, logprobs } => {
                self.completion_tokens += 1;
                match self.push(&text, false) {
                    Ok(text) => PolicedEvent::Token { id, text, logprobs },
                    Err(blocked) => blocked,
                }
            }
            GenerationEvent::Finished {
                reason,
                usage,
                text,
            } => match self.push(&text, true) {
                Ok(text) => PolicedEvent::Finished {
                    reason,
                    usage,
                    text,
                },
                Err(blocked) => blocked,
            },
            GenerationEvent::Failed { message } => PolicedEvent::Failed { message },
        })
    }

    /// Runs `chunk` through the filter: the releasable text, or the `Blocked` event.
    fn push(&mut self, chunk: &str, last: bool) -> Result<String, PolicedEvent> {
        let Some(filter) = self.filter.as_mut() else {
            return Ok(String::new());
        };
        if let Some(held) = self.hold.as_mut() {
            held.raw.push_str(chunk);
        }
        let mut step = filter.push(chunk);
        if last
            && step.blocked.is_none()
            && let Some(filter) = self.filter.take()
        {
            let end = filter.finish();
            step.emit.push_str(&end.emit);
            step.decisions.extend(end.decisions);
            step.blocked = end.blocked;
        }
        self.trail.record(Scope::Output, None, &step.decisions);
        let Some(block) = step.blocked else {
            return self.release(step.emit, last);
        };
        self.filter = None;
        if let Some(held) = self.hold.take() {
            step.emit = held.released + &step.emit;
        }
        let stopped = match step
            .decisions
            .iter()
            .find(|m| m.span == block.span && m.category == block.category)
        {
            Some(m) => {
                self.trail.block(Scope::Output, None, m);
                Stopped {
                    category: m.category.to_string(),
                    action: m.action.as_str(),
                }
            }
            None => Stopped {
                category: block.category.to_string(),
                action: "block",
            },
        };
        Err(PolicedEvent::Blocked {
            text: step.emit,
            stopped,
            usage: self.usage(),
        })
    }

    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.inner.prompt_tokens(),
            completion_tokens: self.completion_tokens,
        }
    }

    /// Passes `emit` on, or holds it until the answer is complete and the classifiers have
    /// judged it whole (then: all of it, its mask, or a block with nothing released).
    fn release(&mut self, emit: String, last: bool) -> Result<String, PolicedEvent> {
        let Some(held) = self.hold.as_mut() else {
            return Ok(emit);
        };
        held.released.push_str(&emit);
        if !last {
            return Ok(String::new());
        }
        let held = std::mem::take(held);
        self.hold = None;
        match detector_verdict(&self.active, &held.raw, Scope::Output, &self.trail, None) {
            Verdict::Block(m) => Err(PolicedEvent::Blocked {
                text: String::new(),
                stopped: Stopped {
                    category: m.category.to_string(),
                    action: "block",
                },
                usage: self.usage(),
            }),
            Verdict::Mask(masked) => Ok(masked),
            Verdict::Pass => Ok(held.released),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_baseline_compiles() {
        let runtime = PolicyRuntime::embedded().expect("baseline");
        let d = runtime
            .baseline()
            .policy
            .apply("mail me: li@example.com", Scope::Output);
        assert_eq!(d.text, "mail me: [REDACTED:pii]");
    }

    #[test]
    fn json_and_toml_documents_parse_alike() {
        let runtime = PolicyRuntime::embedded().expect("baseline");
        let toml = runtime.parse(
            PolicyFormat::Toml,
            "[[category]]\nname = \"x\"\naction = \"mask\"\nwords = [\"abc\"]\n",
        );
        let json = runtime.parse(
            PolicyFormat::Json,
            r#"{"category": [{"name": "x", "action": "mask", "words": ["abc"]}]}"#,
        );
        assert_eq!(
            toml.expect("toml").categories().len(),
            json.expect("json").categories().len()
        );
    }
}
