#!/usr/bin/env python3
"""Test-data generator (not run in CI): greedy continuations of the demo model by llama.cpp.

Writes greedy_reference.json next to this script: for five fixed prompts (English, Chinese,
code, a ~2k-token prompt, a chat-template prompt) the prompt ids exactly as fed (no BOS: the
demo GGUF says add_bos_token=false), 48 greedily chosen ids (argmax of the logits, stopping
early only at an end-of-generation token), the top-5 logits of the first generated
position, and for every generated position the gap between the best and second-best logit
(how near a tie each choice was). Generation runs twice and must agree, so the data does not
record a fluke. The prompt is evaluated in llama.cpp's default batches of 512 tokens, so every
prompt token goes through its batched kernels and every generated token through its
single-token ones.

Usage: python3 model-core/tests/data/gen_greedy_reference.py [path/to/model.gguf]
"""
import hashlib
import pathlib
import sys

import jinja2
import llama_cpp
import numpy as np

import refjson

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_MODEL = HERE.parents[2] / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
N_GENERATE = 48
N_CTX = 4096
N_THREADS = 2
SEED = 1234
LONG_MIN, LONG_MAX = 1900, 2000

CHAT_MESSAGES = [
    {"role": "user", "content": "What is the capital of France? Answer in one sentence."},
]

TOPICS = [
    ("the river", "carried silt from the northern hills", "farmers planted barley along its banks"),
    ("the library", "kept maps older than the town itself", "students copied them by candlelight"),
    ("the harbour", "sheltered twelve fishing boats", "the nets were mended every Thursday"),
    ("the observatory", "measured the positions of 341 stars", "a clerk wrote each number twice"),
    ("the market", "opened at six in the morning", "merchants argued about the price of salt"),
    ("the school", "taught arithmetic and geography", "the oldest pupils helped the youngest"),
    ("the mill", "ground wheat for three villages", "its wheel turned 18 times a minute"),
]


def long_prompt(llm: llama_cpp.Llama) -> str:
    """Deterministic, varied prose trimmed to LONG_MIN..LONG_MAX tokens."""
    sentences = []
    for i in range(400):
        place, fact, detail = TOPICS[i % len(TOPICS)]
        year = 1700 + (i * 37) % 250
        sentences.append(
            f"In {year}, {place} {fact}, and {detail}; record {i + 1} notes that "
            f"{(i * 7919) % 1000} visitors came that season."
        )
    words = " ".join(sentences).split(" ")
    lo, hi = 1, len(words)
    # Binary search the word count whose tokenisation lands in the target window.
    while lo < hi:
        mid = (lo + hi) // 2
        n = len(llm.tokenize(" ".join(words[:mid]).encode(), add_bos=False, special=False))
        if n < (LONG_MIN + LONG_MAX) // 2:
            lo = mid + 1
        else:
            hi = mid
    text = " ".join(words[:lo])
    n = len(llm.tokenize(text.encode(), add_bos=False, special=False))
    assert LONG_MIN <= n <= LONG_MAX, n
    return text


def token_text(llm: llama_cpp.Llama, token_id: int) -> str:
    return llm.detokenize([token_id], special=True).decode("utf-8", errors="replace")


def chat_prompt(llm: llama_cpp.Llama) -> tuple[str, str, str]:
    meta = llm.metadata
    template = meta["tokenizer.chat_template"]
    bos = token_text(llm, int(meta["tokenizer.ggml.bos_token_id"]))
    eos = token_text(llm, int(meta["tokenizer.ggml.eos_token_id"]))
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(template).render(
        messages=CHAT_MESSAGES, add_generation_prompt=True, bos_token=bos, eos_token=eos
    )
    return text, bos, eos


def generate(llm: llama_cpp.Llama, prompt_ids: list[int]) -> tuple[list[int], list[dict], list[float]]:
    llm.reset()
    llm.eval(prompt_ids)
    generated: list[int] = []
    top5: list[dict] = []
    gaps: list[float] = []
    for step in range(N_GENERATE):
        logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        order = np.argsort(-logits, kind="stable")
        if step == 0:
            top5 = [{"id": int(i), "logit": float(logits[i])} for i in order[:5]]
        gaps.append(round(float(logits[order[0]] - logits[order[1]]), 6))
        next_id = int(np.argmax(logits))
        generated.append(next_id)
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, next_id):
            break
        llm.eval([next_id])
    return generated, top5, gaps


def build_numerics() -> str:
    """"avx512" when this llama.cpp build uses AVX-512 (16-lane sums, its own expf), else "avx2"."""
    info = llama_cpp.llama_print_system_info().decode()
    return "avx512" if "AVX512 = 1" in info else "avx2"


def main() -> None:
    model = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL
    llm = llama_cpp.Llama(
        model_path=str(model),
        n_ctx=N_CTX,
        n_threads=N_THREADS,
        n_threads_batch=N_THREADS,
        seed=SEED,
        logits_all=True,
        verbose=False,
    )
    chat_text, bos, eos = chat_prompt(llm)
    prompts = [
        ("english", "The old lighthouse keeper climbed the stairs every evening because", False),
        ("chinese", "请用简单的语言解释什么是机器学习。机器学习是", False),
        ("code", 'def quicksort(items):\n    """Return a new list with the items sorted."""\n', False),
        ("long", long_prompt(llm), False),
        ("chat", chat_text, True),
    ]
    cases = []
    for name, text, parse_special in prompts:
        ids = llm.tokenize(text.encode(), add_bos=False, special=parse_special)
        first, top5, gaps = generate(llm, ids)
        second, _, _ = generate(llm, ids)
        if first != second:
            raise SystemExit(f"{name}: llama.cpp greedy output differs between two runs")
        case = {
            "name": name,
            "prompt": text,
            "parse_special": parse_special,
            "prompt_ids": ids,
            "generated_ids": first,
            "generated_text": llm.detokenize(first, special=True).decode("utf-8", errors="replace"),
            "first_step_top5": top5,
            "top2_logit_gaps": gaps,
        }
        if name == "chat":
            case["messages"] = CHAT_MESSAGES
            case["add_generation_prompt"] = True
            case["bos_token"] = bos
            case["eos_token"] = eos
        cases.append(case)
        print(f"{name}: {len(ids)} prompt ids, {len(first)} generated", file=sys.stderr)
    header = {
        "generator": "model-core/tests/data/gen_greedy_reference.py",
        "llama_cpp_python_version": llama_cpp.__version__,
        "gguf": model.name,
        "gguf_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "n_ctx": N_CTX,
        "n_threads": N_THREADS,
        "seed": SEED,
        "sampling": "greedy argmax of llama.cpp logits (temperature 0), no repeat penalty",
        "n_generate": N_GENERATE,
        "n_batch": llm.n_batch,
        # The float arithmetic of this llama.cpp build (its vector width); the test pins the
        # engine to the same (enclave_kernels::Numerics), whatever CPU it runs on.
        "numerics": build_numerics(),
    }
    refjson.write(HERE / "greedy_reference.json", header, cases)


if __name__ == "__main__":
    main()
