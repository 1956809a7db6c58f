//! Sessions: `POST /v1/auth/login`, `/v1/auth/refresh`, `/v1/auth/logout`. None of them takes an
//! `Authorization` header: the password or the refresh token is the credential.

use actix_web::{HttpRequest, HttpResponse, web};
use enclave_auth::TokenPair;
use enclave_domain::{TenantId, TenantSlug};
use enclave_store::StoreError;

use crate::api::platform::{LoginRequest, LogoutRequest, RefreshRequest, TokenResponse};
use crate::error::ApiError;
use crate::negotiate::{Negotiated, Reply};
use crate::state::AppState;
use crate::store_errors::domain_error;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/auth/login").route(web::post().to(login)))
        .service(web::resource("/v1/auth/refresh").route(web::post().to(refresh)))
        .service(web::resource("/v1/auth/logout").route(web::post().to(logout)));
}

fn token_response(state: &AppState, pair: TokenPair) -> TokenResponse {
    TokenResponse {
        access_token: pair.access_token,
        token_type: pair.token_type.to_owned(),
        expires_in: pair.expires_in,
        refresh_token: pair.refresh_token,
        refresh_expires_in: state.auth().map_or(0, |a| a.config().refresh_ttl.as_secs()),
        user_id: pair.principal.user_id().map(Into::into).unwrap_or_default(),
        tenant_id: pair.principal.tenant_id.map(Into::into),
        role: pair.principal.role.as_str().to_owned(),
    }
}

/// The tenant a login names: its id, or its slug. An unknown tenant answers like a wrong
/// password, so logins cannot probe which tenants exist.
async fn login_tenant(
    state: &AppState,
    tenant: Option<&str>,
) -> Result<Option<TenantId>, ApiError> {
    let Some(text) = tenant.map(str::trim) else {
        return Ok(None);
    };
    if let Ok(id) = TenantId::parse(text) {
        return Ok(Some(id));
    }
    let slug = TenantSlug::parse(text).map_err(|e| domain_error("tenant", e))?;
    match state.store()?.tenants().get_by_slug(&slug).await {
        Ok(t) => Ok(Some(t.id)),
        Err(StoreError::NotFound { .. }) => Err(enclave_auth::AuthError::InvalidCredentials.into()),
        Err(e) => Err(e.into()),
    }
}

/// Exchanges an email and password for an access token and a refresh token. Repeated failures
/// for one email from one address are throttled (429 with `Retry-After`).
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "Tokens", body = TokenResponse)))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Negotiated<LoginRequest>,
) -> Result<Reply<TokenResponse>, ApiError> {
    let body = body.into_inner();
    let auth = state.auth()?;
    let tenant = login_tenant(&state, body.tenant.as_deref()).await?;
    // The peer address, not X-Forwarded-For: a client must not pick its own throttle bucket.
    let client_ip = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let pair = auth
        .login(enclave_auth::LoginRequest {
            email: &body.email,
            password: &body.password,
            tenant,
            client_ip: &client_ip,
        })
        .await?;
    Ok(Reply::ok(token_response(&state, pair)))
}

/// Exchanges a refresh token for a new pair. Each refresh token works once; presenting a used
/// one again revokes the whole session (every token descended from the same login).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, description = "New tokens", body = TokenResponse)))]
pub async fn refresh(
    state: web::Data<AppState>,
    body: Negotiated<RefreshRequest>,
) -> Result<Reply<TokenResponse>, ApiError> {
    let pair = state
        .auth()?
        .refresh(&body.into_inner().refresh_token)
        .await?;
    Ok(Reply::ok(token_response(&state, pair)))
}

/// Ends the session the refresh token belongs to. Idempotent; access tokens already issued
/// stay valid until they expire.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = LogoutRequest,
    responses((status = 204, description = "Logged out")))]
pub async fn logout(
    state: web::Data<AppState>,
    body: Negotiated<LogoutRequest>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth()?
        .logout(&body.into_inner().refresh_token)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
