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

/// The base model (tenant adapters join this list when they exist).
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
    let data = state
        .served_model()
        .map(|m| Model {
            id: m.id.clone(),
            object: "model".to_owned(),
            created: m.created,
            owned_by: "enclave".to_owned(),
        })
        .into_iter()
        .collect();
    Ok(Reply::ok(ModelList {
        object: "list".to_owned(),
        data,
    }))
}
