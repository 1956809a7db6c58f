//! Attacks on the credentials, at the HTTP level against the real authenticator: each refused
//! with 401 (or 403/429 where stated) and its own stable code.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::Utc;
use enclave_auth::AccessClaims;
use enclave_domain::{Role, TenantId};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, spawn_app};

/// A developer of a fresh tenant: (tenant, user id, email).
async fn developer(app: &TestApp) -> (TenantId, String, String) {
    let tenant = app.tenant("victim").await;
    let root = app.platform_admin().await;
    let email = format!("dev-{}@victim.test", uuid::Uuid::new_v4().simple());
    let res = app
        .http
        .post(app.url(&format!("/v1/tenants/{tenant}/users")))
        .bearer_auth(&root)
        .json(&json!({"email": email, "password": PASSWORD, "role": "developer"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::CREATED);
    let user: Value = res.json().await.expect("json");
    (tenant, user["id"].as_str().expect("id").to_owned(), email)
}

fn claims(sub: &str, tenant: TenantId, exp_offset: i64) -> AccessClaims {
    let now = Utc::now().timestamp();
    AccessClaims {
        sub: sub.to_owned(),
        tenant: Some(tenant.to_string()),
        role: "developer".to_owned(),
        iat: now,
        exp: now + exp_offset,
        jti: uuid::Uuid::new_v4().to_string(),
        iss: "enclave".to_owned(),
        aud: "enclave-api".to_owned(),
    }
}

/// GET /v1/limits with `bearer`: (status, error code or "").
async fn probe(app: &TestApp, bearer: &str) -> (StatusCode, String) {
    let res = app
        .http
        .get(app.url("/v1/limits"))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("request");
    let status = res.status();
    let body: Value = res.json().await.expect("json");
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

async fn assert_refused(app: &TestApp, bearer: &str, code: &str, what: &str) {
    let (status, got) = probe(app, bearer).await;
    assert_eq!(
        (status, got.as_str()),
        (StatusCode::UNAUTHORIZED, code),
        "{what}"
    );
}

async fn login(app: &TestApp, email: &str) -> Value {
    let res = app
        .http
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK, "login {email}");
    res.json().await.expect("json")
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .post(app.url("/v1/auth/refresh"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn a_token_signed_by_our_key_is_accepted() {
    // The control for the forgeries below: the same claims, properly signed, pass.
    let app = spawn_app().await;
    let (tenant, user, _) = developer(&app).await;
    let good = app
        .auth
        .key_ring()
        .sign(&claims(&user, tenant, 600))
        .await
        .expect("sign");
    assert_eq!(probe(&app, &good).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = spawn_app().await;
    let (tenant, user, _) = developer(&app).await;
    let expired = app
        .auth
        .key_ring()
        .sign(&claims(&user, tenant, -120))
        .await
        .expect("sign");
    assert_refused(&app, &expired, "token_expired", "expired").await;
}

#[tokio::test]
async fn a_token_with_a_wrong_signature_is_refused() {
    let app = spawn_app().await;
    let (tenant, user, _) = developer(&app).await;
    let kid = app.auth.key_ring().active_kid().expect("kid");
    // A key that is not ours, under our kid.
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[7u8; 32]);
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid);
    let forged = jsonwebtoken::encode(
        &header,
        &claims(&user, tenant, 600),
        &EncodingKey::from_ed_der(&der),
    )
    .expect("encode");
    assert_refused(&app, &forged, "invalid_token", "foreign key").await;

    // Our own token with one bit of the signature flipped.
    let good = app
        .auth
        .key_ring()
        .sign(&claims(&user, tenant, 600))
        .await
        .expect("sign");
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut sig = B64.decode(&parts[2]).expect("b64");
    sig[5] ^= 0x20;
    parts[2] = B64.encode(sig);
    assert_refused(&app, &parts.join("."), "invalid_token", "flipped bit").await;
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let app = spawn_app().await;
    let (tenant, user, _) = developer(&app).await;
    let kid = app.auth.key_ring().active_kid().expect("kid");
    let payload = B64.encode(serde_json::to_vec(&claims(&user, tenant, 600)).expect("json"));
    for alg in ["none", "None", "NONE"] {
        let header = B64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#));
        assert_refused(&app, &format!("{header}.{payload}."), "invalid_token", alg).await;
    }
}

#[tokio::test]
async fn an_hmac_token_keyed_with_our_public_key_is_refused() {
    let app = spawn_app().await;
    let (tenant, user, _) = developer(&app).await;
    let kid = app.auth.key_ring().active_kid().expect("kid");
    let public: Vec<u8> =
        sqlx::query_scalar("SELECT public_key FROM signing_keys WHERE status = 'active'")
            .fetch_one(app.db.admin_pool())
            .await
            .expect("public key");
    // The public key in the forms an attacker could find it: raw bytes and base64url text.
    let encodings = [public.clone(), B64.encode(&public).into_bytes()];
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        for secret in &encodings {
            let mut header = Header::new(alg);
            header.kid = Some(kid.clone());
            let confused = jsonwebtoken::encode(
                &header,
                &claims(&user, tenant, 600),
                &EncodingKey::from_secret(secret),
            )
            .expect("encode");
            assert_refused(&app, &confused, "invalid_token", &format!("{alg:?}")).await;
        }
    }
}

#[tokio::test]
async fn the_token_of_a_deleted_user_is_refused() {
    let app = spawn_app().await;
    let (tenant, user, email) = developer(&app).await;
    let tokens = login(&app, &email).await;
    let access = tokens["access_token"].as_str().expect("access");
    assert_eq!(
        probe(&app, access).await.0,
        StatusCode::OK,
        "valid before the deletion"
    );

    let root = app.platform_admin().await;
    let res = app
        .http
        .delete(app.url(&format!("/v1/tenants/{tenant}/users/{user}")))
        .bearer_auth(&root)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    assert_refused(&app, access, "user_inactive", "deleted user's access token").await;
    let res = refresh(&app, tokens["refresh_token"].as_str().expect("refresh")).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "deleted user's refresh token"
    );
    let res = app
        .http
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "deleted user's password"
    );
}

#[tokio::test]
async fn a_revoked_api_key_is_refused() {
    let app = spawn_app().await;
    let tenant = app.tenant("keys").await;
    let admin = app.member(tenant, Role::TenantAdmin).await;
    let created: Value = app
        .http
        .post(app.url(&format!("/v1/tenants/{tenant}/api-keys")))
        .bearer_auth(&admin)
        .json(&json!({"name": "soon revoked"}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let key = created["secret"].as_str().expect("secret");
    assert_eq!(
        probe(&app, key).await.0,
        StatusCode::OK,
        "valid before revocation"
    );

    let res = app
        .http
        .delete(app.url(&format!(
            "/v1/tenants/{tenant}/api-keys/{}",
            created["api_key"]["id"].as_str().expect("id")
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_refused(&app, key, "key_revoked", "revoked key").await;

    // A key of the right shape that was never issued, and one with a tampered secret.
    let mut tampered = key.to_owned();
    let last = tampered.pop().expect("char");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_refused(&app, &tampered, "invalid_api_key", "tampered secret").await;
}

#[tokio::test]
async fn an_expired_api_key_is_refused() {
    let app = spawn_app().await;
    let tenant = app.tenant("keys").await;
    let admin = app.member(tenant, Role::TenantAdmin).await;
    let expires = (Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let created: Value = app
        .http
        .post(app.url(&format!("/v1/tenants/{tenant}/api-keys")))
        .bearer_auth(&admin)
        .json(&json!({"name": "short-lived", "expires_at": expires}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let key = created["secret"].as_str().expect("secret");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_refused(&app, key, "key_expired", "expired key").await;
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_session() {
    let app = spawn_app().await;
    let (_, _, email) = developer(&app).await;
    let first = login(&app, &email).await;
    let r1 = first["refresh_token"].as_str().expect("refresh").to_owned();

    let res = refresh(&app, &r1).await;
    assert_eq!(res.status(), StatusCode::OK);
    let second: Value = res.json().await.expect("json");
    let r2 = second["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_ne!(r1, r2, "refresh tokens rotate");

    // The thief replays the old one: refused, and the family is revoked...
    let res = refresh(&app, &r1).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let err: Value = res.json().await.expect("json");
    assert_eq!(err["error"]["code"], "refresh_token_reused", "{err}");
    // ...so the legitimate holder's newer token is dead too.
    let res = refresh(&app, &r2).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the family is revoked"
    );
}

#[tokio::test]
async fn a_suspended_tenants_credentials_are_refused() {
    let app = spawn_app().await;
    let (tenant, _, email) = developer(&app).await;
    let access = login(&app, &email).await["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let key = app.key(tenant, &[enclave_domain::Scope::Inference]).await;
    let root = app.platform_admin().await;
    let set_status = |status: &'static str| {
        app.http
            .patch(app.url(&format!("/v1/tenants/{tenant}")))
            .bearer_auth(&root)
            .json(&json!({"status": status}))
            .send()
    };
    let res = set_status("suspended").await.expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "suspended");

    for (what, bearer) in [("member token", access.as_str()), ("API key", key.as_str())] {
        let (status, code) = probe(&app, bearer).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "tenant_suspended"),
            "{what}"
        );
    }
    assert_eq!(
        set_status("active").await.expect("request").status(),
        StatusCode::OK
    );
    assert_eq!(probe(&app, &key).await.0, StatusCode::OK, "resumed");
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_with_retry_after() {
    let app = spawn_app().await;
    let (_, _, email) = developer(&app).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let res = app
            .http
            .post(app.url("/v1/auth/login"))
            .json(&json!({"email": email, "password": "not the password at all"}))
            .send()
            .await
            .expect("request");
        let status = res.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = res.headers()["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!(retry >= 1, "Retry-After {retry}");
            let err: Value = res.json().await.expect("json");
            assert_eq!(err["error"]["code"], "login_throttled");
        }
        statuses.push(status);
    }
    assert_eq!(
        &statuses[..3],
        [StatusCode::UNAUTHORIZED; 3],
        "free attempts: {statuses:?}"
    );
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // Even the right password waits now.
    let res = app
        .http
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}
