//! A tenant's audit settings: redaction mode and retention. Auditors and tenant admins read
//! their own tenant's, tenant admins change them; platform admins address any tenant with
//! `tenant=` (and the platform chain when they name none). Developers: 403. Another tenant: 404.

use actix_web::{HttpRequest, web};
use enclave_audit::PLATFORM_CHAIN;
use enclave_domain::{AuditRedaction, RetentionDays, Scope, TenantId};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::api::audit::{AuditSettings, UpdateAuditSettings};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::negotiate::{Negotiated, Reply};
use crate::state::AppState;
use crate::store_errors::domain_error;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/audit/settings")
            .route(web::get().to(get_audit_settings))
            .route(web::put().to(set_audit_settings)),
    );
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SettingsQuery {
    /// The tenant (platform admins; others may name only their own). Platform admins naming
    /// none address the platform chain.
    tenant: Option<Uuid>,
}

fn dto(tenant: TenantId, s: enclave_store::AuditSettings) -> AuditSettings {
    AuditSettings {
        tenant_id: tenant.into(),
        redaction: s.redaction.as_str().to_owned(),
        retention_days: s.retention_days.map(RetentionDays::days),
        updated_at: s.updated_at,
        updated_by: s.updated_by.map(Into::into),
    }
}

/// The tenant addressed: `requested` (own, or any existing one for a platform admin), else the
/// caller's own (the platform chain for a platform admin).
async fn addressed(
    state: &AppState,
    caller: &Caller,
    requested: Option<Uuid>,
) -> Result<TenantId, ApiError> {
    let p = caller.principal();
    let tenant = match (requested, p.tenant_id) {
        (Some(t), _) => caller.tenant_for(TenantId::from(t))?,
        (None, Some(own)) => own,
        (None, None) if p.is_platform_admin() => PLATFORM_CHAIN,
        (None, None) => {
            return Err(ApiError::forbidden(
                "tenant_required",
                "name a tenant with `tenant`",
            ));
        }
    };
    if tenant != PLATFORM_CHAIN && p.tenant_id != Some(tenant) {
        // A platform admin naming a tenant: it must exist (404 otherwise).
        state.store()?.tenants().get(&tenant).await?;
    }
    Ok(tenant)
}

/// The audit settings of a tenant (defaults: `raw`, kept forever).
#[utoipa::path(get, path = "/v1/audit/settings", tag = "audit", params(SettingsQuery), security(("bearer" = [])),
    responses((status = 200, description = "The settings", body = AuditSettings)))]
pub async fn get_audit_settings(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<SettingsQuery>,
) -> Result<Reply<AuditSettings>, ApiError> {
    let tenant = addressed(&state, &caller, query.tenant).await?;
    caller.require(Scope::AuditRead)?;
    let settings = state.store()?.audit_settings().get(&tenant).await?;
    Ok(Reply::ok(dto(tenant, settings)))
}

/// Replaces a tenant's audit settings (tenant admin; platform admin for any tenant). Takes
/// effect for the next call (on other gateways within a few seconds); records already stored
/// are not changed. The change itself is audited with its before and after values.
#[utoipa::path(put, path = "/v1/audit/settings", tag = "audit", params(SettingsQuery),
    request_body = UpdateAuditSettings, security(("bearer" = [])),
    responses((status = 200, description = "The new settings", body = AuditSettings)))]
pub async fn set_audit_settings(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    query: web::Query<SettingsQuery>,
    body: Negotiated<UpdateAuditSettings>,
) -> Result<Reply<AuditSettings>, ApiError> {
    let tenant = addressed(&state, &caller, query.tenant).await?;
    caller.require(Scope::Admin)?;
    let body = body.into_inner();
    let redaction: AuditRedaction = body
        .redaction
        .parse()
        .map_err(|e| domain_error("redaction", e))?;
    let retention = body
        .retention_days
        .map(RetentionDays::new)
        .transpose()
        .map_err(|e| domain_error("retention_days", e))?;
    let repo = state.store()?.audit_settings();
    let before = dto(tenant, repo.get(&tenant).await?);
    let by = caller.principal().user_id();
    let after = dto(
        tenant,
        repo.set(&tenant, redaction, retention, by.as_ref()).await?,
    );
    if let Some(log) = state.audit_log() {
        log.forget_settings(&tenant);
    }
    crate::audit::annotate(&req, |n| n.tenant = Some(tenant));
    crate::audit::note_change(&req, &before, &after);
    Ok(Reply::ok(after))
}
