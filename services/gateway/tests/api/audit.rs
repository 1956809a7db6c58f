//! The audit trail through the real server: one final record per call (inference streamed and
//! not, failed, refused, cancelled, administrative), the read routes and their roles, and a
//! streamed export that verifies offline.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use enclave_domain::{Role, Scope};

use crate::support::{TestApp, spawn_app, spawn_with_model};

fn chat_body(stream: bool, max_tokens: u32) -> Value {
    json!({
        "model": "base",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Name three colours."}
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    })
}

fn rid() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Every stored record of the app's chains (read as the schema owner), by request id.
async fn records_by_request(app: &TestApp) -> HashMap<String, Vec<Value>> {
    let mut tx = app.db().owner_pool().begin().await.expect("tx");
    sqlx::query("SELECT set_config('enclave.rls_bypass', 'on', true)")
        .execute(&mut *tx)
        .await
        .expect("bypass");
    let rows: Vec<(Value,)> =
        sqlx::query_as("SELECT record FROM audit_events ORDER BY tenant_id, seq")
            .fetch_all(&mut *tx)
            .await
            .expect("audit rows");
    tx.commit().await.expect("commit");
    let mut by: HashMap<String, Vec<Value>> = HashMap::new();
    for (r,) in rows {
        if let Some(id) = r["request_id"].as_str() {
            by.entry(id.to_owned()).or_default().push(r);
        }
    }
    by
}

fn finals(records: &[Value]) -> Vec<&Value> {
    records.iter().filter(|r| r["phase"] != "started").collect()
}

/// Waits (bounded) until `id` has a final record: a disconnected stream's record is written in
/// the background after the connection is gone.
async fn wait_for_final(app: &TestApp, id: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let recs = records_by_request(app).await.remove(id).unwrap_or_default();
        if !finals(&recs).is_empty() || tokio::time::Instant::now() > deadline {
            return recs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn exactly_one_final<'a>(by: &'a HashMap<String, Vec<Value>>, id: &str, what: &str) -> &'a Value {
    let recs = by
        .get(id)
        .unwrap_or_else(|| panic!("{what}: no record for request {id}"));
    let f = finals(recs);
    assert_eq!(
        f.len(),
        1,
        "{what}: want exactly one final record, got {recs:#?}"
    );
    f[0]
}

#[tokio::test]
async fn every_call_has_exactly_one_final_record() {
    let app = spawn_with_model().await;
    let key = app.inference_token();
    let post = |id: &str, body: &Value, bearer: Option<&str>| {
        let mut r = app
            .http
            .post(app.url("/v1/chat/completions"))
            .header("x-request-id", id)
            .json(body);
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        r.send()
    };

    // Whole answer.
    let whole = rid();
    let res = post(&whole, &chat_body(false, 8), Some(&key))
        .await
        .expect("whole");
    assert_eq!(res.status(), StatusCode::OK);
    let answer: Value = res.json().await.expect("json");
    // Streamed to its end.
    let streamed = rid();
    let res = post(&streamed, &chat_body(true, 8), Some(&key))
        .await
        .expect("stream");
    let streamed_text = res.text().await.expect("sse");
    assert!(
        streamed_text.ends_with("data: [DONE]\n\n"),
        "{streamed_text}"
    );
    // Legacy completion through its own route.
    let legacy = rid();
    let res = app
        .http
        .post(app.url("/v1/completions"))
        .header("x-request-id", &legacy)
        .bearer_auth(&key)
        .json(&json!({"model": "base", "prompt": "Once upon a time", "max_tokens": 4}))
        .send()
        .await
        .expect("legacy");
    assert_eq!(res.status(), StatusCode::OK);
    // Failed: bad parameter (400), unknown model (404), no credentials (401).
    let bad = rid();
    let mut body = chat_body(false, 8);
    body["temperature"] = json!(-3);
    assert_eq!(
        post(&bad, &body, Some(&key)).await.expect("bad").status(),
        StatusCode::BAD_REQUEST
    );
    let unknown = rid();
    let mut body = chat_body(false, 8);
    body["model"] = json!("no-such-model");
    assert_eq!(
        post(&unknown, &body, Some(&key))
            .await
            .expect("404")
            .status(),
        StatusCode::NOT_FOUND
    );
    let anonymous = rid();
    assert_eq!(
        post(&anonymous, &chat_body(false, 8), None)
            .await
            .expect("401")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // Cancelled: the client reads one chunk and goes away. The end-of-sequence tokens are banned
    // so the answer cannot finish on its own before the server notices the disconnect (a short
    // natural answer can fit in the socket buffers of a loaded machine and complete).
    let cancelled = rid();
    let mut body = chat_body(true, 2000);
    body["logit_bias"] = json!({"0": -100, "2": -100});
    let res = post(&cancelled, &body, Some(&key)).await.expect("cancel");
    let mut chunks = res.bytes_stream();
    assert!(chunks.next().await.is_some());
    drop(chunks);
    // Administrative: a platform admin renames the tenant; a tenant admin creates and revokes a key.
    let root = app.platform_admin().await;
    let rename = rid();
    let path = format!("/v1/tenants/{}", app.home_tenant);
    let res = app
        .http
        .patch(app.url(&path))
        .header("x-request-id", &rename)
        .bearer_auth(&root)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status(), StatusCode::OK);
    let admin = app.member(app.home_tenant, Role::TenantAdmin).await;
    let create_key = rid();
    let res = app
        .http
        .post(app.url(&format!("/v1/tenants/{}/api-keys", app.home_tenant)))
        .header("x-request-id", &create_key)
        .bearer_auth(&admin)
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .expect("create key");
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.expect("json");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let key_id = created["api_key"]["id"].as_str().expect("id").to_owned();
    let revoke = rid();
    let res = app
        .http
        .delete(app.url(&format!(
            "/v1/tenants/{}/api-keys/{key_id}",
            app.home_tenant
        )))
        .header("x-request-id", &revoke)
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke");
    assert!(res.status().is_success(), "{}", res.status());

    wait_for_final(&app, &cancelled).await;
    let by = records_by_request(&app).await;

    let r = exactly_one_final(&by, &whole, "whole answer");
    assert_eq!(r["action"], "chat.completions.create");
    assert_eq!(r["phase"], "single");
    assert_eq!(r["status_code"], 200);
    assert_eq!(r["tenant"], app.home_tenant.to_string());
    assert_eq!(r["actor"]["kind"], "api_key");
    assert_eq!(
        r["request"]["body"]["messages"][1]["content"],
        "Name three colours."
    );
    assert_eq!(r["request"]["body"]["max_tokens"], 8);
    assert_eq!(
        r["response"]["body"]["choices"][0]["message"]["content"],
        answer["choices"][0]["message"]["content"]
    );
    assert_eq!(
        r["response"]["finish_reason"],
        answer["choices"][0]["finish_reason"]
    );
    assert_eq!(
        r["response"]["usage"]["total_tokens"],
        answer["usage"]["total_tokens"]
    );
    assert_eq!(r["model"], app.model_id());
    assert_eq!(r["client_addr"], "127.0.0.1");

    let r = exactly_one_final(&by, &streamed, "stream");
    assert_eq!(r["phase"], "completed");
    assert_eq!(
        by[&streamed].len(),
        2,
        "started + completed: {:#?}",
        by[&streamed]
    );
    let sent: String = streamed_text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(!sent.is_empty());
    assert_eq!(
        r["response"]["body"],
        json!(sent),
        "the record holds the streamed text"
    );
    assert!(r["response"]["finish_reason"].is_string(), "{r}");
    assert_eq!(r["request"]["body"]["stream"], true);

    let r = exactly_one_final(&by, &legacy, "legacy completion");
    assert_eq!(r["action"], "completions.create");
    assert_eq!(r["request"]["body"]["prompt"], "Once upon a time");

    for (id, status, what) in [
        (&bad, 400, "bad parameter"),
        (&unknown, 404, "unknown model"),
        (&anonymous, 401, "no credentials"),
    ] {
        let r = exactly_one_final(&by, id, what);
        assert_eq!(r["status_code"], status, "{what}: {r}");
        assert!(
            r["response"]["body"]["error"]["code"].is_string(),
            "{what}: the error answer is recorded: {r}"
        );
    }
    assert_eq!(
        exactly_one_final(&by, &anonymous, "anonymous")["actor"]["kind"],
        "anonymous"
    );

    let r = exactly_one_final(&by, &cancelled, "cancelled stream");
    assert_eq!(r["phase"], "aborted");
    assert_eq!(r["status_code"], 499);

    let r = exactly_one_final(&by, &rename, "tenant rename");
    assert_eq!(r["action"], "tenants.update");
    assert_eq!(
        r["tenant"],
        app.home_tenant.to_string(),
        "recorded in the tenant's own chain"
    );
    assert_eq!(r["change"]["before"]["name"], "home");
    assert_eq!(r["change"]["after"]["name"], "Renamed");

    let r = exactly_one_final(&by, &create_key, "key creation");
    assert_eq!(r["action"], "tenants.api_keys.create");
    assert_eq!(
        r["resource"],
        format!("tenants/{}/api-keys/{key_id}", app.home_tenant)
    );
    assert_eq!(r["change"]["after"]["api_key"]["id"], key_id);
    assert!(
        !r.to_string().contains(&secret),
        "the new key's secret is not in the trail"
    );

    let r = exactly_one_final(&by, &revoke, "key revocation");
    assert_eq!(r["action"], "tenants.api_keys.delete");

    // And the chains verify.
    let reports = enclave_audit::ops::verify_chains(app.db().pool(), None, Default::default(), &[])
        .await
        .expect("verify");
    assert!(reports.iter().all(|r| r.is_ok()), "{reports:#?}");
}

#[tokio::test]
async fn audit_routes_show_each_role_its_own_tenant() {
    let app = spawn_app().await;
    let other = app.tenant("other").await;
    let auditor = app.audit_only_key();
    let developer = app.member(app.home_tenant, Role::Developer).await;
    let other_auditor = app.key(other, &[Scope::AuditRead]).await;
    let root = app.platform_admin().await;
    // Something to find in each tenant.
    for token in [&developer, &other_auditor] {
        app.http
            .get(app.url("/v1/models"))
            .bearer_auth(token)
            .send()
            .await
            .expect("models");
    }
    let get = |path: String, token: String| {
        let http = app.http.clone();
        let url = app.url(&path);
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
        }
    };

    let res = get(
        "/v1/audit/events?action=models.list".into(),
        auditor.clone(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page: Value = res.json().await.expect("json");
    let data = page["data"].as_array().expect("data");
    assert!(!data.is_empty(), "{page}");
    assert!(
        data.iter()
            .all(|e| e["record"]["tenant"] == app.home_tenant.to_string()),
        "{page}"
    );

    let res = get("/v1/audit/events".into(), developer.clone()).await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "developers read no audit records"
    );
    let res = get(format!("/v1/audit/events?tenant={other}"), auditor.clone()).await;
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "another tenant's trail is not there"
    );
    let res = get(
        format!("/v1/audit/export?tenant={other}&from=2020-01-01&to=2100-01-01"),
        auditor.clone(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = get(
        "/v1/audit/export?from=2020-01-01&to=2100-01-01".into(),
        developer.clone(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = get(
        format!("/v1/audit/events?tenant={other}&action=models.list"),
        root.clone(),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a platform admin reads any tenant"
    );
    let page: Value = res.json().await.expect("json");
    assert!(!page["data"].as_array().expect("data").is_empty());

    // Pagination: a cursor continues where the page ended, without repeats.
    let first: Value = get("/v1/audit/events?limit=1".into(), auditor.clone())
        .await
        .json()
        .await
        .expect("json");
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more than one record")
        .to_owned();
    let second: Value = get(
        format!("/v1/audit/events?limit=1&cursor={cursor}"),
        auditor.clone(),
    )
    .await
    .json()
    .await
    .expect("json");
    assert!(
        second["data"][0]["seq"].as_u64() < first["data"][0]["seq"].as_u64(),
        "{first} {second}"
    );

    // Bad input is typed.
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("cursor=zz", "invalid_cursor"),
        ("from=yesterday", "invalid_time"),
        ("q=a%00b", "invalid_q"),
        ("action=%00", "invalid_action"),
    ] {
        let res = get(format!("/v1/audit/events?{query}"), auditor.clone()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
    }
}

#[tokio::test]
async fn export_streams_a_file_that_verifies_offline() {
    let app = spawn_app().await;
    let auditor = app.audit_only_key();
    for _ in 0..5 {
        app.http
            .get(app.url("/v1/models"))
            .bearer_auth(&auditor)
            .send()
            .await
            .expect("models");
    }
    let dir = tempfile::tempdir().expect("dir");
    let public = app
        .server
        .state()
        .audit_log()
        .expect("audit")
        .signing_key()
        .public();
    for format in ["jsonl", "csv", "xml"] {
        let res = app
            .http
            .get(app.url(&format!(
                "/v1/audit/export?from=2020-01-01&to=2100-01-01&format={format}"
            )))
            .bearer_auth(&auditor)
            .send()
            .await
            .expect("export");
        assert_eq!(res.status(), StatusCode::OK, "{format}");
        let id = res.headers()["x-audit-export-id"]
            .to_str()
            .expect("id")
            .to_owned();
        let bytes = res.bytes().await.expect("body");
        let file = dir.path().join(format!("export.{format}"));
        std::fs::write(&file, &bytes).expect("write");
        let res = app
            .http
            .get(app.url(&format!("/v1/audit/exports/{id}/manifest")))
            .bearer_auth(&auditor)
            .send()
            .await
            .expect("manifest");
        assert_eq!(res.status(), StatusCode::OK, "{format}");
        let manifest: Value = res.json().await.expect("json");
        assert!(
            manifest["count"].as_u64().is_some_and(|c| c >= 5),
            "{manifest}"
        );
        let manifest_path = dir.path().join(format!("export.{format}.manifest.json"));
        std::fs::write(&manifest_path, manifest.to_string()).expect("write");
        let report = enclave_audit::ops::verify_export_file(&file, Some(&manifest_path), &public)
            .expect("verify");
        assert!(report.is_ok(), "{format}: {report}");
        // A changed byte is found.
        let mut tampered = bytes.to_vec();
        let at = tampered
            .iter()
            .position(|&b| b == b'm')
            .expect("a byte to change");
        tampered[at] = b'M';
        std::fs::write(&file, &tampered).expect("write");
        let report = enclave_audit::ops::verify_export_file(&file, Some(&manifest_path), &public);
        assert!(
            report.map_or(true, |r| !r.is_ok()),
            "{format}: tampering not detected"
        );
    }
    // The manifest of another tenant's export is not there for this tenant.
    let other = app.tenant("other").await;
    let other_auditor = app.key(other, &[Scope::AuditRead]).await;
    let res = app
        .http
        .get(app.url("/v1/audit/export?from=2020-01-01&to=2100-01-01"))
        .bearer_auth(&other_auditor)
        .send()
        .await
        .expect("export");
    let id = res.headers()["x-audit-export-id"]
        .to_str()
        .expect("id")
        .to_owned();
    res.bytes().await.expect("body");
    let res = app
        .http
        .get(app.url(&format!("/v1/audit/exports/{id}/manifest")))
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("manifest");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
