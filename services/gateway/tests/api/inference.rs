//! OpenAI-compatible inference against the real demo model: whole and streamed answers, XML,
//! bad input, client disconnect and graceful shutdown mid-stream.

use std::time::Duration;

use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use enclave_domain::{Role, TenantId};

use crate::support::{TestApp, spawn_with_db_and_model, spawn_with_model, spawn_with_own_model};

fn chat_body(extra: Value) -> Value {
    let mut body = json!({
        "model": "base",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Name three colours."}
        ],
        "max_tokens": 12,
        "temperature": 0
    });
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

async fn post_json(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(app.inference_token())
        .json(body)
        .send()
        .await
        .expect("request")
}

/// Reads an SSE body to its end: the `data` payloads in order.
async fn sse_events(res: reqwest::Response) -> Vec<String> {
    let text = res.text().await.expect("body");
    parse_sse(&text)
}

fn parse_sse(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

#[tokio::test]
async fn chat_completion_has_the_openai_shape() {
    let app = spawn_with_model().await;
    let res = post_json(&app, "/v1/chat/completions", &chat_body(json!({}))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.expect("json");

    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-")),
        "{body}"
    );
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_i64().is_some_and(|c| c > 1_600_000_000));
    assert_eq!(body["model"], app.model_id());
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(
        choice["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    assert!(
        ["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap_or("")),
        "{body}"
    );
    let usage = &body["usage"];
    let (prompt, completion) = (
        usage["prompt_tokens"].as_u64().unwrap_or(0),
        usage["completion_tokens"].as_u64().unwrap_or(0),
    );
    assert!(prompt > 5 && (1..=12).contains(&completion), "{usage}");
    assert_eq!(usage["total_tokens"].as_u64(), Some(prompt + completion));
}

#[tokio::test]
async fn streamed_chat_matches_the_whole_answer() {
    let app = spawn_with_model().await;
    let whole: Value = post_json(&app, "/v1/chat/completions", &chat_body(json!({})))
        .await
        .json()
        .await
        .expect("json");
    let expected = whole["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned();

    let res = post_json(
        &app,
        "/v1/chat/completions",
        &chat_body(json!({"stream": true, "stream_options": {"include_usage": true}})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    let events = sse_events(res).await;

    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk is JSON"))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let id = chunks[0]["id"].as_str().expect("id");
    assert!(id.starts_with("chatcmpl-"));
    assert!(
        chunks
            .iter()
            .all(|c| c["id"] == id && c["object"] == "chat.completion.chunk")
    );
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, expected, "greedy stream equals the whole answer");

    let usage_chunk = chunks.last().expect("usage chunk");
    assert_eq!(usage_chunk["choices"].as_array().map(Vec::len), Some(0));
    assert_eq!(usage_chunk["usage"], whole["usage"]);
    let finish = &chunks[chunks.len() - 2]["choices"][0];
    assert_eq!(
        finish["finish_reason"],
        whole["choices"][0]["finish_reason"]
    );
}

#[tokio::test]
async fn completion_honours_max_tokens_stop_and_logprobs() {
    let app = spawn_with_model().await;
    let res = post_json(
        &app,
        "/v1/completions",
        &json!({"model": app.model_id(), "prompt": "The capital of France is", "max_tokens": 4,
                "temperature": 0, "logprobs": 2}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("cmpl-")),
        "{body}"
    );
    assert_eq!(body["object"], "text_completion");
    let choice = &body["choices"][0];
    let completion_tokens = body["usage"]["completion_tokens"].as_u64().expect("usage");
    assert!(completion_tokens <= 4);
    if choice["finish_reason"] == "length" {
        assert_eq!(completion_tokens, 4);
    }
    let logprobs = &choice["logprobs"];
    assert_eq!(
        logprobs["tokens"].as_array().map(Vec::len),
        Some(completion_tokens as usize),
        "{logprobs}"
    );
    assert!(
        logprobs["token_logprobs"]
            .as_array()
            .expect("array")
            .iter()
            .all(|lp| lp.as_f64().is_some_and(|v| v <= 0.0))
    );
    assert!(
        logprobs["top_logprobs"][0]
            .as_object()
            .is_some_and(|m| (1..=2).contains(&m.len())),
        "{logprobs}"
    );

    // A stop sequence taken from the greedy answer itself cuts the answer before it.
    let text = choice["text"].as_str().expect("text").to_owned();
    let stop: String = text.trim_start().chars().take(2).collect();
    if !stop.trim().is_empty() {
        let res = post_json(
            &app,
            "/v1/completions",
            &json!({"model": "base", "prompt": "The capital of France is", "max_tokens": 4, "temperature": 0, "stop": [stop]}),
        )
        .await;
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
        assert!(
            !body["choices"][0]["text"]
                .as_str()
                .unwrap_or("")
                .contains(stop.as_str()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn xml_request_and_xml_response() {
    let app = spawn_with_model().await;
    let xml = format!(
        "<?xml version=\"1.0\"?><chat_completion_request><model>{}</model><messages>\
         <item><role>user</role><content>Say hi &amp; bye.</content></item></messages>\
         <max_tokens>6</max_tokens><temperature>0</temperature><stop><item>zzz</item></stop>\
         </chat_completion_request>",
        app.model_id()
    );
    let res = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(app.inference_token())
        .header("Content-Type", "application/xml")
        .header("Accept", "application/xml")
        .body(xml)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/xml");
    let text = res.text().await.expect("body");
    assert!(
        text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><chat_completion>"),
        "{text}"
    );
    assert!(text.contains("<object>chat.completion</object>"), "{text}");
    assert!(text.contains("<choices><item>"), "{text}");
    assert!(text.contains("<role>assistant</role>"), "{text}");
    assert!(text.contains("<total_tokens>"), "{text}");

    // Streams stay SSE; each event's data is an XML document.
    let res = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(app.inference_token())
        .header("Accept", "application/xml")
        .json(&chat_body(json!({"stream": true, "max_tokens": 4})))
        .send()
        .await
        .expect("request");
    let events = sse_events(res).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    for event in &events[..events.len() - 1] {
        assert!(
            event.starts_with("<?xml") && event.contains("<chat_completion_chunk>"),
            "{event}"
        );
    }
}

#[tokio::test]
async fn bad_inference_requests_get_typed_errors() {
    let app = spawn_with_model().await;
    // (body, content type, expected status, expected code, expected field)
    let cases: Vec<(String, &str, StatusCode, &str, Option<&str>)> = vec![
        (
            chat_body(json!({"model": "nope"})).to_string(),
            "application/json",
            StatusCode::NOT_FOUND,
            "model_not_found",
            None,
        ),
        (
            chat_body(json!({"n": 2})).to_string(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "unsupported_n",
            Some("n"),
        ),
        (
            chat_body(json!({"max_tokens": 0})).to_string(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_max_tokens",
            Some("max_tokens"),
        ),
        (
            chat_body(json!({"max_tokens": 100000000})).to_string(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_max_tokens",
            Some("max_tokens"),
        ),
        (
            chat_body(json!({"temperature": 7})).to_string(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_temperature",
            Some("temperature"),
        ),
        (
            chat_body(json!({"messages": "hi"})).to_string(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_json",
            Some("messages"),
        ),
        (
            chat_body(json!({"max_tokens": "ten"})).to_string(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_json",
            Some("max_tokens"),
        ),
        (
            chat_body(json!({"tools": []})).to_string(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_json",
            None,
        ),
        (
            "{\"model\": ".to_owned(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_json",
            None,
        ),
        (
            "<chat_completion_request><model>".to_owned(),
            "application/xml",
            StatusCode::BAD_REQUEST,
            "invalid_xml",
            None,
        ),
        (
            "model=base".to_owned(),
            "application/x-www-form-urlencoded",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
        (
            String::new(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "missing_body",
            None,
        ),
        (
            format!("{{\"pad\": \"{}\"}}", "x".repeat(5 << 20)),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        ),
    ];
    for (body, content_type, status, code, field) in cases {
        let shown: String = body.chars().take(80).collect();
        let res = app
            .http
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(app.inference_token())
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), status, "{shown}");
        let err: Value = res.json().await.expect("JSON error body");
        assert_eq!(err["error"]["code"], code, "{shown}: {err}");
        if let Some(field) = field {
            assert_eq!(err["error"]["field"], field, "{shown}: {err}");
        }
        assert!(err["error"]["request_id"].is_string(), "{err}");
    }
}

#[tokio::test]
async fn models_lists_the_served_model_and_readiness_turns_green() {
    let app = spawn_with_model().await;
    let ready: Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ready", "{ready}");

    let res = app
        .http
        .get(app.url("/v1/models"))
        .bearer_auth(app.inference_token())
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["id"], app.model_id());
    assert_eq!(body["data"][0]["object"], "model");
}

#[tokio::test]
async fn client_disconnect_cancels_the_generation() {
    // Its own engine, so other tests' sequences do not show in its metrics.
    let app = spawn_with_own_model().await;
    let engine = app.engine();
    let res = post_json(
        &app,
        "/v1/chat/completions",
        &chat_body(json!({"stream": true, "max_tokens": 2000, "temperature": 1, "seed": 1})),
    )
    .await;
    let mut body = res.bytes_stream();
    let first = body.next().await.expect("first chunk").expect("bytes");
    assert!(!first.is_empty());
    drop(body);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = engine.metrics();
        if m.running == 0 && m.waiting == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "generation still running after disconnect: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let generated = engine.metrics().generated_tokens_total;
    assert!(
        generated < 2000,
        "cancelled before max_tokens, generated {generated}"
    );
}

#[tokio::test]
async fn graceful_shutdown_drains_an_in_flight_stream() {
    let app = spawn_with_model().await;
    let res = post_json(
        &app,
        "/v1/chat/completions",
        &chat_body(json!({"stream": true, "max_tokens": 24})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.bytes_stream();
    let mut text = String::from_utf8(body.next().await.expect("chunk").expect("bytes").to_vec())
        .expect("utf8");

    let addr = app.server.addr;
    let shutdown = tokio::spawn(app.server.shutdown());
    // New connections are refused once the listener is closed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "listener still accepting during shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.expect("stream continues")).expect("utf8"));
    }
    let events = parse_sse(&text);
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "stream finished: {events:?}"
    );
    let finish = serde_json::from_str::<Value>(&events[events.len() - 2]).expect("json");
    assert!(
        finish["choices"][0]["finish_reason"].is_string(),
        "{finish}"
    );
    tokio::time::timeout(Duration::from_secs(15), shutdown)
        .await
        .expect("shutdown completes")
        .expect("join")
        .expect("clean stop");
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_usage_is_counted() {
    let app = spawn_with_db_and_model().await;
    let admin = app.platform_admin().await;
    let res = app
        .http
        .post(app.url("/v1/tenants"))
        .bearer_auth(&admin)
        .json(&json!({"slug": "limited", "name": "Limited", "limits": {"requests_per_minute": 2}}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::CREATED);
    let tenant: Value = res.json().await.expect("json");
    let tenant = TenantId::parse(tenant["id"].as_str().expect("id")).expect("uuid");
    let developer = app.member(tenant, Role::Developer).await;

    let body = json!({"model": "base", "prompt": "Hello", "max_tokens": 2, "temperature": 0});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let res = app
            .http
            .post(app.url("/v1/completions"))
            .bearer_auth(&developer)
            .json(&body)
            .send()
            .await
            .expect("request");
        statuses.push(res.status());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry_after: u64 = res.headers()["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
            let err: Value = res.json().await.expect("json");
            assert_eq!(err["error"]["code"], "rate_limited_requests", "{err}");
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );

    let limits: Value = app
        .http
        .get(app.url("/v1/limits"))
        .bearer_auth(&developer)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(limits["requests_this_month"], 3, "{limits}");
    assert!(
        limits["tokens_this_month"].as_u64().is_some_and(|t| t > 2),
        "prompt and completion tokens counted: {limits}"
    );
}
