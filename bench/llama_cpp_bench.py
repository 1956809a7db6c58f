#!/usr/bin/env python3
"""llama.cpp reference figures for `bench/compare-llama-cpp.sh`.

Measures, through llama-cpp-python's low-level API (one llama_decode per step, no Python-side
sampling machinery), the same quantities as `enclave bench engine`:

  prefill_512   one llama_decode of a 512-token prompt (one ubatch), tokens / seconds
  decode_x1     one sequence, 64 greedy steps after a 16-token prompt
  decode_x8     8 sequences with different 16-token prompts, 64 steps; each step is one batch
  decode_x16    holding one token per sequence; aggregate tokens / seconds

Every figure is the median over --runs repetitions. Only llama_decode (plus llama_synchronize) is
timed: the greedy argmax over the logits runs in numpy between steps, outside the clock.
Output: one JSON line per figure, {"bench": "llama.cpp", "metric", "value", "unit"}.
"""

import argparse
import ctypes
import json
import statistics
import sys
import time

import numpy as np

import llama_cpp as L

# The same filler text `enclave bench engine` uses, so both sides see similar token statistics.
TEXT = (
    "The quick brown fox jumps over the lazy dog while the committee reviews the quarterly "
    "report on renewable energy, supply chains, and the history of mathematics in medieval libraries. "
)

PREFILL_TOKENS = 512
PROMPT_TOKENS = 16
DECODE_TOKENS = 64
MAX_SEQS = 16
# Without a unified KV buffer llama.cpp splits n_ctx evenly between the sequences, so every
# sequence slot must hold the longest use of it: the 512-token prefill plus a margin.
PER_SEQ_CTX = 1024


def emit(metric, value, unit):
    print(json.dumps({"bench": "llama.cpp", "metric": metric, "value": round(value, 3), "unit": unit}), flush=True)


@L.llama_log_callback
def _quiet_log(level, text, user_data):
    # Errors (level 3) still reach stderr; the loader's info chatter does not.
    if level == 3:
        sys.stderr.write(text.decode("utf-8", "replace"))


class Bench:
    def __init__(self, model_path, threads, kv_unified):
        L.llama_log_set(_quiet_log, ctypes.c_void_p(0))
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(model_path.encode(), mparams)
        if not self.model:
            raise SystemExit(f"llama.cpp could not load {model_path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)

        cparams = L.llama_context_default_params()
        cparams.n_seq_max = MAX_SEQS
        cparams.kv_unified = kv_unified
        cparams.n_ctx = (PREFILL_TOKENS + DECODE_TOKENS) * 2 if kv_unified else PER_SEQ_CTX * MAX_SEQS
        cparams.n_batch = PREFILL_TOKENS
        cparams.n_ubatch = PREFILL_TOKENS
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        # flash_attn_type stays at its default (auto).
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise SystemExit("llama.cpp could not create a context")
        self.n_ctx = L.llama_n_ctx(self.ctx)
        self.batch = L.llama_batch_init(PREFILL_TOKENS, 0, 1)

    def close(self):
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)
        L.llama_backend_free()

    def clear_kv(self):
        if hasattr(L, "llama_memory_clear"):
            L.llama_memory_clear(L.llama_get_memory(self.ctx), True)
        else:
            L.llama_kv_self_clear(self.ctx)

    def tokenize(self, text, n):
        raw = text.encode()
        buf = (L.llama_token * (len(raw) + 8))()
        got = L.llama_tokenize(self.vocab, raw, len(raw), buf, len(buf), False, False)
        if got < n:
            raise SystemExit(f"bench text tokenized to {got} tokens, need {n}")
        return list(buf[:n])

    def prompt(self, n, salt):
        # Like the enclave side: a per-sequence number in front makes every prompt different.
        return self.tokenize(f"{salt} " + TEXT * (n // 20 + 2), n)

    def decode(self, entries):
        """One llama_decode over (token, pos, seq, wants_logits) entries; returns seconds."""
        b = self.batch
        for i, (tok, pos, seq, logits) in enumerate(entries):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = 1 if logits else 0
        b.n_tokens = len(entries)
        t0 = time.perf_counter()
        rc = L.llama_decode(self.ctx, b)
        L.llama_synchronize(self.ctx)
        secs = time.perf_counter() - t0
        if rc != 0:
            raise SystemExit(f"llama_decode returned {rc}")
        return secs

    def argmax(self, i):
        """Greedy pick from the logits of batch entry i."""
        logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,))
        return int(logits.argmax())

    def prefill(self, salt):
        self.clear_kv()
        ids = self.prompt(PREFILL_TOKENS, salt)
        secs = self.decode([(t, p, 0, p == len(ids) - 1) for p, t in enumerate(ids)])
        return PREFILL_TOKENS / secs

    def decode_rate(self, n_seqs):
        """Aggregate greedy decode tokens/s over n_seqs sequences, prompts prefilled untimed."""
        self.clear_kv()
        prompts = [self.prompt(PROMPT_TOKENS, s) for s in range(n_seqs)]
        entries = [(t, p, s, p == PROMPT_TOKENS - 1) for s, ids in enumerate(prompts) for p, t in enumerate(ids)]
        self.decode(entries)
        # llama_get_logits_ith takes the token's index in the batch.
        next_tok = [self.argmax(s * PROMPT_TOKENS + PROMPT_TOKENS - 1) for s in range(n_seqs)]
        secs = 0.0
        for step in range(DECODE_TOKENS):
            pos = PROMPT_TOKENS + step
            secs += self.decode([(next_tok[s], pos, s, True) for s in range(n_seqs)])
            next_tok = [self.argmax(s) for s in range(n_seqs)]
        return n_seqs * DECODE_TOKENS / secs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="GGUF file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--kv-unified",
        action="store_true",
        help="one KV buffer shared by all sequences (llama.cpp's default is one per sequence)",
    )
    args = ap.parse_args()

    bench = Bench(args.model, args.threads, args.kv_unified)
    try:
        # Warm-up: touches every weight page and sizes llama.cpp's compute buffers.
        bench.prefill(999)
        bench.decode_rate(MAX_SEQS)

        emit(f"prefill_{PREFILL_TOKENS}", statistics.median(bench.prefill(r) for r in range(args.runs)), "tok/s")
        for n in (1, 8, 16):
            emit(f"decode_x{n}", statistics.median(bench.decode_rate(n) for _ in range(args.runs)), "tok/s")
    finally:
        bench.close()


if __name__ == "__main__":
    main()
