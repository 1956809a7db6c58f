//! Tenants and their limits: created, listed and re-limited by platform admins; a tenant's own
//! members may read their tenant and its limits.

use actix_web::web;
use enclave_domain::{TenantId, TenantSlug};
use enclave_store::{NewTenant, Store, TenantLimits, TenantStatus};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::api::platform::{
    CreateTenantRequest, Limits, LimitsStatus, Tenant, TenantList, UpdateTenantRequest,
};
use crate::auth::{Caller, TenantContext};
use crate::error::ApiError;
use crate::negotiate::{Negotiated, Reply};
use crate::state::AppState;
use crate::store_errors::domain_error;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/tenants")
            .route(web::post().to(create_tenant))
            .route(web::get().to(list_tenants)),
    )
    .service(
        web::resource("/v1/tenants/{tenant_id}")
            .route(web::get().to(get_tenant))
            .route(web::patch().to(update_tenant)),
    )
    .service(
        web::resource("/v1/tenants/{tenant_id}/limits").route(web::put().to(set_tenant_limits)),
    )
    .service(web::resource("/v1/limits").route(web::get().to(my_limits)));
}

pub(crate) fn limits_dto(l: TenantLimits) -> Limits {
    Limits {
        requests_per_minute: l.requests_per_minute,
        tokens_per_minute: l.tokens_per_minute,
        monthly_token_budget: l.monthly_token_budget,
    }
}

fn limits_model(l: Limits) -> TenantLimits {
    TenantLimits {
        requests_per_minute: l.requests_per_minute,
        tokens_per_minute: l.tokens_per_minute,
        monthly_token_budget: l.monthly_token_budget,
    }
}

async fn tenant_dto(store: &Store, t: enclave_store::Tenant) -> Result<Tenant, ApiError> {
    let limits = store.rate_limits().tenant_limits(&t.id).await?;
    Ok(Tenant {
        id: t.id.into(),
        slug: t.slug.as_str().to_owned(),
        name: t.name,
        status: t.status.as_str().to_owned(),
        limits: limits_dto(limits),
        created_at: t.created_at,
    })
}

/// Creates a tenant (platform admin).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenantRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = Tenant)))]
pub async fn create_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    body: Negotiated<CreateTenantRequest>,
) -> Result<Reply<Tenant>, ApiError> {
    caller.require_platform_admin()?;
    let body = body.into_inner();
    let slug = TenantSlug::parse(&body.slug).map_err(|e| domain_error("slug", e))?;
    let store = state.store()?;
    let tenant = store
        .tenants()
        .create(NewTenant {
            slug,
            name: body.name,
        })
        .await?;
    if let Some(limits) = body.limits {
        store
            .rate_limits()
            .set_tenant_limits(&tenant.id, limits_model(limits))
            .await?;
    }
    Ok(Reply::created(tenant_dto(store, tenant).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Return tenants after this id (the last id of the previous page).
    after: Option<Uuid>,
    /// 1 to 200, default 50.
    limit: Option<u32>,
}

/// Lists tenants (platform admin), oldest first, paginated by `after`.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(Page), security(("bearer" = [])),
    responses((status = 200, description = "A page of tenants", body = TenantList)))]
pub async fn list_tenants(
    state: web::Data<AppState>,
    caller: Caller,
    page: web::Query<Page>,
) -> Result<Reply<TenantList>, ApiError> {
    caller.require_platform_admin()?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid_field(
            "invalid_limit",
            "limit",
            "limit must be from 1 to 200",
        ));
    }
    let store = state.store()?;
    let after = page.after.map(TenantId::from);
    let mut data = Vec::new();
    for t in store.tenants().list(after.as_ref(), limit).await? {
        data.push(tenant_dto(store, t).await?);
    }
    Ok(Reply::ok(TenantList { data }))
}

/// A tenant: any tenant for a platform admin, the caller's own otherwise (another is 404).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = Uuid, Path, description = "Tenant id")), security(("bearer" = [])),
    responses((status = 200, description = "The tenant", body = Tenant)))]
pub async fn get_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<Reply<Tenant>, ApiError> {
    let tenant = caller.tenant_for(TenantId::from(path.into_inner()))?;
    let store = state.store()?;
    let t = store.tenants().get(&tenant).await?;
    Ok(Reply::ok(tenant_dto(store, t).await?))
}

fn tenant_status(text: &str) -> Result<TenantStatus, ApiError> {
    match text {
        "active" => Ok(TenantStatus::Active),
        "suspended" => Ok(TenantStatus::Suspended),
        _ => Err(ApiError::invalid_field(
            "invalid_status",
            "status",
            "status must be `active` or `suspended`",
        )),
    }
}

/// Renames, suspends or resumes a tenant (platform admin). While suspended, its API keys and its
/// members' tokens are refused (403 `tenant_suspended`); its data is kept.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}", tag = "tenants", request_body = UpdateTenantRequest,
    params(("tenant_id" = Uuid, Path, description = "Tenant id")), security(("bearer" = [])),
    responses((status = 200, description = "The updated tenant", body = Tenant)))]
pub async fn update_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    req: actix_web::HttpRequest,
    path: web::Path<Uuid>,
    body: Negotiated<UpdateTenantRequest>,
) -> Result<Reply<Tenant>, ApiError> {
    let tenant = caller.require_platform_admin_for(TenantId::from(path.into_inner()))?;
    let body = body.into_inner();
    let status = body.status.as_deref().map(tenant_status).transpose()?;
    let store = state.store()?;
    let mut t = store.tenants().get(&tenant).await?;
    let before = tenant_dto(store, t.clone()).await?;
    if let Some(name) = &body.name {
        t = store.tenants().rename(&tenant, name).await?;
    }
    if let Some(status) = status {
        t = state.auth()?.set_tenant_status(&tenant, status).await?;
    }
    let after = tenant_dto(store, t).await?;
    crate::audit::note_change(&req, &before, &after);
    Ok(Reply::ok(after))
}

/// Replaces a tenant's limits (platform admin); absent values mean unlimited.
#[utoipa::path(put, path = "/v1/tenants/{tenant_id}/limits", tag = "tenants", request_body = Limits,
    params(("tenant_id" = Uuid, Path, description = "Tenant id")), security(("bearer" = [])),
    responses((status = 200, description = "The tenant with its new limits", body = Tenant)))]
pub async fn set_tenant_limits(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: Negotiated<Limits>,
) -> Result<Reply<Tenant>, ApiError> {
    let tenant = caller.require_platform_admin_for(TenantId::from(path.into_inner()))?;
    let store = state.store()?;
    store
        .rate_limits()
        .set_tenant_limits(&tenant, limits_model(body.into_inner()))
        .await?;
    let t = store.tenants().get(&tenant).await?;
    Ok(Reply::ok(tenant_dto(store, t).await?))
}

/// The caller's tenant's limits and this month's usage.
#[utoipa::path(get, path = "/v1/limits", tag = "tenants", security(("bearer" = [])),
    responses((status = 200, description = "Limits and usage", body = LimitsStatus)))]
pub async fn my_limits(
    state: web::Data<AppState>,
    ctx: TenantContext,
) -> Result<Reply<LimitsStatus>, ApiError> {
    let store = state.store()?;
    let limits = store.rate_limits().tenant_limits(&ctx.tenant_id).await?;
    let usage = store
        .rate_limits()
        .usage(&ctx.tenant_id, chrono::Utc::now())
        .await?;
    Ok(Reply::ok(LimitsStatus {
        tenant_id: ctx.tenant_id.into(),
        limits: limits_dto(limits),
        period_start: usage.period_start,
        requests_this_month: usage.requests,
        tokens_this_month: usage.tokens,
    }))
}
