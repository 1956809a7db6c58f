//! The caller's tenant content policy: versions (create, list, get), activation and rollback,
//! and dry runs. Reading needs `policies:read`, changing `policies:write` (`admin` implies both).
//! Versions of another tenant do not exist for the caller (404).

use actix_web::web;
use enclave_domain::Scope as AuthScope;
use enclave_policy::{Policy, PolicyDocument, Scope};
use enclave_store::{NewPolicyVersion, PolicyFormat, PolicyVersionInfo};

use crate::api::policies::{
    CreatePolicyRequest, DryRunRequest, DryRunResult, PolicyCategory, PolicyMatch, PolicyVersion,
    PolicyVersionList,
};
use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::inference::policy::{ActivePolicy, document_error};
use crate::negotiate::{Negotiated, Reply};
use crate::state::AppState;

/// Largest text a dry run checks.
const MAX_DRY_RUN_BYTES: usize = 1 << 20;
const MAX_COMMENT_CHARS: usize = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/policies")
            .route(web::post().to(create_policy))
            .route(web::get().to(list_policies)),
    )
    .service(web::resource("/v1/policies/dry-run").route(web::post().to(dry_run)))
    .service(web::resource("/v1/policies/{version}").route(web::get().to(get_policy)))
    .service(
        web::resource("/v1/policies/{version}/activate").route(web::post().to(activate_policy)),
    );
}

fn format(value: Option<&str>) -> Result<PolicyFormat, ApiError> {
    match value.unwrap_or("toml") {
        "toml" => Ok(PolicyFormat::Toml),
        "json" => Ok(PolicyFormat::Json),
        other => Err(ApiError::invalid_field(
            "invalid_format",
            "format",
            format!(
                "format must be toml or json, got {:?}",
                other.chars().take(32).collect::<String>()
            ),
        )),
    }
}

fn version_dto(
    info: PolicyVersionInfo,
    doc: Option<&PolicyDocument>,
    source: Option<String>,
) -> PolicyVersion {
    PolicyVersion {
        tenant_id: info.tenant_id.into(),
        version: info.version,
        format: info.format.as_str().to_owned(),
        name: info.name,
        comment: info.comment,
        created_by: info.created_by.map(Into::into),
        created_at: info.created_at,
        active: info.active,
        categories: doc.map(|d| {
            d.categories()
                .iter()
                .map(|c| PolicyCategory {
                    name: c.name().to_string(),
                    action: c.action().as_str().to_owned(),
                    scope: format!("{:?}", c.scope()).to_lowercase(),
                    words: c.word_count(),
                })
                .collect()
        }),
        document: source,
    }
}

/// Validates a document against the baseline and stores it as the next version (active unless
/// `activate` is false). A document that does not validate answers 422 with a specific `code`
/// (`invalid_regex`, `catastrophic_pattern`, `empty_category`, `unknown_action`,
/// `word_list_too_large`, ...) and changes nothing: the previous version stays active.
#[utoipa::path(post, path = "/v1/policies", tag = "policies", request_body = CreatePolicyRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "The new version", body = PolicyVersion),
        (status = 422, description = "The document is invalid; `code` says why", body = crate::api::error::ErrorResponse)))]
pub async fn create_policy(
    state: web::Data<AppState>,
    ctx: TenantContext,
    body: Negotiated<CreatePolicyRequest>,
) -> Result<Reply<PolicyVersion>, ApiError> {
    ctx.require(AuthScope::PoliciesWrite)?;
    let body = body.into_inner();
    let format = format(body.format.as_deref())?;
    if body
        .comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS || c.contains('\0'))
    {
        return Err(ApiError::invalid_field(
            "invalid_comment",
            "comment",
            format!("comment must be at most {MAX_COMMENT_CHARS} characters, without NUL"),
        ));
    }
    // PostgreSQL text cannot hold NUL: refuse it here rather than fail the insert.
    if body.document.contains('\0') {
        return Err(ApiError::invalid_field(
            "invalid_document",
            "document",
            "the document contains a NUL character",
        ));
    }
    let store = state.store()?;
    let (doc, policy) = state
        .policies()
        .compile(format, body.document.clone())
        .await
        .map_err(document_error)?;
    // Classifier detectors must name this tenant's classifiers (422 otherwise, nothing stored).
    state
        .policies()
        .bind(Some(store), &ctx.tenant_id, &policy)
        .await?;
    let version = store
        .policies()
        .create(
            &ctx.tenant_id,
            NewPolicyVersion {
                format,
                source: body.document,
                name: doc.name().map(str::to_owned),
                comment: body.comment,
                created_by: ctx.principal().user_id(),
                activate: body.activate.unwrap_or(true),
            },
        )
        .await?;
    Ok(Reply::created(version_dto(version.info, Some(&doc), None)))
}

/// The tenant's versions, newest first, and which one is active.
#[utoipa::path(get, path = "/v1/policies", tag = "policies", security(("bearer" = [])),
    responses((status = 200, description = "The versions", body = PolicyVersionList)))]
pub async fn list_policies(
    state: web::Data<AppState>,
    ctx: TenantContext,
) -> Result<Reply<PolicyVersionList>, ApiError> {
    ctx.require(AuthScope::PoliciesRead)?;
    let versions = state.store()?.policies().list(&ctx.tenant_id).await?;
    let active_version = versions.iter().find(|v| v.active).map(|v| v.version);
    let data = versions
        .into_iter()
        .map(|v| version_dto(v, None, None))
        .collect();
    Ok(Reply::ok(PolicyVersionList {
        data,
        active_version,
    }))
}

/// One version with its document as submitted.
#[utoipa::path(get, path = "/v1/policies/{version}", tag = "policies",
    params(("version" = u32, Path, description = "Version number")), security(("bearer" = [])),
    responses((status = 200, description = "The version", body = PolicyVersion)))]
pub async fn get_policy(
    state: web::Data<AppState>,
    ctx: TenantContext,
    path: web::Path<u32>,
) -> Result<Reply<PolicyVersion>, ApiError> {
    ctx.require(AuthScope::PoliciesRead)?;
    let v = state
        .store()?
        .policies()
        .get(&ctx.tenant_id, path.into_inner())
        .await?;
    let doc = state.policies().parse(v.info.format, &v.source).ok();
    Ok(Reply::ok(version_dto(v.info, doc.as_ref(), Some(v.source))))
}

/// Makes a stored version the enforced one: activation of a new version or rollback to an
/// older one alike. Takes effect for the next request.
#[utoipa::path(post, path = "/v1/policies/{version}/activate", tag = "policies",
    params(("version" = u32, Path, description = "Version number")), security(("bearer" = [])),
    responses((status = 200, description = "The now active version", body = PolicyVersion)))]
pub async fn activate_policy(
    state: web::Data<AppState>,
    ctx: TenantContext,
    path: web::Path<u32>,
) -> Result<Reply<PolicyVersion>, ApiError> {
    ctx.require(AuthScope::PoliciesWrite)?;
    let info = state
        .store()?
        .policies()
        .activate(&ctx.tenant_id, path.into_inner(), ctx.principal().user_id())
        .await?;
    Ok(Reply::ok(version_dto(info, None, None)))
}

fn scope(value: Option<&str>) -> Result<Scope, ApiError> {
    match value.unwrap_or("output") {
        "input" => Ok(Scope::Input),
        "output" => Ok(Scope::Output),
        other => Err(ApiError::invalid_field(
            "invalid_scope",
            "scope",
            format!(
                "scope must be input or output, got {:?}",
                other.chars().take(32).collect::<String>()
            ),
        )),
    }
}

fn match_dto(text: &str, m: &enclave_policy::Match) -> PolicyMatch {
    let chars = |byte: usize| text.get(..byte).map_or(0, |s| s.chars().count());
    PolicyMatch {
        category: m.category.to_string(),
        rule: m.rule.to_string(),
        action: m.action.as_str().to_owned(),
        start: m.span.start,
        end: m.span.end,
        char_start: chars(m.span.start),
        char_end: chars(m.span.end),
        matched: m.matched.clone(),
    }
}

/// Runs a policy over a text and answers the matches with their spans, the text as it would be
/// released, and whether it would be blocked. Tests the active version by default, a stored
/// `version`, or an unsaved `document` (validated like a new version).
#[utoipa::path(post, path = "/v1/policies/dry-run", tag = "policies", request_body = DryRunRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "What the policy would do", body = DryRunResult),
        (status = 422, description = "The unsaved document is invalid", body = crate::api::error::ErrorResponse)))]
pub async fn dry_run(
    state: web::Data<AppState>,
    ctx: TenantContext,
    body: Negotiated<DryRunRequest>,
) -> Result<Reply<DryRunResult>, ApiError> {
    ctx.require(AuthScope::PoliciesRead)?;
    let body = body.into_inner();
    if body.text.len() > MAX_DRY_RUN_BYTES {
        return Err(ApiError::invalid_field(
            "text_too_large",
            "text",
            format!("text must be at most {MAX_DRY_RUN_BYTES} bytes"),
        ));
    }
    let scope = scope(body.scope.as_deref())?;
    let runtime = state.policies();
    let active: ActivePolicy = match (body.document, body.version) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "conflicting_fields",
                "document",
                "give either document or version, not both",
            ));
        }
        (Some(document), None) => {
            let format = format(body.format.as_deref())?;
            let (_, policy) = runtime
                .compile(format, document)
                .await
                .map_err(document_error)?;
            let detectors = runtime
                .bind(state.store().ok(), &ctx.tenant_id, &policy)
                .await?;
            ActivePolicy {
                version: None,
                policy,
                detectors,
            }
        }
        (None, Some(version)) => {
            runtime
                .version(state.store()?, &ctx.tenant_id, version)
                .await?
        }
        (None, None) => runtime.active(state.store().ok(), &ctx.tenant_id).await?,
    };
    let text = body.text;
    let policy: &Policy = &active.policy;
    let mut decision = policy.apply(&text, scope);
    let mut matches = policy.scan(&text, scope);
    let mut blocked = decision.blocked.as_ref().and_then(|b| {
        matches
            .iter()
            .find(|m| m.span == b.span && m.category == b.category)
            .map(|m| match_dto(&text, m))
    });
    // Classifier detectors judge the whole text (strongest action first), as enforcement does.
    let detected = active.detectors.check(policy, &text, scope);
    if blocked.is_none()
        && let Some(m) = detected.first()
    {
        match m.action {
            enclave_policy::Action::Block => {
                blocked = Some(match_dto(&text, m));
                decision.text = String::new();
            }
            enclave_policy::Action::Mask => {
                decision.text = policy
                    .mask_whole(m.category.as_str(), &text)
                    .unwrap_or_default();
            }
            enclave_policy::Action::Flag => {}
        }
    }
    matches.extend(detected);
    Ok(Reply::ok(DryRunResult {
        version: active.version,
        scope: match scope {
            Scope::Input => "input",
            Scope::Output => "output",
        }
        .to_owned(),
        matches: matches.iter().map(|m| match_dto(&text, m)).collect(),
        text: decision.text,
        blocked,
    }))
}
