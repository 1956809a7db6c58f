//! Narrows a caller's JSON schema before compilation so that every output is not only valid
//! JSON text but also readable by ordinary JSON parsers (I-JSON, RFC 7493).
//!
//! The rewritten schema admits a subset of what the caller's schema admits, so outputs still
//! validate against the original. Three narrowings:
//! - numbers and integers without a bound get one: integers within ±(2^53−1) (the I-JSON
//!   range), numbers within ±1e15. llguidance writes unbounded numbers with an unbounded
//!   exponent (`1e4255707070025` is grammatical JSON, but overflows a double);
//! - "any value" positions (`{}`, `true`, a missing `items` or `additionalProperties`) become a
//!   reference to the same "any value" with bounded numbers;
//! - `date-time` and `time` strings get no leap second (`:60`), which validators accept only at
//!   23:59:60 UTC, a condition a grammar cannot express.

use serde_json::{Map, Value, json};

/// Largest magnitude of an integer the model may write when the schema sets no bound.
pub(crate) const INTEGER_BOUND: i64 = (1 << 53) - 1;
/// Largest magnitude of a number the model may write when the schema sets no bound.
pub(crate) const NUMBER_BOUND: f64 = 1e15;

const ANY_DEF: &str = "enclave_any";
const ANY_REF: &str = "#/$defs/enclave_any";

/// Keywords whose value is one subschema.
const SINGLE: [&str; 5] = [
    "items",
    "additionalProperties",
    "additionalItems",
    "not",
    "contains",
];
/// Keywords whose value is a list of subschemas.
const LIST: [&str; 4] = ["anyOf", "allOf", "oneOf", "prefixItems"];
/// Keywords whose value maps names to subschemas.
const MAP: [&str; 4] = ["properties", "patternProperties", "$defs", "definitions"];

/// Returns the narrowed schema (see the module docs).
pub(crate) fn narrow(schema: &Value) -> Value {
    let mut root = if is_any(schema) {
        bounded_any()
    } else {
        schema.clone()
    };
    let Value::Object(map) = &mut root else {
        return root;
    };
    let mut used_any = is_any(schema);
    narrow_object(map, &mut used_any);
    if used_any {
        let defs = map
            .entry("$defs")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(defs) = defs {
            defs.insert(ANY_DEF.into(), bounded_any());
        }
    }
    root
}

fn bounded_any() -> Value {
    json!({"anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "number", "minimum": -NUMBER_BOUND, "maximum": NUMBER_BOUND},
        {"type": "string"},
        {"type": "array", "items": {"$ref": ANY_REF}},
        {"type": "object", "additionalProperties": {"$ref": ANY_REF}},
    ]})
}

fn is_any(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Object(m) => m
            .keys()
            .all(|k| matches!(k.as_str(), "description" | "title" | "$comment")),
        _ => false,
    }
}

fn narrow_sub(v: &mut Value, used_any: &mut bool) {
    if is_any(v) {
        *used_any = true;
        *v = json!({"$ref": ANY_REF});
    } else if let Value::Object(map) = v {
        narrow_object(map, used_any);
    }
}

fn narrow_object(map: &mut Map<String, Value>, used_any: &mut bool) {
    for key in SINGLE {
        if let Some(v) = map.get_mut(key) {
            narrow_sub(v, used_any);
        }
    }
    for key in LIST {
        if let Some(Value::Array(items)) = map.get_mut(key) {
            items.iter_mut().for_each(|v| narrow_sub(v, used_any));
        }
    }
    for key in MAP {
        if let Some(Value::Object(subs)) = map.get_mut(key) {
            subs.values_mut().for_each(|v| narrow_sub(v, used_any));
        }
    }
    let types = declared_types(map);
    if types.iter().any(|t| t == "object") && !map.contains_key("additionalProperties") {
        *used_any = true;
        map.insert("additionalProperties".into(), json!({"$ref": ANY_REF}));
    }
    if types.iter().any(|t| t == "array")
        && !map.contains_key("items")
        && !map.contains_key("prefixItems")
    {
        *used_any = true;
        map.insert("items".into(), json!({"$ref": ANY_REF}));
    }
    let integer_only = types.iter().all(|t| t == "integer");
    if types.iter().any(|t| t == "number" || t == "integer") {
        let (lo, hi) = if integer_only {
            (json!(-INTEGER_BOUND), json!(INTEGER_BOUND))
        } else {
            (json!(-NUMBER_BOUND), json!(NUMBER_BOUND))
        };
        if !map.contains_key("minimum")
            && !map.get("exclusiveMinimum").is_some_and(Value::is_number)
        {
            map.insert("minimum".into(), lo);
        }
        if !map.contains_key("maximum")
            && !map.get("exclusiveMaximum").is_some_and(Value::is_number)
        {
            map.insert("maximum".into(), hi);
        }
    }
    if types.iter().any(|t| t == "string") && !map.contains_key("pattern") {
        let no_leap_second = match map.get("format").and_then(Value::as_str) {
            Some("date-time") => Some("[tT]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"),
            Some("time") => Some("^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"),
            _ => None,
        };
        if let Some(p) = no_leap_second {
            map.insert("pattern".into(), p.into());
        }
    }
}

/// The types a schema object declares (`type` as a string or a list); none when absent.
fn declared_types(map: &Map<String, Value>) -> Vec<String> {
    match map.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbounded_numbers_get_bounds() {
        let s = narrow(&json!({"type": "object", "properties": {
            "i": {"type": "integer", "minimum": 3},
            "n": {"type": ["number", "null"], "exclusiveMaximum": 10}},
            "additionalProperties": false}));
        assert_eq!(s["properties"]["i"]["minimum"], json!(3));
        assert_eq!(s["properties"]["i"]["maximum"], json!(INTEGER_BOUND));
        assert_eq!(s["properties"]["n"]["minimum"], json!(-NUMBER_BOUND));
        assert!(s["properties"]["n"].get("maximum").is_none());
        assert!(
            s.get("$defs").is_none(),
            "no any-value position, no definition"
        );
    }

    #[test]
    fn any_positions_become_the_bounded_any() {
        let s = narrow(&json!({"type": "object", "properties": {"x": {}, "y": true,
            "z": {"type": "array"}}}));
        assert_eq!(s["additionalProperties"], json!({"$ref": ANY_REF}));
        assert_eq!(s["properties"]["x"], json!({"$ref": ANY_REF}));
        assert_eq!(s["properties"]["y"], json!({"$ref": ANY_REF}));
        assert_eq!(s["properties"]["z"]["items"], json!({"$ref": ANY_REF}));
        assert!(s["$defs"][ANY_DEF].is_object());
    }

    #[test]
    fn any_root_is_the_bounded_any() {
        let s = narrow(&json!({"description": "anything"}));
        assert_eq!(s["anyOf"].as_array().map(Vec::len), Some(6));
        assert!(s["$defs"][ANY_DEF].is_object());
    }

    #[test]
    fn leap_seconds_are_excluded_only_without_a_pattern() {
        let s = narrow(&json!({"type": "string", "format": "time"}));
        assert!(s["pattern"].as_str().unwrap_or("").contains("[0-5][0-9]"));
        let s = narrow(&json!({"type": "string", "format": "time", "pattern": "^1"}));
        assert_eq!(s["pattern"], json!("^1"));
    }
}
