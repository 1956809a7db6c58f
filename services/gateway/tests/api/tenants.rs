//! Tenants and limits: platform-admin management, members' read access, isolation, bad input.

use enclave_domain::{Role, TenantId};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_with_db};

async fn create_tenant(app: &TestApp, admin: &str, slug: &str) -> Value {
    let res = app
        .http
        .post(app.url("/v1/tenants"))
        .bearer_auth(admin)
        .json(&json!({"slug": slug, "name": format!("{slug} Inc."), "limits": {"requests_per_minute": 100}}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::CREATED, "create {slug}");
    res.json().await.expect("json")
}

fn tenant_id(tenant: &Value) -> TenantId {
    TenantId::parse(tenant["id"].as_str().expect("id")).expect("uuid")
}

#[tokio::test]
async fn platform_admin_manages_tenants_in_json_and_xml() {
    let app = spawn_with_db().await;
    let admin = app.platform_admin().await;

    let acme = create_tenant(&app, &admin, "acme").await;
    assert_eq!(acme["slug"], "acme");
    assert_eq!(acme["status"], "active");
    assert_eq!(acme["limits"]["requests_per_minute"], 100);

    // XML in, XML out.
    let res = app
        .http
        .post(app.url("/v1/tenants"))
        .bearer_auth(&admin)
        .header("Content-Type", "application/xml")
        .header("Accept", "application/xml")
        .body("<create_tenant_request><slug>globex</slug><name>Globex &amp; Co</name></create_tenant_request>")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::CREATED);
    let xml = res.text().await.expect("body");
    assert!(
        xml.contains("<tenant>") && xml.contains("<slug>globex</slug>"),
        "{xml}"
    );
    assert!(xml.contains("<name>Globex &amp; Co</name>"), "{xml}");

    let list: Value = app
        .http
        .get(app.url("/v1/tenants?limit=10"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let slugs: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|t| t["slug"].as_str())
        .collect();
    assert_eq!(
        slugs,
        ["home", "acme", "globex"],
        "the harness's own tenant first, then creation order"
    );

    let res = app
        .http
        .put(app.url(&format!(
            "/v1/tenants/{}/limits",
            acme["id"].as_str().expect("id")
        )))
        .bearer_auth(&admin)
        .json(&json!({"tokens_per_minute": 5000, "monthly_token_budget": 1000000}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let updated: Value = res.json().await.expect("json");
    assert_eq!(
        updated["limits"],
        json!({"tokens_per_minute": 5000, "monthly_token_budget": 1000000})
    );
}

#[tokio::test]
async fn tenant_errors_are_typed() {
    let app = spawn_with_db().await;
    let admin = app.platform_admin().await;
    create_tenant(&app, &admin, "acme").await;
    // (method, path, body, expected status, code, field)
    let cases = [
        (
            "POST",
            "/v1/tenants".to_owned(),
            json!({"slug": "acme", "name": "Again"}),
            StatusCode::CONFLICT,
            "already_exists",
            Some("slug"),
        ),
        (
            "POST",
            "/v1/tenants".to_owned(),
            json!({"slug": "Bad Slug!", "name": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid_slug",
            Some("slug"),
        ),
        (
            "POST",
            "/v1/tenants".to_owned(),
            json!({"slug": "ok-slug"}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            None,
        ),
        (
            "GET",
            "/v1/tenants/not-a-uuid".to_owned(),
            Value::Null,
            StatusCode::BAD_REQUEST,
            "invalid_path_parameter",
            None,
        ),
        (
            "GET",
            format!("/v1/tenants/{}", TenantId::new()),
            Value::Null,
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            "GET",
            "/v1/tenants?limit=0".to_owned(),
            Value::Null,
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            Some("limit"),
        ),
        (
            "GET",
            "/v1/tenants?limit=abc".to_owned(),
            Value::Null,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            None,
        ),
        (
            "PUT",
            format!("/v1/tenants/{}/limits", TenantId::new()),
            json!({}),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
    ];
    for (method, path, body, status, code, field) in cases {
        let mut req = app
            .http
            .request(method.parse().expect("method"), app.url(&path))
            .bearer_auth(&admin);
        if !body.is_null() {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        assert_eq!(res.status(), status, "{method} {path} {body}");
        let err: Value = res.json().await.expect("json");
        assert_eq!(err["error"]["code"], code, "{method} {path}: {err}");
        if let Some(field) = field {
            assert_eq!(err["error"]["field"], field, "{method} {path}: {err}");
        }
    }
}

#[tokio::test]
async fn members_see_only_their_own_tenant() {
    let app = spawn_with_db().await;
    let admin = app.platform_admin().await;
    let a = create_tenant(&app, &admin, "tenant-a").await;
    let b = create_tenant(&app, &admin, "tenant-b").await;
    let a_admin = app.member(tenant_id(&a), Role::TenantAdmin).await;

    let own = app
        .http
        .get(app.url(&format!("/v1/tenants/{}", a["id"].as_str().expect("id"))))
        .bearer_auth(&a_admin)
        .send()
        .await
        .expect("request");
    assert_eq!(own.status(), StatusCode::OK);

    // Tenant A's admin on tenant B: not found, and B is unchanged.
    let b_path = format!("/v1/tenants/{}", b["id"].as_str().expect("id"));
    let res = app
        .http
        .get(app.url(&b_path))
        .bearer_auth(&a_admin)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .http
        .put(app.url(&format!("{b_path}/limits")))
        .bearer_auth(&a_admin)
        .json(&json!({"requests_per_minute": 1}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "another tenant's limits: as if absent"
    );
    let own_limits = app
        .http
        .put(app.url(&format!(
            "/v1/tenants/{}/limits",
            a["id"].as_str().expect("id")
        )))
        .bearer_auth(&a_admin)
        .json(&json!({"requests_per_minute": 1000000}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        own_limits.status(),
        StatusCode::FORBIDDEN,
        "limits are the platform's to set"
    );
    let b_now: Value = app
        .http
        .get(app.url(&b_path))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(b_now["limits"], b["limits"], "tenant B unchanged");

    // Platform routes refuse tenant members.
    for (method, path) in [("GET", "/v1/tenants"), ("POST", "/v1/tenants")] {
        let res = app
            .http
            .request(method.parse().expect("method"), app.url(path))
            .bearer_auth(&a_admin)
            .json(&json!({"slug": "evil", "name": "Evil"}))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{method} {path}");
        let err: Value = res.json().await.expect("json");
        assert_eq!(err["error"]["code"], "platform_admin_required");
    }

    // A member reads its tenant's limits and usage.
    let limits: Value = app
        .http
        .get(app.url("/v1/limits"))
        .bearer_auth(&a_admin)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(limits["tenant_id"], a["id"]);
    assert_eq!(limits["limits"]["requests_per_minute"], 100);
    assert_eq!(limits["tokens_this_month"], 0);
}
