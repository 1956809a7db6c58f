//! Serving through an uploaded adapter: a request naming it is answered by the base model plus
//! that adapter (the engine's own answer for it, never the bare base), whole and streamed, and
//! the call's audit record names the version.

use enclave_model_core::adapters::{Target, synthetic};
use enclave_model_core::chat::{ChatMessage, Role};
use enclave_model_core::engine::{
    Engine, GenerateRequest, GenerationEvent, PromptInput, RequestOptions,
};
use enclave_model_core::sampling::RawSamplingParams;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::adapters::client;
use crate::support::{TestApp, spawn_with_model};

const QUESTION: &str = "Name three colours.";
const MAX_TOKENS: u32 = 12;

/// A rank-8 adapter on all seven projections with large random factors (B far from PEFT's zero
/// init), so greedy decoding visibly departs from the base model.
fn strong_adapter(engine: &Engine, seed: u64) -> (Vec<u8>, Vec<u8>) {
    synthetic::random_peft(engine.model_config(), &Target::ALL, 8, 16.0, 0.05, seed)
}

fn chat_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": stream,
    })
}

/// What the engine itself answers for the question with this adapter (`None`: the base).
async fn engine_answer(engine: &Engine, adapter: Option<(Vec<u8>, Vec<u8>)>) -> String {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        let lease = adapter.map(|files| {
            let id = format!("direct-{}", uuid::Uuid::new_v4());
            engine
                .acquire_adapter(&id, || Ok(files))
                .expect("adapter loads")
        });
        let req = GenerateRequest {
            prompt: PromptInput::Chat(vec![ChatMessage::new(Role::User, QUESTION)]),
            sampling: RawSamplingParams {
                temperature: Some(0.0),
                ..RawSamplingParams::default()
            },
            max_tokens: Some(MAX_TOKENS),
        };
        let options = RequestOptions {
            adapter: lease,
            ..RequestOptions::default()
        };
        let prepared = engine.prepare_with(req, options).expect("valid request");
        let mut stream = engine.submit(prepared).expect("accepted");
        let mut text = String::new();
        while let Some(ev) = stream.blocking_next() {
            match ev {
                GenerationEvent::Token { text: t, .. } => text.push_str(&t),
                GenerationEvent::Finished { text: t, .. } => {
                    text.push_str(&t);
                    return text;
                }
                GenerationEvent::Failed { message } => panic!("generation failed: {message}"),
            }
        }
        panic!("stream ended without a final event")
    })
    .await
    .expect("engine task")
}

async fn post(app: &TestApp, key: &str, body: &Value, request_id: &str) -> reqwest::Response {
    app.http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-request-id", request_id)
        .json(body)
        .send()
        .await
        .expect("request")
}

async fn whole_answer(app: &TestApp, key: &str, model: &str, request_id: &str) -> String {
    let res = post(app, key, &chat_body(model, false), request_id).await;
    let status = res.status();
    let body: Value = res.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "{model}: {body}");
    if model != "base" {
        assert_eq!(body["model"], model, "the adapter reference is echoed");
    }
    body["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned()
}

async fn streamed_answer(app: &TestApp, key: &str, model: &str, request_id: &str) -> String {
    let res = post(app, key, &chat_body(model, true), request_id).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.expect("body");
    let mut out = String::new();
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            return out;
        }
        let chunk: Value = serde_json::from_str(data).expect("chunk is JSON");
        assert_eq!(chunk["model"], model, "{chunk}");
        out.push_str(
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or(""),
        );
    }
    panic!("stream without [DONE]: {text}")
}

/// The adapter version in the final audit record of `request_id` (read as the schema owner).
async fn audited_adapter_version(app: &TestApp, request_id: &str) -> Option<String> {
    let mut tx = app.db().owner_pool().begin().await.expect("tx");
    sqlx::query("SELECT set_config('enclave.rls_bypass', 'on', true)")
        .execute(&mut *tx)
        .await
        .expect("bypass");
    let records: Vec<(Value,)> = sqlx::query_as(
        "SELECT record FROM audit_events WHERE record->>'request_id' = $1 \
         AND record->>'phase' <> 'started'",
    )
    .bind(request_id)
    .fetch_all(&mut *tx)
    .await
    .expect("audit rows");
    tx.commit().await.expect("commit");
    assert_eq!(records.len(), 1, "one final record: {records:?}");
    records[0].0["adapter_version"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn a_request_naming_an_adapter_is_answered_with_that_adapter() {
    let app = spawn_with_model().await;
    let engine = app.engine();
    let api = client(&app, app.home_tenant).await;
    let (v1, v2) = (strong_adapter(&engine, 7), strong_adapter(&engine, 8));
    let (v1_config, v2_config): (Value, Value) = (
        serde_json::from_slice(&v1.0).expect("config"),
        serde_json::from_slice(&v2.0).expect("config"),
    );
    let (status, up1) = api.upload("helper", &["prod"], &v1_config, &v1.1).await;
    assert_eq!(status, StatusCode::CREATED, "{up1}");
    let (status, up2) = api.upload("helper", &["canary"], &v2_config, &v2.1).await;
    assert_eq!(status, StatusCode::CREATED, "{up2}");
    let digest1 = up1["adapter"]["version"].as_str().expect("version");
    let digest2 = up2["adapter"]["version"].as_str().expect("version");

    let rid = |what: &str| format!("{what}-{}", uuid::Uuid::now_v7());
    let rid_base = rid("base");
    let base = whole_answer(&app, &api.key, "base", &rid_base).await;
    assert_eq!(base, engine_answer(&engine, None).await);
    let want_v1 = engine_answer(&engine, Some(v1.clone())).await;
    let want_v2 = engine_answer(&engine, Some(v2)).await;
    assert_ne!(
        want_v1, base,
        "the test adapter must change the greedy answer"
    );
    assert_ne!(want_v1, want_v2);

    // `helper` is its prod alias; every way of naming v1 gets v1's answer, streamed too.
    for model in ["helper", "helper@prod", "helper@v1"] {
        let id = rid("v1");
        assert_eq!(
            whole_answer(&app, &api.key, model, &id).await,
            want_v1,
            "{model}"
        );
        assert_eq!(
            audited_adapter_version(&app, &id).await.as_deref(),
            Some(digest1)
        );
    }
    let id = rid("stream");
    let streamed = streamed_answer(&app, &api.key, "helper@prod", &id).await;
    assert_eq!(streamed, want_v1, "streamed with the adapter");
    assert_eq!(
        audited_adapter_version(&app, &id).await.as_deref(),
        Some(digest1)
    );
    let id = rid("canary");
    assert_eq!(
        whole_answer(&app, &api.key, "helper@canary", &id).await,
        want_v2
    );
    assert_eq!(
        audited_adapter_version(&app, &id).await.as_deref(),
        Some(digest2)
    );
    assert_eq!(audited_adapter_version(&app, &rid_base).await, None);

    // Moving prod to v2 changes what new requests get.
    let (status, moved) = api.put_alias("helper", "prod", "v2").await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let id = rid("moved");
    assert_eq!(whole_answer(&app, &api.key, "helper", &id).await, want_v2);
    assert_eq!(
        audited_adapter_version(&app, &id).await.as_deref(),
        Some(digest2)
    );
}
