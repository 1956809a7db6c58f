//! Tenant isolation over HTTP with the real authenticator: tenant B's credentials on tenant A's
//! objects answer 404 on every tenant-scoped route and change nothing (checked in the tables),
//! and no table holds a plaintext password, API key or refresh token.

use enclave_domain::{Role, Scope, TenantId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, call, spawn_with_db, spawn_with_model};

/// Two tenants with a user and a key each, made through the API by a platform admin.
struct World {
    a: TenantId,
    b: TenantId,
    a_user: String,
    a_key: String,
    b_user: String,
    b_key: String,
    /// Credentials of tenant B: its admin's token, an `admin`-scoped key, a developer's token.
    b_credentials: Vec<(&'static str, String)>,
}

async fn created(res: reqwest::Response, what: &str) -> Value {
    assert_eq!(res.status(), StatusCode::CREATED, "{what}");
    res.json().await.expect("json")
}

async fn populate(app: &TestApp, tenant: TenantId, admin: &str, tag: &str) -> (String, String) {
    let user = created(
        call(
            app,
            Method::POST,
            &format!("/v1/tenants/{tenant}/users"),
            admin,
            Some(json!({"email": format!("dev@{tag}.test"), "password": PASSWORD, "role": "developer"})),
        )
        .await,
        "user",
    )
    .await;
    let key = created(
        call(
            app,
            Method::POST,
            &format!("/v1/tenants/{tenant}/api-keys"),
            admin,
            Some(json!({"name": tag})),
        )
        .await,
        "key",
    )
    .await;
    (
        user["id"].as_str().expect("id").to_owned(),
        key["api_key"]["id"].as_str().expect("id").to_owned(),
    )
}

async fn world(app: &TestApp) -> World {
    let root = app.platform_admin().await;
    let mut ids = Vec::new();
    for slug in ["tenant-a", "tenant-b"] {
        let t = created(
            call(
                app,
                Method::POST,
                "/v1/tenants",
                &root,
                Some(json!({"slug": slug, "name": slug, "limits": {"requests_per_minute": 1000}})),
            )
            .await,
            slug,
        )
        .await;
        ids.push(TenantId::parse(t["id"].as_str().expect("id")).expect("uuid"));
    }
    let (a, b) = (ids[0], ids[1]);
    let (a_user, a_key) = populate(app, a, &root, "a").await;
    let (b_user, b_key) = populate(app, b, &root, "b").await;
    let b_credentials = vec![
        (
            "B tenant_admin token",
            app.member(b, Role::TenantAdmin).await,
        ),
        ("B admin key", app.key(b, &[Scope::Admin]).await),
        ("B developer token", app.member(b, Role::Developer).await),
    ];
    World {
        a,
        b,
        a_user,
        a_key,
        b_user,
        b_key,
        b_credentials,
    }
}

/// Every row that belongs to tenant A, as text, read as superuser (past row-level security).
async fn tenant_rows(app: &TestApp, tenant: TenantId) -> Vec<String> {
    let queries = [
        "SELECT coalesce(json_agg(t ORDER BY t.id)::text, '') FROM tenants t WHERE id = $1",
        "SELECT coalesce(json_agg(t)::text, '') FROM tenant_limits t WHERE tenant_id = $1",
        "SELECT coalesce(json_agg(t ORDER BY t.user_id)::text, '') FROM memberships t WHERE tenant_id = $1",
        "SELECT coalesce(json_agg(u ORDER BY u.id)::text, '') FROM users u WHERE id IN (SELECT user_id FROM memberships WHERE tenant_id = $1)",
        "SELECT coalesce(json_agg(t ORDER BY t.id)::text, '') FROM api_keys t WHERE tenant_id = $1",
        "SELECT coalesce(json_agg(t ORDER BY t.id)::text, '') FROM refresh_tokens t WHERE tenant_id = $1",
        "SELECT coalesce(json_agg(t ORDER BY t.period_start)::text, '') FROM usage_counters t WHERE tenant_id = $1",
        "SELECT coalesce(json_agg(t ORDER BY t.subject, t.window_start)::text, '') FROM rate_windows t WHERE tenant_id = $1",
    ];
    let mut rows = Vec::new();
    for q in queries {
        let text: String = sqlx::query_scalar(q)
            .bind(tenant.as_uuid())
            .fetch_one(app.db.admin_pool())
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
        rows.push(text);
    }
    rows
}

#[tokio::test]
async fn tenant_b_gets_404_on_every_route_of_tenant_a_and_changes_nothing() {
    let app = spawn_with_db().await;
    let w = world(&app).await;
    let (a, b) = (w.a, w.b);
    let before = tenant_rows(&app, a).await;
    assert!(
        before[3].contains(&w.a_user) && before[4].contains(&w.a_key),
        "control: the snapshot holds A's user and key: {before:?}"
    );

    // (method, path, body): every tenant-scoped route, on A's objects; and B's own routes naming
    // A's user and key ids.
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/v1/tenants/{a}"), None),
        (
            Method::PATCH,
            format!("/v1/tenants/{a}"),
            Some(json!({"status": "suspended", "name": "pwned"})),
        ),
        (
            Method::PUT,
            format!("/v1/tenants/{a}/limits"),
            Some(json!({"requests_per_minute": 1})),
        ),
        (Method::GET, format!("/v1/tenants/{a}/users"), None),
        (
            Method::POST,
            format!("/v1/tenants/{a}/users"),
            Some(json!({"email": "intruder@b.test", "password": PASSWORD, "role": "tenant_admin"})),
        ),
        (
            Method::DELETE,
            format!("/v1/tenants/{a}/users/{}", w.a_user),
            None,
        ),
        (Method::GET, format!("/v1/tenants/{a}/api-keys"), None),
        (
            Method::POST,
            format!("/v1/tenants/{a}/api-keys"),
            Some(json!({"name": "stolen", "scopes": ["admin"]})),
        ),
        (
            Method::DELETE,
            format!("/v1/tenants/{a}/api-keys/{}", w.a_key),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/tenants/{b}/users/{}", w.a_user),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/tenants/{b}/api-keys/{}", w.a_key),
            None,
        ),
    ];
    for (who, bearer) in &w.b_credentials {
        for (method, path, body) in &cases {
            let res = call(&app, method.clone(), path, bearer, body.clone()).await;
            let status = res.status();
            let err: Value = res.json().await.expect("json error body");
            // B's developer on B's own routes is refused for its role (403) before any lookup;
            // everything naming tenant A is 404.
            let own_tenant_route = path.starts_with(&format!("/v1/tenants/{b}/"));
            if own_tenant_route && *who == "B developer token" {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{who}: {method} {path}: {err}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{who}: {method} {path}: {err}"
                );
                assert_eq!(err["error"]["code"], "not_found", "{who}: {method} {path}");
            }
        }
    }

    assert_eq!(
        tenant_rows(&app, a).await,
        before,
        "tenant A's rows changed"
    );
    let intruder: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'intruder@b.test'")
            .fetch_one(app.db.admin_pool())
            .await
            .expect("count");
    assert_eq!(intruder, 0, "no account was created");

    // Control: the same calls with B's admin on B's own objects do work, so the 404s above are
    // about the tenant, not a broken route.
    let (_, b_admin) = &w.b_credentials[0];
    let res = call(
        &app,
        Method::DELETE,
        &format!("/v1/tenants/{b}/api-keys/{}", w.b_key),
        b_admin,
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = call(
        &app,
        Method::DELETE,
        &format!("/v1/tenants/{b}/users/{}", w.b_user),
        b_admin,
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = call(
        &app,
        Method::GET,
        &format!("/v1/tenants/{b}"),
        b_admin,
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn tenant_b_sees_only_its_own_listings_and_limits() {
    let app = spawn_with_db().await;
    let w = world(&app).await;
    let (_, b_admin) = &w.b_credentials[0];
    for (path, data_key) in [
        (format!("/v1/tenants/{}/users", w.b), "email"),
        (format!("/v1/tenants/{}/api-keys", w.b), "name"),
    ] {
        let res = call(&app, Method::GET, &path, b_admin, None).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let body: Value = res.json().await.expect("json");
        let text = body.to_string();
        assert!(
            !text.contains(&w.a_user) && !text.contains(&w.a_key),
            "{path} leaks A: {text}"
        );
        assert!(
            body["data"]
                .as_array()
                .is_some_and(|d| d.iter().all(|x| x[data_key].is_string())),
            "{body}"
        );
    }
    let limits: Value = call(&app, Method::GET, "/v1/limits", b_admin, None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(limits["tenant_id"], w.b.to_string(), "{limits}");
    let res = call(&app, Method::GET, "/v1/tenants", b_admin, None).await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "listing all tenants is the platform's"
    );
}

#[tokio::test]
async fn inference_usage_is_counted_against_the_callers_tenant_only() {
    let app = spawn_with_model().await;
    let w = world(&app).await;
    let a_before = tenant_rows(&app, w.a).await;
    let b_key = app.key(w.b, &[Scope::Inference]).await;
    let body = json!({"model": "base", "prompt": "Hello", "max_tokens": 2, "temperature": 0});
    let res = call(&app, Method::POST, "/v1/completions", &b_key, Some(body)).await;
    assert_eq!(res.status(), StatusCode::OK);

    let usage: Value = call(&app, Method::GET, "/v1/limits", &b_key, None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(usage["tenant_id"], w.b.to_string());
    assert_eq!(usage["requests_this_month"], 1, "{usage}");
    assert_eq!(
        tenant_rows(&app, w.a).await,
        a_before,
        "tenant A's usage moved"
    );
    let a_admin = app.member(w.a, Role::TenantAdmin).await;
    let a_usage: Value = call(&app, Method::GET, "/v1/limits", &a_admin, None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(a_usage["requests_this_month"], 0, "{a_usage}");
    assert_eq!(a_usage["tokens_this_month"], 0, "{a_usage}");
}

/// Every text column of every table, as superuser.
async fn all_table_text(app: &TestApp) -> Vec<(String, String)> {
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            .fetch_all(app.db.admin_pool())
            .await
            .expect("tables");
    assert!(tables.len() >= 8, "{tables:?}");
    let mut out = Vec::new();
    for table in tables {
        let q = format!("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {table} t");
        let text: String = sqlx::query_scalar(sqlx::AssertSqlSafe(q))
            .fetch_one(app.db.admin_pool())
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        out.push((table, text));
    }
    out
}

#[tokio::test]
async fn no_table_holds_a_plaintext_password_key_or_refresh_token() {
    let app = spawn_with_db().await;
    let root = app.platform_admin().await;
    let tenant = created(
        call(
            &app,
            Method::POST,
            "/v1/tenants",
            &root,
            Some(json!({"slug": "secrets", "name": "Secrets"})),
        )
        .await,
        "tenant",
    )
    .await;
    let tid = tenant["id"].as_str().expect("id").to_owned();
    let password = "plaintext-canary-Pa55word-1234";
    created(
        call(
            &app,
            Method::POST,
            &format!("/v1/tenants/{tid}/users"),
            &root,
            Some(json!({"email": "canary@secrets.test", "password": password, "role": "tenant_admin"})),
        )
        .await,
        "user",
    )
    .await;
    let key = created(
        call(
            &app,
            Method::POST,
            &format!("/v1/tenants/{tid}/api-keys"),
            &root,
            Some(json!({"name": "canary"})),
        )
        .await,
        "key",
    )
    .await;
    let secret = key["secret"].as_str().expect("secret").to_owned();
    let prefix = key["api_key"]["prefix"]
        .as_str()
        .expect("prefix")
        .to_owned();
    let secret_part = secret
        .strip_prefix(&format!("{prefix}_"))
        .expect("key is prefix_secret")
        .to_owned();
    let login: Value = app
        .http
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "canary@secrets.test", "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let refresh = login["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    // Use the key once so any "last used" bookkeeping has run.
    let res = app
        .http
        .get(app.url("/v1/limits"))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);

    let tables = all_table_text(&app).await;
    let with_prefix = tables
        .iter()
        .filter(|(_, text)| text.contains(&prefix))
        .count();
    assert!(
        with_prefix >= 1,
        "control: the visible prefix is stored, so the scan reads the key table"
    );
    for (table, text) in &tables {
        for (what, needle) in [
            ("password", password),
            ("API key", secret.as_str()),
            ("API key secret part", secret_part.as_str()),
            ("refresh token", refresh.as_str()),
        ] {
            assert!(!text.contains(needle), "{table} holds the plaintext {what}");
        }
    }
}
