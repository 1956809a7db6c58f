//! `POST /v1/completions` (OpenAI-compatible legacy completions).

use actix_web::{HttpRequest, HttpResponse, web};

use enclave_domain::Scope;

use crate::api::openai::{Completion, CompletionRequest};
use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::inference::{self, convert, sse::ChunkShape};
use crate::middleware::RequestId;
use crate::negotiate::Negotiated;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/completions").route(web::post().to(create_completion)));
}

/// Continues a raw prompt (no chat template). `max_tokens` defaults to 16. With `stream: true`
/// the answer is a stream of Server-Sent Events, each a `Completion` chunk, ending with
/// `data: [DONE]`.
#[utoipa::path(
    post,
    path = "/v1/completions",
    tag = "inference",
    request_body = CompletionRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The completion, or (stream: true) an SSE stream of chunks",
            content(
                (Completion = "application/json"),
                (Completion = "application/xml"),
                (Completion = "text/event-stream"),
            )),
    ),
)]
pub async fn create_completion(
    state: web::Data<AppState>,
    ctx: TenantContext,
    req: HttpRequest,
    request_id: RequestId,
    body: Negotiated<CompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(Scope::Inference)?;
    let body = body.into_inner();
    crate::middleware::record_end_user(body.user.as_deref());
    let (generate, plan) = convert::completion_request(body)?;
    inference::generate(
        &state,
        &ctx,
        &req,
        &request_id,
        generate,
        plan,
        ChunkShape::Completion,
    )
    .await
}
