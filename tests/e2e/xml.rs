//! XML in and out on the inference API (the one documented JSON ⇄ XML mapping), errors and
//! streamed chunks included.

use reqwest::{Method, StatusCode};
use serde_json::json;

use enclave_tests::sse::data_events;
use enclave_tests::xml::text_at;

use crate::support::shared_with_tenant;

const XML: &str = "application/xml";

fn xml_request(model: &str, stream: bool) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<chat_completion_request>
  <model>{model}</model>
  <messages>
    <item><role>system</role><content>You are a helpful assistant &amp; you answer briefly.</content></item>
    <item><role>user</role><content>Name three colours.</content></item>
  </messages>
  <max_tokens>10</max_tokens>
  <temperature>0</temperature>
  <stream>{stream}</stream>
</chat_completion_request>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_request_and_xml_response_match_json() {
    let (app, t) = shared_with_tenant().await;
    let api = &app.api;

    // The same greedy request in JSON, for comparison.
    let json_body = json!({
        "model": t.model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant & you answer briefly."},
            {"role": "user", "content": "Name three colours."}
        ],
        "max_tokens": 10, "temperature": 0,
    });
    let r = api.chat(&t.api_key, &json_body).await.unwrap();
    let expected = r.expect(StatusCode::OK).unwrap()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();

    // XML in, XML out.
    let rb = api
        .request(Method::POST, "/v1/chat/completions", Some(&t.api_key))
        .header("content-type", XML)
        .header("accept", XML)
        .body(xml_request(&t.model, false));
    let r = api.send(rb).await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.header("content-type").is_some_and(|c| c.starts_with(XML)),
        "{:?}",
        r.headers
    );
    let doc = &r.body;
    let at = |path: &[&str]| {
        text_at(doc, path).unwrap_or_else(|e| panic!("not well-formed XML ({e}): {doc}"))
    };
    assert_eq!(
        at(&["chat_completion", "object"]).as_deref(),
        Some("chat.completion"),
        "{doc}"
    );
    assert_eq!(
        at(&["chat_completion", "model"]).as_deref(),
        Some(t.model.as_str()),
        "{doc}"
    );
    assert_eq!(
        at(&["chat_completion", "choices", "item", "message", "role"]).as_deref(),
        Some("assistant"),
        "{doc}"
    );
    assert_eq!(
        at(&["chat_completion", "choices", "item", "message", "content"]).as_deref(),
        Some(expected.as_str()),
        "{doc}"
    );
    let completion: u32 = at(&["chat_completion", "usage", "completion_tokens"])
        .expect("usage")
        .parse()
        .unwrap();
    assert!((1..=10).contains(&completion), "{doc}");

    // Streamed: still SSE, each event's data an XML chunk.
    let rb = api
        .request(Method::POST, "/v1/chat/completions", Some(&t.api_key))
        .header("content-type", XML)
        .header("accept", XML)
        .body(xml_request(&t.model, true));
    let r = api.send(rb).await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let events = data_events(&r.body);
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{}",
        r.body
    );
    let mut streamed = String::new();
    for e in &events[..events.len() - 1] {
        let object = text_at(e, &["chat_completion_chunk", "object"])
            .unwrap_or_else(|err| panic!("{err}: {e}"));
        assert_eq!(object.as_deref(), Some("chat.completion.chunk"), "{e}");
        if let Some(c) = text_at(
            e,
            &[
                "chat_completion_chunk",
                "choices",
                "item",
                "delta",
                "content",
            ],
        )
        .unwrap()
        {
            streamed.push_str(&c);
        }
    }
    assert_eq!(
        streamed, expected,
        "streamed XML chunks carry the same text"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_errors_are_xml_documents() {
    let (app, t) = shared_with_tenant().await;
    let api = &app.api;
    let cases = [
        (
            "malformed",
            "<chat_completion_request><model>x</chat_completion_request>".to_owned(),
        ),
        (
            "doctype",
            r#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><chat_completion_request/>"#
                .to_owned(),
        ),
        (
            "max_tokens",
            xml_request(&t.model, false)
                .replace("<max_tokens>10</max_tokens>", "<max_tokens>0</max_tokens>"),
        ),
    ];
    for (case, body) in cases {
        let rb = api
            .request(Method::POST, "/v1/chat/completions", Some(&t.api_key))
            .header("content-type", XML)
            .header("accept", XML)
            .body(body);
        let r = api.send(rb).await.unwrap();
        assert!(
            r.status.is_client_error(),
            "{case}: {} {}",
            r.status,
            r.body
        );
        assert!(
            r.header("content-type").is_some_and(|c| c.starts_with(XML)),
            "{case}: {:?}",
            r.headers
        );
        let code = text_at(&r.body, &["error_response", "error", "code"])
            .unwrap_or_else(|e| panic!("{case}: {e}: {}", r.body));
        assert!(
            code.is_some_and(|c| !c.is_empty()),
            "{case}: no error code in {}",
            r.body
        );
    }
    // An unauthenticated XML caller gets its 401 in XML too.
    let rb = api
        .request(Method::GET, "/v1/models", None)
        .header("accept", XML);
    let r = api.send(rb).await.unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        text_at(&r.body, &["error_response", "error", "code"])
            .unwrap()
            .as_deref(),
        Some("missing_credentials"),
        "{}",
        r.body
    );
}
