//! `spawn_app()` and HTTP helpers shared by the test modules.

use enclave_gateway::{AppState, RunningServer, Server, Settings};

pub struct TestApp {
    pub server: RunningServer,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
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
    settings.server.shutdown_timeout_secs = 10;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_with(test_settings()).await
}

pub async fn spawn_with(settings: Settings) -> TestApp {
    init_logs();
    let server = Server::start(AppState::new(settings)).expect("server starts");
    let base = format!("http://{}", server.addr);
    TestApp {
        server,
        base,
        http: reqwest::Client::new(),
    }
}
