//! LoRA adapters over HTTP against the real demo model and Postgres: uploads (multipart, tar,
//! zip), the validation suite (each malformed adapter gets its own code and nothing is stored),
//! versions and aliases, selection through `model`, and tenant isolation.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use enclave_domain::{Scope, TenantId};
use enclave_model_core::adapters::Target;
use enclave_model_core::config::ModelConfig;
use reqwest::StatusCode;
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_with_model};

/// Tensors of a PEFT adapter file: name → (dtype, shape, little-endian bytes).
type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

fn module(l: usize, t: Target) -> String {
    let parent = if matches!(t, Target::Gate | Target::Up | Target::Down) {
        "mlp"
    } else {
        "self_attn"
    };
    format!(
        "base_model.model.model.layers.{l}.{parent}.{}",
        t.module_name()
    )
}

fn f32s(n: usize, seed: u32) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 * 1e-5)
                .to_le_bytes()
        })
        .collect()
}

/// A valid rank-`r` adapter on q_proj and v_proj of every layer, f32.
fn tensors(cfg: &ModelConfig, r: usize) -> Tensors {
    let mut out = Tensors::new();
    for l in 0..cfg.num_layers {
        for t in [Target::Q, Target::V] {
            let (o, i) = t.shape(cfg);
            out.insert(
                format!("{}.lora_A.weight", module(l, t)),
                (Dtype::F32, vec![r, i], f32s(r * i, 1)),
            );
            out.insert(
                format!("{}.lora_B.weight", module(l, t)),
                (Dtype::F32, vec![o, r], f32s(o * r, 2)),
            );
        }
    }
    out
}

fn config(r: usize) -> Value {
    json!({"peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "target_modules": ["q_proj", "v_proj"],
           "bias": "none", "fan_in_fan_out": false, "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"})
}

fn serialize(t: &Tensors) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = t
        .iter()
        .map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).expect("view")))
        .collect();
    safetensors::serialize(views, None).expect("serialize")
}

/// A multipart body: text fields, then files.
fn multipart(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "enclave-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        )
        .unwrap();
    }
    for (name, bytes) in files {
        write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").unwrap();
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

pub(crate) struct Client<'a> {
    app: &'a TestApp,
    pub(crate) key: String,
}

impl Client<'_> {
    pub(crate) async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let res = req.bearer_auth(&self.key).send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn upload(
        &self,
        name: &str,
        aliases: &[&str],
        config: &Value,
        weights: &[u8],
    ) -> (StatusCode, Value) {
        let cfg = config.to_string();
        let mut fields = vec![("name", name)];
        fields.extend(aliases.iter().map(|a| ("alias", *a)));
        let (ct, body) = multipart(
            &fields,
            &[
                ("adapter_config.json", cfg.as_bytes()),
                ("adapter_model.safetensors", weights),
            ],
        );
        self.send(
            self.app
                .http
                .post(self.app.url("/v1/adapters"))
                .header("content-type", ct)
                .body(body),
        )
        .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.app.http.get(self.app.url(path))).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.app.http.delete(self.app.url(path))).await
    }

    pub(crate) async fn put_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
    ) -> (StatusCode, Value) {
        let url = self
            .app
            .url(&format!("/v1/adapters/{name}/aliases/{alias}"));
        self.send(self.app.http.put(url).json(&json!({"version": version})))
            .await
    }

    async fn chat(&self, model: &str) -> (StatusCode, Value) {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0});
        self.send(
            self.app
                .http
                .post(self.app.url("/v1/chat/completions"))
                .json(&body),
        )
        .await
    }

    async fn model_ids(&self) -> Vec<String> {
        let (status, body) = self.get("/v1/models").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|m| m["id"].as_str().expect("id").to_owned())
            .collect()
    }
}

pub(crate) async fn client(app: &TestApp, tenant: TenantId) -> Client<'_> {
    let key = app
        .key(
            tenant,
            &[Scope::Inference, Scope::AdaptersRead, Scope::AdaptersWrite],
        )
        .await;
    Client { app, key }
}

fn base_config(app: &TestApp) -> ModelConfig {
    app.engine().info().config.clone()
}

fn adapter_dir(app: &TestApp) -> PathBuf {
    app.server
        .state()
        .settings()
        .adapters
        .dir
        .clone()
        .expect("tests set adapters.dir")
}

/// Files under the adapter directory, temporary ones included.
fn stored_files(app: &TestApp) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out)
            } else {
                out.push(e.path())
            }
        }
    }
    let mut out = Vec::new();
    walk(&adapter_dir(app), &mut out);
    out
}

async fn rows(app: &TestApp, table: &str) -> i64 {
    let q = format!("SELECT count(*) FROM {table}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(q))
        .fetch_one(app.db.admin_pool())
        .await
        .expect("count")
}

/// One malformed adapter: its config, its weights file, and what the API must answer.
struct Case {
    what: &'static str,
    config: Value,
    weights: Vec<u8>,
    status: StatusCode,
    code: &'static str,
    /// The tensor or field the message must name.
    names: &'static str,
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    c[k] = v;
    c
}

fn cases(cfg: &ModelConfig) -> Vec<Case> {
    let r = 4;
    let good = || tensors(cfg, r);
    let q3b = format!("{}.lora_B.weight", module(3, Target::Q));
    let v5b = format!("{}.lora_B.weight", module(5, Target::V));
    let q0a = format!("{}.lora_A.weight", module(0, Target::Q));
    let mut shape = good();
    shape.insert(
        q3b.clone(),
        (
            Dtype::F32,
            vec![cfg.q_dim() - 6, r],
            f32s((cfg.q_dim() - 6) * r, 3),
        ),
    );
    let mut missing = good();
    missing.remove(&v5b);
    let mut extra = good();
    extra.insert(
        "base_model.model.model.layers.0.self_attn.q_proj.lora_C.weight".into(),
        (Dtype::F32, vec![r], f32s(r, 4)),
    );
    let mut rank = good();
    let big = 129;
    for t in [Target::Q, Target::V] {
        let (o, i) = t.shape(cfg);
        rank.insert(
            format!("{}.lora_A.weight", module(0, t)),
            (Dtype::F32, vec![big, i], f32s(big * i, 5)),
        );
        rank.insert(
            format!("{}.lora_B.weight", module(0, t)),
            (Dtype::F32, vec![o, big], f32s(o * big, 6)),
        );
    }
    rank.retain(|n, _| n.contains("layers.0."));
    let mut nan = good();
    nan.get_mut(&q3b).expect("q3b").2[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    let mut inf = good();
    inf.get_mut(&v5b).expect("v5b").2[0..4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let full = serialize(&good());
    let truncated = full[..full.len() / 2].to_vec();
    let gpt2: Tensors = [
        ("lora_A", vec![r, cfg.hidden_size]),
        ("lora_B", vec![3 * cfg.hidden_size, r]),
    ]
    .into_iter()
    .map(|(k, s)| {
        let n = s.iter().product();
        (
            format!("base_model.model.transformer.h.0.attn.c_attn.{k}.weight"),
            (Dtype::F32, s, f32s(n, 7)),
        )
    })
    .collect();
    let mut hidden = good();
    hidden.insert(q0a.clone(), (Dtype::F32, vec![r, 2048], f32s(r * 2048, 8)));
    let mut embed = good();
    embed.insert(
        "base_model.model.model.embed_tokens.lora_embedding_A".into(),
        (
            Dtype::F32,
            vec![r, cfg.vocab_size],
            f32s(r * cfg.vocab_size, 9),
        ),
    );
    let transposed: Tensors = good()
        .into_iter()
        .map(|(n, (d, s, b))| (n, (d, vec![s[1], s[0]], b)))
        .collect();
    let mut f64s = good();
    let (_, i) = Target::Q.shape(cfg);
    f64s.insert(q0a.clone(), (Dtype::F64, vec![r, i], vec![0; r * i * 8]));
    let mut layer = good();
    let (vo, vi) = Target::V.shape(cfg);
    let n = cfg.num_layers;
    layer.insert(
        format!("{}.lora_A.weight", module(n, Target::V)),
        (Dtype::F32, vec![r, vi], f32s(r * vi, 1)),
    );
    layer.insert(
        format!("{}.lora_B.weight", module(n, Target::V)),
        (Dtype::F32, vec![vo, r], f32s(vo * r, 1)),
    );
    let bad = StatusCode::BAD_REQUEST;
    let c = config(r);
    let case = |what, config, tensors: &Tensors, code, names| Case {
        what,
        config,
        weights: serialize(tensors),
        status: bad,
        code,
        names,
    };
    vec![
        case(
            "wrong B shape",
            c.clone(),
            &shape,
            "adapter_shape_mismatch",
            "layers.3.self_attn.q_proj.lora_B",
        ),
        case(
            "missing tensor",
            c.clone(),
            &missing,
            "adapter_missing_tensor",
            "layers.5.self_attn.v_proj.lora_B",
        ),
        case(
            "extra tensor",
            c.clone(),
            &extra,
            "adapter_unexpected_tensor",
            "lora_C",
        ),
        case(
            "unknown target",
            with(
                c.clone(),
                "target_modules",
                json!(["q_proj", "v_proj", "c_fc"]),
            ),
            &good(),
            "adapter_unknown_target",
            "c_fc",
        ),
        case(
            "rank over limit",
            config(big),
            &rank,
            "adapter_rank_out_of_range",
            "129",
        ),
        case(
            "NaN",
            c.clone(),
            &nan,
            "adapter_non_finite",
            "layers.3.self_attn.q_proj.lora_B",
        ),
        case(
            "Inf",
            c.clone(),
            &inf,
            "adapter_non_finite",
            "layers.5.self_attn.v_proj.lora_B",
        ),
        Case {
            what: "truncated safetensors",
            config: c.clone(),
            weights: truncated,
            status: bad,
            code: "adapter_invalid_weights",
            names: "safetensors",
        },
        case(
            "DoRA",
            with(c.clone(), "use_dora", json!(true)),
            &good(),
            "adapter_dora_unsupported",
            "DoRA",
        ),
        case(
            "wrong base architecture",
            with(c.clone(), "target_modules", json!(["c_attn"])),
            &gpt2,
            "adapter_base_mismatch",
            "transformer.h.0.attn.c_attn",
        ),
        case(
            "wrong hidden size",
            c.clone(),
            &hidden,
            "adapter_base_mismatch",
            "hidden size",
        ),
        case(
            "layer beyond the base",
            c.clone(),
            &layer,
            "adapter_base_mismatch",
            "layer 30",
        ),
        case(
            "modules_to_save",
            with(c.clone(), "modules_to_save", json!(["lm_head"])),
            &good(),
            "adapter_modules_to_save_unsupported",
            "modules_to_save",
        ),
        case(
            "trained bias",
            with(c.clone(), "bias", json!("lora_only")),
            &good(),
            "adapter_bias_unsupported",
            "bias",
        ),
        case(
            "embedding target",
            with(
                c.clone(),
                "target_modules",
                json!(["q_proj", "v_proj", "embed_tokens"]),
            ),
            &embed,
            "adapter_embedding_target_unsupported",
            "embed_tokens",
        ),
        case(
            "fan_in_fan_out mismatch",
            with(c.clone(), "fan_in_fan_out", json!(true)),
            &good(),
            "adapter_fan_in_fan_out_mismatch",
            "lora_A",
        ),
        case(
            "transposed factors",
            c.clone(),
            &transposed,
            "adapter_fan_in_fan_out_mismatch",
            "lora_A",
        ),
        case(
            "f64 dtype",
            c.clone(),
            &f64s,
            "adapter_unsupported_dtype",
            "layers.0.self_attn.q_proj.lora_A",
        ),
        case(
            "not LoRA",
            with(c.clone(), "peft_type", json!("PREFIX_TUNING")),
            &good(),
            "adapter_not_lora",
            "PREFIX_TUNING",
        ),
        case(
            "target_modules regex",
            with(c.clone(), "target_modules", json!(".*proj")),
            &good(),
            "adapter_unsupported_feature",
            ".*proj",
        ),
        case(
            "config without r",
            with(c.clone(), "r", Value::Null),
            &good(),
            "adapter_invalid_config",
            "r",
        ),
    ]
}

#[tokio::test]
async fn malformed_adapters_get_their_own_code_and_nothing_is_stored() {
    let app = spawn_with_model().await;
    let cfg = base_config(&app);
    let api = client(&app, app.home_tenant).await;
    let mut codes = std::collections::BTreeSet::new();
    for case in cases(&cfg) {
        let (status, body) = api
            .upload("bad", &["prod"], &case.config, &case.weights)
            .await;
        assert_eq!(status, case.status, "{}: {body}", case.what);
        assert_eq!(body["error"]["code"], case.code, "{}: {body}", case.what);
        let said = format!("{} {}", body["error"]["message"], body["error"]["field"]);
        assert!(
            said.contains(case.names),
            "{}: the error must name {:?}: {body}",
            case.what,
            case.names
        );
        codes.insert(case.code);
    }
    // Refusals before validation: pickles (by name and by content), no config, bad archives.
    let cfg_json = config(4).to_string();
    let upload = |files: Vec<(&'static str, Vec<u8>)>| {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        multipart(&[("name", "bad")], &files)
    };
    let pickle = vec![0x80, 0x04, 0x95, 0x10, 0, 0, 0, 0];
    let refusals = [
        (
            upload(vec![
                ("adapter_config.json", cfg_json.clone().into_bytes()),
                ("adapter_model.bin", b"PK..".to_vec()),
            ]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "adapter_pickle_refused",
        ),
        (
            upload(vec![
                ("adapter_config.json", cfg_json.clone().into_bytes()),
                ("adapter_model.safetensors", pickle.clone()),
            ]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "adapter_pickle_refused",
        ),
        (
            upload(vec![(
                "weights.tar",
                tar(&[
                    ("adapter_config.json", cfg_json.as_bytes()),
                    ("adapter_model.pt", &pickle),
                ]),
            )]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "adapter_pickle_refused",
        ),
        (
            upload(vec![(
                "adapter_model.safetensors",
                serialize(&tensors(&cfg, 4)),
            )]),
            StatusCode::BAD_REQUEST,
            "adapter_missing_file",
        ),
        (
            upload(vec![(
                "adapter.zip",
                b"PK\x03\x04 not really a zip".to_vec(),
            )]),
            StatusCode::BAD_REQUEST,
            "adapter_archive_invalid",
        ),
    ];
    for ((ct, body), status, code) in refusals {
        let (got, answer) = api
            .send(
                app.http
                    .post(app.url("/v1/adapters"))
                    .header("content-type", ct)
                    .body(body),
            )
            .await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{answer}"
        );
        codes.insert(code);
    }
    assert!(
        codes.len() >= 15,
        "{} distinct codes: {codes:?}",
        codes.len()
    );
    for table in ["adapters", "adapter_versions", "adapter_aliases"] {
        assert_eq!(rows(&app, table).await, 0, "{table} must stay empty");
    }
    assert!(
        stored_files(&app).is_empty(),
        "no file may be kept: {:?}",
        stored_files(&app)
    );
}

#[tokio::test]
async fn adapters_upload_version_alias_select_and_delete() {
    let app = spawn_with_model().await;
    let cfg = base_config(&app);
    let api = client(&app, app.home_tenant).await;
    let weights = serialize(&tensors(&cfg, 4));
    let declared_elsewhere = with(
        config(4),
        "base_model_name_or_path",
        json!("meta-llama/Llama-2-7b-hf"),
    );

    let (status, v1) = api
        .upload("support", &["prod"], &declared_elsewhere, &weights)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!(v1["adapter"]["number"], 1);
    assert_eq!(v1["adapter"]["rank"], 4);
    assert_eq!(v1["adapter"]["targets"], json!(["q_proj", "v_proj"]));
    assert_eq!(v1["adapter"]["aliases"], json!(["prod"]));
    assert!(
        v1["warnings"][0]
            .as_str()
            .unwrap_or("")
            .contains("Llama-2-7b"),
        "base name mismatch is a warning: {v1}"
    );
    let digest1 = v1["adapter"]["version"]
        .as_str()
        .expect("version")
        .to_owned();
    assert_eq!(digest1.len(), 64);
    let dir = adapter_dir(&app)
        .join(app.home_tenant.to_string())
        .join(&digest1);
    assert_eq!(
        std::fs::read(dir.join("adapter_model.safetensors")).expect("stored"),
        weights
    );

    // Same content again: 200, same version. A tar and a zip of new content: v2, v3.
    let (status, again) = api
        .upload("support", &[], &declared_elsewhere, &weights)
        .await;
    assert_eq!(
        (
            status,
            again["created"].clone(),
            again["adapter"]["number"].clone()
        ),
        (StatusCode::OK, json!(false), json!(1))
    );
    let cfg2 = config(2).to_string();
    let weights2 = serialize(&tensors(&cfg, 2));
    let tar_body = tar(&[
        ("support/adapter_config.json", cfg2.as_bytes()),
        ("support/adapter_model.safetensors", &weights2),
        ("support/README.md", b"hi"),
    ]);
    let (status, v2) = api
        .send(
            app.http
                .post(app.url("/v1/adapters?name=support&alias=canary"))
                .header("content-type", "application/x-tar")
                .body(tar_body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    assert_eq!(
        (
            v2["adapter"]["number"].clone(),
            v2["adapter"]["rank"].clone()
        ),
        (json!(2), json!(2))
    );
    let zip_body = zip(&[
        ("adapter_config.json", config(3).to_string().as_bytes()),
        ("adapter_model.safetensors", &serialize(&tensors(&cfg, 3))),
    ]);
    let (ct, body) = multipart(&[("name", "support")], &[("adapter.zip", &zip_body)]);
    let (status, v3) = api
        .send(
            app.http
                .post(app.url("/v1/adapters"))
                .header("content-type", ct)
                .body(body),
        )
        .await;
    assert_eq!(
        (status, v3["adapter"]["number"].clone()),
        (StatusCode::CREATED, json!(3)),
        "{v3}"
    );

    // Reads and selection.
    let (_, listed) = api.get("/v1/adapters").await;
    assert_eq!(
        listed["data"][0]["versions"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    let (status, by_prefix) = api
        .get(&format!("/v1/adapters/support/versions/{}", &digest1[..10]))
        .await;
    assert_eq!(
        (status, by_prefix["number"].clone()),
        (StatusCode::OK, json!(1))
    );
    let (_, by_alias) = api.get("/v1/adapters/support/versions/canary").await;
    assert_eq!(by_alias["number"], 2);
    let ids = api.model_ids().await;
    for want in [
        "support",
        "support@prod",
        "support@canary",
        "support@v1",
        "support@v2",
        "support@v3",
    ] {
        assert!(
            ids.iter().any(|i| i == want),
            "{want} in /v1/models: {ids:?}"
        );
    }
    assert_eq!(api.chat("base").await.0, StatusCode::OK);
    for missing in [
        "support@v9",
        "support@staging",
        "nope",
        &format!("support@{}", "0".repeat(12)),
    ] {
        let (status, body) = api.chat(missing).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("model_not_found")),
            "{missing}: {body}"
        );
    }
    // An adapter resolves and is served (adapter_serving.rs checks it is the adapter's answer).
    let (status, body) = api.chat("support@canary").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model"], "support@canary");

    // Aliases move; deletes are refused while an alias points at what they would remove.
    let (status, moved) = api.put_alias("support", "prod", "canary").await;
    assert_eq!(
        (status, moved["number"].clone()),
        (StatusCode::OK, json!(2)),
        "{moved}"
    );
    let (status, body) = api.delete("/v1/adapters/support/versions/v2").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("adapter_in_use")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("prod"),
        "{body}"
    );
    assert_eq!(
        api.delete("/v1/adapters/support").await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        api.delete("/v1/adapters/support/versions/v1").await.0,
        StatusCode::NO_CONTENT
    );
    assert!(!dir.exists(), "v1's files are removed with it");
    assert_eq!(
        api.put_alias("support", "v5", "v2").await.0,
        StatusCode::BAD_REQUEST,
        "aliases cannot look like versions"
    );
    assert_eq!(
        api.put_alias("support", "prod", "v1").await.0,
        StatusCode::NOT_FOUND,
        "deleted version"
    );
    for alias in ["prod", "canary"] {
        assert_eq!(
            api.delete(&format!("/v1/adapters/support/aliases/{alias}"))
                .await
                .0,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        api.delete("/v1/adapters/support").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(rows(&app, "adapter_versions").await, 0);
    assert!(stored_files(&app).is_empty(), "{:?}", stored_files(&app));
}

#[tokio::test]
async fn another_tenant_cannot_list_load_use_or_alias_an_adapter() {
    let app = spawn_with_model().await;
    let cfg = base_config(&app);
    let a = client(&app, app.home_tenant).await;
    let (status, up) = a
        .upload(
            "support",
            &["prod"],
            &config(4),
            &serialize(&tensors(&cfg, 4)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let digest = up["adapter"]["version"]
        .as_str()
        .expect("version")
        .to_owned();
    let other = app.tenant("tenant-b").await;
    let b = client(&app, other).await;

    let (_, listed) = b.get("/v1/adapters").await;
    assert_eq!(listed["data"], json!([]), "B lists nothing");
    assert!(
        !b.model_ids().await.iter().any(|m| m.starts_with("support")),
        "B's /v1/models has none of A's adapters"
    );
    for path in [
        "/v1/adapters/support".to_owned(),
        "/v1/adapters/support/versions/v1".to_owned(),
        format!("/v1/adapters/support/versions/{}", &digest[..12]),
    ] {
        assert_eq!(
            b.get(&path).await.0,
            StatusCode::NOT_FOUND,
            "B cannot load {path}"
        );
    }
    for model in [
        "support".to_owned(),
        "support@prod".to_owned(),
        "support@v1".to_owned(),
        format!("support@{digest}"),
    ] {
        let (status, body) = b.chat(&model).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("model_not_found")),
            "B cannot use {model}: {body}"
        );
    }
    assert_eq!(
        b.put_alias("support", "prod", "v1").await.0,
        StatusCode::NOT_FOUND,
        "B cannot alias"
    );
    assert_eq!(
        b.put_alias("support", "mine", &digest[..12]).await.0,
        StatusCode::NOT_FOUND,
        "B cannot alias"
    );
    assert_eq!(
        b.delete("/v1/adapters/support/aliases/prod").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.delete("/v1/adapters/support/versions/v1").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.delete("/v1/adapters/support").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        rows(&app, "adapter_aliases").await,
        1,
        "A's alias unchanged"
    );
    assert_eq!(
        rows(&app, "adapter_versions").await,
        1,
        "A's version unchanged"
    );
    // B's own adapter of the same name is B's: A's stays A's.
    let (status, mine) = b
        .upload(
            "support",
            &["prod"],
            &config(2),
            &serialize(&tensors(&cfg, 2)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    let (_, a_view) = a.get("/v1/adapters/support").await;
    assert_eq!(a_view["versions"][0]["version"], digest.as_str());
    assert_eq!(a_view["versions"].as_array().map(Vec::len), Some(1));
}
