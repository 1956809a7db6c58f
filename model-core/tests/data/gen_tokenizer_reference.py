#!/usr/bin/env python3
"""Test-data generator (not run in CI): token ids of tricky strings from llama.cpp.

Writes tokenizer_reference.json next to this script. The ids come from llama.cpp's own
tokenizer (through llama-cpp-python) loading the demo GGUF, so the Rust tokenizer built
from GGUF metadata can be checked against an independent implementation.

Usage: python3 model-core/tests/data/gen_tokenizer_reference.py [path/to/model.gguf]
"""
import ctypes
import hashlib
import pathlib
import sys

import llama_cpp

import refjson

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_MODEL = HERE.parents[2] / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"

TRICKY = [
    "Hello, world!",
    " leading space",
    "   three leading spaces",
    "trailing spaces   ",
    "multiple    inner     spaces",
    "tab\tseparated\tvalues",
    "\t\tleading tabs",
    "line one\nline two\n\nline four",
    "\r\nwindows\r\nline endings\r\n",
    " \n \t \n\n\t  mixed whitespace run \t\n",
    "\n\n\n",
    "1234567890",
    "3.14159 and 2,718,281 and 1e-10",
    "Version 12.04.3 released in 2024",
    "你好，世界！今天天气很好。",
    "中文和English混合的句子123",
    "日本語のテキスト：ひらがな、カタカナ、漢字。",
    "한국어 문장입니다.",
    "Здравствуй, мир! Ёлка",
    "مرحبا بالعالم",
    "emoji 😀😃😄 and 🚀",
    "family 👨‍👩‍👧‍👦 zwj sequence",
    "skin tones 👍🏻👍🏽👍🏿 waving 👋🏾",
    "flags 🇺🇸🇯🇵🇩🇪 and keycap 1️⃣",
    "combining: e\u0301 a\u0308 n\u0303 (decomposed) vs é ä ñ",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319algo",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{v:?}\");\n}\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "const f = async () => { await fetch('/api?q=1&x=2'); };",
    "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>",
    "it's they're we've I'm you'll he'd DON'T",
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more text",
    "<|im_start|><|im_end|><|im_start|>",
    "not special: <|im_start |> <|im_end| > <im_start>",
    "<filename>src/main.rs<file_sep>",
    "mojibake: Ã©Ã¨ â€™ â€œquotedâ€\u009d",
    "replacement \ufffd char and nul \u0000 and bell \u0007",
    "zero\u200bwidth\u200cnon\u200djoiner\u2060word",
    "nbsp\u00a0here and ideographic\u3000space",
    "math ∑∫√∞ ≤ ≥ ≠ ½ ² ³ ℃",
    "   ",
    "",
    "a",
]


def token_piece(vocab, token_id: int) -> bytes:
    """llama_token_to_piece with a buffer big enough for any token (Llama.detokenize uses 32
    bytes and silently returns nothing for longer pieces)."""
    size = 256
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, token_id, buf, size, 0, True)
        if n >= 0:
            return buf.raw[:n]
        size = -n


def main() -> None:
    model = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL
    llm = llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)
    cases = []
    for text in TRICKY:
        raw = text.encode("utf-8")
        cases.append(
            {
                "text": text,
                "ids_parse_special_false": llm.tokenize(raw, add_bos=False, special=False),
                "ids_parse_special_true": llm.tokenize(raw, add_bos=False, special=True),
            }
        )
    vocab = llm._model.vocab
    n_vocab = llm.n_vocab()
    # Raw bytes of a sample of tokens (every 97th id plus the control tokens), as llama.cpp's
    # token_to_piece renders them with special=True: checks the precomputed token bytes.
    sample = sorted(set(range(0, n_vocab, 97)) | set(range(0, 17)) | {n_vocab - 1})
    pieces = [[i, token_piece(vocab, i).hex()] for i in sample]
    header = {
        "generator": "model-core/tests/data/gen_tokenizer_reference.py",
        "llama_cpp_python_version": llama_cpp.__version__,
        "gguf": model.name,
        "gguf_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "n_vocab": n_vocab,
        "bos_id": llm.token_bos(),
        "eos_id": llm.token_eos(),
        "eog_ids": [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)],
        "token_pieces_hex": pieces,
    }
    path = HERE / "tokenizer_reference.json"
    refjson.write(path, header, cases)
    print(f"wrote {len(cases)} cases to {path}")


if __name__ == "__main__":
    main()
