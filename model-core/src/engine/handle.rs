//! The cloneable handle callers use, and engine start-up.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use super::EngineMetrics;
use super::api::GenerationStream;
use super::core::{Command, EngineCore, Shared};
use super::request::{
    GenerateRequest, ModelInfo, PreparedRequest, PromptInput, RequestError, RequestOptions,
    SubmitError,
};
use crate::adapters::{
    AdapterLease, AdapterLimits, AdapterPrecision, LoraAdapter, ResidentAdapters, ResidentError,
    load_peft,
};
use crate::chat::ChatTemplate;
use crate::config::ModelConfig;
use crate::constraints::{ConstraintCompiler, ConstraintError, ResponseFormat};
use crate::error::LoadError;
use crate::kv::KvStore;
use crate::loader::{self, Dequantized, ModelPrecision};
use crate::models::LlamaModel;
use crate::sampling::{SamplingLimits, SamplingParams};
use crate::tokenizer::Tokenizer;

/// Engine tuning. Defaults suit the demo model on a small CPU box.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Bytes of KV cache (all layers, K and V). The pool must hold at least one full context.
    pub kv_cache_bytes: usize,
    /// Positions per KV block.
    pub block_size: usize,
    /// Tokens per step across all sequences (decode tokens + prefill chunks).
    pub max_batch_tokens: usize,
    /// Sequences decoded together at most.
    pub max_running: usize,
    /// Requests waiting for admission at most; more are refused with `Overloaded`.
    pub max_waiting: usize,
    /// Compute threads (`None` = all cores).
    pub threads: Option<usize>,
    /// Cap on the context (`None` = the model's own).
    pub max_context: Option<usize>,
    /// Memory for resident LoRA adapter versions; least recently used unpinned ones are evicted.
    pub adapter_memory_bytes: usize,
    /// Upload/load limits for adapters (rank, file size).
    pub adapter_limits: AdapterLimits,
    /// Precision of resident adapters' factors (as in their files, or f32 rounded to bf16).
    pub adapter_precision: AdapterPrecision,
    /// Matrices as stored, or dequantized to f32 (reference precision; see [`ModelPrecision`]).
    pub precision: ModelPrecision,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            kv_cache_bytes: 512 << 20,
            block_size: 16,
            max_batch_tokens: 512,
            max_running: 64,
            max_waiting: 256,
            threads: None,
            max_context: None,
            adapter_memory_bytes: 1 << 30,
            adapter_limits: AdapterLimits::default(),
            adapter_precision: AdapterPrecision::AsStored,
            precision: ModelPrecision::AsStored,
        }
    }
}

/// Handle to a running engine. Cheap to clone; the engine stops when the last handle is dropped.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    adapters: ResidentAdapters,
    base: Arc<ModelConfig>,
    adapter_limits: AdapterLimits,
    adapter_precision: AdapterPrecision,
}

impl Engine {
    /// Loads a GGUF file or a Hugging Face directory and starts the engine thread.
    pub fn load(path: &Path, cfg: EngineConfig) -> Result<Engine, LoadError> {
        let source = loader::open(path)?;
        let tokenizer = source.tokenizer()?;
        let model = match cfg.precision {
            ModelPrecision::AsStored => LlamaModel::load(source.as_weights())?,
            ModelPrecision::F32 => LlamaModel::load(&Dequantized(source.as_weights()))?,
        };
        Engine::start(model, tokenizer, cfg)
    }

    /// Starts an engine over an already loaded model (tests build tiny random models this way).
    pub fn start(
        model: LlamaModel,
        tokenizer: Tokenizer,
        cfg: EngineConfig,
    ) -> Result<Engine, LoadError> {
        let mc = model.config().clone();
        let context_length = cfg
            .max_context
            .map_or(mc.context_length, |c| c.min(mc.context_length));
        let per_block = KvStore::bytes_per_block(mc.num_layers, cfg.block_size, mc.kv_dim());
        let blocks = cfg.kv_cache_bytes / per_block.max(1);
        let needed = context_length.div_ceil(cfg.block_size);
        if blocks < needed {
            return Err(LoadError::InvalidConfig(format!(
                "kv_cache_bytes {} holds {} blocks of {} positions; one full context of {} needs {}",
                cfg.kv_cache_bytes, blocks, cfg.block_size, context_length, needed
            )));
        }
        let template = match tokenizer.chat_template() {
            Some(src) => ChatTemplate::new(
                src,
                tokenizer.bos_token().unwrap_or(""),
                tokenizer.eos_token().unwrap_or(""),
            ),
            None => Ok(ChatTemplate::chatml()),
        }
        .map_err(|e| LoadError::Tokenizer(format!("chat template: {e}")))?;
        let info = ModelInfo {
            id: mc.name.clone(),
            architecture: mc.architecture.as_str().to_string(),
            context_length,
            vocab_size: mc.vocab_size,
            config: mc.clone(),
        };
        let shared = Arc::new(Shared::new(info, tokenizer, template, cfg.max_waiting));
        let (tx, rx) = mpsc::channel();
        let core = EngineCore::new(model, Arc::clone(&shared), &cfg, blocks, context_length)?;
        std::thread::Builder::new()
            .name("enclave-engine".into())
            .spawn(move || core.run(rx))
            .map_err(LoadError::Thread)?;
        let adapters = ResidentAdapters::new(cfg.adapter_memory_bytes);
        Ok(Engine {
            shared,
            commands: tx,
            adapters,
            base: Arc::new(mc),
            adapter_limits: cfg.adapter_limits,
            adapter_precision: cfg.adapter_precision,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.shared.info
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.shared.tokenizer
    }

    /// Validates and tokenizes a request. Nothing is queued.
    pub fn prepare(&self, req: GenerateRequest) -> Result<PreparedRequest, RequestError> {
        self.prepare_with(req, RequestOptions::default())
    }

    /// [`prepare`](Self::prepare) plus the request's options: the response format is compiled
    /// here (cached per grammar), so an invalid or unsupported format is a [`RequestError`]
    /// before anything is queued.
    pub fn prepare_with(
        &self,
        req: GenerateRequest,
        options: RequestOptions,
    ) -> Result<PreparedRequest, RequestError> {
        let constraint = match &options.response_format {
            Some(format) if format.is_constrained() => {
                self.constraint_compiler()?.compile(format)?
            }
            _ => None,
        };
        if let Some(lease) = &options.adapter
            && !lease.adapter().fits(&self.base)
        {
            return Err(RequestError::AdapterMismatch(lease.id().to_string()));
        }
        let mut prepared = self.prepare_plain(req)?;
        prepared.constraint = constraint;
        prepared.adapter = options.adapter;
        Ok(prepared)
    }

    /// The model's constraint compiler, built on first use (tens of milliseconds).
    pub fn constraint_compiler(&self) -> Result<&ConstraintCompiler, ConstraintError> {
        self.shared
            .compiler
            .get_or_init(|| ConstraintCompiler::new(&self.shared.tokenizer))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Checks a response format against this model without preparing a request (e.g. when a
    /// tenant stores a default format or a template's schema).
    pub fn check_format(&self, format: &ResponseFormat) -> Result<(), ConstraintError> {
        if !format.is_constrained() {
            return Ok(());
        }
        self.constraint_compiler()?.check(format)
    }

    fn prepare_plain(&self, req: GenerateRequest) -> Result<PreparedRequest, RequestError> {
        let tok = &self.shared.tokenizer;
        let limits = SamplingLimits {
            vocab_size: self.shared.info.vocab_size,
            max_stop_sequences: 16,
            max_logprobs: 20,
        };
        let sampling = SamplingParams::parse(req.sampling, &limits)?;
        let prompt_ids = match req.prompt {
            PromptInput::Text(text) => tok
                .encode_prompt(&text, false)
                .map_err(|e| RequestError::Tokenizer(e.to_string()))?,
            PromptInput::Chat(messages) => {
                let text = self
                    .shared
                    .template
                    .render(&messages, true)
                    .map_err(|e| RequestError::Template(e.to_string()))?;
                // The template writes the special tokens itself; parse them as specials.
                tok.encode(&text, true)
                    .map_err(|e| RequestError::Tokenizer(e.to_string()))?
            }
            PromptInput::Tokens(ids) => {
                let vocab_size = self.shared.info.vocab_size;
                if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
                    return Err(RequestError::TokenOutOfVocabulary { id, vocab_size });
                }
                ids
            }
        };
        if prompt_ids.is_empty() {
            return Err(RequestError::EmptyPrompt);
        }
        let limit = self.shared.info.context_length;
        if prompt_ids.len() >= limit {
            return Err(RequestError::PromptTooLong {
                tokens: prompt_ids.len(),
                limit,
            });
        }
        let available = limit - prompt_ids.len();
        let max_tokens = match req.max_tokens {
            Some(0) => return Err(RequestError::MaxTokensZero),
            Some(n) if n as usize > available => {
                return Err(RequestError::MaxTokensTooLarge {
                    requested: n,
                    available,
                });
            }
            Some(n) => n,
            None => available as u32,
        };
        Ok(PreparedRequest {
            prompt_ids,
            sampling,
            max_tokens,
            constraint: None,
            adapter: None,
        })
    }

    /// Queues a prepared request. Fails fast when the waiting queue is full.
    pub fn submit(&self, req: PreparedRequest) -> Result<GenerationStream, SubmitError> {
        let capacity = self.shared.max_waiting;
        let admitted = self
            .shared
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < capacity).then_some(w + 1)
            });
        if admitted.is_err() {
            return Err(SubmitError::Overloaded { capacity });
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let prompt_tokens = req.prompt_ids.len() as u32;
        if self
            .commands
            .send(Command::Submit(Box::new(req), tx))
            .is_err()
        {
            self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(SubmitError::ShuttingDown);
        }
        Ok(GenerationStream { rx, prompt_tokens })
    }

    /// The base model's configuration (what adapters are validated against).
    pub fn model_config(&self) -> &ModelConfig {
        &self.base
    }

    /// The resident adapter set (stats, residency checks).
    pub fn adapters(&self) -> &ResidentAdapters {
        &self.adapters
    }

    /// Parses and strictly validates a PEFT adapter against this base model and the configured
    /// limits (what an upload must pass).
    pub fn validate_adapter(
        &self,
        config_json: &[u8],
        weights: &[u8],
    ) -> Result<LoraAdapter, crate::adapters::AdapterError> {
        load_peft(config_json, weights, &self.base, &self.adapter_limits)
    }

    /// A lease on adapter version `id` (its content address), loading it with `read` (returning
    /// `adapter_config.json` and `adapter_model.safetensors` bytes) when it is not resident.
    /// Blocks the calling thread while loading: call it from a blocking task, never from async
    /// code directly. The engine thread never loads, so running sequences keep stepping.
    pub fn acquire_adapter<F>(&self, id: &str, read: F) -> Result<AdapterLease, ResidentError>
    where
        F: FnOnce() -> std::io::Result<(Vec<u8>, Vec<u8>)>,
    {
        self.adapters.get_or_load(id, || {
            let (config, weights) = read().map_err(|e| ResidentError::Read {
                id: id.to_string(),
                message: e.to_string(),
            })?;
            Ok(self
                .validate_adapter(&config, &weights)?
                .with_precision(self.adapter_precision))
        })
    }

    pub fn metrics(&self) -> EngineMetrics {
        self.shared.metrics()
    }

    /// Stops the engine: running requests end with `Cancelled`, new ones are refused.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }
}
