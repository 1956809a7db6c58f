//! Limits are data: a key's requests/minute and a tenant's monthly token budget, each answered
//! with 429, a `Retry-After` and a machine-readable code once exceeded.

use reqwest::{Method, StatusCode};
use serde_json::json;

use enclave_tests::ApiResponse;

use crate::support::shared_with_tenant;

fn assert_limited(r: &ApiResponse, code: &str) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.error_code().as_deref(), Some(code), "{}", r.body);
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("429 without a numeric Retry-After: {:?}", r.headers));
    assert!(retry >= 1, "Retry-After {retry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rate_limit_and_tenant_budget_answer_429_with_retry_after() {
    let (app, t) = shared_with_tenant().await;
    let api = &app.api;
    let chat =
        json!({"model": t.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1});

    // A key allowed one request per minute.
    let (slow_key, created) = api
        .create_api_key(
            &t.admin_token,
            &t.tenant_id,
            &json!({"name": "one-per-minute", "requests_per_minute": 1}),
        )
        .await
        .unwrap();
    assert_eq!(created["api_key"]["requests_per_minute"], 1, "{created}");
    api.chat(&slow_key, &chat)
        .await
        .unwrap()
        .expect(StatusCode::OK)
        .unwrap();
    let r = api.chat(&slow_key, &chat).await.unwrap();
    assert_limited(&r, "rate_limited_requests");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(
        retry <= 60,
        "a per-minute window never asks for more than 60 s: {retry}"
    );
    // The limit is the key's: the tenant's other key is unaffected.
    api.chat(&t.api_key, &chat)
        .await
        .unwrap()
        .expect(StatusCode::OK)
        .unwrap();

    // A monthly budget already used up: every key of the tenant is refused until next month.
    let r = api
        .call(
            Method::PUT,
            &format!("/v1/tenants/{}/limits", t.tenant_id),
            Some(&app.platform_admin),
            Some(&json!({"monthly_token_budget": 1})),
        )
        .await
        .unwrap();
    r.expect(StatusCode::OK).unwrap();
    let r = api.chat(&t.api_key, &chat).await.unwrap();
    assert_limited(&r, "token_budget_exhausted");
    // Non-generating routes stay available.
    api.call(Method::GET, "/v1/models", Some(&t.api_key), None)
        .await
        .unwrap()
        .expect(StatusCode::OK)
        .unwrap();
}
