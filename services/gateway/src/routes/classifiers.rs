//! The caller's tenant classifiers: train a new version from labelled examples (held-out
//! metrics in the answer), list, get, and classify a text with a stored version. Reading needs
//! `policies:read`, training `policies:write` (classifiers exist to be referenced by policies).
//! Another tenant's classifiers do not exist for the caller (404).

pub mod train;
pub mod upload;

use actix_web::{HttpRequest, web};
use enclave_domain::Scope as AuthScope;
use enclave_store::{ClassifierVersionInfo, NewClassifierVersion};

use crate::api::classifiers::{
    ClassifierVersion, ClassifierVersionList, ClassifyRequest, ClassifyResult, LabelMetrics,
    LabelScore,
};
use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::negotiate::{Negotiated, Reply};
use crate::state::AppState;

/// Largest text a dry-run classification reads.
const MAX_CLASSIFY_BYTES: usize = 1 << 20;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/classifiers")
            .route(web::post().to(create_classifier))
            .route(web::get().to(list_classifiers)),
    )
    .service(
        web::resource("/v1/classifiers/{name}/versions/{version}")
            .route(web::get().to(get_classifier)),
    )
    .service(
        web::resource("/v1/classifiers/{name}/versions/{version}/classify")
            .route(web::post().to(classify)),
    );
}

/// The path's name and version; a name no classifier can have is simply not found (it never
/// reaches the database, where e.g. a NUL would be an error).
fn version_path(path: web::Path<(String, u32)>) -> Result<(String, u32), ApiError> {
    let (name, version) = path.into_inner();
    train::check_name(&name).map_err(|_| ApiError::NotFound {
        resource: "classifier version",
    })?;
    Ok((name, version))
}

fn version_dto(info: ClassifierVersionInfo) -> ClassifierVersion {
    // Metrics were written by this module from `LabelMetrics`; an unreadable value (never
    // expected) is shown as none rather than failing the listing.
    let metrics: Vec<LabelMetrics> = serde_json::from_value(info.metrics).unwrap_or_default();
    ClassifierVersion {
        tenant_id: info.tenant_id.into(),
        reference: format!("{}@v{}", info.name, info.version),
        name: info.name,
        version: info.version,
        labels: info.labels,
        train_examples: info.train_examples,
        holdout_examples: info.holdout_examples,
        metrics,
        data_sha256: info.data_sha256,
        comment: info.comment,
        created_by: info.created_by.map(Into::into),
        created_at: info.created_at,
    }
}

/// Trains a new version of a classifier and stores it with its held-out metrics. The examples
/// are split deterministically (one in five held out, by a hash of the text); the model is
/// trained on the rest and evaluated on the held-out ones at the given thresholds. Bad uploads
/// answer 400 with a specific `code` (`too_few_examples`, `single_label`, `empty_text`,
/// `nul_character`, `text_too_long`, `missing_label`, `invalid_label`, `invalid_threshold`,
/// `invalid_name`, `invalid_jsonl`, `invalid_csv`) or 413 (more than 8 MiB), and store nothing.
#[utoipa::path(post, path = "/v1/classifiers", tag = "classifiers",
    request_body(content(
        (crate::api::classifiers::CreateClassifierRequest = "application/json"),
        (String = "application/x-ndjson"),
        (String = "text/csv"),
    ), description = "The training set: a JSON (or XML) request, or the examples alone as JSON Lines or CSV with `name` in the query"),
    params(
        ("name" = Option<String>, Query, description = "Classifier name (JSON Lines or CSV uploads)"),
        ("thresholds" = Option<String>, Query, description = "`label:value,...` (JSON Lines or CSV uploads)"),
        ("comment" = Option<String>, Query, description = "Comment (JSON Lines or CSV uploads)"),
    ),
    security(("bearer" = [])),
    responses((status = 201, description = "The new version with its held-out metrics", body = ClassifierVersion)))]
pub async fn create_classifier(
    state: web::Data<AppState>,
    ctx: TenantContext,
    req: HttpRequest,
    query: web::Query<upload::UploadQuery>,
    payload: web::Payload,
) -> Result<Reply<ClassifierVersion>, ApiError> {
    ctx.require(AuthScope::PoliciesWrite)?;
    let store = state.store()?;
    let upload = upload::read(&req, payload, query.into_inner()).await?;
    let set = train::validate(upload)?;
    let (set, trained) = tokio::task::spawn_blocking(move || {
        let trained = train::train(&set);
        (set, trained)
    })
    .await
    .map_err(ApiError::internal)?;
    let trained = trained?;
    let stored = store
        .classifiers()
        .create(
            &ctx.tenant_id,
            NewClassifierVersion {
                name: set.name,
                labels: set.labels,
                model: trained.model_json,
                thresholds: serde_json::to_value(&set.thresholds).map_err(ApiError::internal)?,
                metrics: serde_json::to_value(&trained.metrics).map_err(ApiError::internal)?,
                config: serde_json::to_value(&trained.config).map_err(ApiError::internal)?,
                train_examples: u32::try_from(trained.train_examples).unwrap_or(u32::MAX),
                holdout_examples: u32::try_from(trained.holdout_examples).unwrap_or(u32::MAX),
                data_sha256: set.data_sha256,
                comment: set.comment,
                created_by: ctx.principal().user_id(),
            },
        )
        .await?;
    // A policy naming this classifier without a version now means this version.
    state.policies().forget(&ctx.tenant_id);
    Ok(Reply::created(version_dto(stored.info)))
}

/// Every version of every classifier of the tenant, with held-out metrics.
#[utoipa::path(get, path = "/v1/classifiers", tag = "classifiers", security(("bearer" = [])),
    responses((status = 200, description = "The versions", body = ClassifierVersionList)))]
pub async fn list_classifiers(
    state: web::Data<AppState>,
    ctx: TenantContext,
) -> Result<Reply<ClassifierVersionList>, ApiError> {
    ctx.require(AuthScope::PoliciesRead)?;
    let versions = state.store()?.classifiers().list(&ctx.tenant_id).await?;
    Ok(Reply::ok(ClassifierVersionList {
        data: versions.into_iter().map(version_dto).collect(),
    }))
}

/// One version with its held-out metrics.
#[utoipa::path(get, path = "/v1/classifiers/{name}/versions/{version}", tag = "classifiers",
    params(("name" = String, Path, description = "Classifier name"),
        ("version" = u32, Path, description = "Version number")),
    security(("bearer" = [])),
    responses((status = 200, description = "The version", body = ClassifierVersion)))]
pub async fn get_classifier(
    state: web::Data<AppState>,
    ctx: TenantContext,
    path: web::Path<(String, u32)>,
) -> Result<Reply<ClassifierVersion>, ApiError> {
    ctx.require(AuthScope::PoliciesRead)?;
    let (name, version) = version_path(path)?;
    let v = state
        .store()?
        .classifiers()
        .get(&ctx.tenant_id, &name, version)
        .await?;
    Ok(Reply::ok(version_dto(v.info)))
}

/// Scores a text with a stored version: every label's score, its threshold, and the labels
/// detected. Nothing is generated or stored.
#[utoipa::path(post, path = "/v1/classifiers/{name}/versions/{version}/classify",
    tag = "classifiers", request_body = ClassifyRequest,
    params(("name" = String, Path, description = "Classifier name"),
        ("version" = u32, Path, description = "Version number")),
    security(("bearer" = [])),
    responses((status = 200, description = "The scores", body = ClassifyResult)))]
pub async fn classify(
    state: web::Data<AppState>,
    ctx: TenantContext,
    path: web::Path<(String, u32)>,
    body: Negotiated<ClassifyRequest>,
) -> Result<Reply<ClassifyResult>, ApiError> {
    ctx.require(AuthScope::PoliciesRead)?;
    let text = body.into_inner().text;
    if text.len() > MAX_CLASSIFY_BYTES {
        return Err(ApiError::invalid_field(
            "text_too_large",
            "text",
            format!("text must be at most {MAX_CLASSIFY_BYTES} bytes"),
        ));
    }
    let (name, version) = version_path(path)?;
    let stored = state
        .store()?
        .classifiers()
        .get(&ctx.tenant_id, &name, version)
        .await?;
    let model = state
        .policies()
        .classifiers()
        .model(&ctx.tenant_id, &stored)?;
    let scores: Vec<LabelScore> = model
        .scores(&text)
        .into_iter()
        .map(|d| {
            let threshold = model.threshold(&d.label).unwrap_or(1.0);
            LabelScore {
                detected: d.score >= threshold,
                label: d.label,
                score: d.score,
                threshold,
            }
        })
        .collect();
    let labels = scores
        .iter()
        .filter(|s| s.detected)
        .map(|s| s.label.clone())
        .collect();
    Ok(Reply::ok(ClassifyResult {
        reference: format!("{name}@v{version}"),
        scores,
        labels,
    }))
}
