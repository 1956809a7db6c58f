//! Login, refresh, API key creation, use and revocation over real HTTP.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::shared_with_tenant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refresh_and_api_key_lifecycle() {
    // Arrange: platform admin → tenant → tenant admin → login → inference key (all over HTTP).
    let (app, t) = shared_with_tenant().await;
    let api = &app.api;

    // Wrong password: refused with the documented code.
    let r = api
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(
                &json!({"email": t.admin_email, "password": "not the password!", "tenant": t.slug}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        r.error_code().as_deref(),
        Some("invalid_credentials"),
        "{}",
        r.body
    );

    // No credentials on an authenticated route: 401 with a Bearer challenge.
    let r = api
        .call(Method::GET, "/v1/models", None, None)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")),
        "{:?}",
        r.headers
    );

    // The key works and the model list names the served model; the caller's request id comes
    // back and is on the server's JSON log line for the request.
    let request_id = format!("e2e-{}", t.slug);
    let rb = api
        .request(Method::GET, "/v1/models", Some(&t.api_key))
        .header("x-request-id", &request_id);
    let r = api.send(rb).await.unwrap();
    assert_eq!(
        r.header("x-request-id"),
        Some(request_id.as_str()),
        "{:?}",
        r.headers
    );
    let models = r.expect(StatusCode::OK).unwrap();
    // The server logs JSON lines (its stderr is not a terminal) with the request's span.
    app.wait_for_log(|l| {
        l["span"]["request_id"] == request_id.as_str()
            && l["message"] == "request completed"
            && l["status"] == 200
    })
    .await;
    assert!(
        models["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|m| m["id"] == t.model.as_str())),
        "{models}"
    );

    // Listing keys shows the key by prefix, never its secret.
    let path = format!("/v1/tenants/{}/api-keys", t.tenant_id);
    let r = api
        .call(Method::GET, &path, Some(&t.admin_token), None)
        .await
        .unwrap();
    let list = r.expect(StatusCode::OK).unwrap();
    let keys = list["data"].as_array().expect("data array");
    assert_eq!(keys.len(), 1, "{list}");
    let prefix = keys[0]["prefix"].as_str().expect("prefix");
    assert!(t.api_key.starts_with(prefix), "prefix {prefix} of {list}");
    assert!(
        !r.body.contains(&t.api_key),
        "the secret must never be listed: {}",
        r.body
    );
    let key_id = keys[0]["id"].as_str().expect("id").to_owned();

    // Refresh: the new tokens work, the used refresh token is refused as reused.
    let session = api
        .login(&t.admin_email, &t.admin_password, Some(&t.slug))
        .await
        .unwrap();
    let body = json!({"refresh_token": session.refresh_token});
    let r = api
        .call(Method::POST, "/v1/auth/refresh", None, Some(&body))
        .await
        .unwrap();
    let fresh = r.expect(StatusCode::OK).unwrap();
    let new_access = fresh["access_token"].as_str().expect("access_token");
    let r = api
        .call(
            Method::GET,
            &format!("/v1/tenants/{}", t.tenant_id),
            Some(new_access),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.expect(StatusCode::OK).unwrap()["slug"], t.slug.as_str());
    let r = api
        .call(Method::POST, "/v1/auth/refresh", None, Some(&body))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        r.error_code().as_deref(),
        Some("refresh_token_reused"),
        "{}",
        r.body
    );

    // Revoking the key: it is refused from then on.
    let r = api
        .call(
            Method::DELETE,
            &format!("{path}/{key_id}"),
            Some(&t.admin_token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = api
        .call(Method::GET, "/v1/models", Some(&t.api_key), None)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.error_code().as_deref(), Some("key_revoked"), "{}", r.body);
}
