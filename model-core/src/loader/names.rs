//! Logical tensor names and their spelling in each file format.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorName {
    TokenEmbedding,
    OutputNorm,
    Output,
    AttnNorm(usize),
    Q(usize),
    K(usize),
    V(usize),
    O(usize),
    QBias(usize),
    KBias(usize),
    VBias(usize),
    FfnNorm(usize),
    Gate(usize),
    Up(usize),
    Down(usize),
}

impl TensorName {
    pub fn gguf(&self) -> String {
        match *self {
            TensorName::TokenEmbedding => "token_embd.weight".into(),
            TensorName::OutputNorm => "output_norm.weight".into(),
            TensorName::Output => "output.weight".into(),
            TensorName::AttnNorm(l) => format!("blk.{l}.attn_norm.weight"),
            TensorName::Q(l) => format!("blk.{l}.attn_q.weight"),
            TensorName::K(l) => format!("blk.{l}.attn_k.weight"),
            TensorName::V(l) => format!("blk.{l}.attn_v.weight"),
            TensorName::O(l) => format!("blk.{l}.attn_output.weight"),
            TensorName::QBias(l) => format!("blk.{l}.attn_q.bias"),
            TensorName::KBias(l) => format!("blk.{l}.attn_k.bias"),
            TensorName::VBias(l) => format!("blk.{l}.attn_v.bias"),
            TensorName::FfnNorm(l) => format!("blk.{l}.ffn_norm.weight"),
            TensorName::Gate(l) => format!("blk.{l}.ffn_gate.weight"),
            TensorName::Up(l) => format!("blk.{l}.ffn_up.weight"),
            TensorName::Down(l) => format!("blk.{l}.ffn_down.weight"),
        }
    }

    pub fn hf(&self) -> String {
        match *self {
            TensorName::TokenEmbedding => "model.embed_tokens.weight".into(),
            TensorName::OutputNorm => "model.norm.weight".into(),
            TensorName::Output => "lm_head.weight".into(),
            TensorName::AttnNorm(l) => format!("model.layers.{l}.input_layernorm.weight"),
            TensorName::Q(l) => format!("model.layers.{l}.self_attn.q_proj.weight"),
            TensorName::K(l) => format!("model.layers.{l}.self_attn.k_proj.weight"),
            TensorName::V(l) => format!("model.layers.{l}.self_attn.v_proj.weight"),
            TensorName::O(l) => format!("model.layers.{l}.self_attn.o_proj.weight"),
            TensorName::QBias(l) => format!("model.layers.{l}.self_attn.q_proj.bias"),
            TensorName::KBias(l) => format!("model.layers.{l}.self_attn.k_proj.bias"),
            TensorName::VBias(l) => format!("model.layers.{l}.self_attn.v_proj.bias"),
            TensorName::FfnNorm(l) => format!("model.layers.{l}.post_attention_layernorm.weight"),
            TensorName::Gate(l) => format!("model.layers.{l}.mlp.gate_proj.weight"),
            TensorName::Up(l) => format!("model.layers.{l}.mlp.up_proj.weight"),
            TensorName::Down(l) => format!("model.layers.{l}.mlp.down_proj.weight"),
        }
    }
}

impl fmt::Display for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hf())
    }
}
