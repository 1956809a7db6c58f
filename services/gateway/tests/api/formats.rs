//! `response_format` over HTTP on the demo model: JSON schema, regex and XML answers that hold
//! their format whole and streamed, the `format_incomplete` flag on a cut-off structure, and
//! typed 400s for bad formats before anything is generated.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_with_model};

fn chat(format: Value, max_tokens: u32, stream: bool) -> Value {
    json!({
        "model": "base",
        "messages": [
            {"role": "system", "content": "You answer in the requested format."},
            {"role": "user", "content": "Describe a person called Ada who is 36 years old."}
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
        "response_format": format,
    })
}

async fn post(app: &TestApp, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(app.inference_token())
        .json(body)
        .send()
        .await
        .expect("request")
}

/// The whole answer: (content, finish_reason, format_incomplete).
async fn whole(app: &TestApp, body: &Value) -> (String, String, Option<bool>) {
    let res = post(app, body).await;
    assert_eq!(res.status(), StatusCode::OK, "{body}");
    let v: Value = res.json().await.expect("json");
    let choice = &v["choices"][0];
    (
        choice["message"]["content"]
            .as_str()
            .expect("content")
            .to_owned(),
        choice["finish_reason"].as_str().expect("finish").to_owned(),
        choice["format_incomplete"].as_bool(),
    )
}

/// The streamed answer, deltas joined: (content, finish_reason, format_incomplete).
async fn streamed(app: &TestApp, body: &Value) -> (String, String, Option<bool>) {
    let res = post(app, body).await;
    assert_eq!(res.status(), StatusCode::OK, "{body}");
    let text = res.text().await.expect("body");
    let (mut content, mut finish, mut incomplete) = (String::new(), String::new(), None);
    for data in text
        .split("\n\n")
        .flat_map(|e| e.lines())
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
    {
        let chunk: Value = serde_json::from_str(data).expect("chunk json");
        let Some(choice) = chunk["choices"].get(0) else {
            continue;
        };
        content.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = f.to_owned();
            incomplete = choice["format_incomplete"].as_bool();
        }
    }
    (content, finish, incomplete)
}

fn person_schema() -> Value {
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

fn assert_person(content: &str) {
    let v: Value = serde_json::from_str(content).unwrap_or_else(|e| panic!("{e}: {content:?}"));
    let obj = v.as_object().expect("an object");
    assert_eq!(obj.len(), 2, "{content}");
    let name = obj["name"].as_str().expect("name is a string");
    assert!(name.chars().count() <= 12, "{content}");
    let age = obj["age"].as_i64().expect("age is an integer");
    assert!((0..=150).contains(&age), "{content}");
}

#[tokio::test]
async fn json_schema_answers_validate_whole_and_streamed() {
    let app = spawn_with_model().await;
    let (content, finish, incomplete) = whole(&app, &chat(person_schema(), 64, false)).await;
    assert_eq!(finish, "stop", "{content}");
    assert_eq!(incomplete, None);
    assert_person(&content);
    let (s_content, s_finish, s_incomplete) =
        streamed(&app, &chat(person_schema(), 64, true)).await;
    assert_eq!(
        (s_content.as_str(), s_finish.as_str(), s_incomplete),
        (content.as_str(), "stop", None),
        "greedy: streamed and whole agree"
    );
}

#[tokio::test]
async fn regex_and_xml_answers_hold_their_format() {
    let app = spawn_with_model().await;
    let phone = json!({"type": "regex", "regex": {"pattern": "[0-9]{3}-[0-9]{4}"}});
    let (content, finish, _) = whole(&app, &chat(phone, 16, false)).await;
    assert_eq!(finish, "stop", "{content}");
    let bytes = content.as_bytes();
    assert!(
        bytes.len() == 8
            && bytes[3] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 3 || b.is_ascii_digit()),
        "{content:?} must match [0-9]{{3}}-[0-9]{{4}} whole"
    );

    let xml = json!({"type": "xml", "xml": {"root": "person"}});
    let (content, finish, _) = whole(&app, &chat(xml, 96, false)).await;
    if finish == "stop" {
        let mut reader = quick_xml::Reader::from_str(&content);
        let mut root = None;
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                    root.get_or_insert_with(|| e.name().0.to_owned());
                }
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("not well-formed: {e}: {content:?}"),
            }
        }
        assert_eq!(root.as_deref(), Some("person"), "{content}");
    } else {
        assert_eq!(finish, "length");
        assert!(content.starts_with("<person"), "{content}");
    }
}

#[tokio::test]
async fn a_structure_cut_off_by_max_tokens_is_flagged() {
    let app = spawn_with_model().await;
    let (content, finish, incomplete) = whole(&app, &chat(person_schema(), 3, false)).await;
    assert_eq!(finish, "length", "{content}");
    assert_eq!(incomplete, Some(true), "{content}");
    assert!(
        serde_json::from_str::<Value>(&content).is_err(),
        "{content}"
    );
    let (_, s_finish, s_incomplete) = streamed(&app, &chat(person_schema(), 3, true)).await;
    assert_eq!((s_finish.as_str(), s_incomplete), ("length", Some(true)));
    // Free text cut by max_tokens is plain `length`, without the flag.
    let (_, finish, incomplete) = whole(&app, &chat(json!({"type": "text"}), 3, false)).await;
    assert_eq!((finish.as_str(), incomplete), ("length", None));
}

#[tokio::test]
async fn bad_formats_are_typed_400s() {
    let app = spawn_with_model().await;
    let cases = [
        (json!({"type": "yaml"}), "invalid_response_format"),
        (json!("json"), "invalid_response_format"),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": 3}}),
            "invalid_json_schema",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strng"}}}),
            "invalid_json_schema",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x",
                "schema": {"type": "object", "not": {"type": "null"}}}}),
            "unsupported_schema_keyword",
        ),
        (
            json!({"type": "regex", "regex": {"pattern": "(ab"}}),
            "invalid_regex",
        ),
        (
            json!({"type": "grammar", "grammar": {"lark": "start: undefined_rule"}}),
            "invalid_grammar",
        ),
        (
            json!({"type": "template", "template": {"id": "no-such-template"}}),
            "template_not_found",
        ),
    ];
    for stream in [false, true] {
        for (format, code) in &cases {
            let res = post(&app, &chat(format.clone(), 8, stream)).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{format}");
            let body: Value = res.json().await.expect("json error");
            assert_eq!(body["error"]["code"], *code, "{format}: {body}");
            assert!(
                body["error"]["field"]
                    .as_str()
                    .is_some_and(|f| f.starts_with("response_format")),
                "{format}: {body}"
            );
        }
    }
}
