//! `POST /v1/chat/completions` (OpenAI-compatible).

use actix_web::{HttpRequest, HttpResponse, web};

use enclave_domain::Scope;

use crate::api::openai::{ChatCompletion, ChatCompletionChunk, ChatCompletionRequest};
use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::inference::{self, convert, sse::ChunkShape};
use crate::middleware::RequestId;
use crate::negotiate::Negotiated;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/chat/completions").route(web::post().to(create_chat_completion)),
    );
}

/// Generates the assistant's next message. With `stream: true` the answer is a stream of
/// Server-Sent Events, each a `ChatCompletionChunk` (JSON or XML per `Accept`), ending with
/// `data: [DONE]`; closing the connection cancels the generation.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "inference",
    request_body = ChatCompletionRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The completion, or (stream: true) an SSE stream of chunks",
            content(
                (ChatCompletion = "application/json"),
                (ChatCompletion = "application/xml"),
                (ChatCompletionChunk = "text/event-stream"),
            )),
    ),
)]
pub async fn create_chat_completion(
    state: web::Data<AppState>,
    ctx: TenantContext,
    req: HttpRequest,
    request_id: RequestId,
    body: Negotiated<ChatCompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    ctx.require(Scope::Inference)?;
    let body = body.into_inner();
    crate::middleware::record_end_user(body.user.as_deref());
    let (generate, plan) = convert::chat_request(body)?;
    inference::generate(
        &state,
        &ctx,
        &req,
        &request_id,
        generate,
        plan,
        ChunkShape::Chat,
    )
    .await
}
