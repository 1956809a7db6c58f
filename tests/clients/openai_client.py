"""A real client of the OpenAI-compatible API: the official `openai` package, used exactly as an
application would, with only base_url and api_key pointing at Enclave.

Usage: python openai_client.py BASE_URL API_KEY MODEL
Prints one JSON object per line: {"call": "chat", ...} and {"call": "stream", ...}.
"""

import json
import sys

from openai import OpenAI


def main() -> None:
    base_url, api_key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    client = OpenAI(base_url=base_url, api_key=api_key, timeout=600, max_retries=0)
    messages = [{"role": "user", "content": "Name three colours."}]

    completion = client.chat.completions.create(
        model=model, messages=messages, max_tokens=12, temperature=0
    )
    choice = completion.choices[0]
    print(json.dumps({
        "call": "chat",
        "id": completion.id,
        "model": completion.model,
        "role": choice.message.role,
        "content": choice.message.content,
        "finish_reason": choice.finish_reason,
        "completion_tokens": completion.usage.completion_tokens,
    }), flush=True)

    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=12, temperature=0,
        stream=True, stream_options={"include_usage": True},
    )
    parts, finish, usage, chunks = [], None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage.completion_tokens
        for c in chunk.choices:
            if c.delta.content:
                parts.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    print(json.dumps({
        "call": "stream",
        "chunks": chunks,
        "content": "".join(parts),
        "finish_reason": finish,
        "completion_tokens": usage,
    }), flush=True)

    models = client.models.list()
    print(json.dumps({"call": "models", "ids": [m.id for m in models.data]}), flush=True)


if __name__ == "__main__":
    main()
