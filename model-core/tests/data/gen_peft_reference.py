#!/usr/bin/env python3
"""Test-data generator (not run in CI): a PEFT LoRA adapter for the demo model, and what
`transformers` + `peft` compute with it.

The Hugging Face checkpoint of the demo model cannot be downloaded here, so the base is rebuilt
from the GGUF itself: every tensor is dequantized with the `gguf` package, the q/k rows that
llama.cpp's converter permuted for its interleaved RoPE are put back in Hugging Face order, and
the weights go into a `LlamaForCausalLM` built from a config read off the GGUF metadata. The
reference is therefore "transformers + peft on the dequantized base", which is exactly what the
Rust side computes when it dequantizes the same GGUF to f32 (and close to what it computes on the
quantized weights).

The adapter is a random-init LoRA with non-zero B (a trained adapter's B is non-zero too; PEFT's
default init leaves B = 0, which would test nothing) on all seven projections, with mixed ranks
and alphas through `rank_pattern` / `alpha_pattern`. Factors are rounded to bf16 and saved as
bf16 by `save_pretrained`, so the committed file is small and the reference runs in f32 on
exactly the saved values.

Writes next to this script:
  peft_adapter/adapter_config.json, peft_adapter/adapter_model.safetensors  (as PEFT saves them)
  peft_reference.json  (per prompt: prompt ids, greedy ids with the adapter, top-k first-step
                        logits with and without the adapter, logits at fixed probe ids, and the
                        top-1/top-2 margin of every greedy step)

Usage: /work/peftenv/bin/python model-core/tests/data/gen_peft_reference.py [model.gguf]
(needs torch, transformers, peft, gguf, numpy, safetensors; CPU is enough)
"""
import hashlib
import json
import pathlib
import shutil
import sys

import gguf
import numpy as np
import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors import safe_open
from transformers import LlamaConfig, LlamaForCausalLM

import refjson

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_MODEL = HERE.parents[2] / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
ADAPTER_DIR = HERE / "peft_adapter"
SEED = 20261203
N_GENERATE = 24
TOP_K = 10
# Logits at these ids are recorded too, so the comparison is not only about the top tokens.
PROBE_IDS = [0, 1, 2, 17, 198, 260, 504, 1000, 4096, 12345, 30000, 49151]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RANK = 4
ALPHA = 8
# Mixed ranks/alphas: q gets rank 8 everywhere, down rank 2, v of layer 3 rank 1 with its own alpha.
RANK_PATTERN = {"q_proj": 8, "down_proj": 2, "model.layers.3.self_attn.v_proj": 1}
ALPHA_PATTERN = {"down_proj": 2, "model.layers.3.self_attn.v_proj": 3}
# Standard deviation of A and of B: the update B·A is then ~10-20% of the base weights' scale,
# enough to change the output visibly while keeping the model coherent.
A_STD = 0.04
B_STD = 0.04


def meta(reader: gguf.GGUFReader, key: str):
    field = reader.fields[key]
    value = field.parts[field.data[0]]
    if field.types[0] == gguf.GGUFValueType.STRING:
        return bytes(value).decode()
    return value.tolist()[0]


def unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Inverse of llama.cpp's convert permute: per head, interleaved (pairs) rows → halves."""
    rows, cols = w.shape
    return w.reshape(heads, rows // heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def load_base(path: pathlib.Path) -> tuple[LlamaForCausalLM, dict]:
    reader = gguf.GGUFReader(str(path))
    arch = meta(reader, "general.architecture")
    assert arch == "llama", arch
    heads = meta(reader, "llama.attention.head_count")
    kv_heads = meta(reader, "llama.attention.head_count_kv")
    tensors = {}
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        tensors[t.name] = np.asarray(values, dtype=np.float32).reshape([int(d) for d in reversed(t.shape)])
    vocab, hidden = tensors["token_embd.weight"].shape
    layers = meta(reader, "llama.block_count")
    cfg = dict(
        vocab_size=int(vocab),
        hidden_size=int(hidden),
        intermediate_size=int(meta(reader, "llama.feed_forward_length")),
        num_hidden_layers=int(layers),
        num_attention_heads=int(heads),
        num_key_value_heads=int(kv_heads),
        rms_norm_eps=float(meta(reader, "llama.attention.layer_norm_rms_epsilon")),
        rope_theta=float(meta(reader, "llama.rope.freq_base")),
        max_position_embeddings=int(meta(reader, "llama.context_length")),
        tie_word_embeddings="output.weight" not in tensors,
        bos_token_id=int(meta(reader, "tokenizer.ggml.bos_token_id")),
        eos_token_id=int(meta(reader, "tokenizer.ggml.eos_token_id")),
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(LlamaConfig(**cfg)).eval()
    sd = {"model.embed_tokens.weight": tensors["token_embd.weight"], "model.norm.weight": tensors["output_norm.weight"]}
    if "output.weight" in tensors:
        sd["lm_head.weight"] = tensors["output.weight"]
    names = {
        "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    }
    for l in range(layers):
        for g, hf in names.items():
            w = tensors[f"blk.{l}.{g}.weight"]
            if g == "attn_q":
                w = unpermute(w, heads)
            elif g == "attn_k":
                w = unpermute(w, kv_heads)
            sd[f"model.layers.{l}.{hf}.weight"] = w
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not (cfg["tie_word_embeddings"] and m == "lm_head.weight")]
    assert not missing and not unexpected, (missing, unexpected)
    if cfg["tie_word_embeddings"]:
        model.tie_weights()
    return model, cfg


def randomize_lora(model: PeftModel) -> None:
    """Non-zero A and B, rounded to bf16 so the f32 reference uses exactly the saved values."""
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "lora_A" in name:
                p.copy_((torch.randn(p.shape, generator=gen) * A_STD).to(torch.bfloat16).float())
            elif "lora_B" in name:
                p.copy_((torch.randn(p.shape, generator=gen) * B_STD).to(torch.bfloat16).float())


def greedy(model, prompt_ids: list[int]) -> tuple[list[int], np.ndarray, list[float]]:
    """Greedy ids, the first step's logits, and each step's top-1 minus top-2 logit margin."""
    out = model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
    past = out.past_key_values
    logits = out.logits[0, -1].float()
    first = logits.numpy().copy()
    ids, margins = [], []
    eos = model.config.eos_token_id
    for _ in range(N_GENERATE):
        top2 = torch.topk(logits, 2).values
        margins.append(float(top2[0] - top2[1]))
        nxt = int(torch.argmax(logits))
        ids.append(nxt)
        if nxt == eos:
            break
        out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[0, -1].float()
    return ids, first, margins


def top_k(logits: np.ndarray) -> list[dict]:
    order = np.argsort(-logits, kind="stable")[:TOP_K]
    return [{"id": int(i), "logit": float(logits[i])} for i in order]


def main() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    model_path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL
    base, cfg = load_base(model_path)
    greedy_cases = json.loads((HERE / "greedy_reference.json").read_text())["cases"]
    prompts = [(c["name"], c["prompt_ids"]) for c in greedy_cases if c["name"] in ("english", "chinese", "code", "chat")]

    # Base model first (before PEFT wraps the modules in place).
    base_runs = {}
    with torch.no_grad():
        for name, ids in prompts:
            base_runs[name] = greedy(base, ids)

    lora_cfg = LoraConfig(
        r=RANK, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0, bias="none",
        task_type="CAUSAL_LM", rank_pattern=RANK_PATTERN, alpha_pattern=ALPHA_PATTERN,
        init_lora_weights=True,
    )
    model = get_peft_model(base, lora_cfg).eval()
    randomize_lora(model)

    if ADAPTER_DIR.exists():
        shutil.rmtree(ADAPTER_DIR)
    # Save as bf16 (half the size); the values were rounded to bf16 above, so nothing changes.
    bf16 = {n: p.detach().to(torch.bfloat16) for n, p in model.named_parameters() if "lora_" in n}
    with torch.no_grad():
        saved = {n: p.data for n, p in model.named_parameters() if "lora_" in n}
        for n, p in model.named_parameters():
            if n in bf16:
                p.data = bf16[n]
        model.save_pretrained(str(ADAPTER_DIR), safe_serialization=True)
        for n, p in model.named_parameters():
            if n in saved:
                p.data = saved[n]
    (ADAPTER_DIR / "README.md").unlink(missing_ok=True)
    # The saved file must hold bf16 values equal to the f32 factors the reference runs with.
    with safe_open(str(ADAPTER_DIR / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert len(keys) == 2 * len(TARGETS) * cfg["num_hidden_layers"], len(keys)
        for k in keys:
            assert f.get_tensor(k).dtype == torch.bfloat16, k

    cases = []
    with torch.no_grad():
        for name, ids in prompts:
            gen_ids, first, margins = greedy(model, ids)
            base_ids, base_first, _ = base_runs[name]
            cases.append({
                "name": name,
                "prompt_ids": ids,
                "generated_ids": gen_ids,
                "first_step_top": top_k(first),
                "probe_logits": [float(first[i]) for i in PROBE_IDS],
                "min_greedy_margin": min(margins),
                "greedy_margins": [round(m, 4) for m in margins],
                "base_generated_ids": base_ids,
                "base_first_step_top": top_k(base_first),
                "base_probe_logits": [float(base_first[i]) for i in PROBE_IDS],
            })
            print(f"{name}: {len(ids)} prompt ids; adapter changes first-step logits by up to "
                  f"{np.abs(first - base_first).max():.3f}; min greedy margin {min(margins):.3f}", file=sys.stderr)

    # Loading the saved directory the ordinary way must reproduce the same logits.
    fresh, _ = load_base(model_path)
    reloaded = PeftModel.from_pretrained(fresh, str(ADAPTER_DIR)).eval()
    with torch.no_grad():
        for case in cases:
            _, first, _ = greedy(reloaded, case["prompt_ids"][:])
            got = [float(first[i]) for i in PROBE_IDS]
            assert np.allclose(got, case["probe_logits"], atol=1e-4), (case["name"], got, case["probe_logits"])

    header = {
        "generator": "model-core/tests/data/gen_peft_reference.py",
        "gguf": model_path.name,
        "gguf_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "peft_version": peft.__version__,
        "gguf_py_version": getattr(gguf, "__version__", "unknown"),
        "base": "LlamaForCausalLM in f32 from the dequantized GGUF, q/k rows un-permuted to HF order",
        "base_config": cfg,
        "adapter_dir": "peft_adapter",
        "sampling": "greedy argmax (no penalties), KV cache, batch of one",
        "n_generate": N_GENERATE,
        "probe_ids": PROBE_IDS,
    }
    refjson.write(HERE / "peft_reference.json", header, cases)


if __name__ == "__main__":
    main()
