//! `spawn_app()` and helpers shared by the test modules.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use enclave_auth::{AuthConfig, Authenticator, NewApiKeyRequest};
use enclave_domain::{Email, Role, Scope, Scopes, TenantId, TenantSlug};
use enclave_gateway::{AppState, RunningServer, Server, Settings};
use enclave_model_core::engine::{Engine, EngineConfig};
use enclave_store::{NewTenant, TestDb, ThrottlePolicy};

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub server: RunningServer,
    pub base: String,
    pub http: reqwest::Client,
    /// The real authenticator the server uses (same database).
    pub auth: Authenticator,
    /// Kept alive for the server; tests inspect tables through it.
    pub db: TestDb,
    /// The audit spool and signing key of the server.
    _audit_dir: tempfile::TempDir,
    /// A tenant created at start-up, holding the keys of [`Self::inference_token`] and
    /// [`Self::audit_only_key`].
    #[allow(dead_code)]
    pub home_tenant: TenantId,
    inference_key: String,
    audit_key: String,
    engine: Option<Engine>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    #[allow(dead_code)]
    pub fn engine(&self) -> Engine {
        self.engine.clone().expect("spawned with a model")
    }

    #[allow(dead_code)]
    pub fn model_id(&self) -> String {
        self.server
            .state()
            .served_model()
            .map(|m| m.id.clone())
            .expect("spawned with a model")
    }

    #[allow(dead_code)]
    pub fn db(&self) -> &TestDb {
        &self.db
    }

    /// A new platform admin account's access token.
    #[allow(dead_code)]
    pub async fn platform_admin(&self) -> String {
        let user = self
            .auth
            .create_user(&unique_email("root"), PASSWORD, true)
            .await
            .expect("platform admin");
        self.auth
            .issue_access_token(&user.id, None, Role::PlatformAdmin)
            .await
            .expect("token")
    }

    /// A new account with `role` in `tenant`: its access token.
    #[allow(dead_code)]
    pub async fn member(&self, tenant: TenantId, role: Role) -> String {
        let user = self
            .auth
            .create_user(&unique_email("member"), PASSWORD, false)
            .await
            .expect("user");
        self.auth
            .store()
            .memberships()
            .upsert(&tenant, &user.id, role)
            .await
            .expect("membership");
        self.auth
            .issue_access_token(&user.id, Some(tenant), role)
            .await
            .expect("token")
    }

    /// A real API key (scope `inference`) of [`Self::home_tenant`].
    #[allow(dead_code)]
    pub fn inference_token(&self) -> String {
        self.inference_key.clone()
    }

    /// A real API key holding only `audit:read`.
    #[allow(dead_code)]
    pub fn audit_only_key(&self) -> String {
        self.audit_key.clone()
    }

    /// Creates a tenant directly in the store (bypassing the API).
    #[allow(dead_code)]
    pub async fn tenant(&self, slug: &str) -> TenantId {
        self.auth
            .store()
            .tenants()
            .create(NewTenant {
                slug: TenantSlug::parse(slug).expect("slug"),
                name: slug.to_owned(),
            })
            .await
            .expect("tenant")
            .id
    }

    /// A new API key of `tenant` with `scopes` (full key text).
    #[allow(dead_code)]
    pub async fn key(&self, tenant: TenantId, scopes: &[Scope]) -> String {
        self.auth
            .create_api_key(
                &tenant,
                NewApiKeyRequest {
                    name: "test".to_owned(),
                    scopes: Scopes::from_iter(scopes.iter().copied()),
                    expires_at: None,
                    created_by: None,
                    requests_per_minute: None,
                    tokens_per_minute: None,
                },
            )
            .await
            .expect("api key")
            .key
    }
}

pub fn unique_email(what: &str) -> Email {
    Email::parse(&format!(
        "{what}-{}@example.test",
        uuid::Uuid::new_v4().simple()
    ))
    .expect("email")
}

/// What the tests' servers authenticate with: the defaults, except that nothing is cached (so a
/// revocation made through another handle shows at once) and the throttle is quick to trip.
pub fn auth_config() -> AuthConfig {
    AuthConfig {
        user_status_ttl: Duration::ZERO,
        throttle: ThrottlePolicy {
            free_attempts: 3,
            base: Duration::from_secs(30),
            max: Duration::from_secs(600),
            reset_after: Duration::from_secs(3600),
        },
        ..AuthConfig::default()
    }
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = enclave_gateway::telemetry::init(&Default::default());
    }
}

pub fn test_settings() -> Settings {
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".parse().expect("addr");
    settings.server.workers = 2;
    settings.server.shutdown_timeout_secs = 30;
    settings.adapters.dir = Some(std::env::temp_dir().join(format!(
        "enclave-test-adapters-{}",
        uuid::Uuid::new_v4().simple()
    )));
    settings
}

/// The demo model (override with `ENCLAVE_TEST_MODEL`); the set-up in the README fetches it.
fn model_path() -> PathBuf {
    std::env::var_os("ENCLAVE_TEST_MODEL").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        },
        PathBuf::from,
    )
}

fn load_engine() -> Engine {
    let path = model_path();
    assert!(
        path.is_file(),
        "demo model missing at {} (see README set-up)",
        path.display()
    );
    let cfg = EngineConfig {
        kv_cache_bytes: 96 << 20,
        max_context: Some(2048),
        ..EngineConfig::default()
    };
    Engine::load(&path, cfg).expect("demo model loads")
}

/// One engine per test process: loading is the slow part, and sequences are isolated.
fn shared_engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(load_engine).clone()
}

/// A private engine, for tests that read its metrics.
#[allow(dead_code)]
pub async fn spawn_with_own_model() -> TestApp {
    let engine = tokio::task::spawn_blocking(load_engine)
        .await
        .expect("engine loader");
    spawn(test_settings(), Some(engine)).await
}

/// A server with a fresh database and the real authenticator, no model.
#[allow(dead_code)]
pub async fn spawn_app() -> TestApp {
    spawn(test_settings(), None).await
}

/// Same as [`spawn_app`] (every test server has a database of its own).
#[allow(dead_code)]
pub async fn spawn_with_db() -> TestApp {
    spawn(test_settings(), None).await
}

/// A server with a fresh database and the shared demo model.
#[allow(dead_code)]
pub async fn spawn_with_db_and_model() -> TestApp {
    spawn_with_model().await
}

#[allow(dead_code)]
pub async fn spawn_with_model() -> TestApp {
    let engine = tokio::task::spawn_blocking(shared_engine)
        .await
        .expect("engine loader");
    spawn(test_settings(), Some(engine)).await
}

async fn spawn(settings: Settings, engine: Option<Engine>) -> TestApp {
    init_logs();
    let db = TestDb::fresh().await;
    let auth = Authenticator::new(db.store().clone(), auth_config())
        .await
        .expect("authenticator");
    let audit_dir = tempfile::tempdir().expect("audit dir");
    let audit =
        enclave_gateway::audit::AuditLog::start(db.store().pool().clone(), audit_dir.path())
            .await
            .expect("audit writer");
    let mut builder = AppState::builder(settings)
        .auth(auth.clone())
        .store(db.store().clone())
        .audit(audit);
    if let Some(engine) = engine.clone() {
        builder = builder.engine(engine);
    }
    let server = Server::start(builder.build()).expect("server starts");
    let base = format!("http://{}", server.addr);
    let mut app = TestApp {
        server,
        base,
        http: reqwest::Client::new(),
        auth,
        db,
        _audit_dir: audit_dir,
        home_tenant: TenantId::new(),
        inference_key: String::new(),
        audit_key: String::new(),
        engine,
    };
    app.home_tenant = app.tenant("home").await;
    app.inference_key = app.key(app.home_tenant, &[Scope::Inference]).await;
    app.audit_key = app.key(app.home_tenant, &[Scope::AuditRead]).await;
    app
}

/// One authenticated request with an optional JSON body.
pub async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    bearer: &str,
    body: Option<serde_json::Value>,
) -> reqwest::Response {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(bearer);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.expect("request")
}

/// The JSON body of `res` (null when it has none), after asserting its status.
pub async fn json_of(
    res: reqwest::Response,
    status: reqwest::StatusCode,
    what: &str,
) -> serde_json::Value {
    let got = res.status();
    let body: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
    assert_eq!(got, status, "{what}: {body}");
    body
}
