//! Tenant LoRA adapters on the gateway side: strict validation of uploads against the served
//! base model, the file store, and what a request's `model` resolves to.
//!
//! `model` is `base`, the served base id, `name` (its `prod` alias), `name@alias`, `name@v<n>` or
//! `name@<8+ hex of the version>`. Names are looked up in the caller's tenant only, so another
//! tenant's adapter is `model_not_found`, exactly like a name that does not exist. A request for
//! an adapter never falls back to the base model: if the adapter cannot be applied, it fails.

pub mod upload;

use std::path::PathBuf;

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use enclave_domain::{AdapterAlias, AdapterRef, AdapterSelector, TenantId};
use enclave_model_core::adapters::{
    AdapterError, AdapterLease, AdapterLimits, AdapterPrecision, LoraAdapter, ResidentError, Target,
};
use enclave_model_core::config::ModelConfig;
use enclave_model_core::engine::{Engine, RequestOptions};
use enclave_store::{AdapterBlobs, AdapterFiles, AdapterVersionRecord, StoreError};
use serde::{Deserialize, Serialize};

use crate::api::openai::Model;
use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::state::AppState;

/// `[adapters]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdapterSettings {
    /// Where adapter files are kept; default `<database.data_dir>/adapters`.
    pub dir: Option<PathBuf>,
    /// Largest LoRA rank accepted (per module). Applied by the engine (`enclave serve` passes it).
    pub max_rank: usize,
    /// Largest upload (whole body: files or archive).
    pub max_upload_bytes: usize,
    /// Memory for adapter versions resident in the engine, in bytes of factors (in the
    /// resident precision, below). Least recently used versions are evicted first; versions that running
    /// requests use are pinned. Applied by the engine (`enclave serve` passes it).
    pub cache_bytes: usize,
    /// `as-stored` keeps f32 factors in f32 (exact); `bf16` rounds them to bf16 when they become
    /// resident: half the memory, and faster batches that mix many distinct adapters, at bf16
    /// accuracy of the adapter's update. Applied by the engine (`enclave serve` passes it).
    pub precision: AdapterPrecision,
}

impl Default for AdapterSettings {
    fn default() -> Self {
        AdapterSettings {
            dir: None,
            max_rank: 128,
            max_upload_bytes: 512 << 20,
            cache_bytes: 1 << 30,
            precision: AdapterPrecision::AsStored,
        }
    }
}

impl AdapterSettings {
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if !(1..=1024).contains(&self.max_rank) {
            return Err(("adapters.max_rank", "must be between 1 and 1024"));
        }
        if !(1024..=4 << 30).contains(&self.max_upload_bytes) {
            return Err((
                "adapters.max_upload_bytes",
                "must be between 1 KiB and 4 GiB",
            ));
        }
        if self.cache_bytes < 1 << 20 {
            return Err(("adapters.cache_bytes", "must be at least 1 MiB"));
        }
        Ok(())
    }

    /// The engine's limits for adapters (upload validation and loading share them).
    pub fn limits(&self) -> AdapterLimits {
        AdapterLimits {
            max_rank: self.max_rank,
            max_file_bytes: self.max_upload_bytes,
        }
    }
}

/// The adapter side of the app state: the file store. Validated adapters live in the engine's
/// resident set (bounded in bytes, LRU, in-use versions pinned), the one copy the forward pass
/// reads.
pub struct AdapterRuntime {
    blobs: AdapterBlobs,
}

impl AdapterRuntime {
    pub fn new(settings: &AdapterSettings, data_dir: &std::path::Path) -> Self {
        let dir = settings
            .dir
            .clone()
            .unwrap_or_else(|| data_dir.join("adapters"));
        AdapterRuntime {
            blobs: AdapterBlobs::new(dir),
        }
    }

    pub fn blobs(&self) -> &AdapterBlobs {
        &self.blobs
    }
}

/// An adapter that passed validation, with what the store records about it.
pub struct ValidatedAdapter {
    pub adapter: LoraAdapter,
    pub targets: Vec<String>,
    pub declared_base: Option<String>,
}

/// Strict validation against the served base: the specific code of each refusal, naming the
/// tensor or field. Runs the engine's own validation (the same parse, checks and limits as when
/// a version is loaded to serve), after a check that the tensors are laid out for this base at
/// all (architecture, hidden size), which says "wrong base" instead of naming one odd tensor.
pub fn validate(files: &AdapterFiles, engine: &Engine) -> Result<ValidatedAdapter, ApiError> {
    let base = engine.model_config();
    check_embedding_targets(&files.config)?;
    check_base_layout(&files.weights, base)?;
    let adapter = engine
        .validate_adapter(&files.config, &files.weights)
        .map_err(adapter_error)?;
    let mut targets: Vec<Target> = adapter
        .layers
        .iter()
        .flat_map(|m| m.keys().copied())
        .collect();
    targets.sort();
    targets.dedup();
    let declared_base = serde_json::from_slice::<serde_json::Value>(&files.config)
        .ok()
        .and_then(|v| {
            v.get("base_model_name_or_path")?
                .as_str()
                .map(str::to_owned)
        })
        .filter(|s| !s.is_empty());
    Ok(ValidatedAdapter {
        adapter,
        targets: targets
            .into_iter()
            .map(|t| t.module_name().to_owned())
            .collect(),
        declared_base,
    })
}

fn refusal(code: &'static str, message: String, field: Option<String>) -> ApiError {
    ApiError::invalid(code, message, field)
}

/// Embedding / lm_head LoRA (PEFT's `lora_embedding_A/B`) is not applied by the engine: refused
/// under its own code rather than as an unknown module.
fn check_embedding_targets(config: &[u8]) -> Result<(), ApiError> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(config) else {
        return Ok(());
    };
    let listed = v
        .get("target_modules")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str());
    for module in listed {
        if matches!(
            module,
            "embed_tokens" | "lm_head" | "wte" | "embed_in" | "embed_out"
        ) {
            return Err(refusal(
                "adapter_embedding_target_unsupported",
                format!(
                    "target module {module} (embedding / output head) is not supported; only the attention and MLP projections are"
                ),
                Some("target_modules".to_owned()),
            ));
        }
    }
    Ok(())
}

/// Tensors laid out for another architecture (GPT-2's `transformer.h.N`, ...) or another hidden
/// size are a base mismatch, said as such rather than as one odd tensor among many.
fn check_base_layout(weights: &[u8], base: &ModelConfig) -> Result<(), ApiError> {
    let Ok(st) = safetensors::SafeTensors::deserialize(weights) else {
        return Ok(()); // model-core names the exact fault
    };
    for (name, view) in st.tensors() {
        let Some(rest) = name.strip_prefix("base_model.model.") else {
            continue;
        };
        let llama_like = rest.starts_with("model.layers.")
            || rest.starts_with("layers.")
            || rest.starts_with("model.embed_tokens")
            || rest.starts_with("lm_head");
        if !llama_like
            && (rest.contains(".h.") || rest.contains("gpt_neox") || rest.contains("transformer."))
        {
            return Err(refusal(
                "adapter_base_mismatch",
                format!(
                    "tensor {name} belongs to another architecture; the served base is {} ({})",
                    base.name,
                    base.architecture.as_str()
                ),
                Some(name),
            ));
        }
        // lora_A of q/k/v/gate/up reads the hidden state: (rank, hidden).
        let reads_hidden = ["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"]
            .iter()
            .any(|m| rest.contains(&format!(".{m}.lora_A")));
        if reads_hidden && view.shape().len() == 2 && !view.shape().contains(&base.hidden_size) {
            return Err(refusal(
                "adapter_base_mismatch",
                format!(
                    "tensor {name} has shape {:?}: trained for a hidden size other than the served base's {} ({})",
                    view.shape(),
                    base.hidden_size,
                    base.name
                ),
                Some(name),
            ));
        }
    }
    Ok(())
}

/// model-core's refusal as an API error; features refused as "unsupported" get a code each.
fn adapter_error(e: AdapterError) -> ApiError {
    let message = e.to_string();
    let (code, field): (&'static str, Option<String>) = match &e {
        AdapterError::Unsupported(what) => {
            let code = if what.starts_with("use_dora") {
                "adapter_dora_unsupported"
            } else if what.starts_with("modules_to_save") {
                "adapter_modules_to_save_unsupported"
            } else if what.starts_with("bias") {
                "adapter_bias_unsupported"
            } else if what.starts_with("targets the embedding") {
                "adapter_embedding_target_unsupported"
            } else {
                "adapter_unsupported_feature"
            };
            (code, Some("adapter_config.json".to_owned()))
        }
        AdapterError::Shape {
            tensor,
            expected,
            actual,
        } => {
            // A transposed factor is the signature of a wrong `fan_in_fan_out` flag.
            let transposed = expected.len() == 2
                && actual.len() == 2
                && expected[0] == actual[1]
                && expected[1] == actual[0];
            (
                if transposed {
                    "adapter_fan_in_fan_out_mismatch"
                } else {
                    e.code()
                },
                Some(tensor.clone()),
            )
        }
        AdapterError::MissingTensor(t) | AdapterError::UnexpectedTensor(t) => {
            (e.code(), Some(t.clone()))
        }
        AdapterError::Dtype { tensor, .. } | AdapterError::NonFinite { tensor, .. } => {
            (e.code(), Some(tensor.clone()))
        }
        AdapterError::UnknownTarget(_) => (e.code(), Some("target_modules".to_owned())),
        AdapterError::RankOutOfRange { .. } => (e.code(), Some("r".to_owned())),
        AdapterError::TooLarge { .. } => {
            return ApiError::Status {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "adapter_too_large",
                message,
            };
        }
        AdapterError::InvalidWeights(_) => (e.code(), Some("adapter_model.safetensors".to_owned())),
        _ => (e.code(), Some("adapter_config.json".to_owned())),
    };
    refusal(code, message, field)
}

/// What a request's `model` resolved to.
pub struct ResolvedModel {
    pub engine: Engine,
    /// Echoed in responses: the base id, or the adapter reference as requested.
    pub id: String,
    pub adapter: Option<ResolvedAdapter>,
}

/// A tenant's adapter version, resident in the engine and pinned by `lease` until the last
/// request using it ends.
pub struct ResolvedAdapter {
    pub record: AdapterVersionRecord,
    pub lease: AdapterLease,
    /// The alias the request selected: `prod` for a bare name, `a` for `name@a`; none for
    /// `name@v<n>` or a digest prefix.
    pub alias: Option<AdapterAlias>,
}

impl ResolvedModel {
    /// The default `response_format` of the selected alias, as the tenant stored it.
    pub fn alias_default(&self) -> Option<&serde_json::Value> {
        let a = self.adapter.as_ref()?;
        let alias = a.alias.as_ref()?;
        a.record
            .alias_formats
            .iter()
            .find_map(|(name, f)| (name == alias).then_some(f))
    }
}

fn model_not_found(requested: &str) -> ApiError {
    ApiError::Status {
        status: StatusCode::NOT_FOUND,
        code: "model_not_found",
        message: format!(
            "model {:?} does not exist; see GET /v1/models",
            requested.chars().take(100).collect::<String>()
        ),
    }
}

/// Resolves `model` for the caller's tenant: the base model, or one of the tenant's adapters
/// (made resident in the engine on first use, validated again as it loads).
pub async fn resolve(
    state: &AppState,
    ctx: &TenantContext,
    requested: &str,
) -> Result<ResolvedModel, ApiError> {
    let served = state.served_model().ok_or_else(|| ApiError::Unavailable {
        code: "model_not_loaded",
        message: "no model is loaded on this server".to_owned(),
        retry_after_secs: None,
    })?;
    if requested == served.id || requested == "base" {
        return Ok(ResolvedModel {
            engine: served.engine.clone(),
            id: served.id.clone(),
            adapter: None,
        });
    }
    let reference = AdapterRef::parse(requested).map_err(|_| model_not_found(requested))?;
    let store = state.store().map_err(|_| model_not_found(requested))?;
    let record = match store.adapters().resolve(&ctx.tenant_id, &reference).await {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => return Err(model_not_found(requested)),
        Err(e) => return Err(e.into()),
    };
    let lease = lease(state, &served.engine, ctx.tenant_id, &record).await?;
    let alias = match reference.selector {
        AdapterSelector::Alias(a) => Some(a),
        AdapterSelector::Number(_) | AdapterSelector::Digest(_) => None,
    };
    Ok(ResolvedModel {
        engine: served.engine.clone(),
        id: requested.to_owned(),
        adapter: Some(ResolvedAdapter {
            record,
            lease,
            alias,
        }),
    })
}

/// A lease on the version in the engine's resident set, loading it from the file store when it
/// is not resident (on a blocking thread: the engine keeps stepping meanwhile). Keyed by tenant
/// and version, so tenants never share a resident entry.
async fn lease(
    state: &AppState,
    engine: &Engine,
    tenant: TenantId,
    record: &AdapterVersionRecord,
) -> Result<AdapterLease, ApiError> {
    let (engine, blobs) = (engine.clone(), state.adapters().blobs().clone());
    let version = record.version.clone();
    let acquired = actix_web::web::block(move || {
        engine.acquire_adapter(&resident_id(&tenant, &version), || {
            let files = blobs
                .read(&tenant, &version)
                .map_err(std::io::Error::other)?;
            Ok((files.config, files.weights))
        })
    })
    .await
    .map_err(ApiError::internal)?;
    acquired.map_err(|e| resident_error(e, record))
}

/// The key of a version in the engine's resident set: per tenant, so tenants never share one.
pub fn resident_id(tenant: &TenantId, version: &enclave_domain::AdapterVersion) -> String {
    format!("{tenant}/{version}")
}

/// Why a stored version could not be made resident, for the caller. Never a fallback to the base.
fn resident_error(e: ResidentError, record: &AdapterVersionRecord) -> ApiError {
    let what = format!("adapter {}@v{}", record.name, record.number);
    match e {
        // Stored versions passed validation at upload: the files or the served base changed.
        ResidentError::Invalid(e) => ApiError::Conflict {
            code: "adapter_incompatible",
            message: format!("{what} no longer fits the served base model: {e}"),
            field: Some("model".to_owned()),
        },
        ResidentError::Busy { .. } => ApiError::Unavailable {
            code: "adapter_capacity_busy",
            message: format!(
                "{what} cannot be loaded now: adapter memory is pinned by running requests; retry shortly"
            ),
            retry_after_secs: Some(1),
        },
        ResidentError::LargerThanBudget { needed, budget, .. } => ApiError::Unavailable {
            code: "adapter_too_large_for_memory",
            message: format!(
                "{what} needs {needed} bytes of adapter memory; this server has {budget} (adapters.cache_bytes)"
            ),
            retry_after_secs: None,
        },
        ResidentError::Read { .. } => ApiError::internal(e),
    }
}

/// THE single call site where a resolved adapter reaches the engine: the request's `options`
/// carry its lease (the sequence runs on that version to its end, even if an alias moves
/// meanwhile), and the call's audit record names the version's content address.
pub fn attach(
    req: &HttpRequest,
    adapter: Option<&ResolvedAdapter>,
    options: RequestOptions,
) -> RequestOptions {
    let Some(a) = adapter else {
        return options;
    };
    let version = a.record.version.to_string();
    crate::audit::annotate(req, |n| n.adapter_version = Some(version));
    RequestOptions {
        adapter: Some(a.lease.clone()),
        ..options
    }
}

/// The `/v1/models` entries of the caller's adapters: `name` (when it has a `prod` alias),
/// `name@<alias>` for each alias and `name@v<n>` for each version.
pub async fn model_entries(state: &AppState, tenant: &TenantId) -> Result<Vec<Model>, ApiError> {
    let Ok(store) = state.store() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for adapter in store.adapters().list(tenant).await? {
        for v in &adapter.versions {
            let created = v.created_at.timestamp();
            let entry = |id: String| Model {
                id,
                object: "model".to_owned(),
                created,
                owned_by: "tenant".to_owned(),
            };
            if v.aliases
                .iter()
                .any(|a| a.as_str() == enclave_domain::DEFAULT_ALIAS)
            {
                out.push(entry(adapter.name.to_string()));
            }
            out.extend(
                v.aliases
                    .iter()
                    .map(|a| entry(format!("{}@{a}", adapter.name))),
            );
            out.push(entry(format!("{}@v{}", adapter.name, v.number)));
        }
    }
    Ok(out)
}
