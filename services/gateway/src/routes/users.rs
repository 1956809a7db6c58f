//! A tenant's users: created with a password and a role, listed, removed. Managed by the tenant's
//! admins (users or `admin`-scoped keys) and by platform admins; another tenant's users are 404.

use actix_web::{HttpResponse, web};
use enclave_domain::{Email, Role, Scope, TenantId, UserId};
use enclave_store::{Member, Store};
use uuid::Uuid;

use crate::api::platform::{CreateUserRequest, User, UserList};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::negotiate::{Negotiated, Reply};
use crate::state::AppState;
use crate::store_errors::domain_error;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/tenants/{tenant_id}/users")
            .route(web::post().to(create_user))
            .route(web::get().to(list_users)),
    )
    .service(
        web::resource("/v1/tenants/{tenant_id}/users/{user_id}")
            .route(web::delete().to(delete_user)),
    );
}

/// The tenant in the path, if the caller administers it: another tenant's is 404 (before any
/// role check, so nothing about it leaks), a member without `admin` is 403, a missing tenant 404.
pub(crate) async fn administered_tenant(
    store: &Store,
    caller: &Caller,
    tenant: Uuid,
) -> Result<TenantId, ApiError> {
    let tenant = caller.tenant_for(TenantId::from(tenant))?;
    caller.require(Scope::Admin)?;
    store.tenants().get(&tenant).await?;
    Ok(tenant)
}

fn user_dto(m: Member) -> User {
    User {
        id: m.user_id.into(),
        email: m.email.as_str().to_owned(),
        role: m.role.as_str().to_owned(),
        created_at: m.created_at,
    }
}

fn tenant_role(text: &str) -> Result<Role, ApiError> {
    match text.parse::<Role>() {
        Ok(role) if role.is_tenant_role() => Ok(role),
        _ => Err(ApiError::invalid_field(
            "invalid_role",
            "role",
            format!(
                "role {:?} is not one of tenant_admin, developer, auditor",
                text.chars().take(64).collect::<String>()
            ),
        )),
    }
}

/// Creates a user with a password and makes them a member of the tenant with `role`.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/users", tag = "users", request_body = CreateUserRequest,
    params(("tenant_id" = Uuid, Path, description = "Tenant id")), security(("bearer" = [])),
    responses((status = 201, description = "Created", body = User), (status = 409, description = "The email is taken", body = crate::api::error::ErrorResponse)))]
pub async fn create_user(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: Negotiated<CreateUserRequest>,
) -> Result<Reply<User>, ApiError> {
    let store = state.store()?;
    let tenant = administered_tenant(store, &caller, path.into_inner()).await?;
    let body = body.into_inner();
    let role = tenant_role(&body.role)?;
    let email = Email::parse(&body.email).map_err(|e| domain_error("email", e))?;
    let auth = state.auth()?;
    let user = auth.create_user(&email, &body.password, false).await?;
    let membership = match store.memberships().upsert(&tenant, &user.id, role).await {
        Ok(m) => m,
        Err(e) => {
            // Do not leave an account that belongs to no tenant behind.
            if let Err(cleanup) = auth.delete_user(&user.id).await {
                tracing::warn!(error = %crate::middleware::ErrorChain(&cleanup), "orphan user not removed");
            }
            return Err(e.into());
        }
    };
    Ok(Reply::created(User {
        id: user.id.into(),
        email: user.email.as_str().to_owned(),
        role: membership.role.as_str().to_owned(),
        created_at: membership.created_at,
    }))
}

/// The tenant's users, oldest membership first.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/users", tag = "users",
    params(("tenant_id" = Uuid, Path, description = "Tenant id")), security(("bearer" = [])),
    responses((status = 200, description = "The tenant's users", body = UserList)))]
pub async fn list_users(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<Reply<UserList>, ApiError> {
    let store = state.store()?;
    let tenant = administered_tenant(store, &caller, path.into_inner()).await?;
    let data = store
        .memberships()
        .list(&tenant)
        .await?
        .into_iter()
        .map(user_dto)
        .collect();
    Ok(Reply::ok(UserList { data }))
}

/// Removes the user from the tenant and ends their sessions in it. An account left in no tenant
/// (and not a platform admin) is deleted.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/users/{user_id}", tag = "users",
    params(("tenant_id" = Uuid, Path, description = "Tenant id"), ("user_id" = Uuid, Path, description = "User id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 409, description = "A caller cannot remove themselves", body = crate::api::error::ErrorResponse)))]
pub async fn delete_user(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, user) = path.into_inner();
    let store = state.store()?;
    let tenant = administered_tenant(store, &caller, tenant).await?;
    let user = UserId::from(user);
    if caller.principal().user_id() == Some(user) {
        return Err(ApiError::Conflict {
            code: "cannot_remove_self",
            message: "you cannot remove your own account; ask another admin".to_owned(),
            field: Some("user_id".to_owned()),
        });
    }
    let auth = state.auth()?;
    auth.remove_member(&tenant, &user)
        .await
        .map_err(|e| match e {
            enclave_auth::AuthError::Store(enclave_store::StoreError::NotFound { .. }) => {
                ApiError::NotFound { resource: "user" }
            }
            other => other.into(),
        })?;
    if store.memberships().count_for_user(&user).await? == 0
        && !store.users().get(&user).await?.is_platform_admin
    {
        auth.delete_user(&user).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}
