//! The embedded cluster: `enclave serve` without `DATABASE_URL` runs its own PostgreSQL under its
//! data directory with the system's binaries.
//!
//! Layout under `EmbeddedOptions::root` (created mode 0700, owned by the server's OS user):
//! `data/` (the cluster), `run/` (the unix socket), `server.log`. The server listens on the unix
//! socket only (`listen_addresses = ''`) with `trust` authentication: the 0700 socket directory is
//! the access control, exactly as for the data files themselves.

mod binaries;
mod os_user;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::db::{APP_ROLE, DbUrls, OWNER_ROLE};
use crate::error::EmbeddedError;
use os_user::RunAs;

/// The cluster superuser's name (fixed by `initdb -U`, whatever OS user runs the server).
pub const SUPERUSER: &str = "postgres";
/// sun_path is 108 bytes on Linux including the NUL.
const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Directory that holds everything of the cluster (e.g. `<data dir>/postgres`).
    pub root: PathBuf,
    /// The application database to create (if missing).
    pub database: String,
    /// Where initdb/pg_ctl/postgres are; found automatically when `None`.
    pub bin_dir: Option<PathBuf>,
    /// `false` turns off fsync and friends: only for throwaway test clusters.
    pub durable: bool,
    pub max_connections: u32,
    pub port: u16,
}

impl EmbeddedOptions {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        EmbeddedOptions {
            root: root.into(),
            database: "enclave".to_owned(),
            bin_dir: None,
            durable: true,
            max_connections: 100,
            port: 5432,
        }
    }
}

/// A running embedded cluster. Stopping is `stop()` or drop (`pg_ctl stop -m fast`); the data
/// stays in `root` for the next start.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    opts: EmbeddedOptions,
    bin: PathBuf,
    run_as: RunAs,
    stopped: bool,
}

impl EmbeddedPostgres {
    /// Initialises the cluster on first use, starts it (or adopts one already running on the
    /// same data directory), and makes sure the roles and the database exist.
    pub async fn start(opts: EmbeddedOptions) -> Result<EmbeddedPostgres, EmbeddedError> {
        let pg = tokio::task::spawn_blocking(move || Self::start_blocking(opts))
            .await
            .map_err(|e| EmbeddedError::Command {
                program: "embedded start".into(),
                status: "panicked".into(),
                output: e.to_string(),
            })??;
        pg.bootstrap().await?;
        Ok(pg)
    }

    /// The process part of `start` (initdb, pg_ctl), usable outside an async runtime.
    pub fn start_blocking(opts: EmbeddedOptions) -> Result<EmbeddedPostgres, EmbeddedError> {
        let bin = binaries::find_bindir(opts.bin_dir.as_deref())?;
        let run_as = RunAs::detect()?;
        let pg = EmbeddedPostgres {
            opts,
            bin,
            run_as,
            stopped: false,
        };
        pg.check_socket_path()?;
        run_as.check_traversable(&pg.opts.root)?;
        run_as.make_private_dir(&pg.opts.root)?;
        run_as.make_private_dir(&pg.run_dir())?;
        if !pg.data_dir().join("PG_VERSION").exists() {
            pg.initdb()?;
        }
        if pg.is_running() {
            tracing::warn!(data = %pg.data_dir().display(), "adopting a PostgreSQL server that is already running");
        } else {
            pg.pg_ctl_start()?;
        }
        Ok(pg)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.opts.root.join("data")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.opts.root.join("run")
    }

    pub fn log_file(&self) -> PathBuf {
        self.opts.root.join("server.log")
    }

    /// Connection options for `role` on `database` over the unix socket.
    pub fn connect_options(&self, role: &str, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .socket(self.run_dir())
            .port(self.opts.port)
            .username(role)
            .database(database)
    }

    /// A URL for `role` on `database` (the socket directory goes in the `host` parameter).
    pub fn url(&self, role: &str, database: &str) -> String {
        format!(
            "postgres://{role}@localhost:{}/{database}?host={}",
            self.opts.port,
            percent_encode(&self.run_dir().to_string_lossy())
        )
    }

    /// Owner (migrations) and application URLs for the application database.
    pub fn urls(&self) -> DbUrls {
        DbUrls {
            owner: self.url(OWNER_ROLE, &self.opts.database),
            app: self.url(APP_ROLE, &self.opts.database),
        }
    }

    pub fn is_running(&self) -> bool {
        self.pg_ctl()
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// `pg_ctl stop -m fast`: disconnects clients, checkpoints, exits. Idempotent.
    pub fn stop(&mut self) -> Result<(), EmbeddedError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        if !self.is_running() {
            return Ok(());
        }
        run(
            self.pg_ctl().args(["stop", "-m", "fast", "-w", "-t", "60"]),
            "pg_ctl stop",
        )
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = self.run_as.command(&self.bin.join("pg_ctl"));
        cmd.arg("-D").arg(self.data_dir());
        cmd
    }

    fn check_socket_path(&self) -> Result<(), EmbeddedError> {
        let path = self.run_dir().join(format!(".s.PGSQL.{}", self.opts.port));
        let len = path.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(EmbeddedError::SocketPathTooLong {
                path,
                len,
                max: MAX_SOCKET_PATH,
            });
        }
        Ok(())
    }

    fn initdb(&self) -> Result<(), EmbeddedError> {
        tracing::info!(data = %self.data_dir().display(), "initialising the embedded PostgreSQL cluster");
        let mut cmd = self.run_as.command(&self.bin.join("initdb"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-U", SUPERUSER, "-E", "UTF8", "--no-locale"])
            .args(["--auth-local=trust", "--auth-host=reject"]);
        run(&mut cmd, "initdb")?;
        let conf = format!(
            "\n# Written by Enclave's embedded launcher.\nlisten_addresses = ''\n\
             unix_socket_directories = '{}'\nunix_socket_permissions = 0700\nmax_connections = {}\n",
            self.run_dir().display().to_string().replace('\'', "''"),
            self.opts.max_connections,
        );
        let conf_path = self.data_dir().join("postgresql.conf");
        let append = || -> std::io::Result<()> {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .append(true)
                .open(&conf_path)?
                .write_all(conf.as_bytes())
        };
        append().map_err(|source| EmbeddedError::Io {
            action: "cannot write",
            path: conf_path.clone(),
            source,
        })
    }

    fn pg_ctl_start(&self) -> Result<(), EmbeddedError> {
        let mut server_opts = format!("-p {}", self.opts.port);
        if !self.opts.durable {
            server_opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let mut cmd = self.pg_ctl();
        cmd.arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "60", "-o", &server_opts, "start"]);
        // The server must not inherit our stdout: a test harness waits for pipes to close.
        cmd.stdin(std::process::Stdio::null());
        run(&mut cmd, "pg_ctl start").map_err(|e| self.with_log_tail(e))
    }

    fn with_log_tail(&self, e: EmbeddedError) -> EmbeddedError {
        let EmbeddedError::Command {
            program,
            status,
            mut output,
        } = e
        else {
            return e;
        };
        if let Ok(log) = std::fs::read_to_string(self.log_file()) {
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            output.push_str("\nserver log:\n");
            output.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        EmbeddedError::Command {
            program,
            status,
            output,
        }
    }

    /// Creates the owner and application roles and the database, if missing. The application
    /// role gets LOGIN but neither superuser nor BYPASSRLS, so row-level security binds it.
    async fn bootstrap(&self) -> Result<(), EmbeddedError> {
        let mut conn = self.superuser_connection("postgres").await?;
        let roles = format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN
                 CREATE ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
               END IF;
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                 CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
               ELSE
                 ALTER ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS;
               END IF;
             END $$"
        );
        sqlx::raw_sql(AssertSqlSafe(roles))
            .execute(&mut conn)
            .await
            .map_err(EmbeddedError::Bootstrap)?;
        create_database(&mut conn, &self.opts.database).await
    }

    /// A superuser connection (tests and bootstrap only; never handed to request handlers).
    pub async fn superuser_connection(
        &self,
        database: &str,
    ) -> Result<PgConnection, EmbeddedError> {
        let opts = self.connect_options(SUPERUSER, database);
        let mut last = None;
        // The socket exists as soon as pg_ctl -w returns, but an adopted server may still be
        // finishing recovery: retry briefly.
        for _ in 0..50 {
            match PgConnection::connect_with(&opts).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // INVARIANT: the loop ran at least once, and only an error leaves it.
        Err(EmbeddedError::Bootstrap(last.expect("loop ran")))
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!(error = %e, "could not stop the embedded PostgreSQL cluster");
        }
    }
}

/// `CREATE DATABASE name OWNER enclave_owner` unless it exists. `name` must be a plain
/// identifier (checked), since it cannot be a bind parameter.
pub(crate) async fn create_database(
    conn: &mut PgConnection,
    name: &str,
) -> Result<(), EmbeddedError> {
    let plain = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if !plain {
        return Err(EmbeddedError::Command {
            program: "create database".into(),
            status: "refused".into(),
            output: format!("database name {name:?} must be a lowercase identifier"),
        });
    }
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut *conn)
            .await
            .map_err(EmbeddedError::Bootstrap)?;
    if !exists {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE {name} OWNER {OWNER_ROLE}"
        )))
        .execute(&mut *conn)
        .await
        .map_err(EmbeddedError::Bootstrap)?;
    }
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<(), EmbeddedError> {
    let out = cmd.output().map_err(|e| EmbeddedError::Command {
        program: what.to_owned(),
        status: "could not run".into(),
        output: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stdout));
    Err(EmbeddedError::Command {
        program: what.to_owned(),
        status: out.status.to_string(),
        output,
    })
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn socket_dirs_are_percent_encoded_for_urls() {
        assert_eq!(super::percent_encode("/tmp/a b/run"), "/tmp/a%20b/run");
        assert_eq!(super::percent_encode("/x&y"), "/x%26y");
    }
}
