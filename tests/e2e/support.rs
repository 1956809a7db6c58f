//! Servers for the tests.
//!
//! - [`shared`]: one server (and one database) for every test of this binary that only needs a
//!   tenant of its own: tenants are isolated from each other, so these tests share a process and
//!   the model load, and each walks its own tenant set-up over HTTP.
//! - [`spawn_app_with`]: a server of its own, for tests that stop it or change its settings.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use enclave_store::TestDb;
use enclave_tests::api::{Api, TenantFixture};
use enclave_tests::bootstrap::{self, ADMIN_PASSWORD, Database};
use enclave_tests::server::Logs;
use enclave_tests::{EnclaveServer, ServerOptions};

pub const BIN: &str = env!("CARGO_BIN_EXE_enclave-under-test");

/// A context cap that bounds every generation on the shared server, including what a fuzzer
/// sends (prompt + completion, in tokens); the tests' own requests stay far below it.
const SHARED_MAX_CONTEXT: usize = 256;
const PLATFORM_ADMIN: &str = "root@platform.example.com";

pub struct TestApp {
    pub api: Api,
    /// The platform admin's access token.
    pub platform_admin: String,
    pub server: EnclaveServer,
    /// Outlives the server (declared after it: dropped after it).
    #[allow(dead_code)]
    pub db: TestDb,
}

pub fn options() -> ServerOptions {
    ServerOptions::new(BIN)
}

/// A server on a fresh database with a platform admin who has logged in, after the operator's
/// bootstrap (`enclave admin create-platform-admin`).
async fn start_with_admin(opts: ServerOptions) -> anyhow::Result<(EnclaveServer, TestDb, String)> {
    let db = TestDb::fresh().await;
    // The owner URL: `serve` migrates with the URL it is given (already done here, a no-op).
    let server = EnclaveServer::start(opts.database_url(db.urls().owner.clone())).await?;
    let url = db.urls().owner.clone();
    tokio::task::spawn_blocking(move || {
        bootstrap::create_platform_admin(
            BIN.as_ref(),
            Database::Url(&url),
            PLATFORM_ADMIN,
            ADMIN_PASSWORD,
        )
    })
    .await??;
    let api = Api::new(server.base_url())?;
    let session = api.login(PLATFORM_ADMIN, ADMIN_PASSWORD, None).await?;
    Ok((server, db, session.access_token))
}

/// A server of its own on a fresh database; `tweak` adjusts its options (environment, ...).
pub async fn spawn_app_with(tweak: impl FnOnce(ServerOptions) -> ServerOptions) -> TestApp {
    match start_with_admin(tweak(options())).await {
        Ok((server, db, platform_admin)) => {
            let api = Api::new(server.base_url()).expect("client");
            TestApp {
                api,
                platform_admin,
                server,
                db,
            }
        }
        Err(e) => panic!("{e:#}"),
    }
}

/// What the tests need of the shared server.
struct Shared {
    base_url: String,
    platform_admin: String,
    logs: Logs,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
/// The shared server's pid, for the exit hook.
static SHARED_PID: AtomicI32 = AtomicI32::new(0);

/// Stops the shared server when the test process exits: registered after the test cluster's own
/// hook, so it runs before it (the server stops before its database).
extern "C" fn stop_shared_server() {
    let pid = SHARED_PID.swap(0, Ordering::SeqCst);
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2)/waitpid(2) on our own child, which nothing else reaps.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut status = 0;
        // SAFETY: as above; WNOHANG never blocks.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r != 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above; harmless when it has exited already.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Starts the shared server on a thread (and runtime) of its own that lives as long as the
/// process: each test's runtime dies with its test, the server and its database pools must not.
fn start_shared() -> Result<Shared, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("shared-enclave".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let opts = options()
                    .max_context(SHARED_MAX_CONTEXT)
                    // Tests of this process may run for longer than the default access token TTL.
                    .env("ENCLAVE_AUTH__ACCESS_TOKEN_TTL_SECS", "7200");
                match start_with_admin(opts).await {
                    Ok((server, db, platform_admin)) => {
                        if let Some(pid) = server.pid().and_then(|p| i32::try_from(p).ok()) {
                            SHARED_PID.store(pid, Ordering::SeqCst);
                            // SAFETY: registering a plain extern "C" fn that only touches statics.
                            unsafe { libc::atexit(stop_shared_server) };
                        }
                        let shared = Shared {
                            base_url: server.base_url().to_owned(),
                            platform_admin,
                            logs: server.log_handle(),
                        };
                        let _ = tx.send(Ok(shared));
                        // Keep the server, the database and this runtime alive until the process exits.
                        let _keep = (server, db);
                        std::future::pending::<()>().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                    }
                }
            });
        });
    if let Err(e) = spawned {
        return Err(e.to_string());
    }
    rx.recv()
        .map_err(|e| format!("the shared server thread ended: {e}"))?
}

/// A handle on the shared server for one test; prints the server's recent output when the test
/// fails.
pub struct SharedApp {
    pub api: Api,
    /// The platform admin's access token.
    pub platform_admin: String,
    base_url: String,
    logs: Logs,
}

impl SharedApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn logs(&self) -> String {
        self.logs.text()
    }

    /// Waits until the server has logged a JSON line that satisfies `pred`.
    pub async fn wait_for_log(&self, pred: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let logs = self.logs.text();
            if logs
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|l| pred(&l))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no such JSON log line from the shared server"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SharedApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.logs.text();
            let tail = logs.len().saturating_sub(32 * 1024);
            let tail = (tail..logs.len())
                .find(|&i| logs.is_char_boundary(i))
                .unwrap_or(0);
            eprintln!(
                "---- recent output of the shared server ----\n{}---- end ----",
                &logs[tail..]
            );
        }
    }
}

/// The shared server (started by the first test that asks).
pub async fn shared() -> SharedApp {
    let shared = tokio::task::spawn_blocking(|| SHARED.get_or_init(start_shared))
        .await
        .expect("shared server start");
    match shared {
        Ok(s) => SharedApp {
            // A client per test: connections belong to the test's runtime.
            api: Api::new(&s.base_url).expect("client"),
            platform_admin: s.platform_admin.clone(),
            base_url: s.base_url.clone(),
            logs: s.logs.clone(),
        },
        Err(e) => panic!("the shared server did not start: {e}"),
    }
}

/// The shared server plus a tenant of this test's own, with an admin and an inference key.
pub async fn shared_with_tenant() -> (SharedApp, TenantFixture) {
    let app = shared().await;
    let tenant = TenantFixture::create(&app.api, &app.platform_admin)
        .await
        .expect("tenant set-up");
    (app, tenant)
}

/// Token ids of SmolLM2's end markers (`<|endoftext|>`, `<|im_end|>`): biasing them away keeps
/// a generation running until `max_tokens`.
pub fn no_eos_bias() -> serde_json::Value {
    serde_json::json!({"0": -100, "2": -100})
}
