//! The real `enclave serve` as a child process: started on a free port, awaited until `/readyz`
//! answers 200, stopped on drop; its output is kept and printed when a test fails.

use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// What `serve` prints once it listens (services/enclave/src/commands/serve.rs).
const LISTENING: &str = "enclave listening on http://";
/// Loading the model, starting a cluster and migrating on a loaded 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// Most of the output kept for a failure report.
const LOG_LIMIT: usize = 256 * 1024;

/// The demo model, relative to the workspace root (override with `ENCLAVE_TEST_MODEL`).
pub fn demo_model() -> PathBuf {
    std::env::var_os("ENCLAVE_TEST_MODEL").map_or_else(
        || workspace_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        PathBuf::from,
    )
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The `enclave` binary (`env!("CARGO_BIN_EXE_enclave-under-test")` in the tests).
    pub bin: PathBuf,
    /// An external database; `None` runs the embedded cluster under `data_dir`.
    pub database_url: Option<String>,
    /// Local state; a fresh temporary directory when `None`.
    pub data_dir: Option<PathBuf>,
    pub model: PathBuf,
    /// Extra `ENCLAVE_*` (or other) environment for the child.
    pub env: Vec<(String, String)>,
    /// Compute threads of the engine (1 keeps parallel tests from fighting over 2 cores).
    pub threads: usize,
    /// Context length cap: bounds every generation (prompt + completion) in tokens.
    pub max_context: usize,
}

impl ServerOptions {
    pub fn new(bin: impl Into<PathBuf>) -> ServerOptions {
        ServerOptions {
            bin: bin.into(),
            database_url: None,
            data_dir: None,
            model: demo_model(),
            env: Vec::new(),
            threads: 1,
            max_context: 2048,
        }
    }

    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    pub fn max_context(mut self, tokens: usize) -> Self {
        self.max_context = tokens;
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// Output of the child (stdout and stderr interleaved by arrival), bounded.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<String>>);

impl Logs {
    fn push(&self, line: &str) {
        if let Ok(mut buf) = self.0.lock() {
            if buf.len() > LOG_LIMIT {
                let cut = buf.len() - LOG_LIMIT / 2;
                let cut = (cut..buf.len())
                    .find(|&i| buf.is_char_boundary(i))
                    .unwrap_or(0);
                buf.replace_range(..cut, "[... earlier output dropped ...]\n");
            }
            buf.push_str(line);
            buf.push('\n');
        }
    }

    pub fn text(&self) -> String {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

/// A running `enclave serve`.
pub struct EnclaveServer {
    child: Option<Child>,
    base_url: String,
    logs: Logs,
    data_dir: PathBuf,
    /// Removed on drop when the harness created it.
    _temp_dir: Option<tempfile::TempDir>,
}

/// A data directory the embedded cluster can use, also when it runs as `postgres` (tests as
/// root): traversable by others.
pub fn temp_data_dir() -> anyhow::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::Builder::new().prefix("enclave-e2e-").tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    Ok(dir)
}

fn pump(stream: impl Read + Send + 'static, logs: Logs, addr: Option<mpsc::Sender<String>>) {
    std::thread::spawn(move || {
        let echo = std::env::var_os("TEST_LOG").is_some();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if echo {
                eprintln!("[server] {line}");
            }
            if let (Some(tx), Some(rest)) = (&addr, line.strip_prefix(LISTENING)) {
                let _ = tx.send(rest.trim().to_owned());
            }
            logs.push(&line);
        }
    });
}

impl EnclaveServer {
    /// Starts the server and waits until it is ready (or fails with its output).
    pub async fn start(opts: ServerOptions) -> anyhow::Result<EnclaveServer> {
        anyhow::ensure!(
            opts.model.is_file(),
            "demo model missing at {} (run deploy/local/setup.sh)",
            opts.model.display()
        );
        let (temp_dir, data_dir) = match &opts.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = temp_data_dir()?;
                let p = t.path().to_owned();
                (Some(t), p)
            }
        };
        let mut cmd = Command::new(&opts.bin);
        cmd.arg("serve")
            .arg("--model")
            .arg(&opts.model)
            .args([
                "--threads",
                &opts.threads.to_string(),
                "--kv-cache-mib",
                "64",
            ])
            .args(["--max-context", &opts.max_context.to_string()])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--bind", "127.0.0.1:0"])
            .env_remove("DATABASE_URL")
            .env_remove("ENCLAVE_CONFIG")
            .env(
                "ENCLAVE_LOG",
                std::env::var("ENCLAVE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = &opts.database_url {
            cmd.env("DATABASE_URL", url);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", opts.bin.display()))?;
        let logs = Logs::default();
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            pump(out, logs.clone(), Some(tx));
        }
        if let Some(err) = child.stderr.take() {
            pump(err, logs.clone(), None);
        }
        let mut server = EnclaveServer {
            child: Some(child),
            base_url: String::new(),
            logs,
            data_dir,
            _temp_dir: temp_dir,
        };
        match server.await_ready(rx).await {
            Ok(()) => Ok(server),
            Err(e) => {
                let logs = server.logs.text();
                drop(server);
                Err(e.context(format!("server did not become ready; its output:\n{logs}")))
            }
        }
    }

    async fn await_ready(&mut self, addr: mpsc::Receiver<String>) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            match addr.try_recv() {
                Ok(a) => break a,
                Err(mpsc::TryRecvError::Disconnected) => {
                    bail!("the server's stdout closed before it listened")
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
            if let Some(status) = self.try_status()? {
                bail!("the server exited with {status} before it listened");
            }
            if Instant::now() > deadline {
                bail!("the server did not listen within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.base_url = format!("http://{addr}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        loop {
            let r = http.get(self.url("/readyz")).send().await;
            if let Ok(r) = r
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.try_status()? {
                bail!("the server exited with {status} before it was ready");
            }
            if Instant::now() > deadline {
                bail!("/readyz did not answer 200 within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn try_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => Ok(c.try_wait()?),
            None => bail!("the server was already stopped"),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn logs(&self) -> String {
        self.logs.text()
    }

    /// A handle on the output that stays readable while the server runs elsewhere.
    pub fn log_handle(&self) -> Logs {
        self.logs.clone()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM (graceful shutdown) without waiting.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let pid = self.pid().context("the server was already stopped")?;
        let pid = libc::pid_t::try_from(pid)?;
        // SAFETY: kill(2) with a pid of a child we spawned and have not reaped yet.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        anyhow::ensure!(
            rc == 0,
            "kill(SIGTERM): {}",
            std::io::Error::last_os_error()
        );
        Ok(())
    }

    /// Waits for the child to exit (after [`Self::terminate`]); fails after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("the server did not exit within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Graceful stop: SIGTERM, then wait for a clean exit.
    pub async fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        self.terminate()?;
        self.wait_exit(Duration::from_secs(60)).await
    }
}

impl Drop for EnclaveServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM first so an embedded cluster is stopped by the server itself.
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill(2) on our own, not yet reaped child.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- output of the enclave server at {} ----\n{}---- end of server output ----",
                self.base_url,
                self.logs.text()
            );
        }
    }
}
