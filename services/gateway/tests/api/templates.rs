//! Tenant output templates over HTTP: create/list/get numbered immutable versions, typed
//! refusals that store nothing, sandboxed renders (fuel and output caps), chat answers rendered
//! by a template on the demo model with raw JSON and rendered text in the audit record, API-key
//! default formats, and tenant isolation.

use enclave_auth::NewApiKeyRequest;
use enclave_domain::{Scope, Scopes, TenantId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app, spawn_with_model};

pub(crate) const CSV: &str = "name,age\n{% for p in rows %}{{ p.name }},{{ p.age }}\n{% endfor %}";

pub(crate) fn people_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"rows": {
            "type": "array", "minItems": 1, "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z]{1,10}$"},
                    "age": {"type": "integer", "minimum": 0, "maximum": 150}
                },
                "required": ["name", "age"],
                "additionalProperties": false
            }
        }},
        "required": ["rows"],
        "additionalProperties": false
    })
}

const SCOPES: [Scope; 3] = [Scope::Inference, Scope::PoliciesRead, Scope::PoliciesWrite];

/// A tenant and a key of it allowed to manage templates and chat: (tenant, key id, key text).
pub(crate) async fn tenant_key(app: &TestApp, slug: &str) -> (TenantId, uuid::Uuid, String) {
    let tenant = app.tenant(slug).await;
    let created = app
        .auth
        .create_api_key(
            &tenant,
            NewApiKeyRequest {
                name: "templates".to_owned(),
                scopes: Scopes::from_iter(SCOPES),
                expires_at: None,
                created_by: None,
                requests_per_minute: None,
                tokens_per_minute: None,
            },
        )
        .await
        .expect("api key");
    (tenant, *created.record.id.as_uuid(), created.key)
}

pub(crate) async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(crate) async fn create(
    app: &TestApp,
    key: &str,
    name: &str,
    schema: Value,
    template: &str,
) -> (StatusCode, Value) {
    let body = json!({"name": name, "schema": schema, "template": template});
    call(app, Method::POST, "/v1/templates", key, Some(body)).await
}

fn chat(format: Option<Value>, stream: bool) -> Value {
    let mut body = json!({
        "model": "base",
        "messages": [
            {"role": "system", "content": "You list people as JSON."},
            {"role": "user", "content": "List Ada who is 36 and Bob who is 41."}
        ],
        "max_tokens": 96,
        "temperature": 0,
        "stream": stream,
    });
    if let Some(f) = format {
        body["response_format"] = f;
    }
    body
}

fn template_format(id: &str) -> Value {
    json!({"type": "template", "template": {"id": id}})
}

pub(crate) async fn stored_versions(app: &TestApp) -> i64 {
    let mut tx = app.db().owner_pool().begin().await.expect("tx");
    sqlx::query("SELECT set_config('enclave.rls_bypass', 'on', true)")
        .execute(&mut *tx)
        .await
        .expect("bypass");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM output_template_versions")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    tx.commit().await.expect("commit");
    n
}

/// Rows of a rendered CSV answer: header `name,age`, then `name,age` lines.
fn assert_csv(text: &str) -> usize {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("name,age"), "{text:?}");
    let rows: Vec<&str> = lines.collect();
    assert!((1..=3).contains(&rows.len()), "{text:?}");
    for row in &rows {
        let (name, age) = row
            .split_once(',')
            .unwrap_or_else(|| panic!("{row:?} in {text:?}"));
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphabetic()),
            "{text:?}"
        );
        assert!(age.parse::<u8>().is_ok_and(|a| a <= 150), "{text:?}");
    }
    rows.len()
}

#[tokio::test]
async fn versions_are_numbered_immutable_and_bad_input_stores_nothing() {
    let app = spawn_with_model().await;
    let (_, _, key) = tenant_key(&app, "acme").await;
    let (s, v1) = create(&app, &key, "people-csv", people_schema(), CSV).await;
    assert_eq!(s, StatusCode::CREATED, "{v1}");
    assert_eq!(
        (v1["version"].as_u64(), v1["id"].as_str()),
        (Some(1), Some("people-csv@v1"))
    );
    let (s, v2) = create(
        &app,
        &key,
        "people-csv",
        people_schema(),
        "{{ rows | length }}",
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v2}");
    assert_eq!(v2["version"], 2);
    let (_, latest) = call(&app, Method::GET, "/v1/templates/people-csv", &key, None).await;
    assert_eq!(
        (latest["version"].as_u64(), latest["active"].as_bool()),
        (Some(2), Some(true))
    );
    let (s, first) = call(
        &app,
        Method::GET,
        "/v1/templates/people-csv/versions/1",
        &key,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (first["template"].as_str(), first["active"].as_bool()),
        (Some(CSV), Some(false))
    );
    let (_, list) = call(&app, Method::GET, "/v1/templates", &key, None).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2), "{list}");
    // Immutable even for the schema owner past RLS: the trigger refuses updates.
    let mut tx = app.db().owner_pool().begin().await.expect("tx");
    sqlx::query("SELECT set_config('enclave.rls_bypass', 'on', true)")
        .execute(&mut *tx)
        .await
        .expect("bypass");
    let err = sqlx::query("UPDATE output_template_versions SET template = 'x'")
        .execute(&mut *tx)
        .await
        .expect_err("versions are immutable");
    assert!(err.to_string().contains("immutable"), "{err}");
    drop(tx);

    let before = stored_versions(&app).await;
    let cases = [
        (
            "bad",
            people_schema(),
            "{% for p in rows %}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_template",
        ),
        (
            "bad",
            json!({"type": "object", "properties": {"a": {"type": "strin"}}}),
            CSV,
            StatusCode::BAD_REQUEST,
            "invalid_json_schema",
        ),
        (
            "bad",
            json!(3),
            CSV,
            StatusCode::BAD_REQUEST,
            "invalid_json_schema",
        ),
        (
            "Bad Name",
            people_schema(),
            CSV,
            StatusCode::BAD_REQUEST,
            "invalid_template_name",
        ),
        (
            "bad",
            people_schema(),
            "",
            StatusCode::BAD_REQUEST,
            "invalid_template",
        ),
    ];
    for (name, schema, template, status, code) in cases {
        let (s, body) = create(&app, &key, name, schema.clone(), template).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{schema} {template:?}: {body}"
        );
    }
    assert_eq!(
        stored_versions(&app).await,
        before,
        "refusals store nothing"
    );
    let (s, _) = call(&app, Method::GET, "/v1/templates/nope", &key, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn renders_are_sandboxed_and_bounded() {
    let app = spawn_app().await;
    let (_, _, key) = tenant_key(&app, "acme").await;
    let data = json!({"data": {"rows": [{"name": "Ada", "age": 36}]}});
    create(&app, &key, "people-csv", people_schema(), CSV).await;
    let (s, out) = call(
        &app,
        Method::POST,
        "/v1/templates/people-csv/render",
        &key,
        Some(data.clone()),
    )
    .await;
    assert_eq!(
        (s, out["text"].as_str()),
        (StatusCode::OK, Some("name,age\nAda,36\n")),
        "{out}"
    );
    let runaway = [
        (
            "loop",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "template_fuel_exhausted",
        ),
        (
            "huge",
            "{% for i in range(1000) %}{{ 'x' * 100000 }}{% endfor %}",
            "template_output_too_large",
        ),
        (
            "recurse",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "template_render_failed",
        ),
        (
            "include",
            "{% include '/etc/passwd' %}",
            "template_render_failed",
        ),
    ];
    for (name, template, code) in runaway {
        let (s, body) = create(&app, &key, name, people_schema(), template).await;
        assert_eq!(s, StatusCode::CREATED, "{name}: {body}");
        let (s, body) = call(
            &app,
            Method::POST,
            &format!("/v1/templates/{name}/render"),
            &key,
            Some(data.clone()),
        )
        .await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{name}: {body}"
        );
    }
}

#[tokio::test]
async fn templates_of_another_tenant_do_not_exist() {
    let app = spawn_app().await;
    let (_, _, acme) = tenant_key(&app, "acme").await;
    let (_, _, globex) = tenant_key(&app, "globex").await;
    create(&app, &acme, "people-csv", people_schema(), CSV).await;
    for path in [
        "/v1/templates/people-csv",
        "/v1/templates/people-csv/versions/1",
    ] {
        let (s, _) = call(&app, Method::GET, path, &globex, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, list) = call(&app, Method::GET, "/v1/templates", &globex, None).await;
    assert_eq!(list["data"], json!([]));
    // Reading needs policies:read; an inference-only key is refused.
    let (s, _) = call(
        &app,
        Method::GET,
        "/v1/templates",
        &app.inference_token(),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// The whole path on the demo model: a template answer is the rendered CSV, its audit record
/// holds the raw JSON and the rendered text; a pinned version, an unknown or another tenant's
/// template, streaming; the key default.
#[tokio::test]
async fn chat_answers_render_with_the_tenant_template() {
    let app = spawn_with_model().await;
    let (tenant, key_id, key) = tenant_key(&app, "acme").await;
    let (_, _, other) = tenant_key(&app, "globex").await;
    create(&app, &key, "people-csv", people_schema(), CSV).await;
    let request_id = uuid::Uuid::now_v7().to_string();
    let res = app
        .http
        .post(app.url("/v1/chat/completions"))
        .header("x-request-id", &request_id)
        .bearer_auth(&key)
        .json(&chat(Some(template_format("people-csv")), false))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("json");
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned();
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
    let rows = assert_csv(&content);
    eprintln!("template answer on the demo model: {content:?}");

    let record = audit_record(&app, &request_id).await;
    let audited = &record["response"]["body"]["output_template"];
    assert_eq!(audited["id"], "people-csv@v1", "{record}");
    assert_eq!(
        audited["rendered"].as_str(),
        Some(content.as_str()),
        "{record}"
    );
    assert_eq!(
        audited["raw_json"]["rows"].as_array().map(Vec::len),
        Some(rows),
        "{record}"
    );
    assert_eq!(
        record["response"]["body"]["choices"][0]["message"]["content"].as_str(),
        Some(content.as_str())
    );

    // Pinned version; unknown and another tenant's templates; streaming refused.
    create(
        &app,
        &key,
        "people-csv",
        people_schema(),
        "{{ rows | length }}",
    )
    .await;
    let (s, pinned) = call(
        &app,
        Method::POST,
        "/v1/chat/completions",
        &key,
        Some(chat(Some(template_format("people-csv@v1")), false)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{pinned}");
    assert_eq!(
        pinned["choices"][0]["message"]["content"].as_str(),
        Some(content.as_str()),
        "greedy and pinned: same answer"
    );
    for (k, id, stream, status, code) in [
        (
            &key,
            "nope",
            false,
            StatusCode::BAD_REQUEST,
            "template_not_found",
        ),
        (
            &key,
            "people-csv@v9",
            false,
            StatusCode::BAD_REQUEST,
            "template_not_found",
        ),
        (
            &other,
            "people-csv",
            false,
            StatusCode::BAD_REQUEST,
            "template_not_found",
        ),
        (
            &key,
            "people-csv",
            true,
            StatusCode::BAD_REQUEST,
            "template_stream_unsupported",
        ),
    ] {
        let (s, body) = call(
            &app,
            Method::POST,
            "/v1/chat/completions",
            k,
            Some(chat(Some(template_format(id)), stream)),
        )
        .await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{id}: {body}"
        );
    }

    // A runaway template stops with a typed error after generation, not a hang or a 500.
    create(
        &app,
        &key,
        "runaway",
        people_schema(),
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    )
    .await;
    let (s, body) = call(
        &app,
        Method::POST,
        "/v1/chat/completions",
        &key,
        Some(chat(Some(template_format("runaway")), false)),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("template_fuel_exhausted")
        ),
        "{body}"
    );

    // The key's default applies to requests that name no format.
    let admin = app.member(tenant, enclave_domain::Role::TenantAdmin).await;
    let path = format!(
        "/v1/tenants/{}/api-keys/{key_id}/response-format",
        tenant.as_uuid()
    );
    let (s, set) = call(
        &app,
        Method::PUT,
        &path,
        &admin,
        Some(json!({"response_format": template_format("people-csv@v1")})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{set}");
    let (s, by_default) = call(
        &app,
        Method::POST,
        "/v1/chat/completions",
        &key,
        Some(chat(None, false)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{by_default}");
    assert_eq!(
        by_default["choices"][0]["message"]["content"].as_str(),
        Some(content.as_str())
    );
    let (s, bad) = call(
        &app,
        Method::PUT,
        &path,
        &admin,
        Some(json!({"response_format": template_format("nope")})),
    )
    .await;
    assert_eq!(
        (s, bad["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("template_not_found"))
    );
    let (s, _) = call(
        &app,
        Method::PUT,
        &path,
        &admin,
        Some(json!({"response_format": null})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, free) = call(
        &app,
        Method::POST,
        "/v1/chat/completions",
        &key,
        Some(chat(None, false)),
    )
    .await;
    assert_ne!(
        free["choices"][0]["message"]["content"].as_str(),
        Some(content.as_str()),
        "{free}"
    );
}

pub(crate) async fn audit_record(app: &TestApp, request_id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut tx = app.db().owner_pool().begin().await.expect("tx");
        sqlx::query("SELECT set_config('enclave.rls_bypass', 'on', true)")
            .execute(&mut *tx)
            .await
            .expect("bypass");
        let rows: Vec<(Value,)> = sqlx::query_as(
            "SELECT record FROM audit_events WHERE record->>'request_id' = $1 AND record->>'phase' <> 'started'",
        )
        .bind(request_id)
        .fetch_all(&mut *tx)
        .await
        .expect("audit rows");
        tx.commit().await.expect("commit");
        if let Some((r,)) = rows.into_iter().next() {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no audit record for {request_id}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
