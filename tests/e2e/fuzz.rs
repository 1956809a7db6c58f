//! API fuzzing driven by the OpenAPI document: schemathesis (from the project's .venv) against a
//! running server with a valid API key, bounded in examples and time. Fails on any 5xx and on
//! any response that does not conform to the document (status, content type, headers, schema).

use std::process::Command;

use serde_json::json;

use enclave_tests::api::TenantFixture;
use enclave_tests::server::workspace_root;

use crate::support::shared;

/// Wall-clock budget of the whole schemathesis run.
const MAX_TIME_SECS: &str = "150";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_driven_fuzzing_finds_no_server_errors_or_schema_violations() {
    let root = workspace_root();
    let st = root.join(".venv/bin/schemathesis");
    assert!(
        st.is_file(),
        "{} missing: run deploy/local/setup.sh",
        st.display()
    );
    // The shared server's short context bounds every generation, whatever the fuzzer sends;
    // the fuzzer works inside a tenant of its own.
    let app = shared().await;
    let t = TenantFixture::create(&app.api, &app.platform_admin)
        .await
        .unwrap();
    let (key, _) = app
        .api
        .create_api_key(
            &t.admin_token,
            &t.tenant_id,
            &json!({"name": "fuzz", "scopes": ["inference", "admin"]}),
        )
        .await
        .unwrap();

    let schema = app.url("/openapi.json");
    let base = app.base_url().to_owned();
    let hooks = root.join("tests/clients/schemathesis_hooks.py");
    let report = tempfile::tempdir().unwrap();
    let report_dir = report.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .current_dir(&report_dir)
            .env("SCHEMATHESIS_HOOKS", hooks)
            .env("NO_COLOR", "1")
            .args(["run", &schema, "--url", &base])
            .args(["--header", &format!("Authorization: Bearer {key}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
            ])
            .args(["--max-examples", "5", "--max-time", MAX_TIME_SECS, "--workers", "1", "--seed", "20261122"])
            .args(["--request-timeout", "120", "--phases", "examples,coverage,fuzzing"])
            .args(["--suppress-health-check", "all", "--no-shrink", "--output-truncate", "false"])
            .output()
    })
    .await
    .unwrap()
    .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis reported failures ({}):\n{stdout}\n{stderr}\n---- server ----\n{}",
        out.status,
        app.logs()
    );
    // It really ran against the API: operations were tested.
    assert!(
        stdout.contains("passed") || stdout.contains("Passed"),
        "no tested operations in the summary:\n{stdout}"
    );
}
