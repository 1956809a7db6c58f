//! `spawn_app()` and helpers shared by the test modules.

use std::path::PathBuf;
use std::sync::OnceLock;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use enclave_domain::{ApiKeyId, Principal, Role, Scope, Scopes, TenantId, UserId};
use enclave_store::TestDb;
use enclave_gateway::auth::{AuthFailure, AuthFuture, AuthRejection, Authenticate};
use enclave_gateway::{AppState, RunningServer, Server, Settings};
use enclave_model_core::engine::{Engine, EngineConfig};

pub struct TestApp {
    pub server: RunningServer,
    pub base: String,
    pub http: reqwest::Client,
    pub tokens: Arc<StaticTokens>,
    /// Kept alive for the server; tests inspect tables through it.
    #[allow(dead_code)]
    pub db: Option<TestDb>,
    engine: Option<Engine>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn engine(&self) -> Engine {
        self.engine.clone().expect("spawned with a model")
    }

    pub fn model_id(&self) -> String {
        self.server
            .state()
            .served_model()
            .map(|m| m.id.clone())
            .expect("spawned with a model")
    }

    #[allow(dead_code)]
    pub fn db(&self) -> &TestDb {
        self.db.as_ref().expect("spawned with a database")
    }

    /// A platform admin's bearer token.
    pub fn platform_admin(&self) -> String {
        self.tokens.issue(Principal::user(UserId::new(), None, Role::PlatformAdmin))
    }

    /// A bearer token of a `role` member of `tenant`.
    pub fn member(&self, tenant: TenantId, role: Role) -> String {
        self.tokens.issue(Principal::user(UserId::new(), Some(tenant), role))
    }

    /// A bearer token allowed to call the inference routes.
    pub fn inference_token(&self) -> String {
        INFERENCE_TOKEN.to_owned()
    }
}

pub const INFERENCE_TOKEN: &str = "static-inference-key";
pub const AUDIT_ONLY_TOKEN: &str = "static-audit-key";
pub const AUDIT_ONLY_BEARER: &str = "Bearer static-audit-key";

/// Stand-in credentials until the gateway is wired to `enclave-auth` (then these tests use real
/// tokens and API keys created through the API).
pub struct StaticTokens(Mutex<HashMap<String, Principal>>);

impl StaticTokens {
    /// A fresh bearer token for `principal`.
    pub fn issue(&self, principal: Principal) -> String {
        let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
        self.0.lock().expect("tokens").insert(token.clone(), principal);
        token
    }
}

impl Authenticate for StaticTokens {
    fn authenticate<'a>(&'a self, bearer: &'a str) -> AuthFuture<'a> {
        let found = self.0.lock().expect("tokens").get(bearer).cloned();
        Box::pin(async move {
            found.ok_or(AuthFailure::Rejected(AuthRejection {
                code: "invalid_token",
                message: "the credential is not valid".to_owned(),
            }))
        })
    }
}

fn static_tokens() -> Arc<StaticTokens> {
    let tenant = TenantId::new();
    Arc::new(StaticTokens(Mutex::new(HashMap::from([
        (INFERENCE_TOKEN.to_owned(), Principal::api_key(ApiKeyId::new(), tenant, Scopes::from_iter([Scope::Inference]))),
        (AUDIT_ONLY_TOKEN.to_owned(), Principal::api_key(ApiKeyId::new(), tenant, Scopes::from_iter([Scope::AuditRead]))),
    ]))))
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
    settings
}

/// The demo model (override with `ENCLAVE_TEST_MODEL`); the set-up in the README fetches it.
fn model_path() -> PathBuf {
    std::env::var_os("ENCLAVE_TEST_MODEL").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        PathBuf::from,
    )
}

fn load_engine() -> Engine {
    let path = model_path();
    assert!(path.is_file(), "demo model missing at {} (see README set-up)", path.display());
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
pub async fn spawn_with_own_model() -> TestApp {
    let engine = tokio::task::spawn_blocking(load_engine).await.expect("engine loader");
    spawn(test_settings(), Some(engine), None).await
}

pub async fn spawn_app() -> TestApp {
    spawn(test_settings(), None, None).await
}

/// A server with a fresh database of its own.
pub async fn spawn_with_db() -> TestApp {
    spawn(test_settings(), None, Some(TestDb::fresh().await)).await
}

/// A server with a fresh database and the shared demo model.
pub async fn spawn_with_db_and_model() -> TestApp {
    let engine = tokio::task::spawn_blocking(shared_engine).await.expect("engine loader");
    spawn(test_settings(), Some(engine), Some(TestDb::fresh().await)).await
}

pub async fn spawn_with_model() -> TestApp {
    let engine = tokio::task::spawn_blocking(shared_engine).await.expect("engine loader");
    spawn(test_settings(), Some(engine), None).await
}

async fn spawn(settings: Settings, engine: Option<Engine>, db: Option<TestDb>) -> TestApp {
    init_logs();
    let tokens = static_tokens();
    let mut builder = AppState::builder(settings).authenticator(tokens.clone());
    if let Some(db) = &db {
        builder = builder.store(db.store().clone());
    }
    if let Some(engine) = engine.clone() {
        builder = builder.engine(engine);
    }
    let server = Server::start(builder.build()).expect("server starts");
    let base = format!("http://{}", server.addr);
    TestApp {
        server,
        base,
        http: reqwest::Client::new(),
        tokens,
        db,
        engine,
    }
}
