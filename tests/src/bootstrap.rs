//! The first platform admin of a fresh install, made the way an operator makes it:
//! `enclave admin create-platform-admin --email E --password-stdin` against the server's
//! database (`DATABASE_URL`) or its data directory (embedded cluster, while `serve` is stopped).
//! Everything after that goes through the HTTP API.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// A password that satisfies the default policy.
pub const ADMIN_PASSWORD: &str = "e2e correct horse battery staple";

/// Where the admin command finds the database.
pub enum Database<'a> {
    Url(&'a str),
    DataDir(&'a Path),
}

/// Runs `bin admin create-platform-admin`; returns its JSON output (`user_id`, `email`).
pub fn create_platform_admin(
    bin: &Path,
    db: Database<'_>,
    email: &str,
    password: &str,
) -> anyhow::Result<Value> {
    let mut cmd = Command::new(bin);
    cmd.args([
        "admin",
        "create-platform-admin",
        "--email",
        email,
        "--password-stdin",
    ])
    .env_remove("DATABASE_URL")
    .env_remove("ENCLAVE_CONFIG")
    .env("ENCLAVE_LOG", "warn")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    match db {
        Database::Url(url) => cmd.env("DATABASE_URL", url),
        Database::DataDir(dir) => cmd.arg("--data-dir").arg(dir),
    };
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{password}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "create-platform-admin failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("no JSON in {stdout}"))?;
    let v: Value = serde_json::from_str(line)?;
    if v["email"] != email {
        bail!("create-platform-admin answered {v}");
    }
    Ok(v)
}
