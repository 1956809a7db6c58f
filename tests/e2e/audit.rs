//! The audit trail under failure: the real server killed with SIGKILL mid-load and restarted
//! loses no record of an answer any client received, and every chain still verifies.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use enclave_tests::api::TenantFixture;
use enclave_tests::server::temp_data_dir;
use enclave_tests::{Api, EnclaveServer};

use crate::support::{BIN, spawn_app_with};

/// Request ids of `tenant` whose audit records are final (single / completed / aborted), read
/// page by page through `GET /v1/audit/events` as a platform admin.
async fn recorded_request_ids(api: &Api, admin: &str, tenant: &str) -> HashSet<String> {
    let http = reqwest::Client::new();
    let mut ids = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = api.url(&format!("/v1/audit/events?tenant={tenant}&limit=500"));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(url)
            .bearer_auth(admin)
            .send()
            .await
            .expect("events")
            .json()
            .await
            .expect("json");
        for e in page["data"].as_array().expect("data") {
            if e["record"]["phase"] != "started"
                && let Some(id) = e["record"]["request_id"].as_str()
            {
                ids.insert(id.to_owned());
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
}

/// `enclave audit verify` over every chain: exit 0 when all verify.
fn verify_all(owner_url: &str) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(["audit", "verify"])
        .env("DATABASE_URL", owner_url)
        .output()
        .expect("enclave audit verify")
}

/// Clients that send `GET /v1/models` and small chat completions until stopped; the ids of the
/// requests they got a complete answer for (any status) are "acknowledged".
fn load(
    api: &Api,
    key: &str,
    clients: usize,
) -> (Arc<Mutex<Vec<String>>>, Vec<tokio::task::JoinHandle<()>>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, acked, key) = (reqwest::Client::new(), acked.clone(), key.to_owned());
        let (models, chat) = (api.url("/v1/models"), api.url("/v1/chat/completions"));
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let id = uuid::Uuid::now_v7().to_string();
                let rb = if (c + i) % 4 == 0 {
                    http.post(&chat)
                        .json(&json!({"model": "base", "max_tokens": 2,
                        "messages": [{"role": "user", "content": "Hi"}]}))
                } else {
                    http.get(&models)
                };
                let Ok(res) = rb
                    .bearer_auth(&key)
                    .header("x-request-id", &id)
                    .send()
                    .await
                else {
                    return;
                };
                if res.bytes().await.is_ok() {
                    acked.lock().expect("lock").push(id);
                }
            }
        }));
    }
    (acked, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_no_acknowledged_record() {
    let dir = temp_data_dir().unwrap();
    let data = dir.path().to_owned();
    let mut app = spawn_app_with(|o| o.data_dir(&data)).await;
    let owner_url = app.db.urls().owner.clone();
    let fixture = TenantFixture::create(&app.api, &app.platform_admin)
        .await
        .unwrap();

    let (acked, tasks) = load(&app.api, &fixture.api_key, 16);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = libc::pid_t::try_from(app.server.pid().expect("running")).expect("pid");
    // SAFETY: kill(2) on the child the harness spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    for t in tasks {
        let _ = t.await;
    }
    let _ = app.server.wait_exit(Duration::from_secs(30)).await;
    let acked: Vec<String> = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 10,
        "the load produced too little to test: {}",
        acked.len()
    );

    // Restart on the same data directory (spool) and database: the spool is replayed.
    let restarted = EnclaveServer::start(
        crate::support::options()
            .data_dir(&data)
            .database_url(owner_url.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let api = Api::new(restarted.base_url()).expect("client");
    let recorded = recorded_request_ids(&api, &app.platform_admin, &fixture.tenant_id).await;
    let lost: Vec<&String> = acked.iter().filter(|id| !recorded.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged requests have no record: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    let out = verify_all(&owner_url);
    assert!(
        out.status.success(),
        "chains do not verify:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(restarted);
}

/// Request ids with a final record in `tenant`'s chain and in the platform chain (calls refused
/// before authentication, e.g. while the database was down, are recorded there).
async fn recorded_anywhere(api: &Api, admin: &str, tenant: &str) -> HashSet<String> {
    let mut ids = recorded_request_ids(api, admin, tenant).await;
    ids.extend(recorded_request_ids(api, admin, "00000000-0000-0000-0000-000000000000").await);
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_under_load_loses_no_record() {
    use enclave_store::{EmbeddedOptions, EmbeddedPostgres};
    let dir = temp_data_dir().unwrap();
    let mut pg_opts = EmbeddedOptions::new(dir.path().join("pg"));
    pg_opts.port = 20_000 + u16::try_from(std::process::id() % 5000).expect("port");
    let mut pg = EmbeddedPostgres::start(pg_opts.clone())
        .await
        .expect("cluster");
    let owner_url = pg.urls().owner;
    let url = owner_url.clone();
    let (email, password) = ("root@outage.example.com", "outage admin password 1");
    tokio::task::spawn_blocking(move || {
        enclave_tests::bootstrap::create_platform_admin(
            BIN.as_ref(),
            enclave_tests::bootstrap::Database::Url(&url),
            email,
            password,
        )
    })
    .await
    .unwrap()
    .unwrap();
    let server = EnclaveServer::start(
        crate::support::options()
            .data_dir(dir.path().join("serve"))
            .database_url(owner_url.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let api = Api::new(server.base_url()).unwrap();
    let admin = api.login(email, password, None).await.unwrap().access_token;
    let fixture = TenantFixture::create(&api, &admin).await.unwrap();

    let (acked, tasks) = load(&api, &fixture.api_key, 8);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = acked.lock().expect("lock").len();
    pg.stop().expect("stop postgres");
    tokio::time::sleep(Duration::from_secs(20)).await;
    let during: usize = acked.lock().expect("lock").len();
    let _pg = EmbeddedPostgres::start(pg_opts)
        .await
        .expect("cluster back");
    tokio::time::sleep(Duration::from_secs(3)).await;
    for t in &tasks {
        t.abort();
    }
    let acked: Vec<String> = acked.lock().expect("lock").clone();
    // Answered while PostgreSQL was down: their records could only go to the spool.
    assert!(
        during > before,
        "no answer during the outage ({before} before it)"
    );
    eprintln!(
        "outage test: {before} answers before, {} during, {} in all",
        during - before,
        acked.len()
    );
    // The spool is replayed once the database is back: wait (bounded) for every record.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let lost = loop {
        let recorded = recorded_anywhere(&api, &admin, &fixture.tenant_id).await;
        let lost: Vec<String> = acked
            .iter()
            .filter(|id| !recorded.contains(*id))
            .cloned()
            .collect();
        if lost.is_empty() || tokio::time::Instant::now() > deadline {
            break lost;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        lost.is_empty(),
        "{} of {} answered requests have no record: {:?}\n{}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)],
        server.logs()
    );
    let out = verify_all(&owner_url);
    assert!(
        out.status.success(),
        "chains do not verify:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
