//! A tenant's API keys: created (the secret shown once), listed (prefix and last use, never the
//! secret), revoked. Same callers as users: the tenant's admins and platform admins.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use enclave_auth::NewApiKeyRequest;
use enclave_domain::{ApiKeyId, Scope, Scopes};
use enclave_store::ApiKeyRecord;
use uuid::Uuid;

use crate::api::platform::{ApiKey, ApiKeyList, CreateApiKeyRequest, CreatedApiKey};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::negotiate::{Negotiated, Reply};
use crate::routes::users::administered_tenant;
use crate::state::AppState;
use crate::store_errors::domain_error;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/tenants/{tenant_id}/api-keys")
            .route(web::post().to(create_api_key))
            .route(web::get().to(list_api_keys)),
    )
    .service(
        web::resource("/v1/tenants/{tenant_id}/api-keys/{key_id}")
            .route(web::delete().to(revoke_api_key)),
    );
}

fn key_dto(r: ApiKeyRecord) -> ApiKey {
    ApiKey {
        id: r.id.into(),
        name: r.name,
        prefix: r.prefix,
        scopes: r.scopes.to_strings(),
        requests_per_minute: r.requests_per_minute,
        tokens_per_minute: r.tokens_per_minute,
        created_at: r.created_at,
        expires_at: r.expires_at,
        last_used_at: r.last_used_at,
        revoked_at: r.revoked_at,
    }
}

fn scopes(requested: Option<Vec<String>>) -> Result<Scopes, ApiError> {
    match requested {
        None => Ok(Scopes::from_iter([Scope::Inference])),
        Some(names) => Scopes::parse_all(&names).map_err(|e| domain_error("scopes", e)),
    }
}

/// Creates a key. The response holds the full key (`secret`) this one time; only its hash is
/// kept, so a lost key is replaced, not recovered.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/api-keys", tag = "api-keys", request_body = CreateApiKeyRequest,
    params(("tenant_id" = Uuid, Path, description = "Tenant id")), security(("bearer" = [])),
    responses((status = 201, description = "Created; `secret` is shown only now", body = CreatedApiKey)))]
pub async fn create_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: Negotiated<CreateApiKeyRequest>,
) -> Result<Reply<CreatedApiKey>, ApiError> {
    let store = state.store()?;
    let tenant = administered_tenant(store, &caller, path.into_inner()).await?;
    let body = body.into_inner();
    let scopes = scopes(body.scopes)?;
    if body.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(ApiError::invalid_field(
            "invalid_expiry",
            "expires_at",
            "expires_at must be in the future",
        ));
    }
    let created = state
        .auth()?
        .create_api_key(
            &tenant,
            NewApiKeyRequest {
                name: body.name,
                scopes,
                expires_at: body.expires_at,
                created_by: caller.principal().user_id(),
                requests_per_minute: body.requests_per_minute,
                tokens_per_minute: body.tokens_per_minute,
            },
        )
        .await?;
    Ok(Reply::created(CreatedApiKey {
        secret: created.key,
        api_key: key_dto(created.record),
    }))
}

/// The tenant's keys, newest first, revoked ones included.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/api-keys", tag = "api-keys",
    params(("tenant_id" = Uuid, Path, description = "Tenant id")), security(("bearer" = [])),
    responses((status = 200, description = "The tenant's keys (never their secrets)", body = ApiKeyList)))]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<Reply<ApiKeyList>, ApiError> {
    let store = state.store()?;
    let tenant = administered_tenant(store, &caller, path.into_inner()).await?;
    let data = store
        .api_keys()
        .list(&tenant)
        .await?
        .into_iter()
        .map(key_dto)
        .collect();
    Ok(Reply::ok(ApiKeyList { data }))
}

/// Revokes a key; it is refused from the next request on. Idempotent.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/api-keys/{key_id}", tag = "api-keys",
    params(("tenant_id" = Uuid, Path, description = "Tenant id"), ("key_id" = Uuid, Path, description = "Key id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked")))]
pub async fn revoke_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, key) = path.into_inner();
    let store = state.store()?;
    let tenant = administered_tenant(store, &caller, tenant).await?;
    store
        .api_keys()
        .revoke(&tenant, &ApiKeyId::from(key))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
