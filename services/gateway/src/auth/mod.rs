//! Who is calling: the `Authorization: Bearer` extractors and the role/scope guards.
//!
//! Handlers get tenancy only from here: [`Caller`] is any authenticated principal,
//! [`TenantContext`] one acting inside a tenant. The credential check itself is behind
//! [`Authenticate`] (access JWTs and API keys from `enclave-auth`; an external IdP can be chained).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use enclave_domain::{Actor, Principal, Role, Scope, TenantId};

use crate::error::ApiError;
use crate::state::AppState;

mod enclave;

/// Why a credential was refused: a stable code (`token_expired`, `invalid_token`,
/// `key_revoked`, ...) and a message; always answered 401.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AuthRejection {
    pub code: &'static str,
    pub message: String,
}

/// Failure of an authenticator: a refused credential (401), a valid credential whose tenant may
/// not act (403), too many attempts (429), or the server's fault (500).
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error(transparent)]
    Rejected(#[from] AuthRejection),
    #[error("{0}")]
    Forbidden(AuthRejection),
    #[error("{rejection}")]
    Throttled {
        rejection: AuthRejection,
        retry_after_secs: u64,
    },
    #[error("authentication backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<AuthFailure> for ApiError {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Rejected(r) => ApiError::unauthorized(r.code, r.message),
            AuthFailure::Forbidden(r) => ApiError::forbidden(r.code, r.message),
            AuthFailure::Throttled {
                rejection,
                retry_after_secs,
            } => ApiError::RateLimited {
                code: rejection.code,
                message: rejection.message,
                retry_after_secs,
            },
            AuthFailure::Backend(e) => ApiError::Internal(e),
        }
    }
}

pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Principal, AuthFailure>> + Send + 'a>>;

/// Turns a bearer credential (access token or API key) into a [`Principal`].
pub trait Authenticate: Send + Sync + 'static {
    fn authenticate<'a>(&'a self, bearer: &'a str) -> AuthFuture<'a>;
}

pub type SharedAuthenticator = Arc<dyn Authenticate>;

/// Any authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    pub fn principal(&self) -> &Principal {
        &self.0
    }

    /// 403 unless the caller holds `scope` (`admin` implies every scope).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "insufficient_scope",
                format!("this action needs the `{scope}` scope"),
            ))
        }
    }

    /// 403 unless the caller is a platform admin.
    pub fn require_platform_admin(&self) -> Result<(), ApiError> {
        if self.0.is_platform_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "platform_admin_required",
                "this action needs the platform_admin role",
            ))
        }
    }

    /// 404 for another tenant's `tenant`, then 403 unless the caller is a platform admin: a
    /// platform-only change of a tenant must not tell an outsider that the tenant exists.
    pub fn require_platform_admin_for(&self, tenant: TenantId) -> Result<TenantId, ApiError> {
        let tenant = self.tenant_for(tenant)?;
        self.require_platform_admin()?;
        Ok(tenant)
    }

    /// The tenant the caller may act on: its own; a platform admin may name any.
    pub fn tenant_for(&self, requested: TenantId) -> Result<TenantId, ApiError> {
        match self.0.tenant_id {
            _ if self.0.is_platform_admin() => Ok(requested),
            Some(own) if own == requested => Ok(own),
            // Another tenant's object: indistinguishable from a missing one.
            _ => Err(ApiError::NotFound { resource: "tenant" }),
        }
    }
}

/// An authenticated caller acting inside its tenant.
#[derive(Debug, Clone)]
pub struct TenantContext {
    pub tenant_id: TenantId,
    pub caller: Caller,
}

impl TenantContext {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        self.caller.require(scope)
    }

    pub fn principal(&self) -> &Principal {
        self.caller.principal()
    }

    pub fn role(&self) -> Role {
        self.caller.0.role
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_credentials",
            "send Authorization: Bearer <token or API key>",
        )
    })?;
    let value = value.to_str().map_err(|_| {
        ApiError::unauthorized(
            "invalid_authorization_header",
            "Authorization header is not ASCII",
        )
    })?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        ApiError::unauthorized("invalid_authorization_header", "expected `Bearer <token>`")
    })?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthorized(
            "invalid_authorization_header",
            "expected `Bearer <token>`",
        ));
    }
    Ok(token.to_owned())
}

async fn authenticate(req: HttpRequest) -> Result<Caller, ApiError> {
    if let Some(caller) = req.extensions().get::<Caller>() {
        return Ok(caller.clone());
    }
    let token = bearer(&req)?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal(std::io::Error::other("AppState is not registered")))?;
    let authenticator = state.authenticator().ok_or_else(|| ApiError::Unavailable {
        code: "auth_unavailable",
        message: "authentication is not configured on this server".to_owned(),
        retry_after_secs: None,
    })?;
    let principal = authenticator.authenticate(&token).await?;
    let span = tracing::Span::current();
    if let Some(tenant) = principal.tenant_id {
        span.record("tenant_id", tracing::field::display(tenant));
    }
    match principal.actor {
        Actor::User(id) => span.record("actor", tracing::field::display(format_args!("user:{id}"))),
        Actor::ApiKey(id) => {
            span.record("actor", tracing::field::display(format_args!("key:{id}")))
        }
    };
    let caller = Caller(principal);
    req.extensions_mut().insert(caller.clone());
    Ok(caller)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

impl FromRequest for TenantContext {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<TenantContext, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let caller = authenticate(req).await?;
            let tenant_id = caller.0.tenant_id.ok_or_else(|| {
                ApiError::forbidden(
                    "tenant_required",
                    "this route acts inside a tenant; use a tenant member's credentials",
                )
            })?;
            Ok(TenantContext { tenant_id, caller })
        })
    }
}
