//! The caller's tenant output templates: create versions, list, get (active or pinned), dry-run
//! renders, rollback; and the default `response_format` of an API key and of an adapter alias.
//! Reading needs `policies:read`, creating and rolling back `policies:write` (output controls
//! share the policy scopes; `admin` implies both); defaults need `admin`. Another tenant's
//! templates, keys and aliases do not exist for the caller (404).

use actix_web::HttpRequest;
use actix_web::web;
use enclave_domain::{AdapterAlias, AdapterName, ApiKeyId, Scope as AuthScope, TenantId};
use enclave_model_core::constraints::{ConstraintError, ResponseFormat};
use enclave_store::{NewOutputTemplate, OutputTemplate as StoredTemplate, Store};
use serde_json::Value;
use uuid::Uuid;

use crate::api::adapters::AliasResponseFormat;
use crate::api::templates::{
    CreateTemplateRequest, DefaultResponseFormat, KeyResponseFormat, OutputTemplate,
    OutputTemplateList, RenderRequest, RenderResult, RollbackRequest,
};
use crate::auth::{Caller, TenantContext};
use crate::error::ApiError;
use crate::inference::format::{RequestedFormat, constraint_error};
use crate::inference::templates::{self, pinned_id, valid_name};
use crate::negotiate::{Negotiated, Reply};
use crate::routes::users::administered_tenant;
use crate::state::AppState;
use crate::store_errors::domain_error;

const MAX_COMMENT_CHARS: usize = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/templates")
            .route(web::post().to(create_template))
            .route(web::get().to(list_templates)),
    )
    .service(web::resource("/v1/templates/{name}").route(web::get().to(get_template)))
    .service(
        web::resource("/v1/templates/{name}/versions/{version}")
            .route(web::get().to(get_template_version)),
    )
    .service(web::resource("/v1/templates/{name}/render").route(web::post().to(render_template)))
    .service(
        web::resource("/v1/templates/{name}/rollback").route(web::post().to(rollback_template)),
    )
    .service(
        web::resource("/v1/tenants/{tenant_id}/api-keys/{key_id}/response-format")
            .route(web::put().to(set_key_format)),
    )
    .service(
        web::resource("/v1/adapters/{name}/aliases/{alias}/response-format")
            .route(web::put().to(set_alias_format)),
    );
}

fn dto(t: StoredTemplate) -> OutputTemplate {
    OutputTemplate {
        id: pinned_id(&t),
        tenant_id: t.tenant_id.into(),
        name: t.name,
        version: t.version,
        active: t.active,
        schema: t.schema,
        template: t.template,
        comment: t.comment,
        created_by: t.created_by.map(Into::into),
        created_at: t.created_at,
    }
}

/// In XML every leaf is text: a schema arrives as JSON text.
fn schema_value(schema: Value) -> Result<Value, ApiError> {
    let schema = match schema {
        Value::String(text) => serde_json::from_str(&text).map_err(|e| {
            ApiError::invalid_field(
                "invalid_json_schema",
                "schema",
                format!("schema is not JSON: {e}"),
            )
        })?,
        other => other,
    };
    if !schema.is_object() {
        return Err(ApiError::invalid_field(
            "invalid_json_schema",
            "schema",
            "schema must be a JSON object",
        ));
    }
    Ok(schema)
}

/// A schema fault names the `schema` member of this body (not a request's `response_format`).
fn schema_error(e: ConstraintError) -> ApiError {
    if e.is_caller_fault() {
        ApiError::invalid(e.code(), e.to_string(), Some("schema".to_owned()))
    } else {
        constraint_error(e)
    }
}

/// Checks name, comment, template and schema; the schema is compiled by the served model's
/// constraint compiler (what every request using the template will need).
fn validate(state: &AppState, body: &CreateTemplateRequest) -> Result<Value, ApiError> {
    if !valid_name(&body.name) {
        return Err(ApiError::invalid_field(
            "invalid_template_name",
            "name",
            "name must be 1 to 64 characters of a-z, 0-9, _ and -, starting with a letter or digit",
        ));
    }
    if body
        .comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
    {
        return Err(ApiError::invalid_field(
            "invalid_comment",
            "comment",
            format!("comment must be at most {MAX_COMMENT_CHARS} characters"),
        ));
    }
    templates::check_source(&body.template)?;
    let schema = schema_value(body.schema.clone())?;
    let format = ResponseFormat::json_schema(&body.name, schema.clone()).map_err(schema_error)?;
    if let Some(served) = state.served_model() {
        served.engine.check_format(&format).map_err(schema_error)?;
    }
    Ok(schema)
}

/// Stores a new version of a template (the first creates it) and makes it active. A template
/// that does not parse answers 422 `invalid_template`; a schema the engine cannot enforce 400
/// `invalid_json_schema` or `unsupported_schema_keyword`. Nothing is stored then.
#[utoipa::path(post, path = "/v1/templates", tag = "templates", request_body = CreateTemplateRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "The new version", body = OutputTemplate),
        (status = 422, description = "The template does not parse; `code` says why", body = crate::api::error::ErrorResponse)))]
pub async fn create_template(
    state: web::Data<AppState>,
    ctx: TenantContext,
    body: Negotiated<CreateTemplateRequest>,
) -> Result<Reply<OutputTemplate>, ApiError> {
    ctx.require(AuthScope::PoliciesWrite)?;
    let body = body.into_inner();
    let schema = validate(&state, &body)?;
    let stored = state
        .store()?
        .output_templates()
        .create(
            &ctx.tenant_id,
            NewOutputTemplate {
                name: body.name,
                schema,
                template: body.template,
                comment: body.comment,
                created_by: ctx.principal().user_id(),
            },
        )
        .await?;
    Ok(Reply::created(dto(stored)))
}

/// Every version of every template of the tenant.
#[utoipa::path(get, path = "/v1/templates", tag = "templates", security(("bearer" = [])),
    responses((status = 200, description = "The versions", body = OutputTemplateList)))]
pub async fn list_templates(
    state: web::Data<AppState>,
    ctx: TenantContext,
) -> Result<Reply<OutputTemplateList>, ApiError> {
    ctx.require(AuthScope::PoliciesRead)?;
    let all = state
        .store()?
        .output_templates()
        .list(&ctx.tenant_id)
        .await?;
    Ok(Reply::ok(OutputTemplateList {
        data: all.into_iter().map(dto).collect(),
    }))
}

/// The active version of a template.
#[utoipa::path(get, path = "/v1/templates/{name}", tag = "templates",
    params(("name" = String, Path, description = "Template name")), security(("bearer" = [])),
    responses((status = 200, description = "The active version", body = OutputTemplate)))]
pub async fn get_template(
    state: web::Data<AppState>,
    ctx: TenantContext,
    path: web::Path<String>,
) -> Result<Reply<OutputTemplate>, ApiError> {
    ctx.require(AuthScope::PoliciesRead)?;
    let t = state
        .store()?
        .output_templates()
        .get(&ctx.tenant_id, &path.into_inner(), None)
        .await?;
    Ok(Reply::ok(dto(t)))
}

/// One version of a template.
#[utoipa::path(get, path = "/v1/templates/{name}/versions/{version}", tag = "templates",
    params(("name" = String, Path, description = "Template name"),
        ("version" = u32, Path, description = "Version number")), security(("bearer" = [])),
    responses((status = 200, description = "The version", body = OutputTemplate)))]
pub async fn get_template_version(
    state: web::Data<AppState>,
    ctx: TenantContext,
    path: web::Path<(String, u32)>,
) -> Result<Reply<OutputTemplate>, ApiError> {
    ctx.require(AuthScope::PoliciesRead)?;
    let (name, version) = path.into_inner();
    let t = state
        .store()?
        .output_templates()
        .get(&ctx.tenant_id, &name, Some(version))
        .await?;
    Ok(Reply::ok(dto(t)))
}

/// Renders a stored template over the given data, in the same sandbox as a request (fuel and
/// output limits), without generating anything.
#[utoipa::path(post, path = "/v1/templates/{name}/render", tag = "templates", request_body = RenderRequest,
    params(("name" = String, Path, description = "Template name")), security(("bearer" = [])),
    responses((status = 200, description = "The rendered text", body = RenderResult),
        (status = 422, description = "The render failed or was stopped; `code` says why", body = crate::api::error::ErrorResponse)))]
pub async fn render_template(
    state: web::Data<AppState>,
    ctx: TenantContext,
    path: web::Path<String>,
    body: Negotiated<RenderRequest>,
) -> Result<Reply<RenderResult>, ApiError> {
    ctx.require(AuthScope::PoliciesRead)?;
    let body = body.into_inner();
    let t = state
        .store()?
        .output_templates()
        .get(&ctx.tenant_id, &path.into_inner(), body.version)
        .await?;
    let text = templates::render(&t.template, &body.data)?;
    Ok(Reply::ok(RenderResult {
        id: pinned_id(&t),
        text,
    }))
}

/// Makes an older (or newer) stored version of a template the active one: requests naming the
/// template without `@v<n>` get it from the next request on. Versions never change; only the
/// active pointer moves. An unknown template is 404; an unknown version 404
/// `template_version_not_found`.
#[utoipa::path(post, path = "/v1/templates/{name}/rollback", tag = "templates", request_body = RollbackRequest,
    params(("name" = String, Path, description = "Template name")), security(("bearer" = [])),
    responses((status = 200, description = "The now active version", body = OutputTemplate),
        (status = 404, description = "No such template or version", body = crate::api::error::ErrorResponse)))]
pub async fn rollback_template(
    state: web::Data<AppState>,
    ctx: TenantContext,
    req: HttpRequest,
    path: web::Path<String>,
    body: Negotiated<RollbackRequest>,
) -> Result<Reply<OutputTemplate>, ApiError> {
    ctx.require(AuthScope::PoliciesWrite)?;
    let (name, version) = (path.into_inner(), body.into_inner().version);
    if version == 0 {
        return Err(ApiError::invalid_field(
            "invalid_version",
            "version",
            "version numbers start at 1",
        ));
    }
    let templates = state.store()?.output_templates();
    let Some(done) = templates
        .activate(&ctx.tenant_id, &name, version, ctx.principal().user_id())
        .await?
    else {
        return Err(ApiError::Status {
            status: actix_web::http::StatusCode::NOT_FOUND,
            code: "template_version_not_found",
            message: format!("template {name:?} has no version {version}"),
        });
    };
    // Versions are immutable, so the previously active one read now is exactly what was active.
    let mut before = templates
        .get(&ctx.tenant_id, &name, Some(done.previous))
        .await?;
    before.active = true;
    let after = dto(done.active);
    crate::audit::note_change(&req, &dto(before), &after);
    Ok(Reply::ok(after))
}

/// A default `response_format` as sent (`null` clears it), checked exactly like a request's: it
/// parses, its schema/regex/grammar compiles for the served model, a template exists.
async fn checked_default(
    state: &AppState,
    store: &Store,
    tenant: &TenantId,
    raw: Option<Value>,
) -> Result<Option<Value>, ApiError> {
    let Some(raw) = raw.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let parsed = RequestedFormat::parse(Some(raw.clone()))?;
    match parsed.format() {
        Some(ResponseFormat::Template(t)) => {
            templates::load(Some(store), tenant, t.id()).await?;
        }
        Some(f) => {
            if let Some(served) = state.served_model() {
                served.engine.check_format(f).map_err(constraint_error)?;
            }
        }
        None => {}
    }
    Ok(Some(raw))
}

/// Sets (or with `response_format: null` clears) the `response_format` an API key's requests
/// get when they name none (and their adapter alias has no default). The format is checked like
/// a request's (a template must exist).
#[utoipa::path(put, path = "/v1/tenants/{tenant_id}/api-keys/{key_id}/response-format", tag = "api-keys",
    request_body = KeyResponseFormat,
    params(("tenant_id" = Uuid, Path, description = "Tenant id"),
        ("key_id" = Uuid, Path, description = "API key id")), security(("bearer" = [])),
    responses((status = 200, description = "The key's default now", body = KeyResponseFormat)))]
pub async fn set_key_format(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
    body: Negotiated<KeyResponseFormat>,
) -> Result<Reply<KeyResponseFormat>, ApiError> {
    let store = state.store()?;
    let (tenant, key) = path.into_inner();
    let tenant = administered_tenant(store, &caller, tenant).await?;
    let raw = checked_default(&state, store, &tenant, body.into_inner().response_format).await?;
    let before = store
        .output_templates()
        .set_key_default(&tenant, &ApiKeyId::from_uuid(key), raw.as_ref())
        .await?;
    let after = KeyResponseFormat {
        response_format: raw,
    };
    let before = KeyResponseFormat {
        response_format: before,
    };
    crate::audit::note_change(&req, &before, &after);
    Ok(Reply::ok(after))
}

/// Sets (or with `response_format: null` clears) the `response_format` of requests through an
/// adapter alias (`name@alias`; `name` alone is its `prod` alias) that name none themselves.
/// It wins over the API key's default; a request's own `response_format` wins over both;
/// `name@v<n>` selects no alias and gets no alias default. Checked like a request's format.
#[utoipa::path(put, path = "/v1/adapters/{name}/aliases/{alias}/response-format", tag = "adapters",
    request_body = DefaultResponseFormat,
    params(("name" = String, Path, description = "Adapter name"),
        ("alias" = String, Path, description = "Alias, e.g. `prod`")), security(("bearer" = [])),
    responses((status = 200, description = "The alias's default now", body = AliasResponseFormat)))]
pub async fn set_alias_format(
    state: web::Data<AppState>,
    ctx: TenantContext,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: Negotiated<DefaultResponseFormat>,
) -> Result<Reply<AliasResponseFormat>, ApiError> {
    ctx.require(AuthScope::Admin)?;
    let store = state.store()?;
    let (name, alias) = path.into_inner();
    let name = AdapterName::parse(&name).map_err(|e| domain_error("name", e))?;
    let alias = AdapterAlias::parse(&alias).map_err(|e| domain_error("alias", e))?;
    let raw = checked_default(
        &state,
        store,
        &ctx.tenant_id,
        body.into_inner().response_format,
    )
    .await?;
    let before = store
        .output_templates()
        .set_alias_default(&ctx.tenant_id, &name, &alias, raw.as_ref())
        .await?;
    let entry = |response_format| AliasResponseFormat {
        alias: alias.to_string(),
        response_format,
    };
    let after = entry(raw);
    crate::audit::note_change(&req, &entry(before), &after);
    Ok(Reply::ok(after))
}
