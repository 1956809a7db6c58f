//! A streaming client that goes away cancels its generation; SIGTERM while a response is
//! streaming lets the stream run to its end, refuses new work, and the process exits cleanly.

use std::time::Duration;

use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use enclave_tests::sse::data_events;

use enclave_tests::api::TenantFixture;

use crate::support::{TestApp, no_eos_bias, spawn_app_with};

const MAX_TOKENS: u64 = 200;
/// Far more than a cancelled generation can reach before the server notices the disconnect.
const LONG_MAX_TOKENS: u64 = 1500;

/// A value of the server's `/metrics`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .api
        .http
        .get(app.server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|v| v.strip_prefix(' '))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// Reads a streamed response until its first token (the role chunk, then one more event): the
/// generation is running.
async fn first_token<B: AsRef<[u8]>>(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<B>> + Unpin),
) -> Vec<u8> {
    let mut received = Vec::new();
    while data_events(&String::from_utf8_lossy(&received)).len() < 2 {
        let chunk = stream
            .next()
            .await
            .expect("stream ended before its first token")
            .unwrap();
        received.extend_from_slice(chunk.as_ref());
    }
    received
}

fn long_story(t: &TenantFixture, max_tokens: u64) -> Value {
    json!({
        "model": t.model,
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "logit_bias": no_eos_bias(),
        "stream": true,
        "stream_options": {"include_usage": true},
    })
}

/// Waits until no generation runs; returns the tokens generated since `before`.
async fn settle(app: &TestApp, before: f64, what: &str) -> f64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while metric(app, "enclave_engine_running_sequences").await > 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: the generation kept running after the client left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    metric(app, "enclave_engine_generated_tokens_total").await - before
}

/// A client that hangs up cancels its generation, long before it could reach max_tokens:
/// streaming (after its first token) and not streaming (while it waits for the answer).
async fn disconnect_cancels_generation(app: &TestApp, t: &TenantFixture) {
    let before = metric(app, "enclave_engine_generated_tokens_total").await;
    let resp = app
        .api
        .request(
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(&t.api_key),
        )
        .json(&long_story(t, LONG_MAX_TOKENS))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.bytes_stream();
    first_token(&mut stream).await;
    drop(stream);
    let generated = settle(app, before, "streaming").await;
    assert!(
        generated >= 1.0 && generated < LONG_MAX_TOKENS as f64,
        "generated {generated} tokens for a streaming client that left"
    );

    // Not streaming: the client gives up while the answer is being generated.
    let before = metric(app, "enclave_engine_generated_tokens_total").await;
    let mut body = long_story(t, LONG_MAX_TOKENS);
    body["stream"] = json!(false);
    body["stream_options"] = Value::Null;
    let impatient = app
        .api
        .request(
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(&t.api_key),
        )
        .json(&body);
    let send = tokio::spawn(impatient.send());
    // Hang up once tokens are being generated for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while metric(app, "enclave_engine_generated_tokens_total").await - before < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the non-streaming generation did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    send.abort();
    let _ = send.await;
    let generated = settle(app, before, "not streaming").await;
    assert!(
        generated < LONG_MAX_TOKENS as f64,
        "generated {generated} tokens for a waiting client that left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_cancels_and_sigterm_mid_stream_lets_the_stream_complete() {
    // A drain window far longer than the generation can take on a loaded machine.
    let mut app = spawn_app_with(|o| o.env("ENCLAVE_SERVER__SHUTDOWN_TIMEOUT_SECS", "600")).await;
    let t = TenantFixture::create(&app.api, &app.platform_admin)
        .await
        .unwrap();

    // Phase 1 (the same server, to spare a start-up): a client that hangs up.
    disconnect_cancels_generation(&app, &t).await;

    // Phase 2: SIGTERM while a stream is running.
    let body = long_story(&t, MAX_TOKENS);
    let resp = app
        .api
        .request(
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(&t.api_key),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.bytes_stream();

    // Wait until tokens flow (the generation runs), then ask the server to stop.
    let mut received = first_token(&mut stream).await;
    app.server.terminate().unwrap();

    // Once the signal is handled, the server takes no new work: a refused connection or 503
    // (a probe that arrives before the signal is handled still sees 200: ask again).
    let probe_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match probe_client.get(app.server.url("/readyz")).send().await {
            Ok(r) if r.status() == StatusCode::OK => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "still ready long after SIGTERM"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(r) => {
                assert_eq!(
                    r.status(),
                    StatusCode::SERVICE_UNAVAILABLE,
                    "readiness while draining"
                );
                break;
            }
            Err(_) => break,
        }
    }

    // The stream runs to its end.
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.expect("the stream was cut during shutdown"));
    }
    let text = String::from_utf8(received).unwrap();
    let events = data_events(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let finish = chunks.iter().find_map(|c| {
        c["choices"]
            .get(0)
            .and_then(|ch| ch["finish_reason"].as_str())
    });
    assert_eq!(finish, Some("length"), "the generation ran to max_tokens");
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .expect("usage chunk");
    assert_eq!(
        usage["usage"]["completion_tokens"].as_u64(),
        Some(MAX_TOKENS),
        "{usage}"
    );

    let status = app
        .server
        .wait_exit(Duration::from_secs(120))
        .await
        .unwrap();
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}\n{}",
        app.server.logs()
    );
}
