//! `GET /v1/models` (OpenAI-compatible): the models this server serves.

use actix_web::web;

use enclave_domain::Scope;

use crate::api::openai::{Model, ModelList};
use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::negotiate::Reply;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/models").route(web::get().to(list_models)));
}

/// The base model (also accepted as `base`), then the caller's tenant's adapters: `name` (its
/// `prod` alias), `name@<alias>` and `name@v<n>`. Other tenants' adapters are never listed.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "inference",
    security(("bearer" = [])),
    responses((status = 200, description = "Models the caller may name in `model`", body = ModelList)),
)]
pub async fn list_models(
    state: web::Data<AppState>,
    ctx: TenantContext,
) -> Result<Reply<ModelList>, ApiError> {
    ctx.require(Scope::Inference)?;
    let mut data: Vec<Model> = state
        .served_model()
        .map(|m| Model {
            id: m.id.clone(),
            object: "model".to_owned(),
            created: m.created,
            owned_by: "enclave".to_owned(),
        })
        .into_iter()
        .collect();
    data.extend(crate::inference::adapters::model_entries(&state, &ctx.tenant_id).await?);
    Ok(Reply::ok(ModelList {
        object: "list".to_owned(),
        data,
    }))
}
