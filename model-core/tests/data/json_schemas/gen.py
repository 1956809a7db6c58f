#!/usr/bin/env python3
"""Generates the JSON-schema corpus used by model-core/tests/constraints.rs.

Deterministic (fixed seed): re-running rewrites the same files. Each schema mixes the features
structured-output callers use: objects with required and optional properties, enums, const,
arrays with item bounds, nested objects, integer and number ranges, string lengths, patterns
and formats, anyOf, nullable types, $defs/$ref and additionalProperties.

Usage: python3 gen.py [COUNT]   (default 240; writes NNN.json next to this script)
"""
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WORDS = ["id", "name", "title", "score", "tags", "owner", "items", "status", "created",
         "email", "price", "count", "active", "notes", "address", "city", "zip", "kind",
         "level", "ratio", "color", "size", "date", "user", "labels", "meta", "version"]
FORMATS = ["date", "time", "date-time", "email", "uuid", "ipv4", "hostname"]
PATTERNS = [r"^[A-Z]{3}-[0-9]{2,4}$", r"^[a-z]+(_[a-z]+)*$", r"^\d{5}$",
            r"^#[0-9a-f]{6}$", r"^v[0-9]+\.[0-9]+\.[0-9]+$", r"[aeiou]"]


def scalar(rng):
    kind = rng.choice(["string", "integer", "number", "boolean", "enum", "const",
                       "format", "pattern", "nullable", "strlen"])
    if kind == "string":
        return {"type": "string"}
    if kind == "strlen":
        lo = rng.randint(0, 5)
        return {"type": "string", "minLength": lo, "maxLength": lo + rng.randint(0, 12)}
    if kind == "integer":
        lo = rng.randint(-1000, 1000)
        s = {"type": "integer", "minimum": lo}
        if rng.random() < 0.7:
            s["maximum"] = lo + rng.randint(0, 5000)
        return s
    if kind == "number":
        s = {"type": "number"}
        if rng.random() < 0.5:
            s["minimum"] = rng.choice([0, -1.5, 0.25, 10])
        if rng.random() < 0.5:
            s["exclusiveMaximum"] = rng.choice([100, 1e6, 99.5])
        return s
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "enum":
        n = rng.randint(1, 5)
        vals = rng.sample(["red", "green", "blue", "low", "high", "on", "off", "n/a", "x y"], n)
        if rng.random() < 0.3:
            vals.append(rng.randint(0, 9))
        if rng.random() < 0.2:
            vals.append(None)
        return {"enum": vals}
    if kind == "const":
        return {"const": rng.choice(["fixed", 42, True, "v1"])}
    if kind == "format":
        return {"type": "string", "format": rng.choice(FORMATS)}
    if kind == "pattern":
        return {"type": "string", "pattern": rng.choice(PATTERNS)}
    return {"type": [rng.choice(["string", "integer", "boolean"]), "null"]}


def array(rng, depth):
    lo = rng.randint(0, 3)
    s = {"type": "array", "items": value(rng, depth + 1), "minItems": lo}
    if rng.random() < 0.8:
        s["maxItems"] = lo + rng.randint(0, 4)
    return s


def obj(rng, depth):
    n = rng.randint(1, 5)
    names = rng.sample(WORDS, n)
    props = {k: value(rng, depth + 1) for k in names}
    s = {"type": "object", "properties": props}
    req = [k for k in names if rng.random() < 0.6]
    if req:
        s["required"] = req
    if rng.random() < 0.6:
        s["additionalProperties"] = False
    return s


def any_of(rng, depth):
    return {"anyOf": [value(rng, depth + 1) for _ in range(rng.randint(2, 3))]}


def value(rng, depth):
    if depth >= 3:
        return scalar(rng)
    r = rng.random()
    if r < 0.5:
        return scalar(rng)
    if r < 0.7:
        return obj(rng, depth)
    if r < 0.9:
        return array(rng, depth)
    return any_of(rng, depth)


def with_defs(rng):
    item = obj(rng, 2)
    return {
        "$defs": {"item": item},
        "type": "object",
        "properties": {"first": {"$ref": "#/$defs/item"},
                       "rest": {"type": "array", "items": {"$ref": "#/$defs/item"},
                                "maxItems": 3}},
        "required": ["first"],
        "additionalProperties": False,
    }


def schema(rng, i):
    if i % 10 == 9:
        s = with_defs(rng)
    elif i % 7 == 3:
        s = array(rng, 1)
    elif i % 11 == 5:
        s = any_of(rng, 1)
    else:
        s = obj(rng, 0)
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return s


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 240
    rng = random.Random(20240607)
    for i in range(count):
        path = os.path.join(HERE, f"{i:03}.json")
        with open(path, "w") as f:
            json.dump(schema(rng, i), f, indent=1, sort_keys=False)
            f.write("\n")


if __name__ == "__main__":
    main()
