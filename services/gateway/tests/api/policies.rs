//! Tenant content policies over HTTP: versions, activation/rollback, rejected documents keeping
//! the previous version active, cross-tenant 404, dry runs; and enforcement on the inference path
//! with the real demo model (input block before generation, output mask/block on whole and
//! streamed answers, which must agree and never leak a banned word).

use std::sync::Arc;

use enclave_domain::{Scope, TenantId};
use enclave_policy::{Policy, PolicyDocument, Scope as TextScope, StreamFilter};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, call, json_of, spawn_with_db, spawn_with_db_and_model};

const POLICY_SCOPES: [Scope; 3] = [Scope::Inference, Scope::PoliciesRead, Scope::PoliciesWrite];

async fn tenant_key(app: &TestApp, slug: &str) -> (TenantId, String) {
    let tenant = app.tenant(slug).await;
    (tenant, app.key(tenant, &POLICY_SCOPES).await)
}

async fn create(app: &TestApp, key: &str, document: &str, format: &str) -> reqwest::Response {
    call(
        app,
        Method::POST,
        "/v1/policies",
        key,
        Some(json!({"document": document, "format": format})),
    )
    .await
}

const V1: &str = r#"
name = "acme"
[[category]]
name = "codenames"
action = "block"
scope = "both"
words = ["project falcon", "猎鹰计划"]
"#;

#[tokio::test]
async fn versions_are_immutable_and_activation_rolls_back() {
    let app = spawn_with_db().await;
    let (_, key) = tenant_key(&app, "acme").await;

    let v1 = json_of(
        create(&app, &key, V1, "toml").await,
        StatusCode::CREATED,
        "v1",
    )
    .await;
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["active"], true);
    assert_eq!(v1["name"], "acme");
    assert_eq!(v1["categories"][0]["name"], "codenames");

    let v2_doc = r#"{"category": [{"name": "competitors", "action": "mask", "scope": "output", "words": ["globex"]}]}"#;
    let v2 = json_of(
        create(&app, &key, v2_doc, "json").await,
        StatusCode::CREATED,
        "v2",
    )
    .await;
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["format"], "json");

    let list = json_of(
        call(&app, Method::GET, "/v1/policies", &key, None).await,
        StatusCode::OK,
        "list",
    )
    .await;
    assert_eq!(list["active_version"], 2);
    let versions: Vec<u64> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| v["version"].as_u64().expect("n"))
        .collect();
    assert_eq!(versions, [2, 1], "newest first");

    let got = json_of(
        call(&app, Method::GET, "/v1/policies/1", &key, None).await,
        StatusCode::OK,
        "get",
    )
    .await;
    assert_eq!(got["document"], V1, "the document is kept as submitted");
    assert_eq!(got["active"], false);

    // Rollback: version 1 is enforced again, version 2 still exists.
    let back = json_of(
        call(&app, Method::POST, "/v1/policies/1/activate", &key, None).await,
        StatusCode::OK,
        "activate",
    )
    .await;
    assert_eq!(back["active"], true);
    let list = json_of(
        call(&app, Method::GET, "/v1/policies", &key, None).await,
        StatusCode::OK,
        "list",
    )
    .await;
    assert_eq!(list["active_version"], 1);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    let dry = json_of(
        call(
            &app,
            Method::POST,
            "/v1/policies/dry-run",
            &key,
            Some(json!({"text": "about Project Falcon"})),
        )
        .await,
        StatusCode::OK,
        "dry run",
    )
    .await;
    assert_eq!(dry["version"], 1);
    assert_eq!(dry["blocked"]["category"], "codenames");

    let missing = call(&app, Method::POST, "/v1/policies/3/activate", &key, None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_documents_are_rejected_and_the_active_version_stays() {
    let app = spawn_with_db().await;
    let (_, key) = tenant_key(&app, "acme").await;
    json_of(
        create(&app, &key, V1, "toml").await,
        StatusCode::CREATED,
        "v1",
    )
    .await;

    let many_words: String = {
        let words: Vec<String> = (0..100_001).map(|i| format!("\"w{i}\"")).collect();
        format!(
            "[[category]]\nname = \"big\"\naction = \"mask\"\nwords = [{}]\n",
            words.join(",")
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("invalid regex", "[[category]]\nname = \"r\"\naction = \"flag\"\n[[category.regex]]\nname = \"x\"\npattern = '(unclosed'\n".into(), "invalid_regex"),
        ("catastrophic pattern", "[[category]]\nname = \"r\"\naction = \"flag\"\n[[category.regex]]\nname = \"x\"\npattern = '(a+)+$'\n".into(), "catastrophic_pattern"),
        ("backreference", "[[category]]\nname = \"r\"\naction = \"flag\"\n[[category.regex]]\nname = \"x\"\npattern = '(a)\\1'\n".into(), "unsupported_regex"),
        ("empty category", "[[category]]\nname = \"nothing\"\naction = \"mask\"\n".into(), "empty_category"),
        ("unknown action", "[[category]]\nname = \"x\"\naction = \"explode\"\nwords = [\"a\"]\n".into(), "unknown_action"),
        ("oversized list", many_words, "word_list_too_large"),
        ("baseline category redefined", "[[category]]\nname = \"pii\"\naction = \"flag\"\nwords = [\"x\"]\n".into(), "duplicate_category"),
        ("not toml", "this is = = not toml".into(), "invalid_document"),
    ];
    for (what, doc, code) in &cases {
        let res = create(&app, &key, doc, "toml").await;
        let body = json_of(res, StatusCode::UNPROCESSABLE_ENTITY, what).await;
        assert_eq!(body["error"]["code"], *code, "{what}: {body}");
    }
    let bad_json = create(
        &app,
        &key,
        r#"{"category": [{"name": "x", "action": "block"}]}"#,
        "json",
    )
    .await;
    let body = json_of(
        bad_json,
        StatusCode::UNPROCESSABLE_ENTITY,
        "json empty category",
    )
    .await;
    assert_eq!(body["error"]["code"], "empty_category");
    let bad_format = create(&app, &key, V1, "yaml").await;
    assert_eq!(bad_format.status(), StatusCode::BAD_REQUEST);

    let list = json_of(
        call(&app, Method::GET, "/v1/policies", &key, None).await,
        StatusCode::OK,
        "list",
    )
    .await;
    assert_eq!(
        list["active_version"], 1,
        "the previous version stays active: {list}"
    );
    assert_eq!(
        list["data"].as_array().map(Vec::len),
        Some(1),
        "nothing was stored: {list}"
    );
}

#[tokio::test]
async fn another_tenants_versions_are_not_found() {
    let app = spawn_with_db().await;
    let (_, a) = tenant_key(&app, "tenant-a").await;
    let (_, b) = tenant_key(&app, "tenant-b").await;
    json_of(
        create(&app, &a, V1, "toml").await,
        StatusCode::CREATED,
        "a v1",
    )
    .await;
    json_of(
        create(&app, &a, V1, "toml").await,
        StatusCode::CREATED,
        "a v2",
    )
    .await;

    for (method, path) in [
        (Method::GET, "/v1/policies/1"),
        (Method::POST, "/v1/policies/1/activate"),
    ] {
        let res = call(&app, method.clone(), path, &b, None).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    let dry = call(
        &app,
        Method::POST,
        "/v1/policies/dry-run",
        &b,
        Some(json!({"text": "x", "version": 1})),
    )
    .await;
    assert_eq!(dry.status(), StatusCode::NOT_FOUND);
    let list = json_of(
        call(&app, Method::GET, "/v1/policies", &b, None).await,
        StatusCode::OK,
        "b list",
    )
    .await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0));
    assert!(list["active_version"].is_null());
    // B's first version is its own version 1; A's active version is untouched.
    json_of(
        create(
            &app,
            &b,
            "[[category]]\nname = \"b\"\naction = \"flag\"\nwords = [\"x\"]\n",
            "toml",
        )
        .await,
        StatusCode::CREATED,
        "b v1",
    )
    .await;
    let list = json_of(
        call(&app, Method::GET, "/v1/policies", &a, None).await,
        StatusCode::OK,
        "a list",
    )
    .await;
    assert_eq!(list["active_version"], 2);
}

#[tokio::test]
async fn policy_routes_need_policy_scopes() {
    let app = spawn_with_db().await;
    let tenant = app.tenant("acme").await;
    let inference_only = app.key(tenant, &[Scope::Inference]).await;
    let reader = app.key(tenant, &[Scope::PoliciesRead]).await;
    assert_eq!(
        create(&app, &inference_only, V1, "toml").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        create(&app, &reader, V1, "toml").await.status(),
        StatusCode::FORBIDDEN
    );
    let list = call(&app, Method::GET, "/v1/policies", &reader, None).await;
    assert_eq!(list.status(), StatusCode::OK);
}

#[tokio::test]
async fn dry_run_reports_spans_in_bytes_and_characters() {
    let app = spawn_with_db().await;
    let (_, key) = tenant_key(&app, "acme").await;
    let doc = "[[category]]\nname = \"secret\"\naction = \"mask\"\nwords = [\"坏词\", \"bad\"]\n";
    let text = "说 坏\u{200B}词 and Ｂ.Ａ.Ｄ, mail li@example.com";
    let res = call(
        &app,
        Method::POST,
        "/v1/policies/dry-run",
        &key,
        Some(json!({"text": text, "document": doc})),
    )
    .await;
    let body = json_of(res, StatusCode::OK, "dry run").await;
    let matches = body["matches"].as_array().expect("matches");
    assert_eq!(matches.len(), 3, "{body}");
    for m in matches {
        let (s, e) = (
            m["start"].as_u64().expect("start") as usize,
            m["end"].as_u64().expect("end") as usize,
        );
        assert_eq!(
            &text[s..e],
            m["matched"].as_str().expect("matched"),
            "byte span of {m}"
        );
        let (cs, ce) = (
            m["char_start"].as_u64().expect("cs") as usize,
            m["char_end"].as_u64().expect("ce") as usize,
        );
        let by_chars: String = text.chars().skip(cs).take(ce - cs).collect();
        assert_eq!(
            by_chars,
            m["matched"].as_str().expect("matched"),
            "char span of {m}"
        );
    }
    assert_eq!(matches[0]["matched"], "坏\u{200B}词");
    assert_eq!(matches[1]["matched"], "Ｂ.Ａ.Ｄ");
    assert_eq!(
        matches[2]["category"], "pii",
        "the baseline applies underneath"
    );
    assert_eq!(body["text"], "说 *** and ***, mail [REDACTED:pii]");
    assert!(body["blocked"].is_null());

    let input = call(
        &app,
        Method::POST,
        "/v1/policies/dry-run",
        &key,
        Some(json!({"text": "li@example.com", "scope": "input"})),
    )
    .await;
    let body = json_of(input, StatusCode::OK, "input scope").await;
    assert_eq!(
        body["text"], "li@example.com",
        "baseline PII masking is output-only"
    );
}

// ---------------------------------------------------------------- enforcement with the model

fn chat(content: &str, stream: bool) -> Value {
    json!({
        "model": "base",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 24,
        "temperature": 0,
        "stream": stream,
    })
}

const QUESTION: &str = "Name three colours.";

/// SSE events as (name, data) pairs.
fn sse(text: &str) -> Vec<(Option<String>, String)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .map(str::to_owned);
            let data = e
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n");
            (name, data)
        })
        .collect()
}

/// A streamed answer: the content deltas in order, the final `finish_reason`, and the policy
/// event (if any).
pub(crate) struct Streamed {
    pub(crate) deltas: Vec<String>,
    pub(crate) finish: String,
    pub(crate) policy: Option<Value>,
}

pub(crate) async fn stream_chat(app: &TestApp, key: &str, content: &str) -> Streamed {
    let res = call(
        app,
        Method::POST,
        "/v1/chat/completions",
        key,
        Some(chat(content, true)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.expect("body");
    let mut out = Streamed {
        deltas: Vec::new(),
        finish: String::new(),
        policy: None,
    };
    let events = sse(&text);
    assert_eq!(
        events.last().map(|e| e.1.as_str()),
        Some("[DONE]"),
        "{text}"
    );
    for (name, data) in events {
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&data).expect("json event");
        if name.as_deref() == Some("policy") {
            out.policy = Some(v);
            continue;
        }
        if let Some(c) = v["choices"][0]["delta"]["content"]
            .as_str()
            .filter(|c| !c.is_empty())
        {
            out.deltas.push(c.to_owned());
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            out.finish = f.to_owned();
        }
    }
    out
}

pub(crate) async fn whole_chat(
    app: &TestApp,
    key: &str,
    content: &str,
) -> (String, String, Option<String>) {
    let res = call(
        app,
        Method::POST,
        "/v1/chat/completions",
        key,
        Some(chat(content, false)),
    )
    .await;
    let header = res
        .headers()
        .get("x-enclave-policy-blocked")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let body = json_of(res, StatusCode::OK, "chat").await;
    let choice = &body["choices"][0];
    (
        choice["message"]["content"]
            .as_str()
            .expect("content")
            .to_owned(),
        choice["finish_reason"].as_str().expect("finish").to_owned(),
        header,
    )
}

/// The longest ASCII-alphabetic word of the answer (at least 3 letters): what the tests ban.
fn pick_word(answer: &str) -> String {
    answer
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 3)
        .max_by_key(|w| w.len())
        .expect("the answer has a word")
        .to_lowercase()
}

async fn dry_run(app: &TestApp, key: &str, text: &str) -> Value {
    let res = call(
        app,
        Method::POST,
        "/v1/policies/dry-run",
        key,
        Some(json!({"text": text})),
    )
    .await;
    json_of(res, StatusCode::OK, "dry run").await
}

#[tokio::test]
async fn input_block_answers_400_before_generation() {
    let app = spawn_with_db_and_model().await;
    let (tenant, key) = tenant_key(&app, "acme").await;
    json_of(
        create(&app, &key, V1, "toml").await,
        StatusCode::CREATED,
        "v1",
    )
    .await;

    for stream in [false, true] {
        let res = call(
            &app,
            Method::POST,
            "/v1/chat/completions",
            &key,
            Some(chat("Tell me about PROJECT fal\u{200B}con.", stream)),
        )
        .await;
        let body = json_of(res, StatusCode::BAD_REQUEST, "blocked prompt").await;
        assert_eq!(body["error"]["code"], "policy_blocked:codenames", "{body}");
        assert_eq!(body["error"]["field"], "messages[0].content");
        assert!(
            !body.to_string().contains("falcon"),
            "the banned word is not echoed: {body}"
        );
    }
    let completion = call(
        &app,
        Method::POST,
        "/v1/completions",
        &key,
        Some(json!({"model": "base", "prompt": "猎鹰 计划", "max_tokens": 4})),
    )
    .await;
    let body = json_of(
        completion,
        StatusCode::BAD_REQUEST,
        "blocked completion prompt",
    )
    .await;
    assert_eq!(body["error"]["code"], "policy_blocked:codenames");

    let usage = app
        .db()
        .store()
        .rate_limits()
        .usage(&tenant, chrono::Utc::now())
        .await
        .expect("usage");
    assert_eq!(usage.tokens, 0, "nothing was generated or admitted");
}

#[tokio::test]
async fn output_mask_is_identical_streamed_and_whole_and_never_leaks() {
    let app = spawn_with_db_and_model().await;
    let (_, key) = tenant_key(&app, "acme").await;
    let (plain, _, _) = whole_chat(&app, &key, QUESTION).await;
    let word = pick_word(&plain);
    let doc = format!(
        "[[category]]\nname = \"hidden\"\naction = \"mask\"\nscope = \"output\"\nmask = \"fixed\"\nmask_text = \"[x]\"\nwords = [{word:?}]\n"
    );
    json_of(
        create(&app, &key, &doc, "toml").await,
        StatusCode::CREATED,
        "mask policy",
    )
    .await;
    let expected = dry_run(&app, &key, &plain).await["text"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(
        expected.contains("[x]") && !expected.to_lowercase().contains(&word),
        "{expected}"
    );

    let (whole, finish, header) = whole_chat(&app, &key, QUESTION).await;
    assert_eq!(whole, expected);
    assert_ne!(finish, "content_filter");
    assert!(header.is_none());

    let streamed = stream_chat(&app, &key, QUESTION).await;
    assert_eq!(streamed.deltas.concat(), expected, "streamed = whole");
    assert!(streamed.policy.is_none());
    let mut prefix = String::new();
    for d in &streamed.deltas {
        prefix.push_str(d);
        assert!(
            !prefix.to_lowercase().contains(&word),
            "{word:?} leaked in {prefix:?}"
        );
    }
}

#[tokio::test]
async fn output_block_stops_the_stream_with_a_reason() {
    let app = spawn_with_db_and_model().await;
    let (_, key) = tenant_key(&app, "acme").await;
    let (plain, _, _) = whole_chat(&app, &key, QUESTION).await;
    let word = pick_word(&plain);
    let doc = format!(
        "[[category]]\nname = \"stopper\"\naction = \"block\"\nscope = \"output\"\nwords = [{word:?}]\n"
    );
    json_of(
        create(&app, &key, &doc, "toml").await,
        StatusCode::CREATED,
        "block policy",
    )
    .await;
    let expected = dry_run(&app, &key, &plain).await["text"]
        .as_str()
        .expect("text")
        .to_owned();

    let (whole, finish, header) = whole_chat(&app, &key, QUESTION).await;
    assert_eq!(whole, expected, "cut before the blocked word");
    assert_eq!(finish, "content_filter");
    assert_eq!(header.as_deref(), Some("stopper"));

    let streamed = stream_chat(&app, &key, QUESTION).await;
    assert_eq!(streamed.deltas.concat(), expected, "streamed = whole");
    assert_eq!(streamed.finish, "content_filter");
    let policy = streamed.policy.expect("a policy event says why");
    assert_eq!(policy["category"], "stopper");
    assert_eq!(policy["action"], "block");
    assert!(!streamed.deltas.concat().to_lowercase().contains(&word));
}

/// Acceptance 1 on a generated answer: the demo model's real token pieces, every chunking at
/// token boundaries and every split between characters, never emit a banned word and always
/// emit exactly the whole-text result.
#[tokio::test]
async fn generated_answer_survives_every_split() {
    let app = spawn_with_db_and_model().await;
    let (_, key) = tenant_key(&app, "acme").await;
    let streamed = stream_chat(&app, &key, "Write one sentence about colours and a dog.").await;
    let answer = streamed.deltas.concat();
    let mut banned: Vec<String> = answer
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 3)
        .map(str::to_lowercase)
        .collect();
    banned.sort();
    banned.dedup();
    banned.truncate(4);
    assert!(!banned.is_empty(), "{answer}");
    let doc = format!(
        "[normalization]\nseparators = \" .-_\"\n[[category]]\nname = \"banned\"\naction = \"mask\"\nwords = {}\n",
        serde_json::to_string(&banned).expect("json")
    );
    let policy = Arc::new(
        Policy::compile(
            &PolicyDocument::parse_toml(&doc).expect("doc"),
            &Default::default(),
        )
        .expect("policy"),
    );
    let expected = policy.apply(&answer, TextScope::Output).text;
    let run = |chunks: &[&str]| {
        let mut f = StreamFilter::new(policy.clone());
        let mut out = String::new();
        for c in chunks {
            out.push_str(&f.push(c).emit);
            let left: Vec<_> = policy
                .scan(&out, TextScope::Output)
                .into_iter()
                .filter(|m| m.category.as_str() == "banned")
                .collect();
            assert!(
                left.is_empty(),
                "leaked {left:?} in {out:?} (chunks {chunks:?})"
            );
        }
        out.push_str(&f.finish().emit);
        assert_eq!(out, expected, "chunks {chunks:?}");
    };
    let tokens: Vec<&str> = streamed.deltas.iter().map(String::as_str).collect();
    run(&tokens);
    for (i, _) in answer.char_indices().skip(1) {
        run(&[&answer[..i], &answer[i..]]);
    }
    let chars: Vec<String> = answer.chars().map(String::from).collect();
    run(&chars.iter().map(String::as_str).collect::<Vec<_>>());
}

/// The judge detector on the demo model: the engine constrains the answer to the label grammar,
/// so it always parses, and temperature 0 makes it deterministic.
#[tokio::test]
async fn judge_detector_runs_on_the_demo_model() {
    use enclave_gateway::inference::policy::judge::EngineJudge;
    let app = spawn_with_db_and_model().await;
    let labels = vec!["abuse".to_owned(), "weather".to_owned()];
    let judge = EngineJudge::new(app.engine(), labels.clone());
    assert!(judge.spec().render("hi there").contains("abuse, weather"));
    for text in [
        "You are a worthless idiot and everybody hates you.",
        "It will rain in Paris tomorrow.",
    ] {
        let first = judge
            .classify(text)
            .await
            .expect("a constrained answer always parses");
        let second = judge
            .classify(text)
            .await
            .expect("a constrained answer always parses");
        assert_eq!(first, second, "same answer twice for {text:?}");
        assert!(
            first
                .iter()
                .all(|d| labels.contains(&d.label) && d.score == 1.0),
            "{first:?}"
        );
        eprintln!("judge on the demo model: {text:?} -> {first:?}");
    }
}

/// The audit record of a call carries the policy's decisions (version, outcome, trail).
#[tokio::test]
async fn audit_records_carry_the_policy_decisions() {
    let app = spawn_with_db_and_model().await;
    let (_, key) = tenant_key(&app, "acme").await;
    json_of(
        create(&app, &key, V1, "toml").await,
        StatusCode::CREATED,
        "v1",
    )
    .await;
    let id = uuid::Uuid::now_v7().to_string();
    let res = app
        .http
        .post(app.url("/v1/chat/completions"))
        .header("x-request-id", &id)
        .bearer_auth(&key)
        .json(&chat("about project falcon", false))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let record = loop {
        let mut tx = app.db().owner_pool().begin().await.expect("tx");
        sqlx::query("SELECT set_config('enclave.rls_bypass', 'on', true)")
            .execute(&mut *tx)
            .await
            .expect("bypass");
        let rows: Vec<(Value,)> = sqlx::query_as("SELECT record FROM audit_events WHERE record->>'request_id' = $1 AND record->>'phase' <> 'started'")
            .bind(&id)
            .fetch_all(&mut *tx)
            .await
            .expect("audit rows");
        tx.commit().await.expect("commit");
        if let Some((r,)) = rows.into_iter().next() {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no audit record for {id}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let policy = &record["policy"];
    assert_eq!(policy["version"], "1", "{record}");
    assert_eq!(policy["outcome"], "block", "{record}");
    assert_eq!(
        policy["decisions"]["blocked"]["category"], "codenames",
        "{record}"
    );
    assert_eq!(
        policy["decisions"]["blocked"]["field"], "messages[0].content",
        "{record}"
    );
}

/// A judge detector on input is enforced on the live path: for each prompt, the request is
/// refused exactly when the judge (asked directly, same model, greedy) names the blocked
/// category, and the decision is in the audit trail. Judges cannot watch output (422).
#[tokio::test]
async fn judge_detector_blocks_input_as_the_judge_decides() {
    use enclave_gateway::inference::policy::judge::EngineJudge;
    let app = spawn_with_db_and_model().await;
    let (_tenant, key) = tenant_key(&app, "judged").await;
    let doc = |scope: &str| {
        format!(
            "[[category]]\nname = \"weather\"\naction = \"block\"\nscope = \"{scope}\"\n\n\
             [[detector]]\nname = \"topic-judge\"\nkind = \"judge\"\ncategories = [\"weather\"]\n"
        )
    };
    let refused = json_of(
        create(&app, &key, &doc("both"), "toml").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "judge on output",
    )
    .await;
    assert_eq!(
        refused["error"]["code"], "judge_output_unsupported",
        "{refused}"
    );
    json_of(
        create(&app, &key, &doc("input"), "toml").await,
        StatusCode::CREATED,
        "judge on input",
    )
    .await;

    let judge = EngineJudge::new(app.engine(), vec!["weather".to_owned()]);
    let mut outcomes = Vec::new();
    for text in [
        "It will rain in Paris tomorrow, with strong winds and a cold front.",
        "Write a Python function that adds two numbers.",
    ] {
        let direct = judge.classify(text).await.expect("constrained answer");
        let says_weather = direct.iter().any(|d| d.label == "weather");
        let res = call(
            &app,
            Method::POST,
            "/v1/chat/completions",
            &key,
            Some(chat(text, false)),
        )
        .await;
        if says_weather {
            let body = json_of(res, StatusCode::BAD_REQUEST, "judged prompt").await;
            assert_eq!(body["error"]["code"], "policy_blocked:weather", "{body}");
            assert_eq!(body["error"]["field"], "messages[0].content", "{body}");
        } else {
            json_of(res, StatusCode::OK, "prompt the judge passes").await;
        }
        outcomes.push(says_weather);
    }
    eprintln!("judge verdicts (weather?): {outcomes:?}");
}
