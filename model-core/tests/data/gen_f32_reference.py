#!/usr/bin/env python3
"""Test-data generator (not run in CI): greedy token ids of the demo model computed by
`transformers` in f32 on the dequantized GGUF, for the same five prompts as
greedy_reference.json (English, Chinese, code, a ~2k-token prompt, a chat-template prompt).

The demo model's Hugging Face checkpoint cannot be downloaded here, so the base is rebuilt from
the GGUF (see gen_peft_reference.py `load_base`: every tensor dequantized with the `gguf`
package, llama.cpp's q/k row permutation undone). The Rust side loads the same GGUF with
`ModelPrecision::Dequantized` and must produce exactly these ids: the two implementations then
share the weights and differ only in summation order and Enclave's f16 KV cache, so any
difference beyond a near-tie is a real bug (RoPE, attention, norm, sampling, batching).

Each case records the greedy ids, the first step's top logits and every step's top-1/top-2
logit margin, so a failing test can say whether it hit a near-tie.

Writes next to this script: f32_reference.json
Usage: /work/peftenv/bin/python model-core/tests/data/gen_f32_reference.py [model.gguf]
(needs torch, transformers, gguf, numpy; CPU is enough)
"""
import hashlib
import json
import pathlib
import sys

import numpy as np
import torch
import transformers

import refjson
from gen_peft_reference import DEFAULT_MODEL, load_base

HERE = pathlib.Path(__file__).resolve().parent
TOP_K = 5


def greedy(model, prompt_ids: list[int], n: int, eos: int) -> tuple[list[int], np.ndarray, list[float]]:
    """Greedy ids (stopping after EOS), the first step's logits, each step's top-1 - top-2 margin."""
    out = model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
    past = out.past_key_values
    logits = out.logits[0, -1].float()
    first = logits.numpy().copy()
    ids, margins = [], []
    for _ in range(n):
        top2 = torch.topk(logits, 2).values
        margins.append(round(float(top2[0] - top2[1]), 5))
        nxt = int(torch.argmax(logits))
        ids.append(nxt)
        if nxt == eos:
            break
        out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[0, -1].float()
    return ids, first, margins


def main() -> None:
    torch.set_num_threads(2)
    model_path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL
    model, cfg = load_base(model_path)
    source = json.loads((HERE / "greedy_reference.json").read_text())
    n_generate = source["n_generate"]
    cases = []
    with torch.no_grad():
        for case in source["cases"]:
            n = len(case["generated_ids"])
            ids, first, margins = greedy(model, case["prompt_ids"], n, cfg["eos_token_id"])
            order = np.argsort(-first, kind="stable")[:TOP_K]
            cases.append({
                "name": case["name"],
                "prompt_ids": case["prompt_ids"],
                "generated_ids": ids,
                "first_step_top": [{"id": int(i), "logit": float(first[i])} for i in order],
                "min_greedy_margin": min(margins),
                "greedy_margins": margins,
            })
            same = sum(1 for a, b in zip(ids, case["generated_ids"]) if a == b)
            print(f"{case['name']}: {len(case['prompt_ids'])} prompt ids, {len(ids)} generated, "
                  f"min margin {min(margins):.4f}; first {same} equal to llama.cpp's", file=sys.stderr)
    header = {
        "generator": "model-core/tests/data/gen_f32_reference.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "gguf": model_path.name,
        "gguf_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
        "precision": "f32 (GGUF dequantized), f32 KV cache",
        "sampling": "greedy argmax of the f32 logits, no penalties",
        "n_generate": n_generate,
        "eos_token_id": cfg["eos_token_id"],
    }
    refjson.write(HERE / "f32_reference.json", header, cases)


if __name__ == "__main__":
    main()
