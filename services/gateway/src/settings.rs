//! The one settings tree: defaults, then an optional TOML file, then `ENCLAVE_*` environment
//! variables (`__` separates levels: `ENCLAVE_SERVER__BIND=0.0.0.0:8080`). Validated at load;
//! secrets are [`Secret`]s whose `Debug` never shows the value.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("settings could not be read: {0}")]
    Load(#[source] Box<figment::Error>),
    #[error("setting `{field}` is invalid: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        field,
        message: message.into(),
    }
}

/// A value that must never reach a log line.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub model: ModelSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub adapters: crate::inference::adapters::AdapterSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// HTTP worker threads; 0 means one per CPU.
    pub workers: usize,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long a graceful shutdown waits for in-flight requests and streams.
    pub shutdown_timeout_secs: u64,
    /// Idle keep-alive of client connections.
    pub keep_alive_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            max_body_bytes: 4 * 1024 * 1024,
            shutdown_timeout_secs: 30,
            keep_alive_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://...` of an external server; unset runs the embedded cluster under `data_dir`.
    pub url: Option<Secret>,
    /// Where the embedded cluster (and other local state) lives.
    pub data_dir: PathBuf,
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: None,
            data_dir: PathBuf::from("data"),
            max_connections: 16,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// The base model to serve (GGUF file or safetensors directory).
    pub path: Option<PathBuf>,
    /// The id shown in `/v1/models` and accepted in `model`; defaults to the model's own name.
    pub served_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// `iss` of the access tokens this platform signs (and requires).
    pub issuer: String,
    /// `aud` of the access tokens this platform signs (and requires).
    pub audience: String,
    /// Reserved. The JWT signing keys live in the database (created on first start, rotated
    /// with `enclave admin`), so every gateway replica shares them; nothing is read from here.
    pub key_dir: Option<PathBuf>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            issuer: "enclave".to_owned(),
            audience: "enclave-api".to_owned(),
            key_dir: None,
        }
    }
}

impl AuthSettings {
    /// The authenticator's configuration; throttling and password rules keep their defaults.
    pub fn to_auth_config(&self) -> enclave_auth::AuthConfig {
        enclave_auth::AuthConfig {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            access_ttl: std::time::Duration::from_secs(self.access_token_ttl_secs),
            refresh_ttl: std::time::Duration::from_secs(self.refresh_token_ttl_secs),
            ..enclave_auth::AuthConfig::default()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `tracing` filter directives, e.g. `info,enclave_gateway=debug`.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Json,
            filter: "info".to_owned(),
        }
    }
}

/// `ENCLAVE_<SECTION>__<KEY>` variables. Every setting lives in a section, so a variable
/// without `__` is never one: those belong to the command line (`ENCLAVE_MODEL`,
/// `ENCLAVE_THREADS`, `ENCLAVE_LOG`, `ENCLAVE_CONFIG`, ...) and are left to it.
fn settings_env() -> Env {
    Env::prefixed("ENCLAVE_")
        .filter(|key| key.as_str().contains("__"))
        .split("__")
}

impl Settings {
    /// Defaults ← `file` (when given) ← `ENCLAVE_*` environment, then validated.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(invalid(
                    "config file",
                    format!("{} does not exist", file.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        Settings::from_figment(figment.merge(settings_env()))
    }

    /// Extracts and validates; exposed so the CLI can layer its own flags.
    pub fn from_figment(figment: Figment) -> Result<Settings, SettingsError> {
        let settings: Settings = figment
            .extract()
            .map_err(|e| SettingsError::Load(Box::new(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let s = &self.server;
        if s.workers > 1024 {
            return Err(invalid(
                "server.workers",
                format!("{} exceeds 1024", s.workers),
            ));
        }
        if !(1024..=1 << 30).contains(&s.max_body_bytes) {
            return Err(invalid(
                "server.max_body_bytes",
                "must be between 1 KiB and 1 GiB",
            ));
        }
        if s.shutdown_timeout_secs > 3600 {
            return Err(invalid(
                "server.shutdown_timeout_secs",
                "must be at most 3600",
            ));
        }
        if let Some(url) = &self.database.url
            && !(url.expose().starts_with("postgres://")
                || url.expose().starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                "must start with postgres:// or postgresql://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        let a = &self.auth;
        if !(10..=24 * 3600).contains(&a.access_token_ttl_secs) {
            return Err(invalid(
                "auth.access_token_ttl_secs",
                "must be between 10 s and 24 h",
            ));
        }
        if a.refresh_token_ttl_secs < a.access_token_ttl_secs {
            return Err(invalid(
                "auth.refresh_token_ttl_secs",
                "must not be shorter than the access token TTL",
            ));
        }
        if a.issuer.trim().is_empty() || a.audience.trim().is_empty() {
            return Err(invalid(
                "auth.issuer",
                "issuer and audience must not be empty",
            ));
        }
        self.adapters
            .validate()
            .map_err(|(field, reason)| invalid(field, reason))?;
        if self
            .model
            .served_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            return Err(invalid("model.served_name", "must not be empty"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().expect("defaults validate");
    }

    #[test]
    fn file_and_env_layer_and_secrets_stay_hidden() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("enclave.toml");
        std::fs::write(
            &file,
            "[server]\nbind = \"0.0.0.0:9000\"\n[database]\nurl = \"postgres://u:hunter2@db/enclave\"\n",
        )
        .expect("write");
        let figment = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file_exact(&file))
            .merge(Serialized::default("server.workers", 3));
        let settings = Settings::from_figment(figment).expect("valid");
        assert_eq!(settings.server.bind.port(), 9000);
        assert_eq!(settings.server.workers, 3);
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            settings
                .database
                .url
                .as_ref()
                .is_some_and(|u| u.expose().contains("hunter2"))
        );
    }

    #[test]
    fn adapter_precision_parses_and_unknown_values_are_refused() {
        use enclave_model_core::adapters::AdapterPrecision;
        let with = |v: &str| {
            Settings::from_figment(
                Figment::from(Serialized::defaults(Settings::default()))
                    .merge(Serialized::default("adapters.precision", v)),
            )
        };
        assert_eq!(
            Settings::default().adapters.precision,
            AdapterPrecision::AsStored
        );
        let bf16 = with("bf16").expect("bf16 is a precision");
        assert_eq!(bf16.adapters.precision, AdapterPrecision::Bf16);
        let err = with("f8").expect_err("f8 is not").to_string();
        assert!(err.contains("precision"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_field() {
        let cases = [
            (
                "server.max_body_bytes",
                Serialized::default("server.max_body_bytes", serde_json::json!(1)),
            ),
            (
                "database.url",
                Serialized::default("database.url", serde_json::json!("mysql://x")),
            ),
            (
                "auth.access_token_ttl_secs",
                Serialized::default("auth.access_token_ttl_secs", serde_json::json!(0)),
            ),
        ];
        for (field, provider) in cases {
            let figment = Figment::from(Serialized::defaults(Settings::default())).merge(provider);
            let err = Settings::from_figment(figment).expect_err("must be refused");
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
        let figment = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Serialized::default("server.bogus", 1));
        assert!(
            Settings::from_figment(figment).is_err(),
            "unknown keys are refused"
        );
    }
}
