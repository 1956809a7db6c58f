//! The OpenAI-compatible inference path: request DTO → validated engine request → engine →
//! whole response or SSE stream. Handlers in `routes/` only parse, call [`generate`] and answer.

pub mod adapters;
pub mod convert;
pub mod format;
pub mod policy;
pub mod respond;
pub mod sse;
pub mod templates;

use actix_web::{HttpRequest, HttpResponse, Responder as _};
use enclave_model_core::engine::{GenerateRequest, RequestError, SubmitError};

use enclave_domain::{ApiKeyId, TenantId};
use enclave_store::Store;

use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::limits;
use crate::middleware::RequestId;
use crate::negotiate::{Format, Reply};
use crate::state::AppState;
use convert::ResponsePlan;
use respond::ResponseMeta;
use sse::ChunkShape;

/// Seconds a client should wait before retrying when the engine queue is full.
const OVERLOADED_RETRY_AFTER_SECS: u64 = 1;

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        if !e.is_caller_fault() {
            return ApiError::internal(e);
        }
        ApiError::invalid(e.code(), e.to_string(), e.field().map(str::to_owned))
    }
}

/// Engine overload is the server's capacity, not the caller's quota: 503 with `Retry-After`
/// (429 is reserved for the caller's own rate limits and budgets).
impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        let retry_after_secs = match e {
            SubmitError::Overloaded { .. } => Some(OVERLOADED_RETRY_AFTER_SECS),
            SubmitError::ShuttingDown => None,
        };
        ApiError::Unavailable {
            code: e.code(),
            message: e.to_string(),
            retry_after_secs,
        }
    }
}

/// Where a request's token usage is counted (absent when the server runs without a database).
#[derive(Clone)]
pub struct Accounting {
    pub store: Store,
    pub tenant: TenantId,
    pub key: Option<ApiKeyId>,
}

impl Accounting {
    pub async fn record_completion(&self, tokens: u32) {
        limits::record_tokens(
            &self.store,
            &self.tenant,
            self.key.as_ref(),
            u64::from(tokens),
        )
        .await;
    }
}

/// Runs one generation and answers it whole or as a stream.
pub async fn generate(
    state: &AppState,
    ctx: &TenantContext,
    req: &HttpRequest,
    request_id: &RequestId,
    mut generate: GenerateRequest,
    plan: ResponsePlan,
    shape: ChunkShape,
) -> Result<HttpResponse, ApiError> {
    let resolved = adapters::resolve(state, ctx, &plan.model).await?;
    let (engine, model_id) = (&resolved.engine, resolved.id.as_str());
    let content_policy = state
        .policies()
        .active(state.store().ok(), &ctx.tenant_id)
        .await?;
    let trail = policy::SharedTrail::attach(req, content_policy.version);
    generate.prompt =
        policy::check_input(&content_policy, generate.prompt, engine.tokenizer(), &trail)?;
    if policy::judge::has_judges(&content_policy.policy) {
        let texts = policy::judge::prompt_texts(&generate.prompt, engine.tokenizer());
        policy::judge::judge_input(&content_policy.policy, engine, &texts, &trail).await?;
    }
    let output_format =
        format::ResolvedFormat::resolve(state, ctx, &plan, resolved.alias_default()).await?;
    let options = adapters::attach(req, resolved.adapter.as_ref(), output_format.options());
    let prepared = engine.prepare_with(generate, options)?;
    let accounting = match state.store() {
        Ok(store) => {
            let key = ctx.principal().api_key_id();
            let prompt_tokens = prepared.prompt_ids().len() as u64;
            limits::admit(store, &ctx.tenant_id, key.as_ref(), prompt_tokens).await?;
            Some(Accounting {
                store: store.clone(),
                tenant: ctx.tenant_id,
                key,
            })
        }
        Err(_) => None,
    };
    let events = engine.submit(prepared)?;
    let prefix = match shape {
        ChunkShape::Chat => "chatcmpl",
        ChunkShape::Completion => "cmpl",
    };
    let meta = ResponseMeta::new(prefix, model_id);
    let format = Format::from_accept(req.headers());
    if plan.stream {
        return Ok(sse::respond(
            policy::PolicedStream::new(events, &content_policy, trail),
            engine.clone(),
            meta,
            plan,
            shape,
            format,
            request_id.to_string(),
            accounting,
        ));
    }
    let mut done = output_format.finish(respond::collect(events).await?)?;
    if let Some(accounting) = &accounting {
        accounting
            .record_completion(done.usage.completion_tokens)
            .await;
    }
    let stopped = policy::police_completed(&content_policy, &mut done, &trail);
    let tokenizer = engine.tokenizer();
    let mut res = match shape {
        ChunkShape::Chat => {
            let mut body = respond::chat_completion(&meta, &plan, tokenizer, done);
            if stopped.is_some() {
                body.choices
                    .iter_mut()
                    .for_each(|c| c.finish_reason = policy::CONTENT_FILTER.to_owned());
            }
            output_format.note_audit(req, &body);
            Reply::ok(body).respond_to(req)
        }
        ChunkShape::Completion => {
            let mut body = respond::completion(&meta, &plan, tokenizer, done);
            if stopped.is_some() {
                body.choices
                    .iter_mut()
                    .for_each(|c| c.finish_reason = Some(policy::CONTENT_FILTER.to_owned()));
            }
            output_format.note_audit(req, &body);
            Reply::ok(body).respond_to(req)
        }
    };
    if let Some(stopped) = stopped {
        policy::mark_response(&mut res, &stopped);
    }
    Ok(res)
}
