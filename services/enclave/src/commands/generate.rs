//! `enclave generate`: one request through the real engine, streamed to stdout.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use enclave_model_core::chat::{ChatMessage, Role};
use enclave_model_core::engine::{Engine, GenerateRequest, GenerationEvent, PromptInput};
use enclave_model_core::sampling::RawSamplingParams;

use crate::cli::ModelArgs;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "chat"])))]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Raw prompt text (no chat template).
    #[arg(long)]
    pub prompt: Option<String>,
    /// A user message, rendered with the model's chat template.
    #[arg(long)]
    pub chat: Option<String>,
    /// Optional system message for --chat.
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    #[arg(long, default_value_t = 128)]
    pub max_tokens: u32,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct SamplingArgs {
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long)]
    pub top_k: Option<u32>,
    #[arg(long)]
    pub top_p: Option<f32>,
    #[arg(long)]
    pub min_p: Option<f32>,
    #[arg(long)]
    pub repetition_penalty: Option<f32>,
    #[arg(long)]
    pub frequency_penalty: Option<f32>,
    #[arg(long)]
    pub presence_penalty: Option<f32>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop sequence (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    pub fn to_raw(&self) -> RawSamplingParams {
        let mut raw = RawSamplingParams::default();
        raw.temperature = Some(self.temperature);
        raw.top_k = self.top_k;
        raw.top_p = self.top_p;
        raw.min_p = self.min_p;
        raw.repetition_penalty = self.repetition_penalty;
        raw.frequency_penalty = self.frequency_penalty;
        raw.presence_penalty = self.presence_penalty;
        raw.seed = self.seed;
        raw.stop = (!self.stop.is_empty()).then(|| self.stop.clone());
        raw
    }
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let engine = Engine::load(&args.model.model, args.model.engine_config())
        .with_context(|| format!("loading {}", args.model.model.display()))?;
    let prompt = match (&args.prompt, &args.chat) {
        (Some(p), _) => PromptInput::Text(p.clone()),
        (None, Some(c)) => {
            let mut messages = Vec::new();
            if let Some(s) = &args.system {
                messages.push(ChatMessage {
                    role: Role::System,
                    content: s.clone(),
                });
            }
            messages.push(ChatMessage {
                role: Role::User,
                content: c.clone(),
            });
            PromptInput::Chat(messages)
        }
        (None, None) => anyhow::bail!("one of --prompt or --chat is required"),
    };
    let req = engine.prepare(GenerateRequest {
        prompt,
        sampling: args.sampling.to_raw(),
        max_tokens: Some(args.max_tokens),
    })?;
    let mut stream = engine.submit(req)?;
    let mut out = std::io::stdout().lock();
    while let Some(event) = stream.blocking_next() {
        match event {
            GenerationEvent::Token { text, .. } => {
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            GenerationEvent::Finished {
                reason,
                usage,
                text,
            } => {
                out.write_all(text.as_bytes())?;
                writeln!(out)?;
                tracing::info!(
                    finish_reason = reason.as_openai_str(),
                    prompt_tokens = usage.prompt_tokens,
                    completion_tokens = usage.completion_tokens,
                    "done"
                );
                break;
            }
            GenerationEvent::Failed { message } => anyhow::bail!("generation failed: {message}"),
        }
    }
    Ok(())
}
