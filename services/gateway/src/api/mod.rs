//! Request and response DTOs of every route, and the one OpenAPI document that describes them.

pub mod adapters;
pub mod audit;
pub mod classifiers;
pub mod error;
pub mod format;
pub mod health;
pub mod openai;
pub mod platform;
pub mod policies;
pub mod templates;

use utoipa::openapi::header::Header;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::api::error::ErrorResponse;

/// Described once here and in the gateway README; the code is in [`crate::xml`].
pub const API_DESCRIPTION: &str = r#"Enclave's HTTP API: OpenAI-compatible inference under `/v1` plus the platform's tenant, user, key and limit management.

## Authentication
`Authorization: Bearer <token>` where the token is either an access token from `POST /v1/auth/login` or an API key (`enc_...`, shown once when created). Another tenant's objects answer 404.

## JSON and XML
Every endpoint reads `Content-Type: application/json` or `application/xml` (also `text/xml`) and answers in the format `Accept` prefers (JSON when `Accept` names neither). The XML mapping:
- the root element is the schema name in snake_case (`ChatCompletionRequest` → `<chat_completion_request>`); any root name is accepted on input;
- an object member is a child element of the same name; a member whose name is not a valid XML name (a token id in `logit_bias`) is written `<entry key="50256">...</entry>`;
- an array is an element holding one `<item>` child per element;
- strings, numbers and booleans (`true`/`false`) are element text; `null` and absent members are omitted; member order is not significant;
- characters XML 1.0 forbids are written as U+FFFD; DTDs are refused.

Example: `{"model":"m","stop":["a","b"],"max_tokens":5}` is `<chat_completion_request><model>m</model><stop><item>a</item><item>b</item></stop><max_tokens>5</max_tokens></chat_completion_request>`.

Streaming responses (`stream: true`) are Server-Sent Events in both cases; each event's `data` is one JSON or XML document, and the stream ends with `data: [DONE]`.

## Errors
Every error has the body `{"error": {"code", "message", "field"?, "request_id"?}}` (`<error_response><error>...</error></error_response>` in XML); `code` is stable and machine-readable. 5xx bodies carry only the request id; quote it when reporting. 429 and 503 carry `Retry-After`."#;

#[derive(OpenApi)]
#[openapi(
    info(title = "Enclave API", description = API_DESCRIPTION),
    paths(
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::metrics::metrics,
        crate::routes::models::list_models,
        crate::routes::chat::create_chat_completion,
        crate::routes::completions::create_completion,
        crate::routes::tenants::create_tenant,
        crate::routes::tenants::list_tenants,
        crate::routes::tenants::get_tenant,
        crate::routes::tenants::set_tenant_limits,
        crate::routes::tenants::my_limits,
        crate::routes::tenants::update_tenant,
        crate::routes::auth::login,
        crate::routes::auth::refresh,
        crate::routes::auth::logout,
        crate::routes::users::create_user,
        crate::routes::users::list_users,
        crate::routes::users::delete_user,
        crate::routes::api_keys::create_api_key,
        crate::routes::api_keys::list_api_keys,
        crate::routes::api_keys::revoke_api_key,
        crate::routes::audit::list_audit_events,
        crate::routes::audit::export_audit,
        crate::routes::audit::get_export_manifest,
        crate::routes::audit::settings::get_audit_settings, crate::routes::audit::settings::set_audit_settings,
        crate::routes::policies::create_policy,
        crate::routes::policies::list_policies,
        crate::routes::policies::get_policy,
        crate::routes::policies::activate_policy,
        crate::routes::policies::dry_run,
        crate::routes::adapters::upload_adapter,
        crate::routes::adapters::list_adapters,
        crate::routes::adapters::get_adapter,
        crate::routes::adapters::delete_adapter,
        crate::routes::adapters::get_version,
        crate::routes::adapters::delete_version,
        crate::routes::adapters::set_alias,
        crate::routes::adapters::delete_alias,
        crate::routes::classifiers::create_classifier,
        crate::routes::classifiers::list_classifiers,
        crate::routes::classifiers::get_classifier,
        crate::routes::classifiers::classify,
        crate::routes::templates::create_template,
        crate::routes::templates::list_templates,
        crate::routes::templates::get_template,
        crate::routes::templates::get_template_version,
        crate::routes::templates::render_template,
        crate::routes::templates::set_key_format,
        crate::routes::templates::rollback_template,
        crate::routes::templates::set_alias_format,
    ),
    components(schemas(ErrorResponse)),
    modifiers(&SecurityAndErrors),
    tags(
        (name = "operations", description = "Probes"),
        (name = "inference", description = "OpenAI-compatible generation"),
        (name = "tenants", description = "Tenants and their limits"),
        (name = "auth", description = "Sessions: login, refresh, logout"),
        (name = "users", description = "A tenant's users and their roles"),
        (name = "api-keys", description = "A tenant's API keys"),
        (name = "audit", description = "The audit trail: every API call, hash-chained per tenant; signed exports"),
        (name = "policies", description = "A tenant's content policy: versions, activation, dry runs"),
        (name = "adapters", description = "A tenant's LoRA adapters: upload, versions, aliases"),
        (name = "classifiers", description = "A tenant's trained classifiers for policy detectors: training with held-out metrics, versions, dry runs"),
        (name = "templates", description = "A tenant's output templates: versions, dry-run renders"),
    ),
)]
pub struct ApiDoc;

/// Adds the bearer security scheme, the shared error response, and the error statuses every
/// operation can answer (so a document-driven fuzzer finds every status documented).
struct SecurityAndErrors;

pub const BEARER: &str = "bearer";

const ERROR_RESPONSE: &str = "Error";
const RATE_LIMITED_RESPONSE: &str = "RateLimited";

impl Modify for SecurityAndErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An access token from /v1/auth/login, or an API key"))
                    .build(),
            ),
        );
        let error_content = || Content::new(Some(Ref::from_schema_name("ErrorResponse")));
        components.responses.insert(
            ERROR_RESPONSE.to_owned(),
            RefOr::T(
                ResponseBuilder::new()
                    .description("An error; `code` says which")
                    .content("application/json", error_content())
                    .content("application/xml", error_content())
                    .build(),
            ),
        );
        let retry_after = Header::new(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::Integer),
        );
        components.responses.insert(
            RATE_LIMITED_RESPONSE.to_owned(),
            RefOr::T(
                ResponseBuilder::new()
                    .description(
                        "A rate limit or budget is exhausted; retry after `Retry-After` seconds",
                    )
                    .header("Retry-After", retry_after)
                    .content("application/json", error_content())
                    .content("application/xml", error_content())
                    .build(),
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            // Sessions take credentials in the body: refused ones answer 401, failed-login
            // throttling answers 429.
            let credentials_in_body = path.starts_with("/v1/auth/");
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                add_xml_twins(op);
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = op.request_body.is_some();
                let mut statuses = vec!["400", "404", "405", "500"];
                if secured {
                    statuses.extend(["401", "403", "429", "503"]);
                } else if credentials_in_body {
                    statuses.extend(["401", "429", "503"]);
                }
                if has_body {
                    statuses.extend(["413", "415"]);
                }
                for status in statuses {
                    let name = if status == "429" {
                        RATE_LIMITED_RESPONSE
                    } else {
                        ERROR_RESPONSE
                    };
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

/// Every JSON body (request or response) is also accepted/answered as XML with the same schema.
fn add_xml_twins(op: &mut utoipa::openapi::path::Operation) {
    const JSON: &str = "application/json";
    const XML: &str = "application/xml";
    if let Some(RefOr::T(body)) = op.request_body.as_mut()
        && let Some(json) = body.content.get(JSON).cloned()
    {
        body.content.entry(XML.to_owned()).or_insert(json);
    }
    for response in op.responses.responses.values_mut() {
        if let RefOr::T(response) = response
            && let Some(json) = response.content.get(JSON).cloned()
        {
            response.content.entry(XML.to_owned()).or_insert(json);
        }
    }
}
