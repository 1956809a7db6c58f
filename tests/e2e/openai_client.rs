//! The official `openai` Python package against the server, unchanged except base_url and
//! api_key (tests/clients/openai_client.py, run with the project's .venv).

use std::process::Command;

use serde_json::Value;

use enclave_tests::server::workspace_root;

use crate::support::shared_with_tenant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_client_chats_and_streams() {
    let root = workspace_root();
    let python = root.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} missing: run deploy/local/setup.sh",
        python.display()
    );
    let (app, t) = shared_with_tenant().await;

    let script = root.join("tests/clients/openai_client.py");
    let base = app.url("/v1");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([&base, &t.api_key, &t.model])
            .output()
    })
    .await
    .unwrap()
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client failed ({}):\n{stdout}\n{stderr}",
        out.status
    );

    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let call = |name: &str| {
        lines
            .iter()
            .find(|l| l["call"] == name)
            .unwrap_or_else(|| panic!("no {name} line in {stdout}"))
    };
    let chat = call("chat");
    assert_eq!(chat["role"], "assistant", "{chat}");
    let content = chat["content"].as_str().expect("content");
    assert!(!content.trim().is_empty(), "{chat}");
    assert!(
        chat["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{chat}"
    );
    let stream = call("stream");
    assert!(
        stream["chunks"].as_u64().is_some_and(|n| n >= 2),
        "{stream}"
    );
    // Greedy decoding: the streamed answer is the same text.
    assert_eq!(stream["content"].as_str(), Some(content), "{stream}");
    assert_eq!(stream["finish_reason"], chat["finish_reason"], "{stream}");
    assert_eq!(
        stream["completion_tokens"], chat["completion_tokens"],
        "{stream}"
    );
    let models = call("models");
    assert!(
        models["ids"].as_array().is_some_and(|ids| ids
            .iter()
            .any(|i| i == chat["model"].as_str().unwrap_or(""))),
        "{models}"
    );
}
