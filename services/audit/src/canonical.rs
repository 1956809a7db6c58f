//! Canonical encoding and the per-tenant hash chain.
//!
//! A record is chained as the canonical JSON of the envelope
//! `{"record": <record>, "seq": <n>, "tenant": "<uuid>", "v": 1}` and
//! `hash = SHA-256(prev_hash || canonical(envelope))`; the first record of a chain has
//! `prev_hash` = 32 zero bytes (or the anchor hash left by a prune).
//!
//! Canonical JSON: no whitespace, object keys sorted by their UTF-8 bytes, strings escaped the
//! way serde_json escapes them, numbers in one form per value: integral values in the 64-bit
//! range as plain integers (so `1.0`, `1` and `1e0` encode alike and survive jsonb's decimal
//! storage), every other number as the shortest round-trip float, `-0` as `0`. The record is
//! stored as jsonb and re-encoded on verification, so the encoding must depend only on the
//! JSON value, never on key order or number spelling.

use std::fmt;

use enclave_domain::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

/// A SHA-256 chain hash. Shown and serialised as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash([u8; 32]);

impl ChainHash {
    /// The `prev_hash` of the first record of a chain.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    pub const fn from_bytes(b: [u8; 32]) -> Self {
        ChainHash(b)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_slice(b: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(b).ok().map(ChainHash)
    }

    pub fn parse_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(ChainHash(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ChainHash::parse_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// Canonical bytes of any JSON value (see the module docs).
pub fn canonical_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(v, &mut out);
    out
}

fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(x, out);
            }
            out.push(b']');
        }
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(x, out);
            }
            out.push(b'}');
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_number(n: &Number, out: &mut Vec<u8>) {
    use std::io::Write;
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        if f == 0.0 {
            out.push(b'0');
        } else if f.fract() == 0.0 && (-9.223_372_036_854_776e18..0.0).contains(&f) {
            let _ = write!(out, "{}", f as i64);
        } else if f.fract() == 0.0 && (0.0..1.844_674_407_370_955_2e19).contains(&f) {
            let _ = write!(out, "{}", f as u64);
        } else {
            let _ =
                serde_json::to_writer(&mut *out, &Number::from_f64(f).unwrap_or(Number::from(0)));
        }
    }
}

/// The envelope that is hashed: the record plus its place in the chain.
pub fn envelope(tenant: &TenantId, seq: u64, record: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"record\":");
    write_value(record, &mut out);
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"tenant\":");
    write_string(&tenant.to_string(), &mut out);
    out.extend_from_slice(b",\"v\":1}");
    out
}

/// `SHA-256(prev || canonical(envelope(tenant, seq, record)))`.
pub fn chain_hash(prev: &ChainHash, tenant: &TenantId, seq: u64, record: &Value) -> ChainHash {
    let mut h = Sha256::new();
    h.update(prev.0);
    h.update(envelope(tenant, seq, record));
    ChainHash(h.finalize().into())
}

/// [`chain_hash`] over a record already in canonical form (`canonical_json(record)`): the
/// expensive encoding happens once, in the caller's task, and the writer's single commit path
/// only hashes.
pub(crate) fn chain_hash_canonical(
    prev: &ChainHash,
    tenant: &TenantId,
    seq: u64,
    canonical_record: &[u8],
) -> ChainHash {
    let mut h = Sha256::new();
    h.update(prev.0);
    h.update(b"{\"record\":");
    h.update(canonical_record);
    h.update(b",\"seq\":");
    h.update(seq.to_string().as_bytes());
    h.update(b",\"tenant\":\"");
    // A UUID's text form needs no JSON escaping.
    h.update(tenant.to_string().as_bytes());
    h.update(b"\",\"v\":1}");
    ChainHash(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hashing_canonical_bytes_matches_hashing_the_value() {
        let tenant = TenantId::new();
        let prev = ChainHash::from_bytes([7; 32]);
        let v = json!({"z": "quote \" and \u{e9}", "a": [1, 2.5, null], "n": {"b": true}});
        assert_eq!(
            chain_hash_canonical(&prev, &tenant, 42, &canonical_json(&v)),
            chain_hash(&prev, &tenant, 42, &v)
        );
    }

    #[test]
    fn key_order_and_number_spelling_do_not_matter() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":2.0,"x":[1e0,-0.0,0.5]}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":[1,0,5e-1],"y":2},"b":1.0}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            String::from_utf8(canonical_json(&a)).unwrap(),
            r#"{"a":{"x":[1,0,0.5],"y":2},"b":1}"#
        );
    }

    #[test]
    fn canonical_form_survives_decimal_storage() {
        // jsonb keeps numbers as decimals; re-parsing its text must give the same bytes.
        for text in [
            "1e19",
            "1e21",
            "-1e19",
            "0.1",
            "1.5e-7",
            "18446744073709551615",
            "-9223372036854775808",
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let f: f64 = text.parse().unwrap();
            let decimal = format!("{f:.0}");
            // jsonb prints integers as given and floats as plain decimals.
            let stored = if v.is_f64() && f.fract() == 0.0 {
                decimal.as_str()
            } else {
                text
            };
            let via_decimal: Value = serde_json::from_str(stored).unwrap();
            assert_eq!(canonical_json(&v), canonical_json(&via_decimal), "{text}");
        }
    }

    #[test]
    fn strings_are_escaped_deterministically() {
        let v = json!({"k": "quote\" nl\n tab\t uni é \u{1}"});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"k":"quote\" nl\n tab\t uni é \u0001"}"#
        );
    }

    #[test]
    fn every_input_of_the_hash_changes_it() {
        let t = TenantId::new();
        let rec = json!({"action": "x", "status_code": 200, "request": {"prompt": "hi"}});
        let base = chain_hash(&ChainHash::GENESIS, &t, 1, &rec);
        assert_ne!(base, chain_hash(&ChainHash::GENESIS, &t, 2, &rec), "seq");
        assert_ne!(
            base,
            chain_hash(&ChainHash::GENESIS, &TenantId::new(), 1, &rec),
            "tenant"
        );
        assert_ne!(
            base,
            chain_hash(&ChainHash::from_bytes([1; 32]), &t, 1, &rec),
            "prev"
        );
        let mut changed = rec.clone();
        changed["request"]["prompt"] = json!("hi!");
        assert_ne!(
            base,
            chain_hash(&ChainHash::GENESIS, &t, 1, &changed),
            "request"
        );
        changed = rec.clone();
        changed["status_code"] = json!(201);
        assert_ne!(
            base,
            chain_hash(&ChainHash::GENESIS, &t, 1, &changed),
            "status"
        );
        assert_eq!(
            base,
            chain_hash(&ChainHash::GENESIS, &t, 1, &rec.clone()),
            "deterministic"
        );
    }

    #[test]
    fn every_record_field_is_covered() {
        use crate::record::*;
        let t = TenantId::new();
        let base = AuditRecord::new(
            t,
            AuditActor::System { id: "s".into() },
            "a.b",
            json!({"p": 1}),
        );
        let h = |r: &AuditRecord| {
            chain_hash(
                &ChainHash::GENESIS,
                &t,
                1,
                &serde_json::to_value(r).unwrap(),
            )
        };
        let h0 = h(&base);
        let muts: Vec<(&str, Box<dyn Fn(&mut AuditRecord)>)> = vec![
            (
                "record_id",
                Box::new(|r| r.record_id = uuid::Uuid::now_v7()),
            ),
            (
                "time",
                Box::new(|r| r.time += chrono::Duration::microseconds(1)),
            ),
            (
                "actor",
                Box::new(|r| r.actor = AuditActor::System { id: "t".into() }),
            ),
            ("action", Box::new(|r| r.action = "a.c".into())),
            ("resource", Box::new(|r| r.resource = Some("x".into()))),
            ("phase", Box::new(|r| r.phase = Phase::Aborted)),
            ("request", Box::new(|r| r.request = json!({"p": 2}))),
            (
                "response",
                Box::new(|r| r.response = Some(AuditResponse::default())),
            ),
            ("model", Box::new(|r| r.model = Some("m".into()))),
            (
                "adapter",
                Box::new(|r| r.adapter_version = Some("v".into())),
            ),
            (
                "policy",
                Box::new(|r| r.policy = Some(PolicyInfo::default())),
            ),
            ("status", Box::new(|r| r.status_code = 500)),
            ("latency", Box::new(|r| r.latency_ms = 7)),
            (
                "client",
                Box::new(|r| r.client_addr = Some("1.2.3.4".into())),
            ),
            (
                "request_id",
                Box::new(|r| r.request_id = Some(enclave_domain::RequestId::new())),
            ),
            ("trace_id", Box::new(|r| r.trace_id = Some("t".into()))),
            (
                "change",
                Box::new(|r| r.change = Some(AdminChange::default())),
            ),
        ];
        for (name, m) in muts {
            let mut r = base.clone();
            m(&mut r);
            assert_ne!(h(&r), h0, "changing {name} must change the hash");
        }
    }
}
