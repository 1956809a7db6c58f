//! Chat completions over real HTTP against the real model: plain JSON and SSE streaming.

use reqwest::StatusCode;
use serde_json::{Value, json};

use enclave_tests::sse::data_events;

use crate::support::shared_with_tenant;

fn request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Name three colours."}
        ],
        "max_tokens": 12,
        "temperature": 0,
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
    })
}

/// Concatenated delta contents, the finish reason and the usage chunk of a chat stream.
fn read_stream(body: &str) -> (String, Option<String>, Option<Value>) {
    let events = data_events(body);
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "stream must end with [DONE]: {body}"
    );
    let mut text = String::new();
    let mut finish = None;
    let mut usage = None;
    for e in &events[..events.len() - 1] {
        let chunk: Value =
            serde_json::from_str(e).unwrap_or_else(|err| panic!("chunk {e} is not JSON: {err}"));
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        if let Some(choice) = chunk["choices"].get(0) {
            if let Some(c) = choice["delta"]["content"].as_str() {
                text.push_str(c);
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_owned());
            }
        }
        if chunk["usage"].is_object() {
            usage = Some(chunk["usage"].clone());
        }
    }
    (text, finish, usage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completion_plain_and_streamed_agree() {
    let (app, t) = shared_with_tenant().await;

    // Non-streaming, naming the caller's end user (OpenAI's `user`): it is on the log lines.
    let end_user = format!("end-user-of-{}", t.slug);
    let mut plain = request(&t.model, false);
    plain["user"] = json!(end_user);
    let r = app.api.chat(&t.api_key, &plain).await.unwrap();
    let v = r.expect(StatusCode::OK).unwrap();
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert_eq!(v["model"], t.model.as_str(), "{v}");
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant", "{v}");
    let content = choice["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned();
    assert!(!content.trim().is_empty(), "{v}");
    assert!(
        ["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap_or("")),
        "{v}"
    );
    let usage = &v["usage"];
    let (p, c) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert!(p > 10 && (1..=12).contains(&c), "{usage}");
    assert_eq!(usage["total_tokens"].as_u64(), Some(p + c), "{usage}");

    app.wait_for_log(|l| {
        l["span"]["end_user"] == end_user.as_str() && l["message"] == "request completed"
    })
    .await;

    // Streaming the same greedy request gives the same text, chunk by chunk.
    let r = app
        .api
        .chat(&t.api_key, &request(&t.model, true))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream")),
        "{:?}",
        r.headers
    );
    let (text, finish, stream_usage) = read_stream(&r.body);
    assert_eq!(
        text, content,
        "streamed and plain greedy completions differ"
    );
    assert_eq!(finish.as_deref(), choice["finish_reason"].as_str());
    assert_eq!(stream_usage.as_ref(), Some(usage), "include_usage chunk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_chat_requests_name_the_field() {
    let (app, t) = shared_with_tenant().await;
    let cases = [
        (
            "max_tokens",
            json!({"model": t.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}),
        ),
        (
            "temperature",
            json!({"model": t.model, "messages": [{"role": "user", "content": "hi"}], "temperature": -1}),
        ),
        ("messages", json!({"model": t.model, "messages": []})),
        (
            "model",
            json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ];
    for (field, body) in cases {
        let r = app.api.chat(&t.api_key, &body).await.unwrap();
        assert!(
            r.status.is_client_error(),
            "{field}: {} {}",
            r.status,
            r.body
        );
        let v = r.json().unwrap();
        let named = v["error"]["field"]
            .as_str()
            .is_some_and(|f| f.contains(field))
            || v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(field));
        assert!(named, "error for {field} should name it: {v}");
    }
}
