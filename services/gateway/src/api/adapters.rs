//! DTOs of the adapter routes (`/v1/adapters...`).

use chrono::{DateTime, Utc};
use enclave_store::{AdapterRecord, AdapterVersionRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// One immutable version of an adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdapterVersionInfo {
    /// The adapter's name.
    pub name: String,
    /// SHA-256 (hex) over `len(config)` (u64 little endian) ‖ adapter_config.json ‖
    /// adapter_model.safetensors; select it with `name@<first 8+ characters>`.
    pub version: String,
    /// Upload order within the adapter; select it with `name@v<number>`.
    pub number: u32,
    pub size_bytes: u64,
    /// Largest rank over all modules.
    pub rank: u32,
    /// Target modules (`q_proj`, `v_proj`, ...).
    pub targets: Vec<String>,
    /// The served base model the version was validated against.
    pub base_model: String,
    pub base_architecture: String,
    /// `base_model_name_or_path` from adapter_config.json, when present.
    pub declared_base_model: Option<String>,
    /// Non-fatal findings of the validation (e.g. the declared base model differs from the served one).
    pub warnings: Vec<String>,
    /// Aliases pointing at this version.
    pub aliases: Vec<String>,
    /// The default `response_format` of those aliases that have one (set with
    /// `PUT /v1/adapters/{name}/aliases/{alias}/response-format`).
    pub alias_response_formats: Vec<AliasResponseFormat>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<AdapterVersionRecord> for AdapterVersionInfo {
    fn from(r: AdapterVersionRecord) -> Self {
        AdapterVersionInfo {
            name: r.name.to_string(),
            version: r.version.to_string(),
            number: r.number,
            size_bytes: r.size_bytes,
            rank: r.rank,
            targets: r.targets,
            base_model: r.base_model,
            base_architecture: r.base_architecture,
            declared_base_model: r.declared_base,
            warnings: r.warnings,
            aliases: r.aliases.into_iter().map(String::from).collect(),
            alias_response_formats: r
                .alias_formats
                .into_iter()
                .map(|(alias, response_format)| AliasResponseFormat {
                    alias: alias.into(),
                    response_format: Some(response_format),
                })
                .collect(),
            created_by: r.created_by.map(|u| *u.as_uuid()),
            created_at: r.created_at,
        }
    }
}

/// An adapter with its versions (oldest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdapterInfo {
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub versions: Vec<AdapterVersionInfo>,
}

impl From<AdapterRecord> for AdapterInfo {
    fn from(r: AdapterRecord) -> Self {
        AdapterInfo {
            name: r.name.to_string(),
            created_at: r.created_at,
            created_by: r.created_by.map(|u| *u.as_uuid()),
            versions: r.versions.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdapterList {
    pub data: Vec<AdapterInfo>,
}

/// The answer to an upload: the version (new, or the existing one with identical content).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UploadedAdapter {
    /// `false` when this exact content was already stored under this name (nothing changed
    /// except the aliases named in the upload).
    pub created: bool,
    pub adapter: AdapterVersionInfo,
    /// Same as `adapter.warnings`: e.g. the declared base model name differs from the served one.
    pub warnings: Vec<String>,
}

/// `multipart/form-data` upload of a PEFT adapter directory.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct AdapterUploadForm {
    /// The adapter's name (`[a-z0-9._-]`, 1..=64, not `base`).
    pub name: String,
    /// Aliases to point at the uploaded version (repeatable), e.g. `prod`.
    pub alias: Option<Vec<String>>,
    /// The PEFT config (part name or file name `adapter_config.json`).
    #[schema(value_type = Option<String>, format = Binary)]
    pub adapter_config: Option<Vec<u8>>,
    /// The LoRA weights (part name or file name `adapter_model.safetensors`).
    #[schema(value_type = Option<String>, format = Binary)]
    pub adapter_model: Option<Vec<u8>>,
    /// Instead of the two files: one uncompressed `.tar` or a `.zip` holding them.
    #[schema(value_type = Option<String>, format = Binary)]
    pub archive: Option<Vec<u8>>,
}

/// Where an alias should point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SetAliasRequest {
    /// `v<number>`, 8+ hex characters of a version, or another alias (e.g. promote `canary`).
    pub version: String,
}

/// The `response_format` applied to requests through an alias (`name@alias`, or `name` for
/// `prod`) that name none themselves (`null`: none; the API key's default, if any, applies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AliasResponseFormat {
    pub alias: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<serde_json::Value>,
}
