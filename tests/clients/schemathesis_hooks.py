"""Schemathesis hooks for the API fuzzing run (tests/e2e/fuzz.rs): keep every generation tiny so
a 2-core machine finishes the run in minutes. Only generation sizes are touched; every other
generated value reaches the server as generated."""

import schemathesis

# Bounds for fields that make the engine work in proportion to their value.
CAPS = {"max_tokens": 4, "max_completion_tokens": 4, "n": 2, "best_of": 2}


@schemathesis.hook
def map_case(context, case):
    body = case.body
    if isinstance(body, dict) and ("messages" in body or "prompt" in body):
        for field, cap in CAPS.items():
            value = body.get(field)
            if isinstance(value, int) and not isinstance(value, bool) and value > cap:
                body[field] = cap
        if "max_tokens" not in body and "max_completion_tokens" not in body:
            body["max_tokens"] = CAPS["max_tokens"]
    return case
