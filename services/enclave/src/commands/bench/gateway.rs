//! `enclave bench gateway`: what the HTTP gateway costs. Runs the real `enclave serve` (this
//! binary) on a loopback port against a throwaway embedded PostgreSQL (or DATABASE_URL), then
//! measures
//! - requests/s and p50/p99 latency of an authenticated non-generating route (`GET /v1/models`
//!   with an API key) at each concurrency level, and of the unauthenticated `/healthz` at 1;
//! - p50/p99 of a 1-token chat completion through the gateway, the same request directly on an
//!   engine loaded in this process with the same model and threads, and the difference (the
//!   gateway's overhead: HTTP, auth, limits in Postgres, validation, template, response).
//!
//! The two sides run one after the other, never at the same time, so they do not share cores.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use enclave_auth::{AuthConfig, Authenticator, NewApiKeyRequest};
use enclave_domain::{Scope, Scopes, TenantSlug};
use enclave_model_core::chat::{ChatMessage, Role};
use enclave_model_core::engine::{Engine, GenerateRequest, GenerationEvent, PromptInput};
use enclave_model_core::sampling::RawSamplingParams;
use enclave_store::{
    APP_ROLE, DbUrls, EmbeddedOptions, EmbeddedPostgres, NewTenant, OWNER_ROLE, Store,
};
use serde_json::json;

use super::emit;
use crate::cli::ModelArgs;

#[derive(Args, Debug)]
pub struct GatewayBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Requests per concurrency level on `GET /v1/models`.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Concurrent clients for `GET /v1/models`.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub concurrency: Vec<usize>,
    /// 1-token completions measured on each side (gateway, engine).
    #[arg(long, default_value_t = 50)]
    pub completions: usize,
    /// Use this PostgreSQL server instead of a throwaway embedded cluster (a bench tenant and
    /// key are created there).
    #[arg(long)]
    pub database_url: Option<String>,
}

const PROMPT: &str = "Say hello.";
const LISTENING: &str = "enclave listening on http://";

/// The server child; killed when dropped (its database is not under it, so nothing is lost).
struct ServerChild(Child);

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Latency summary of one measurement.
struct Summary {
    p50_ms: f64,
    p99_ms: f64,
}

fn summarize(mut ms: Vec<f64>) -> anyhow::Result<Summary> {
    anyhow::ensure!(!ms.is_empty(), "no samples");
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    Ok(Summary {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
    })
}

pub fn run(args: GatewayBenchArgs) -> anyhow::Result<()> {
    let tmp = scratch_dir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(bench(&args, &tmp));
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

async fn bench(args: &GatewayBenchArgs, tmp: &Path) -> anyhow::Result<()> {
    let mut pg = None;
    let urls = match &args.database_url {
        Some(u) => DbUrls {
            owner: u.clone(),
            app: u.clone(),
        },
        None => {
            let mut eo = EmbeddedOptions::new(tmp.join("pg"));
            eo.port = 15_000 + (std::process::id() % 5000) as u16;
            let p = EmbeddedPostgres::start(eo)
                .await
                .context("starting a bench PostgreSQL cluster")?;
            let urls = DbUrls {
                owner: p.url(OWNER_ROLE, "enclave"),
                app: p.url(APP_ROLE, "enclave"),
            };
            pg = Some(p);
            urls
        }
    };
    let result = bench_on(args, tmp, &urls).await;
    if let Some(mut p) = pg {
        p.stop()?;
    }
    result
}

async fn bench_on(args: &GatewayBenchArgs, tmp: &Path, urls: &DbUrls) -> anyhow::Result<()> {
    let store = Store::connect_and_migrate(urls).await?;
    let key = bench_key(&store).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let (child, base) = start_server(args, tmp, &urls.owner)?;
    wait_ready(&http, &base).await?;

    let auth = format!("Bearer {key}");
    let models = http
        .get(format!("{base}/v1/models"))
        .header("authorization", &auth)
        .send()
        .await?;
    let model_id = models.json::<serde_json::Value>().await?["data"][0]["id"]
        .as_str()
        .context("GET /v1/models named no model")?
        .to_owned();
    // Warm-up: connections, caches (key lookup), the engine's first step.
    hammer(&http, &format!("{base}/v1/models"), Some(&auth), 100, 4).await?;
    for &c in &args.concurrency {
        let (rps, s) = hammer(
            &http,
            &format!("{base}/v1/models"),
            Some(&auth),
            args.requests,
            c.max(1),
        )
        .await?;
        emit("gateway", &format!("models_rps_x{c}"), rps, "req/s");
        emit("gateway", &format!("models_p50_x{c}"), s.p50_ms, "ms");
        emit("gateway", &format!("models_p99_x{c}"), s.p99_ms, "ms");
    }
    let (rps, s) = hammer(&http, &format!("{base}/healthz"), None, args.requests, 1).await?;
    emit("gateway", "healthz_rps_x1", rps, "req/s");
    emit("gateway", "healthz_p50_x1", s.p50_ms, "ms");

    let body = json!({"model": model_id, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 1, "temperature": 0});
    let mut via_gateway = Vec::with_capacity(args.completions);
    for i in 0..args.completions + 3 {
        let t = Instant::now();
        let r = http
            .post(format!("{base}/v1/chat/completions"))
            .header("authorization", &auth)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("completion through the gateway failed: {status} {text}");
        }
        // The first few warm the path up.
        if i >= 3 {
            via_gateway.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    drop(child);

    // The engine's blocking reads must not run on this runtime's threads.
    let (model, n) = (args.model.clone(), args.completions);
    let direct = tokio::task::spawn_blocking(move || engine_direct(&model, n)).await??;
    let g = summarize(via_gateway)?;
    let d = summarize(direct)?;
    emit("gateway", "completion_1tok_gateway_p50", g.p50_ms, "ms");
    emit("gateway", "completion_1tok_gateway_p99", g.p99_ms, "ms");
    emit("gateway", "completion_1tok_engine_p50", d.p50_ms, "ms");
    emit("gateway", "completion_1tok_engine_p99", d.p99_ms, "ms");
    emit(
        "gateway",
        "completion_1tok_overhead_p50",
        g.p50_ms - d.p50_ms,
        "ms",
    );
    store.pool().close().await;
    Ok(())
}

/// A bench tenant and an inference key, created through the same libraries the API uses.
async fn bench_key(store: &Store) -> anyhow::Result<String> {
    let slug = format!("bench-{}", std::process::id());
    let tenant = store
        .tenants()
        .create(NewTenant {
            slug: TenantSlug::parse(&slug)?,
            name: "Gateway bench".to_owned(),
        })
        .await?;
    let auth = Authenticator::new(store.clone(), AuthConfig::default()).await?;
    let key = auth
        .create_api_key(
            &tenant.id,
            NewApiKeyRequest {
                name: "bench".to_owned(),
                scopes: Scopes::from_iter([Scope::Inference]),
                expires_at: None,
                created_by: None,
                requests_per_minute: None,
                tokens_per_minute: None,
            },
        )
        .await?;
    Ok(key.key)
}

fn start_server(
    args: &GatewayBenchArgs,
    tmp: &Path,
    database_url: &str,
) -> anyhow::Result<(ServerChild, String)> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve").arg("--model").arg(&args.model.model);
    if let Some(t) = args.model.threads {
        cmd.args(["--threads", &t.to_string()]);
    }
    if let Some(c) = args.model.max_context {
        cmd.args(["--max-context", &c.to_string()]);
    }
    cmd.args([
        "--kv-cache-mib",
        &args.model.kv_cache_mib.to_string(),
        "--bind",
        "127.0.0.1:0",
    ])
    .arg("--data-dir")
    .arg(tmp.join("serve"))
    .env("DATABASE_URL", database_url)
    .env("ENCLAVE_LOG", "warn")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let mut child = ServerChild(cmd.spawn().context("starting enclave serve")?);
    let out = child.0.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(out).lines();
    let addr = loop {
        match lines.next() {
            Some(line) => {
                if let Some(a) = line?.strip_prefix(LISTENING) {
                    break a.trim().to_owned();
                }
            }
            None => bail!("enclave serve exited before it listened"),
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok((child, format!("http://{addr}")))
}

async fn wait_ready(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the server was not ready within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `total` GETs of `url` from `concurrency` clients; (requests/s, latency summary).
async fn hammer(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
    total: usize,
    concurrency: usize,
) -> anyhow::Result<(f64, Summary)> {
    let per = total.div_ceil(concurrency);
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, auth) = (http.clone(), url.to_owned(), auth.map(str::to_owned));
            tokio::spawn(async move {
                let mut ms = Vec::with_capacity(per);
                for _ in 0..per {
                    let t = Instant::now();
                    let mut rb = http.get(&url);
                    if let Some(a) = &auth {
                        rb = rb.header("authorization", a);
                    }
                    let r = rb.send().await?;
                    let status = r.status();
                    r.bytes().await?;
                    anyhow::ensure!(status.is_success(), "GET {url}: {status}");
                    ms.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                Ok::<_, anyhow::Error>(ms)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(per * concurrency);
    for t in tasks {
        all.extend(t.await??);
    }
    let rps = all.len() as f64 / start.elapsed().as_secs_f64();
    Ok((rps, summarize(all)?))
}

/// The same 1-token greedy chat request straight on an engine in this process.
fn engine_direct(model: &ModelArgs, n: usize) -> anyhow::Result<Vec<f64>> {
    let engine = Engine::load(&model.model, model.engine_config())
        .with_context(|| format!("loading {}", model.model.display()))?;
    let mut ms = Vec::with_capacity(n);
    for i in 0..n + 3 {
        let t = Instant::now();
        let mut sampling = RawSamplingParams::default();
        sampling.temperature = Some(0.0);
        let req = engine.prepare(GenerateRequest {
            prompt: PromptInput::Chat(vec![ChatMessage::new(Role::User, PROMPT)]),
            sampling,
            max_tokens: Some(1),
        })?;
        let mut stream = engine.submit(req)?;
        loop {
            match stream.blocking_next() {
                Some(GenerationEvent::Finished { .. }) => break,
                Some(GenerationEvent::Failed { message }) => bail!("generation failed: {message}"),
                Some(GenerationEvent::Token { .. }) => {}
                None => bail!("stream ended without a final event"),
            }
        }
        if i >= 3 {
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    engine.shutdown();
    Ok(ms)
}

/// A scratch directory the embedded cluster can use (traversable by `postgres` when root).
fn scratch_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("enclave-gateway-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
    Ok(dir)
}
