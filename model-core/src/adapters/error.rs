//! Why an adapter was refused. Each variant has a stable code for the API.

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("adapter_config.json is invalid: {0}")]
    InvalidConfig(String),
    #[error("peft_type {0} is not supported (only LORA)")]
    NotLora(String),
    #[error("unsupported adapter feature: {0}")]
    Unsupported(String),
    #[error(
        "target module `{0}` does not exist in the base model (supported: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)"
    )]
    UnknownTarget(String),
    #[error("missing tensor: {0}")]
    MissingTensor(String),
    #[error("unexpected tensor `{0}` (not a LoRA factor of a declared target module)")]
    UnexpectedTensor(String),
    #[error("tensor `{tensor}` has shape {actual:?}, expected {expected:?}")]
    Shape {
        tensor: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("rank {rank} is outside 1..={max}")]
    RankOutOfRange { rank: usize, max: usize },
    #[error("tensor `{tensor}` has dtype {dtype}; only F32, F16 and BF16 are accepted")]
    Dtype { tensor: String, dtype: String },
    #[error("tensor `{tensor}` holds a NaN or infinite value at index {index}")]
    NonFinite { tensor: String, index: usize },
    #[error("adapter weights are {bytes} bytes; the limit is {limit}")]
    TooLarge { bytes: usize, limit: usize },
    #[error("adapter_model.safetensors is not a valid safetensors file: {0}")]
    InvalidWeights(String),
    #[error("adapter does not fit the base model: {0}")]
    BaseMismatch(String),
}

impl AdapterError {
    pub fn code(&self) -> &'static str {
        match self {
            AdapterError::InvalidConfig(_) => "adapter_invalid_config",
            AdapterError::NotLora(_) => "adapter_not_lora",
            AdapterError::Unsupported(_) => "adapter_unsupported_feature",
            AdapterError::UnknownTarget(_) => "adapter_unknown_target",
            AdapterError::MissingTensor(_) => "adapter_missing_tensor",
            AdapterError::UnexpectedTensor(_) => "adapter_unexpected_tensor",
            AdapterError::Shape { .. } => "adapter_shape_mismatch",
            AdapterError::RankOutOfRange { .. } => "adapter_rank_out_of_range",
            AdapterError::Dtype { .. } => "adapter_unsupported_dtype",
            AdapterError::NonFinite { .. } => "adapter_non_finite",
            AdapterError::TooLarge { .. } => "adapter_too_large",
            AdapterError::InvalidWeights(_) => "adapter_invalid_weights",
            AdapterError::BaseMismatch(_) => "adapter_base_mismatch",
        }
    }
}
