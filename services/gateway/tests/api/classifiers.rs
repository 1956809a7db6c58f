//! Tenant classifiers over HTTP: training from the labelled set committed with the policy crate
//! (services/policy/tests/data/classifier.jsonl) reports held-out precision/recall that beat the
//! trivial baseline; versions are numbered and immutable; another tenant's classifiers are 404;
//! bad uploads answer their codes; and a policy whose classifier detector flags a prompt blocks
//! it (400 with the category code) with the decision in the audit record.

use enclave_domain::{Scope, TenantId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, call, json_of, spawn_with_db, spawn_with_db_and_model};

const SCOPES: [Scope; 3] = [Scope::Inference, Scope::PoliciesRead, Scope::PoliciesWrite];

fn data_jsonl() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policy/tests/data/classifier.jsonl"
    );
    std::fs::read_to_string(path).expect("labelled set committed with the policy crate")
}

fn data_examples() -> Vec<Value> {
    data_jsonl()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid JSONL"))
        .collect()
}

async fn tenant_key(app: &TestApp, slug: &str) -> (TenantId, String) {
    let tenant = app.tenant(slug).await;
    (tenant, app.key(tenant, &SCOPES).await)
}

async fn upload(
    app: &TestApp,
    key: &str,
    query: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/v1/classifiers{query}")))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request")
}

async fn train_abuse(app: &TestApp, key: &str) -> Value {
    let res = upload(
        app,
        key,
        "?name=abuse",
        "application/x-ndjson",
        data_jsonl(),
    )
    .await;
    json_of(res, StatusCode::CREATED, "train from JSONL").await
}

#[tokio::test]
async fn training_reports_held_out_metrics_that_beat_the_baseline() {
    let app = spawn_with_db().await;
    let (_, key) = tenant_key(&app, "acme").await;
    let total = data_examples().len() as u64;

    let v1 = train_abuse(&app, &key).await;
    assert_eq!(v1["version"], 1, "{v1}");
    assert_eq!(v1["reference"], "abuse@v1");
    assert_eq!(v1["labels"], json!(["abuse", "benign", "pii_request"]));
    let (train, held) = (
        v1["train_examples"].as_u64().expect("count"),
        v1["holdout_examples"].as_u64().expect("count"),
    );
    assert_eq!(train + held, total);
    assert!(
        held >= total / 10 && held <= total * 3 / 10,
        "~20% held out: {held} of {total}"
    );
    for m in v1["metrics"].as_array().expect("metrics") {
        let get = |f: &str| m[f].as_f64().unwrap_or(-1.0);
        eprintln!(
            "held-out {}: precision {:.3} recall {:.3} f1 {:.3} baseline_f1 {:.3} support {}",
            m["label"],
            get("precision"),
            get("recall"),
            get("f1"),
            get("baseline_f1"),
            m["support"]
        );
        for f in ["precision", "recall", "f1", "baseline_f1"] {
            assert!((0.0..=1.0).contains(&get(f)), "{f} in [0, 1]: {m}");
        }
        assert!(m["support"].as_u64().expect("support") > 0, "{m}");
        let tp = m["true_positives"].as_f64().expect("tp");
        let fp = m["false_positives"].as_f64().expect("fp");
        assert!((get("precision") - tp / (tp + fp)).abs() < 1e-9, "{m}");
        // Measured 1.000/1.000 on every label of this (template) set; the trivial baseline
        // (always predict the label) has F1 at most 0.67 here.
        assert!(
            get("f1") > get("baseline_f1") + 0.2,
            "beats the baseline: {m}"
        );
        assert!(get("precision") >= 0.9 && get("recall") >= 0.9, "{m}");
        assert_eq!(m["threshold"], 0.5);
    }

    // The same set as a JSON array with a threshold: a new version, evaluated at it.
    let v2 = json_of(
        call(
            &app,
            Method::POST,
            "/v1/classifiers",
            &key,
            Some(json!({"name": "abuse", "examples": data_examples(), "thresholds": {"abuse": 0.75}})),
        )
        .await,
        StatusCode::CREATED,
        "train from JSON",
    )
    .await;
    assert_eq!(v2["version"], 2);
    assert_eq!(
        v2["data_sha256"], v1["data_sha256"],
        "same set, same digest"
    );
    let abuse = v2["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["label"] == "abuse"))
        .expect("abuse metrics");
    assert_eq!(abuse["threshold"], 0.75);

    // CSV: a third version (single `label` column, quoted cells).
    let mut csv = String::from("text,label\n");
    for e in data_examples() {
        let text = e["text"].as_str().expect("text").replace('"', "\"\"");
        csv.push_str(&format!(
            "\"{text}\",{}\n",
            e["labels"][0].as_str().expect("label")
        ));
    }
    let v3 = json_of(
        upload(&app, &key, "?name=abuse&comment=csv", "text/csv", csv).await,
        StatusCode::CREATED,
        "train from CSV",
    )
    .await;
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["comment"], "csv");

    // Versions are listed, fetched, and never change.
    let list = json_of(
        call(&app, Method::GET, "/v1/classifiers", &key, None).await,
        StatusCode::OK,
        "list",
    )
    .await;
    let versions: Vec<&Value> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| &v["version"])
        .collect();
    assert_eq!(versions, [&json!(3), &json!(2), &json!(1)]);
    let got = json_of(
        call(
            &app,
            Method::GET,
            "/v1/classifiers/abuse/versions/1",
            &key,
            None,
        )
        .await,
        StatusCode::OK,
        "get v1",
    )
    .await;
    assert_eq!(got, v1);
    let err = sqlx::query("UPDATE classifier_versions SET comment = 'x'")
        .execute(app.db().admin_pool())
        .await
        .expect_err("versions are immutable");
    assert!(err.to_string().contains("immutable"), "{err}");
    let err = sqlx::query("DELETE FROM classifier_versions")
        .execute(app.db().store().pool())
        .await
        .expect_err("the application role cannot delete");
    assert!(err.to_string().contains("permission denied"), "{err}");

    // Dry-run classification.
    let res = json_of(
        call(
            &app,
            Method::POST,
            "/v1/classifiers/abuse/versions/1/classify",
            &key,
            Some(json!({"text": "你这个废物，滚开"})),
        )
        .await,
        StatusCode::OK,
        "classify",
    )
    .await;
    assert_eq!(res["labels"], json!(["abuse"]), "{res}");

    // XML answers like every other route.
    let xml = app
        .http
        .get(app.url("/v1/classifiers/abuse/versions/2"))
        .bearer_auth(&key)
        .header("accept", "application/xml")
        .send()
        .await
        .expect("request");
    assert_eq!(xml.status(), StatusCode::OK);
    let text = xml.text().await.expect("body");
    assert!(
        text.contains("<classifier_version>") && text.contains("<reference>abuse@v2</reference>"),
        "{text}"
    );
}

#[tokio::test]
async fn another_tenants_classifiers_are_not_found() {
    let app = spawn_with_db().await;
    let (_, a) = tenant_key(&app, "alpha").await;
    let (_, b) = tenant_key(&app, "beta").await;
    train_abuse(&app, &a).await;

    for (method, path, body) in [
        (Method::GET, "/v1/classifiers/abuse/versions/1", None),
        (
            Method::POST,
            "/v1/classifiers/abuse/versions/1/classify",
            Some(json!({"text": "hi"})),
        ),
    ] {
        let res = call(&app, method, path, &b, body).await;
        let body = json_of(res, StatusCode::NOT_FOUND, path).await;
        assert_eq!(body["error"]["code"], "not_found", "{body}");
    }
    let list = json_of(
        call(&app, Method::GET, "/v1/classifiers", &b, None).await,
        StatusCode::OK,
        "list",
    )
    .await;
    assert_eq!(list["data"], json!([]));
    // Nor can B's policy reference A's classifier.
    let res = call(
        &app,
        Method::POST,
        "/v1/policies",
        &b,
        Some(json!({"document": policy_doc("abuse@v1")})),
    )
    .await;
    let body = json_of(res, StatusCode::UNPROCESSABLE_ENTITY, "foreign reference").await;
    assert_eq!(body["error"]["code"], "unknown_classifier", "{body}");
    // Training needs policies:write.
    let reader = app
        .key(app.tenant("gamma").await, &[Scope::PoliciesRead])
        .await;
    let res = upload(
        &app,
        &reader,
        "?name=abuse",
        "application/x-ndjson",
        data_jsonl(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

fn example(text: &str, label: &str) -> Value {
    json!({"text": text, "label": label})
}

/// `n` distinct examples per label.
fn examples(labels: &[&str], n: usize) -> Vec<Value> {
    labels
        .iter()
        .flat_map(|l| (0..n).map(move |i| example(&format!("{l} sample number {i}"), l)))
        .collect()
}

#[tokio::test]
async fn bad_uploads_answer_their_codes_and_store_nothing() {
    let app = spawn_with_db().await;
    let (_, key) = tenant_key(&app, "acme").await;
    let with = |mut ex: Vec<Value>, i: usize, e: Value| {
        ex[i] = e;
        ex
    };
    let ok = examples(&["abuse", "benign"], 12);
    let lopsided = [examples(&["abuse"], 30), examples(&["benign"], 2)].concat();
    let cases: Vec<(&str, Value, &str, StatusCode)> = vec![
        (
            "too few",
            json!({"name": "c", "examples": examples(&["abuse", "benign"], 3)}),
            "too_few_examples",
            StatusCode::BAD_REQUEST,
        ),
        (
            "too few of one label",
            json!({"name": "c", "examples": lopsided}),
            "too_few_examples",
            StatusCode::BAD_REQUEST,
        ),
        (
            "one label",
            json!({"name": "c", "examples": examples(&["abuse"], 30)}),
            "single_label",
            StatusCode::BAD_REQUEST,
        ),
        (
            "empty text",
            json!({"name": "c", "examples": with(ok.clone(), 3, example("  ", "abuse"))}),
            "empty_text",
            StatusCode::BAD_REQUEST,
        ),
        (
            "NUL",
            json!({"name": "c", "examples": with(ok.clone(), 4, example("a\u{0}b", "abuse"))}),
            "nul_character",
            StatusCode::BAD_REQUEST,
        ),
        (
            "long text",
            json!({"name": "c", "examples": with(ok.clone(), 0, example(&"x".repeat(5000), "abuse"))}),
            "text_too_long",
            StatusCode::BAD_REQUEST,
        ),
        (
            "no label",
            json!({"name": "c", "examples": with(ok.clone(), 1, json!({"text": "t"}))}),
            "missing_label",
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad label",
            json!({"name": "c", "examples": with(ok.clone(), 1, example("t", "Bad Label"))}),
            "invalid_label",
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad name",
            json!({"name": "Not OK", "examples": ok.clone()}),
            "invalid_name",
            StatusCode::BAD_REQUEST,
        ),
        (
            "NUL comment",
            json!({"name": "c", "examples": ok.clone(), "comment": "a\u{0}"}),
            "invalid_comment",
            StatusCode::BAD_REQUEST,
        ),
        (
            "threshold of no label",
            json!({"name": "c", "examples": ok.clone(), "thresholds": {"other": 0.5}}),
            "invalid_threshold",
            StatusCode::BAD_REQUEST,
        ),
        (
            "threshold out of range",
            json!({"name": "c", "examples": ok.clone(), "thresholds": {"abuse": 1.5}}),
            "invalid_threshold",
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown field",
            json!({"name": "c", "examples": ok.clone(), "epochs": 3}),
            "invalid_json",
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (what, body, code, status) in cases {
        let res = call(&app, Method::POST, "/v1/classifiers", &key, Some(body)).await;
        let body = json_of(res, status, what).await;
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
    }
    let raw: Vec<(&str, &str, &str, String, &str, StatusCode)> = vec![
        (
            "bad JSONL line",
            "?name=c",
            "application/x-ndjson",
            "{\"text\": \"a\", \"label\": \"x\"}\n{oops\n".to_owned(),
            "invalid_jsonl",
            StatusCode::BAD_REQUEST,
        ),
        (
            "JSONL without a name",
            "",
            "application/x-ndjson",
            "{\"text\": \"a\", \"label\": \"x\"}\n".to_owned(),
            "missing_name",
            StatusCode::BAD_REQUEST,
        ),
        (
            "CSV without a label column",
            "?name=c",
            "text/csv",
            "text,category\nhello,x\n".to_owned(),
            "invalid_csv",
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad threshold spec",
            "?name=c&thresholds=abuse",
            "text/csv",
            "text,label\nhello,x\n".to_owned(),
            "invalid_threshold",
            StatusCode::BAD_REQUEST,
        ),
        (
            "oversized",
            "?name=c",
            "application/x-ndjson",
            "{\"text\": \"a\", \"label\": \"x\"}\n".repeat(300_000),
            "payload_too_large",
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "unknown media type",
            "?name=c",
            "text/plain",
            "a".to_owned(),
            "unsupported_media_type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (what, query, content_type, body, code, status) in raw {
        let res = upload(&app, &key, query, content_type, body).await;
        let body = json_of(res, status, what).await;
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
    }
    let list = json_of(
        call(&app, Method::GET, "/v1/classifiers", &key, None).await,
        StatusCode::OK,
        "list",
    )
    .await;
    assert_eq!(list["data"], json!([]), "nothing stored");
}

/// A policy blocking the `abuse` category on input, detected by the classifier `model`.
fn policy_doc(model: &str) -> String {
    format!(
        r#"
[[category]]
name = "abuse"
action = "block"
scope = "input"

[[detector]]
name = "tenant-abuse"
kind = "classifier"
model = "{model}"
categories = ["abuse"]
"#
    )
}

#[tokio::test]
async fn policy_references_to_classifiers_are_checked() {
    let app = spawn_with_db().await;
    let (_, key) = tenant_key(&app, "acme").await;
    train_abuse(&app, &key).await;
    for (model, code) in [
        ("abuse@v2", "unknown_classifier"),
        ("missing", "unknown_classifier"),
        ("abuse@2", "invalid_classifier_reference"),
    ] {
        let res = call(
            &app,
            Method::POST,
            "/v1/policies",
            &key,
            Some(json!({"document": policy_doc(model)})),
        )
        .await;
        let body = json_of(res, StatusCode::UNPROCESSABLE_ENTITY, model).await;
        assert_eq!(body["error"]["code"], code, "{model}: {body}");
    }
    let mismatch = policy_doc("abuse@v1").replace("\"abuse\"", "\"threats\"");
    let res = call(
        &app,
        Method::POST,
        "/v1/policies",
        &key,
        Some(json!({"document": mismatch})),
    )
    .await;
    let body = json_of(res, StatusCode::UNPROCESSABLE_ENTITY, "label mismatch").await;
    assert_eq!(body["error"]["code"], "classifier_label_mismatch", "{body}");
    let res = call(
        &app,
        Method::POST,
        "/v1/policies",
        &key,
        Some(json!({"document": "name = \"a\u{0}\""})),
    )
    .await;
    let body = json_of(res, StatusCode::BAD_REQUEST, "NUL in a policy document").await;
    assert_eq!(body["error"]["code"], "invalid_document", "{body}");
    let list = json_of(
        call(&app, Method::GET, "/v1/policies", &key, None).await,
        StatusCode::OK,
        "policies",
    )
    .await;
    assert_eq!(list["data"], json!([]), "nothing stored");

    // Latest (unversioned) and pinned references both validate; the dry run shows the verdict.
    for model in ["abuse", "abuse@v1"] {
        let res = call(
            &app,
            Method::POST,
            "/v1/policies",
            &key,
            Some(json!({"document": policy_doc(model)})),
        )
        .await;
        json_of(res, StatusCode::CREATED, model).await;
    }
    let dry = json_of(
        call(
            &app,
            Method::POST,
            "/v1/policies/dry-run",
            &key,
            Some(json!({"text": "shut up, you moron", "scope": "input"})),
        )
        .await,
        StatusCode::OK,
        "dry run",
    )
    .await;
    assert_eq!(dry["blocked"]["category"], "abuse", "{dry}");
    assert_eq!(
        dry["blocked"]["rule"], "detector:tenant-abuse(abuse@v1)",
        "{dry}"
    );
}

/// A prompt the classifier flags is refused before generation (400 with the category code),
/// a benign one is answered, and the audit record names the classifier's decision.
#[tokio::test]
async fn policy_classifier_blocks_flagged_input_and_the_audit_names_it() {
    let app = spawn_with_db_and_model().await;
    let (_, key) = tenant_key(&app, "acme").await;
    train_abuse(&app, &key).await;
    let res = call(
        &app,
        Method::POST,
        "/v1/policies",
        &key,
        Some(json!({"document": policy_doc("abuse@v1")})),
    )
    .await;
    json_of(res, StatusCode::CREATED, "policy").await;

    let chat = |content: &str| json!({"model": "base", "messages": [{"role": "user", "content": content}], "max_tokens": 2});
    let id = uuid::Uuid::now_v7().to_string();
    let res = app
        .http
        .post(app.url("/v1/chat/completions"))
        .header("x-request-id", &id)
        .bearer_auth(&key)
        .json(&chat("you are a moron and everyone knows it"))
        .send()
        .await
        .expect("request");
    let body = json_of(res, StatusCode::BAD_REQUEST, "flagged prompt").await;
    assert_eq!(body["error"]["code"], "policy_blocked:abuse", "{body}");
    assert_eq!(body["error"]["field"], "messages[0].content");

    let res = call(
        &app,
        Method::POST,
        "/v1/chat/completions",
        &key,
        Some(chat("how do i reverse a string in rust?")),
    )
    .await;
    json_of(res, StatusCode::OK, "benign prompt").await;

    let record = audit_record(&app, &id).await;
    let policy = &record["policy"];
    assert_eq!(policy["outcome"], "block", "{record}");
    let blocked = &policy["decisions"]["blocked"];
    assert_eq!(blocked["category"], "abuse", "{record}");
    assert_eq!(
        blocked["rule"], "detector:tenant-abuse(abuse@v1)",
        "{record}"
    );
    assert_eq!(blocked["action"], "block", "{record}");
}

async fn audit_record(app: &TestApp, id: &str) -> Value {
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
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .expect("audit rows");
        tx.commit().await.expect("commit");
        if let Some((r,)) = rows.into_iter().next() {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no audit record for {id}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// An output-scope classifier judges the whole answer: the stream holds it back until the end,
/// so the streamed and whole answers agree, masked or blocked, and nothing leaks before.
#[tokio::test]
async fn output_classifier_verdicts_agree_streamed_and_whole() {
    use crate::policies::{stream_chat, whole_chat};
    let app = spawn_with_db_and_model().await;
    let (_, key) = tenant_key(&app, "acme").await;
    // Language of the committed set's texts: `zh` when a text has CJK characters, else `en`.
    let examples: Vec<Value> = data_examples()
        .into_iter()
        .map(|e| {
            let text = e["text"].as_str().expect("text").to_owned();
            let zh = text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
            json!({"text": text, "label": if zh { "zh" } else { "en" }})
        })
        .collect();
    let res = call(
        &app,
        Method::POST,
        "/v1/classifiers",
        &key,
        Some(json!({"name": "lang", "examples": examples})),
    )
    .await;
    json_of(res, StatusCode::CREATED, "train lang").await;

    let doc = |action: &str| {
        format!(
            "[[category]]\nname = \"en\"\naction = \"{action}\"\nscope = \"output\"\nmask = \"label\"\n\n\
             [[detector]]\nname = \"lang\"\nkind = \"classifier\"\nmodel = \"lang@v1\"\ncategories = [\"en\"]\n"
        )
    };
    let prompt = "Name three colours.";
    let res = call(
        &app,
        Method::POST,
        "/v1/policies",
        &key,
        Some(json!({"document": doc("mask")})),
    )
    .await;
    json_of(res, StatusCode::CREATED, "mask policy").await;
    let (whole, _, _) = whole_chat(&app, &key, prompt).await;
    let streamed = stream_chat(&app, &key, prompt).await;
    assert_eq!(whole, "[REDACTED:en]", "the English answer is masked whole");
    assert_eq!(streamed.deltas.concat(), whole, "{:?}", streamed.deltas);

    let res = call(
        &app,
        Method::POST,
        "/v1/policies",
        &key,
        Some(json!({"document": doc("block")})),
    )
    .await;
    json_of(res, StatusCode::CREATED, "block policy").await;
    let (whole, finish, header) = whole_chat(&app, &key, prompt).await;
    assert_eq!((whole.as_str(), finish.as_str()), ("", "content_filter"));
    assert_eq!(header.as_deref(), Some("en"));
    let streamed = stream_chat(&app, &key, prompt).await;
    assert!(
        streamed.deltas.is_empty(),
        "nothing released: {:?}",
        streamed.deltas
    );
    assert_eq!(streamed.finish, "content_filter");
    assert_eq!(
        streamed.policy.as_ref().map(|p| p["category"].clone()),
        Some(json!("en")),
        "{:?}",
        streamed.policy
    );
}
