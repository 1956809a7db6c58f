//! Per-tenant audit settings through the real server: roles and tenant isolation of
//! `/v1/audit/settings`, typed 400s for bad values, the change itself audited, and PII masked
//! in a `pii_masked` tenant's stored records (raw tenants unchanged) with the chain verifying.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use enclave_domain::{Role, TenantId};

use crate::support::{TestApp, call, json_of, spawn_app, spawn_with_model};

const EMAIL: &str = "li.lei@example.com";
const PHONE: &str = "+44 20 7946 0958";

/// Every stored record of `tenant`'s chain, read as the schema owner: (record, whole row as
/// text), so a test can look for PII anywhere in what PostgreSQL holds.
async fn stored_rows(app: &TestApp, tenant: TenantId) -> Vec<(Value, String)> {
    let mut tx = app.db().owner_pool().begin().await.expect("tx");
    sqlx::query("SELECT set_config('enclave.rls_bypass', 'on', true)")
        .execute(&mut *tx)
        .await
        .expect("bypass");
    let rows: Vec<(Value, String)> = sqlx::query_as(
        "SELECT record, e::text FROM audit_events e WHERE tenant_id = $1 ORDER BY seq",
    )
    .bind(tenant.as_uuid())
    .fetch_all(&mut *tx)
    .await
    .expect("audit rows");
    tx.commit().await.expect("commit");
    rows
}

async fn put_settings(app: &TestApp, bearer: &str, query: &str, body: Value) -> reqwest::Response {
    call(
        app,
        Method::PUT,
        &format!("/v1/audit/settings{query}"),
        bearer,
        Some(body),
    )
    .await
}

async fn get_settings(app: &TestApp, bearer: &str, query: &str) -> reqwest::Response {
    call(
        app,
        Method::GET,
        &format!("/v1/audit/settings{query}"),
        bearer,
        None,
    )
    .await
}

async fn verifies(app: &TestApp, tenant: TenantId) {
    let report = enclave_audit::verify_db(
        app.db().store().pool(),
        &tenant,
        enclave_audit::SeqRange::default(),
        &[],
    )
    .await
    .expect("verify");
    assert!(
        report.is_ok(),
        "chain of {tenant} does not verify: {report}"
    );
}

#[tokio::test]
async fn settings_roles_isolation_bad_values_and_the_change_is_audited() {
    let app = spawn_app().await;
    let (a, b) = (
        app.tenant("settings-a").await,
        app.tenant("settings-b").await,
    );
    let admin_a = app.member(a, Role::TenantAdmin).await;
    let admin_b = app.member(b, Role::TenantAdmin).await;
    let developer_a = app.member(a, Role::Developer).await;
    let auditor_a = app.member(a, Role::Auditor).await;
    let root = app.platform_admin().await;

    // Defaults until set.
    let got = json_of(
        get_settings(&app, &admin_a, "").await,
        StatusCode::OK,
        "default",
    )
    .await;
    assert_eq!(
        (got["redaction"].clone(), got["retention_days"].clone()),
        (json!("raw"), Value::Null)
    );

    // Developers neither read nor change; auditors read but do not change.
    let masked = json!({"redaction": "pii_masked", "retention_days": 30});
    for (what, res) in [
        ("developer get", get_settings(&app, &developer_a, "").await),
        (
            "developer put",
            put_settings(&app, &developer_a, "", masked.clone()).await,
        ),
        (
            "auditor put",
            put_settings(&app, &auditor_a, "", masked.clone()).await,
        ),
    ] {
        json_of(res, StatusCode::FORBIDDEN, what).await;
    }
    let set = json_of(
        put_settings(&app, &admin_a, "", masked.clone()).await,
        StatusCode::OK,
        "admin put",
    )
    .await;
    assert_eq!(
        (set["redaction"].clone(), set["retention_days"].clone()),
        (json!("pii_masked"), json!(30))
    );
    let read = json_of(
        get_settings(&app, &auditor_a, "").await,
        StatusCode::OK,
        "auditor get",
    )
    .await;
    assert_eq!(read["redaction"], "pii_masked");

    // Tenant B sees and changes only its own.
    let other = format!("?tenant={a}");
    json_of(
        get_settings(&app, &admin_b, &other).await,
        StatusCode::NOT_FOUND,
        "B reads A",
    )
    .await;
    json_of(
        put_settings(&app, &admin_b, &other, json!({"redaction": "raw"})).await,
        StatusCode::NOT_FOUND,
        "B changes A",
    )
    .await;
    let own_b = json_of(
        get_settings(&app, &admin_b, "").await,
        StatusCode::OK,
        "B own",
    )
    .await;
    assert_eq!(own_b["redaction"], "raw");

    // A platform admin addresses any existing tenant.
    let got = json_of(
        get_settings(&app, &root, &other).await,
        StatusCode::OK,
        "root reads A",
    )
    .await;
    assert_eq!(got["retention_days"], 30);
    let b_query = format!("?tenant={b}");
    let set_b = json_of(
        put_settings(
            &app,
            &root,
            &b_query,
            json!({"redaction": "raw", "retention_days": 400}),
        )
        .await,
        StatusCode::OK,
        "root sets B",
    )
    .await;
    assert_eq!(set_b["retention_days"], 400);
    let missing = format!("?tenant={}", uuid::Uuid::now_v7());
    json_of(
        get_settings(&app, &root, &missing).await,
        StatusCode::NOT_FOUND,
        "no such tenant",
    )
    .await;

    // Bad values: typed 400s naming the field; nothing changes.
    let cases = [
        (json!({"redaction": "masked"}), "unknown_redaction"),
        (
            json!({"redaction": "raw", "retention_days": 0}),
            "invalid_retention_days",
        ),
        (
            json!({"redaction": "raw", "retention_days": -7}),
            "invalid_retention_days",
        ),
        (
            json!({"redaction": "raw", "retention_days": 36501}),
            "invalid_retention_days",
        ),
    ];
    for (body, code) in cases {
        let res = put_settings(&app, &admin_a, "", body.clone()).await;
        let err = json_of(res, StatusCode::BAD_REQUEST, &body.to_string()).await;
        assert_eq!(err["error"]["code"], code, "{body}: {err}");
    }
    json_of(
        put_settings(&app, &admin_a, "", json!({"retention_days": 5})).await,
        StatusCode::BAD_REQUEST,
        "no redaction",
    )
    .await;
    let still = json_of(
        get_settings(&app, &admin_a, "").await,
        StatusCode::OK,
        "unchanged",
    )
    .await;
    assert_eq!(
        (still["redaction"].clone(), still["retention_days"].clone()),
        (json!("pii_masked"), json!(30))
    );

    // Each change is in the tenant's own chain with before and after values.
    let changes = |rows: Vec<(Value, String)>| -> Vec<Value> {
        rows.into_iter()
            .map(|(r, _)| r)
            .filter(|r| r["action"] == "audit.settings.update" && r["status_code"] == 200)
            .collect()
    };
    let a_changes = changes(stored_rows(&app, a).await);
    assert_eq!(a_changes.len(), 1, "{a_changes:#?}");
    assert_eq!(a_changes[0]["change"]["before"]["redaction"], "raw");
    assert_eq!(a_changes[0]["change"]["after"]["redaction"], "pii_masked");
    assert_eq!(a_changes[0]["change"]["after"]["retention_days"], 30);
    let b_changes = changes(stored_rows(&app, b).await);
    assert_eq!(
        b_changes.len(),
        1,
        "root's change of B is in B's chain: {b_changes:#?}"
    );
    assert_eq!(b_changes[0]["change"]["after"]["retention_days"], 400);
    verifies(&app, a).await;
    verifies(&app, b).await;
}

fn chat(stream: bool) -> Value {
    json!({
        "model": "base",
        "messages": [
            {"role": "user", "content": format!("Repeat exactly: my e-mail is {EMAIL} and my phone is {PHONE}")}
        ],
        "max_tokens": 24,
        "temperature": 0,
        "stream": stream,
    })
}

#[tokio::test]
async fn a_masked_tenant_stores_markers_instead_of_pii_and_a_raw_tenant_is_unchanged() {
    let app = spawn_with_model().await;
    let (masked, raw) = (app.tenant("masked-co").await, app.tenant("raw-co").await);
    let (admin_m, admin_r) = (
        app.member(masked, Role::TenantAdmin).await,
        app.member(raw, Role::TenantAdmin).await,
    );
    json_of(
        put_settings(&app, &admin_m, "", json!({"redaction": "pii_masked"})).await,
        StatusCode::OK,
        "mask",
    )
    .await;

    let mut answers = Vec::new();
    for (tenant, admin, who) in [(masked, &admin_m, "m"), (raw, &admin_r, "r")] {
        // A whole answer, a streamed one, and an admin change whose values hold an e-mail.
        let res = call(
            &app,
            Method::POST,
            "/v1/chat/completions",
            admin,
            Some(chat(false)),
        )
        .await;
        let whole = json_of(res, StatusCode::OK, "whole chat").await;
        let res = call(
            &app,
            Method::POST,
            "/v1/chat/completions",
            admin,
            Some(chat(true)),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        let sse = res.text().await.expect("sse");
        assert!(sse.ends_with("data: [DONE]\n\n"), "{sse}");
        let user = json!({"email": format!("{who}.{EMAIL}"), "password": "correct horse battery staple", "role": "developer"});
        let res = call(
            &app,
            Method::POST,
            &format!("/v1/tenants/{tenant}/users"),
            admin,
            Some(user),
        )
        .await;
        let created = json_of(res, StatusCode::CREATED, "create user").await;
        // The client gets the PII it is owed, masked tenant or not.
        assert_eq!(created["email"], format!("{who}.{EMAIL}"));
        answers.push(whole);
    }

    let rows = stored_rows(&app, masked).await;
    let calls: Vec<&Value> = rows
        .iter()
        .map(|(r, _)| r)
        .filter(|r| {
            r["action"] == "chat.completions.create" || r["action"] == "tenants.users.create"
        })
        .collect();
    assert_eq!(
        calls.len(),
        4,
        "whole, stream started + completed, user: {calls:#?}"
    );
    for (record, row) in &rows {
        for pii in [EMAIL, PHONE] {
            assert!(
                !row.contains(pii),
                "raw PII {pii:?} stored for the masked tenant: {row}"
            );
        }
        if record["action"] != "audit.settings.update" {
            assert_eq!(record["redaction"], "pii_masked", "{record}");
        }
    }
    for r in &calls {
        let text = r["request"].to_string();
        assert!(text.contains("[PII:email]"), "{text}");
        if r["action"] == "chat.completions.create" {
            assert!(text.contains("[PII:phone_intl]"), "{text}");
        }
    }
    let user_rec = calls
        .iter()
        .find(|r| r["action"] == "tenants.users.create")
        .expect("user record");
    assert_eq!(
        user_rec["response"]["body"]["email"], "[PII:email]",
        "{user_rec}"
    );
    assert_eq!(
        user_rec["change"]["after"]["email"], "[PII:email]",
        "{user_rec}"
    );
    // Whatever the model echoed of the prompt is masked in the response too.
    let generated = answers[0]["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    let whole_rec = calls
        .iter()
        .find(|r| r["action"] == "chat.completions.create" && r["phase"] == "single")
        .expect("whole");
    if generated.contains(EMAIL) {
        assert!(
            whole_rec["response"]["body"]
                .to_string()
                .contains("[PII:email]"),
            "{whole_rec}"
        );
    }
    verifies(&app, masked).await;

    // The raw tenant's records keep the text as sent and say so.
    let raw_rows = stored_rows(&app, raw).await;
    let raw_chat = raw_rows
        .iter()
        .map(|(r, _)| r)
        .find(|r| r["action"] == "chat.completions.create" && r["phase"] == "single")
        .expect("raw chat record");
    assert_eq!(raw_chat["redaction"], "raw");
    assert!(
        raw_chat["request"].to_string().contains(EMAIL),
        "{raw_chat}"
    );
    verifies(&app, raw).await;
}

#[tokio::test]
async fn uploads_and_binary_bodies_are_recorded_as_summaries() {
    use sha2::{Digest, Sha256};
    let app = spawn_app().await;
    let tenant = app.tenant("uploader").await;
    let admin = app.member(tenant, Role::TenantAdmin).await;
    // Not a valid adapter (and no model here: refused either way), but recorded like every call.
    let weights: Vec<u8> = (0..=255u8).cycle().take(64 * 1024).collect();
    let mut body = Vec::new();
    body.extend_from_slice(
        b"--XB\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nsupport\r\n",
    );
    body.extend_from_slice(b"--XB\r\nContent-Disposition: form-data; name=\"weights\"; filename=\"adapter_model.safetensors\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    body.extend_from_slice(&weights);
    body.extend_from_slice(b"\r\n--XB--\r\n");
    let res = app
        .http
        .post(app.url("/v1/adapters"))
        .bearer_auth(&admin)
        .header("content-type", "multipart/form-data; boundary=XB")
        .body(body.clone())
        .send()
        .await
        .expect("upload");
    assert!(!res.status().is_success(), "{}", res.status());
    let res = app
        .http
        .post(app.url("/v1/adapters"))
        .bearer_auth(&admin)
        .header("content-type", "application/octet-stream")
        .body(weights.clone())
        .send()
        .await
        .expect("binary");
    assert!(!res.status().is_success(), "{}", res.status());

    let rows = stored_rows(&app, tenant).await;
    let bodies: Vec<&Value> = rows
        .iter()
        .map(|(r, _)| r)
        .filter(|r| r["action"] == "adapters.create")
        .map(|r| &r["request"]["body"])
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    let hex = |b: &[u8]| -> String {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let form = bodies[0];
    assert_eq!(form["summary"], "multipart", "{form}");
    assert_eq!(form["size"], body.len());
    assert_eq!(form["sha256"], hex(&body));
    assert_eq!(form["parts"][0]["value"], "support");
    assert_eq!(form["parts"][1]["filename"], "adapter_model.safetensors");
    assert_eq!(form["parts"][1]["size"], weights.len());
    assert_eq!(form["parts"][1]["sha256"], hex(&weights));
    assert!(
        form.to_string().len() < 2048,
        "a summary, not the bytes: {form}"
    );
    let binary = bodies[1];
    assert_eq!(
        (binary["summary"].as_str(), binary["size"].as_u64()),
        (Some("binary"), Some(weights.len() as u64))
    );
    assert_eq!(binary["sha256"], hex(&weights));
    verifies(&app, tenant).await;
}
