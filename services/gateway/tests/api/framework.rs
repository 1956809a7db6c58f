//! Probes, docs, content negotiation and error rendering for requests that reach no handler.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::spawn_app;

#[tokio::test]
async fn health_and_readiness_answer_without_auth_in_both_formats() {
    let app = spawn_app().await;

    let res = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("x-request-id"));
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "ok");

    // Without a model the server is alive but not ready, and says why.
    let res = app
        .http
        .get(app.url("/readyz"))
        .header("Accept", "application/xml")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["content-type"], "application/xml");
    let text = res.text().await.expect("body");
    assert!(text.contains("<status>not_ready</status>"), "{text}");
    assert!(text.contains("<detail>no model loaded</detail>"), "{text}");
    assert!(text.contains("<checks><item>"), "{text}");
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(app.url("/healthz"))
        .header("X-Request-Id", "client-abc-123")
        .send()
        .await
        .expect("request");
    assert_eq!(res.headers()["x-request-id"], "client-abc-123");

    let res = app
        .http
        .get(app.url("/healthz"))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .expect("request");
    let id = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_ne!(id, "bad id with spaces");
    assert_eq!(id.len(), 36, "a UUID: {id}");
}

#[tokio::test]
async fn framework_errors_are_typed_in_the_negotiated_format() {
    let app = spawn_app().await;
    // (method, path, accept, expected status, expected code)
    let cases = [
        (
            "GET",
            "/no/such/route",
            "application/json",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/healthz",
            "application/json",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/readyz",
            "application/xml",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "GET",
            "/v1/nothing",
            "application/xml",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (method, path, accept, status, code) in cases {
        let res = app
            .http
            .request(method.parse().expect("method"), app.url(path))
            .header("Accept", accept)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), status, "{method} {path}");
        let request_id = res.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let content_type = res.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let text = res.text().await.expect("body");
        if accept == "application/xml" {
            assert_eq!(content_type, "application/xml", "{method} {path}");
            assert!(
                text.contains(&format!("<code>{code}</code>")),
                "{method} {path}: {text}"
            );
            assert!(
                text.contains(&format!("<request_id>{request_id}</request_id>")),
                "{text}"
            );
        } else {
            assert_eq!(content_type, "application/json", "{method} {path}");
            let body: Value = serde_json::from_str(&text).expect("json error body");
            assert_eq!(body["error"]["code"], code, "{method} {path}: {text}");
            assert_eq!(body["error"]["request_id"], request_id.as_str());
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }
}

#[tokio::test]
async fn openapi_and_docs_are_served_without_auth_or_external_urls() {
    let app = spawn_app().await;

    let spec: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{}",
        spec["openapi"]
    );
    assert!(spec["paths"]["/healthz"]["get"].is_object());
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    let health_ok = &spec["paths"]["/healthz"]["get"]["responses"]["200"]["content"];
    assert!(
        health_ok["application/xml"].is_object(),
        "XML documented next to JSON: {health_ok}"
    );

    let res = app
        .http
        .get(app.url("/docs"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK, "redirect to /docs/ followed");
    let html = res.text().await.expect("html");
    assert!(html.contains("swagger"), "{html}");
    assert_no_external_urls("/docs/", &html);

    for asset in [
        "/docs/swagger-initializer.js",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui.css",
    ] {
        let res = app.http.get(app.url(asset)).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::OK, "{asset}");
        let bytes = res.bytes().await.expect("bytes");
        if asset.ends_with("initializer.js") {
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.contains("/openapi.json"), "{text}");
            assert!(text.contains("validatorUrl"), "validator disabled: {text}");
            assert_no_external_urls(asset, &text);
        }
    }
}

/// The page and its initializer may reference only same-origin paths.
fn assert_no_external_urls(what: &str, text: &str) {
    for needle in [
        "src=\"http",
        "href=\"http",
        "url: \"http",
        "\"https://",
        "\"http://",
        "'https://",
        "'http://",
    ] {
        assert!(
            !text.contains(needle),
            "{what} references an external URL ({needle}):\n{text}"
        );
    }
}

#[tokio::test]
async fn credentials_are_checked_before_anything_else() {
    let app = spawn_app().await;
    let audit_only = format!("Bearer {}", app.audit_only_key());
    // (authorization header, expected status, expected code)
    let cases = [
        (None, StatusCode::UNAUTHORIZED, "missing_credentials"),
        (
            Some("Basic dXNlcjpwYXNz"),
            StatusCode::UNAUTHORIZED,
            "invalid_authorization_header",
        ),
        (
            Some("Bearer"),
            StatusCode::UNAUTHORIZED,
            "invalid_authorization_header",
        ),
        (
            Some("Bearer not-a-real-credential"),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            Some(audit_only.as_str()),
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        ),
    ];
    for (authorization, status, code) in cases {
        let mut req = app.http.get(app.url("/v1/models"));
        if let Some(value) = authorization {
            req = req.header("Authorization", value);
        }
        let res = req.send().await.expect("request");
        assert_eq!(res.status(), status, "{authorization:?}");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(res.headers()["www-authenticate"], "Bearer");
        }
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"]["code"], code, "{authorization:?}: {body}");
    }
}
