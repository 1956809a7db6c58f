//! Default output formats and template rollback over HTTP: an adapter alias's default
//! `response_format` applied on the demo model with its precedence (request > alias > API key >
//! text), typed refusals that store nothing, tenant isolation, audited before/after; and moving
//! a template's active version back without rewriting any version.

use enclave_domain::Role;
use enclave_model_core::adapters::{Target, synthetic};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::adapters::client;
use crate::support::{TestApp, spawn_app, spawn_with_model};
use crate::templates::{
    CSV, audit_record, call, create, people_schema, stored_versions, tenant_key,
};

fn person_format() -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "person", "strict": true, "schema": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer", "minimum": 0, "maximum": 150}
        },
        "required": ["name", "age"],
        "additionalProperties": false
    }}})
}

fn regex_format(pattern: &str) -> Value {
    json!({"type": "regex", "regex": {"pattern": pattern}})
}

/// The content of a greedy chat answer to a person question through `model`, which must have
/// ended by itself (a constrained answer ends when its format is complete).
async fn answer(app: &TestApp, key: &str, model: &str, format: Option<Value>) -> String {
    let (content, finish) = answer_any(app, key, model, format).await;
    assert_eq!(finish, "stop", "{model}: {content:?}");
    content
}

/// (content, finish_reason) of a greedy chat answer through `model`.
async fn answer_any(
    app: &TestApp,
    key: &str,
    model: &str,
    format: Option<Value>,
) -> (String, String) {
    let mut body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You answer in the requested format."},
            {"role": "user", "content": "Describe a person called Ada who is 36 years old."}
        ],
        "max_tokens": 64,
        "temperature": 0,
    });
    if let Some(f) = format {
        body["response_format"] = f;
    }
    let (s, v) = call(app, Method::POST, "/v1/chat/completions", key, Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{model}: {v}");
    let choice = &v["choices"][0];
    (
        choice["message"]["content"]
            .as_str()
            .expect("content")
            .to_owned(),
        choice["finish_reason"].as_str().expect("finish").to_owned(),
    )
}

fn assert_person(content: &str) {
    let v: Value = serde_json::from_str(content).unwrap_or_else(|e| panic!("{e}: {content:?}"));
    let name = v["name"].as_str().unwrap_or_else(|| panic!("{content}"));
    assert!(name.chars().count() <= 12, "{content}");
    assert!(
        v["age"].as_i64().is_some_and(|a| (0..=150).contains(&a)),
        "{content}"
    );
    assert_eq!(v.as_object().map(|o| o.len()), Some(2), "{content}");
}

/// A PUT with a request id, so the call's audit record can be found: (status, body, id).
async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value, String) {
    let request_id = uuid::Uuid::now_v7().to_string();
    let res = app
        .http
        .put(app.url(path))
        .bearer_auth(token)
        .header("x-request-id", &request_id)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    (status, v, request_id)
}

async fn alias_formats(app: &TestApp, token: &str) -> Value {
    let (s, adapter) = call(app, Method::GET, "/v1/adapters/helper", token, None).await;
    assert_eq!(s, StatusCode::OK, "{adapter}");
    adapter["versions"][0]["alias_response_formats"].clone()
}

#[tokio::test]
async fn adapter_alias_defaults_apply_with_their_precedence() {
    let app = spawn_with_model().await;
    let (tenant, key_id, key) = tenant_key(&app, "acme").await;
    let admin = app.member(tenant, Role::TenantAdmin).await;
    let adapters = client(&app, tenant).await;
    // A mild adapter: constrained decoding guarantees the format whatever the weights.
    let (config, weights) =
        synthetic::random_peft(app.engine().model_config(), &Target::ALL, 4, 1.0, 0.01, 3);
    let config: Value = serde_json::from_slice(&config).expect("config");
    let (s, up) = adapters
        .upload("helper", &["prod", "canary"], &config, &weights)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{up}");

    let prod = "/v1/adapters/helper/aliases/prod/response-format";
    let (s, set, rid) = put(
        &app,
        prod,
        &admin,
        json!({"response_format": person_format()}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{set}");
    assert_eq!(
        set,
        json!({"alias": "prod", "response_format": person_format()})
    );
    let record = audit_record(&app, &rid).await;
    assert_eq!(
        record["change"]["before"]["response_format"],
        Value::Null,
        "{record}"
    );
    assert_eq!(
        record["change"]["after"]["response_format"],
        person_format(),
        "{record}"
    );
    assert_eq!(
        alias_formats(&app, &admin).await,
        json!([{"alias": "prod", "response_format": person_format()}])
    );

    // The API key's default is below the alias's.
    let key_path = format!(
        "/v1/tenants/{}/api-keys/{key_id}/response-format",
        tenant.as_uuid()
    );
    let (s, set, rid) = put(
        &app,
        &key_path,
        &admin,
        json!({"response_format": regex_format("(alpha|beta)")}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{set}");
    let record = audit_record(&app, &rid).await;
    assert_eq!(
        record["change"]["before"]["response_format"],
        Value::Null,
        "{record}"
    );
    assert_eq!(
        record["change"]["after"]["response_format"],
        regex_format("(alpha|beta)"),
        "{record}"
    );

    // Bare name = prod, and prod named: the alias's JSON schema.
    for model in ["helper", "helper@prod"] {
        assert_person(&answer(&app, &key, model, None).await);
    }
    // An alias without a default and a pinned version (no alias): the key's default.
    for model in ["helper@canary", "helper@v1"] {
        let content = answer(&app, &key, model, None).await;
        assert!(
            ["alpha", "beta"].contains(&content.as_str()),
            "{model}: {content:?}"
        );
    }
    // The request's own format wins over both defaults, `text` included.
    let content = answer(&app, &key, "helper", Some(regex_format("(yes|no)"))).await;
    assert!(["yes", "no"].contains(&content.as_str()), "{content:?}");
    let (content, _) = answer_any(&app, &key, "helper", Some(json!({"type": "text"}))).await;
    assert!(
        serde_json::from_str::<Value>(&content).is_err(),
        "{content:?}"
    );

    // Bad formats: typed 400s, nothing stored.
    for (format, code) in [
        (json!({"type": "yaml"}), "invalid_response_format"),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strin"}}}),
            "invalid_json_schema",
        ),
        (regex_format("(("), "invalid_regex"),
        (
            json!({"type": "template", "template": "nope"}),
            "template_not_found",
        ),
    ] {
        let (s, body, _) = put(&app, prod, &admin, json!({"response_format": format})).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{format}: {body}"
        );
    }
    assert_eq!(
        alias_formats(&app, &admin).await,
        json!([{"alias": "prod", "response_format": person_format()}]),
        "refusals store nothing"
    );

    // Unknown alias, another tenant's alias, a key without `admin`: refused.
    let (globex, _, _) = tenant_key(&app, "globex").await;
    let outsider = app.member(globex, Role::TenantAdmin).await;
    let body = json!({"response_format": null});
    let (s, _, _) = put(&app, prod, &outsider, body.clone()).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another tenant's alias does not exist"
    );
    let (s, _, _) = put(
        &app,
        "/v1/adapters/helper/aliases/beta/response-format",
        &admin,
        body.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = put(&app, prod, &adapters.key, body.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "adapters:write is not admin");
    assert_eq!(
        alias_formats(&app, &admin).await.as_array().map(Vec::len),
        Some(1)
    );

    // Cleared: the bare name falls back to the key's default.
    let (s, set, _) = put(&app, prod, &admin, body).await;
    assert_eq!(
        (s, set["response_format"].clone()),
        (StatusCode::OK, Value::Null)
    );
    assert_eq!(alias_formats(&app, &admin).await, json!([]));
    let content = answer(&app, &key, "helper", None).await;
    assert!(["alpha", "beta"].contains(&content.as_str()), "{content:?}");
}

#[tokio::test]
async fn template_rollback_moves_the_active_version_only() {
    let app = spawn_app().await;
    let (_, _, key) = tenant_key(&app, "acme").await;
    let (_, _, other) = tenant_key(&app, "globex").await;
    create(&app, &key, "people-csv", people_schema(), CSV).await;
    create(
        &app,
        &key,
        "people-csv",
        people_schema(),
        "{{ rows | length }}",
    )
    .await;
    let data = json!({"data": {"rows": [{"name": "Ada", "age": 36}]}});
    let render = |token: String| {
        let data = data.clone();
        let app = &app;
        async move {
            let (s, out) = call(
                app,
                Method::POST,
                "/v1/templates/people-csv/render",
                &token,
                Some(data),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{out}");
            out
        }
    };
    assert_eq!(render(key.clone()).await["text"], "1");
    let versions = stored_versions(&app).await;

    let request_id = uuid::Uuid::now_v7().to_string();
    let res = app
        .http
        .post(app.url("/v1/templates/people-csv/rollback"))
        .bearer_auth(&key)
        .header("x-request-id", &request_id)
        .json(&json!({"version": 1}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let active: Value = res.json().await.expect("json");
    assert_eq!(
        (
            active["id"].as_str(),
            active["active"].as_bool(),
            active["template"].as_str()
        ),
        (Some("people-csv@v1"), Some(true), Some(CSV)),
        "{active}"
    );
    let out = render(key.clone()).await;
    assert_eq!(
        (out["id"].as_str(), out["text"].as_str()),
        (Some("people-csv@v1"), Some("name,age\nAda,36\n")),
        "the render after the rollback uses v1"
    );
    let (_, latest) = call(&app, Method::GET, "/v1/templates/people-csv", &key, None).await;
    assert_eq!(latest["version"], 1, "{latest}");
    let (_, v2) = call(
        &app,
        Method::GET,
        "/v1/templates/people-csv/versions/2",
        &key,
        None,
    )
    .await;
    assert_eq!(
        (v2["active"].as_bool(), v2["template"].as_str()),
        (Some(false), Some("{{ rows | length }}")),
        "v2 is kept as it was"
    );
    assert_eq!(
        stored_versions(&app).await,
        versions,
        "nothing is rewritten"
    );
    let record = audit_record(&app, &request_id).await;
    assert_eq!(
        record["change"]["before"]["id"], "people-csv@v2",
        "{record}"
    );
    assert_eq!(record["change"]["after"]["id"], "people-csv@v1", "{record}");

    // Forward again, then the refusals.
    let rollback = |name: &str, body: Value, token: &str| {
        let path = format!("/v1/templates/{name}/rollback");
        let token = token.to_owned();
        let app = &app;
        async move { call(app, Method::POST, &path, &token, Some(body)).await }
    };
    let (s, v) = rollback("people-csv", json!({"version": 2}), &key).await;
    assert_eq!((s, v["version"].as_u64()), (StatusCode::OK, Some(2)), "{v}");
    for (name, body, token, status, code) in [
        (
            "people-csv",
            json!({"version": 9}),
            &key,
            StatusCode::NOT_FOUND,
            "template_version_not_found",
        ),
        (
            "people-csv",
            json!({"version": 0}),
            &key,
            StatusCode::BAD_REQUEST,
            "invalid_version",
        ),
        (
            "nope",
            json!({"version": 1}),
            &key,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "people-csv",
            json!({"version": 1}),
            &other,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let (s, v) = rollback(name, body.clone(), token).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{name} {body}: {v}"
        );
    }
    let (s, _) = rollback("people-csv", json!({"version": 1}), &app.inference_token()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "needs policies:write");
    assert_eq!(render(key).await["text"], "1", "refusals change nothing");
}
