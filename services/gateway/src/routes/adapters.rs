//! A tenant's LoRA adapters: upload (validated against the served base before anything is
//! kept), list, versions, aliases, delete. All in the caller's tenant; another tenant's adapter
//! answers 404 like one that does not exist.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use enclave_domain::{AdapterAlias, AdapterName, AdapterRef, AdapterSelector, Scope, TenantId};
use enclave_store::{NewAdapterVersion, Removal, Store};
use futures::StreamExt as _;
use serde::Deserialize;

use crate::api::adapters::{
    AdapterInfo, AdapterList, AdapterUploadForm, AdapterVersionInfo, SetAliasRequest,
    UploadedAdapter,
};
use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::inference::adapters::{self as runtime, upload};
use crate::negotiate::{Negotiated, Reply};
use crate::state::AppState;
use crate::store_errors::domain_error;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/adapters")
            .route(web::post().to(upload_adapter))
            .route(web::get().to(list_adapters)),
    )
    .service(
        web::resource("/v1/adapters/{name}")
            .route(web::get().to(get_adapter))
            .route(web::delete().to(delete_adapter)),
    )
    .service(
        web::resource("/v1/adapters/{name}/versions/{version}")
            .route(web::get().to(get_version))
            .route(web::delete().to(delete_version)),
    )
    .service(
        web::resource("/v1/adapters/{name}/aliases/{alias}")
            .route(web::put().to(set_alias))
            .route(web::delete().to(delete_alias)),
    );
}

/// For raw `.tar` / `.zip` bodies, which have no form fields.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The adapter's name (when the body is not multipart).
    pub name: Option<String>,
    /// Comma-separated aliases to point at the uploaded version (e.g. `prod`).
    pub alias: Option<String>,
}

fn name(s: &str) -> Result<AdapterName, ApiError> {
    AdapterName::parse(s).map_err(|e| domain_error("name", e))
}

fn selector(name: &AdapterName, s: &str) -> Result<AdapterSelector, ApiError> {
    AdapterRef::parse(&format!("{name}@{s}"))
        .map(|r| r.selector)
        .map_err(|e| domain_error("version", e))
}

fn in_use(what: &str, aliases: &[AdapterAlias]) -> ApiError {
    let list = aliases
        .iter()
        .map(AdapterAlias::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    ApiError::Conflict {
        code: "adapter_in_use",
        message: format!(
            "{what} is what alias(es) {list} point at; move or delete those aliases first"
        ),
        field: Some("alias".to_owned()),
    }
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid(
                "adapter_upload_malformed",
                format!("reading the upload failed: {e}"),
                None,
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Removes files no version row references any more (after the rows are gone), and drops those
/// versions from the engine's resident set (nothing can resolve them now; requests still
/// running on one finish on their lease).
async fn remove_files(
    state: &AppState,
    tenant: TenantId,
    removal: Vec<enclave_domain::AdapterVersion>,
) {
    if let Some(served) = state.served_model() {
        for v in &removal {
            let id = crate::inference::adapters::resident_id(&tenant, v);
            served.engine.adapters().remove(&id);
        }
    }
    let blobs = state.adapters().blobs().clone();
    let done = web::block(move || removal.iter().try_for_each(|v| blobs.remove(&tenant, v))).await;
    if let Ok(Err(e)) = done {
        tracing::warn!(error = %crate::middleware::ErrorChain(&e), "adapter files left behind after delete");
    }
}

/// Uploads a PEFT LoRA adapter (`adapter_config.json` + `adapter_model.safetensors`, as two
/// multipart parts, one `.tar`/`.zip` part, or a raw `.tar`/`.zip` body with `?name=`). It is
/// validated against the served base model first; each refusal has its own `code` and names the
/// tensor or field, and nothing is stored. Pickle files (`.bin`, `.pt`) are refused (415).
/// Identical content under the same name returns the existing version (200).
#[utoipa::path(post, path = "/v1/adapters", tag = "adapters", params(UploadQuery),
    request_body(content = AdapterUploadForm, content_type = "multipart/form-data"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Validated and stored", body = UploadedAdapter),
        (status = 200, description = "This content was already stored under this name", body = UploadedAdapter),
        (status = 415, description = "A pickle file (`adapter_pickle_refused`) or an unknown body type"),
    ))]
pub async fn upload_adapter(
    state: web::Data<AppState>,
    ctx: TenantContext,
    req: HttpRequest,
    query: web::Query<UploadQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    ctx.require(Scope::AdaptersWrite)?;
    let store = state.store()?.clone();
    let served = state.served_model().ok_or_else(|| ApiError::Unavailable {
        code: "model_not_loaded",
        message: "no base model is loaded to validate adapters against".to_owned(),
        retry_after_secs: None,
    })?;
    let limit = state.settings().adapters.max_upload_bytes;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = read_body(payload, limit).await?;
    let query = query.into_inner();
    let query_aliases = query
        .alias
        .iter()
        .flat_map(|a| a.split(','))
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    let mut form =
        web::block(move || upload::parse(&content_type, body, query.name, query_aliases))
            .await
            .map_err(ApiError::internal)??;
    let adapter_name = name(form.name.as_deref().ok_or_else(|| {
        ApiError::invalid_field(
            "adapter_name_required",
            "name",
            "give the adapter a `name` (form field or query parameter)",
        )
    })?)?;
    if adapter_name.as_str() == served.id {
        return Err(ApiError::invalid_field(
            "adapter_name_reserved",
            "name",
            format!("{adapter_name} is the served base model's id"),
        ));
    }
    let aliases = form
        .aliases
        .iter()
        .map(|a| AdapterAlias::parse(a).map_err(|e| domain_error("alias", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let files = form.files()?;
    let engine = served.engine.clone();
    let (files, validated) =
        web::block(move || runtime::validate(&files, &engine).map(|v| (files, v)))
            .await
            .map_err(ApiError::internal)??;
    let tenant = ctx.tenant_id;
    let blobs = state.adapters().blobs().clone();
    let size_bytes = files.size_bytes();
    let (version, wrote) = web::block(move || blobs.put(&tenant, &files))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let new = NewAdapterVersion {
        name: adapter_name,
        version: version.clone(),
        size_bytes,
        rank: u32::try_from(validated.adapter.max_rank).unwrap_or(u32::MAX),
        targets: validated.targets,
        base_model: served.id.clone(),
        base_architecture: served.engine.info().architecture.clone(),
        declared_base: validated.declared_base,
        warnings: validated.adapter.warnings.clone(),
        created_by: ctx.principal().user_id(),
        aliases,
    };
    let (record, created) = match store.adapters().create_version(&tenant, new).await {
        Ok(done) => done,
        Err(e) => {
            if wrote
                && !store
                    .adapters()
                    .is_referenced(&tenant, &version)
                    .await
                    .unwrap_or(true)
            {
                remove_files(&state, tenant, vec![version]).await;
            }
            return Err(e.into());
        }
    };
    let info = AdapterVersionInfo::from(record);
    let body = UploadedAdapter {
        created,
        warnings: info.warnings.clone(),
        adapter: info,
    };
    let reply = if created {
        Reply::created(body)
    } else {
        Reply::ok(body)
    };
    Ok(actix_web::Responder::respond_to(reply, &req).map_into_boxed_body())
}

async fn tenant_store(
    state: &AppState,
    ctx: &TenantContext,
    scope: Scope,
) -> Result<Store, ApiError> {
    ctx.require(scope)?;
    Ok(state.store()?.clone())
}

/// The tenant's adapters with their versions and aliases.
#[utoipa::path(get, path = "/v1/adapters", tag = "adapters", security(("bearer" = [])),
    responses((status = 200, description = "The caller's tenant's adapters", body = AdapterList)))]
pub async fn list_adapters(
    state: web::Data<AppState>,
    ctx: TenantContext,
) -> Result<Reply<AdapterList>, ApiError> {
    let store = tenant_store(&state, &ctx, Scope::AdaptersRead).await?;
    let data = store
        .adapters()
        .list(&ctx.tenant_id)
        .await?
        .into_iter()
        .map(AdapterInfo::from)
        .collect();
    Ok(Reply::ok(AdapterList { data }))
}

/// One adapter with its versions (oldest first) and which aliases point where.
#[utoipa::path(get, path = "/v1/adapters/{name}", tag = "adapters", security(("bearer" = [])),
    params(("name" = String, Path, description = "Adapter name")),
    responses((status = 200, description = "The adapter", body = AdapterInfo)))]
pub async fn get_adapter(
    state: web::Data<AppState>,
    ctx: TenantContext,
    path: web::Path<String>,
) -> Result<Reply<AdapterInfo>, ApiError> {
    let store = tenant_store(&state, &ctx, Scope::AdaptersRead).await?;
    let record = store.adapters().get(&ctx.tenant_id, &name(&path)?).await?;
    Ok(Reply::ok(record.into()))
}

/// Deletes an adapter and all its versions (and files). Refused (409 `adapter_in_use`) while any
/// alias exists: delete or move the aliases first.
#[utoipa::path(delete, path = "/v1/adapters/{name}", tag = "adapters", security(("bearer" = [])),
    params(("name" = String, Path, description = "Adapter name")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "Aliases still exist")))]
pub async fn delete_adapter(
    state: web::Data<AppState>,
    ctx: TenantContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let store = tenant_store(&state, &ctx, Scope::AdaptersWrite).await?;
    let adapter = name(&path)?;
    match store.adapters().delete(&ctx.tenant_id, &adapter).await? {
        Removal::AliasedBy(aliases) => Err(in_use(&format!("adapter {adapter}"), &aliases)),
        Removal::Removed { unreferenced } => {
            remove_files(&state, ctx.tenant_id, unreferenced).await;
            Ok(HttpResponse::NoContent().finish())
        }
    }
}

/// One version, selected by `v<number>`, 8+ hex characters of its digest, or an alias.
#[utoipa::path(get, path = "/v1/adapters/{name}/versions/{version}", tag = "adapters", security(("bearer" = [])),
    params(("name" = String, Path, description = "Adapter name"), ("version" = String, Path, description = "`v<n>`, digest prefix or alias")),
    responses((status = 200, description = "The version", body = AdapterVersionInfo)))]
pub async fn get_version(
    state: web::Data<AppState>,
    ctx: TenantContext,
    path: web::Path<(String, String)>,
) -> Result<Reply<AdapterVersionInfo>, ApiError> {
    let store = tenant_store(&state, &ctx, Scope::AdaptersRead).await?;
    let adapter = name(&path.0)?;
    let reference = AdapterRef {
        selector: selector(&adapter, &path.1)?,
        name: adapter,
    };
    Ok(Reply::ok(
        store
            .adapters()
            .resolve(&ctx.tenant_id, &reference)
            .await?
            .into(),
    ))
}

/// Deletes one version (and its files). Refused (409 `adapter_in_use`) while an alias points at it.
#[utoipa::path(delete, path = "/v1/adapters/{name}/versions/{version}", tag = "adapters", security(("bearer" = [])),
    params(("name" = String, Path, description = "Adapter name"), ("version" = String, Path, description = "`v<n>` or digest prefix")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "An alias points at it")))]
pub async fn delete_version(
    state: web::Data<AppState>,
    ctx: TenantContext,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let store = tenant_store(&state, &ctx, Scope::AdaptersWrite).await?;
    let adapter = name(&path.0)?;
    let sel = selector(&adapter, &path.1)?;
    match store
        .adapters()
        .delete_version(&ctx.tenant_id, &adapter, &sel)
        .await?
    {
        Removal::AliasedBy(aliases) => Err(in_use(&format!("version {adapter}@{sel}"), &aliases)),
        Removal::Removed { unreferenced } => {
            remove_files(&state, ctx.tenant_id, unreferenced).await;
            Ok(HttpResponse::NoContent().finish())
        }
    }
}

/// Points an alias (created if new) at a version; `version` may name another alias, e.g.
/// promoting `canary` to `prod`. New requests use the new target at once.
#[utoipa::path(put, path = "/v1/adapters/{name}/aliases/{alias}", tag = "adapters", security(("bearer" = [])),
    params(("name" = String, Path, description = "Adapter name"), ("alias" = String, Path, description = "Alias, e.g. `prod`")),
    request_body = SetAliasRequest,
    responses((status = 200, description = "The version the alias now points at", body = AdapterVersionInfo)))]
pub async fn set_alias(
    state: web::Data<AppState>,
    ctx: TenantContext,
    path: web::Path<(String, String)>,
    body: Negotiated<SetAliasRequest>,
) -> Result<Reply<AdapterVersionInfo>, ApiError> {
    let store = tenant_store(&state, &ctx, Scope::AdaptersWrite).await?;
    let adapter = name(&path.0)?;
    let alias = AdapterAlias::parse(&path.1).map_err(|e| domain_error("alias", e))?;
    let target = selector(&adapter, &body.into_inner().version)?;
    let record = store
        .adapters()
        .set_alias(
            &ctx.tenant_id,
            &adapter,
            &alias,
            &target,
            ctx.principal().user_id(),
        )
        .await?;
    Ok(Reply::ok(record.into()))
}

/// Deletes an alias (the version stays).
#[utoipa::path(delete, path = "/v1/adapters/{name}/aliases/{alias}", tag = "adapters", security(("bearer" = [])),
    params(("name" = String, Path, description = "Adapter name"), ("alias" = String, Path, description = "Alias")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_alias(
    state: web::Data<AppState>,
    ctx: TenantContext,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let store = tenant_store(&state, &ctx, Scope::AdaptersWrite).await?;
    let adapter = name(&path.0)?;
    let alias = AdapterAlias::parse(&path.1).map_err(|e| domain_error("alias", e))?;
    store
        .adapters()
        .delete_alias(&ctx.tenant_id, &adapter, &alias)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
