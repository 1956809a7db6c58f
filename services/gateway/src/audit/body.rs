//! Bodies that are not text (adapter uploads, archives, any non-UTF-8 payload) are recorded as
//! a summary instead of megabytes of lossy text: content type, size, SHA-256, and for
//! `multipart/form-data` each part's name, file name, content type, size and SHA-256 (and the
//! value of short text fields such as an adapter's name or alias).

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::multipart::{self, Malformed, Part, param};

/// Longest text field value kept in a multipart summary.
const MAX_FIELD_VALUE: usize = 256;
/// Most parts listed (a form with more is summarised as truncated).
const MAX_PARTS: usize = 64;

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_binary_type(ct: &str) -> bool {
    ct.starts_with("application/octet-stream")
        || ct.starts_with("application/zip")
        || ct.starts_with("application/x-tar")
        || ct.starts_with("application/gzip")
        || ct.starts_with("application/x-gzip")
        || ct.starts_with("image/")
        || ct.starts_with("audio/")
        || ct.starts_with("video/")
}

/// The summary of `body` when it is multipart or binary; `None` for JSON and text (recorded as
/// they are). `declared` is the Content-Length, when the body read is only its head.
pub(crate) fn summary(
    body: &[u8],
    content_type: Option<&str>,
    declared: Option<u64>,
) -> Option<Value> {
    let ct = content_type.unwrap_or("").trim().to_ascii_lowercase();
    let multipart = ct.starts_with("multipart/");
    if !multipart && !is_binary_type(&ct) && std::str::from_utf8(body).is_ok() {
        return None;
    }
    let size = declared.unwrap_or(body.len() as u64).max(body.len() as u64);
    let complete = size == body.len() as u64;
    let mut m = Map::new();
    m.insert(
        "summary".into(),
        json!(if multipart { "multipart" } else { "binary" }),
    );
    m.insert("content_type".into(), json!(content_type.unwrap_or("")));
    m.insert("size".into(), json!(size));
    if complete {
        m.insert("sha256".into(), json!(sha256_hex(body)));
    } else {
        // Only the head was read for the record (the handler got the whole body).
        m.insert("recorded_bytes".into(), json!(body.len()));
    }
    if multipart && let Some(boundary) = short_param(content_type.unwrap_or(""), "boundary") {
        let (parts, cut) = parts(body, &boundary);
        m.insert("parts".into(), Value::Array(parts));
        if cut || !complete {
            m.insert("parts_truncated".into(), json!(true));
        }
    }
    Some(Value::Object(m))
}

/// A parameter of a part's header, bounded so a record stays small.
fn short_param(header: &str, key: &str) -> Option<String> {
    param(header, key).filter(|v| !v.is_empty() && v.len() <= 200)
}

/// The parts of a multipart body, leniently (a part cut off by the end of what was read is
/// listed with the bytes seen); true when the list is incomplete.
fn parts(body: &[u8], boundary: &str) -> (Vec<Value>, bool) {
    let mut out = Vec::new();
    for (i, part) in multipart::parts(body, boundary).enumerate() {
        if i == MAX_PARTS {
            return (out, true);
        }
        match part {
            Ok(p) => out.push(describe(&p, false)),
            Err(Malformed::Truncated(p)) => {
                out.push(describe(&p, true));
                return (out, true);
            }
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

/// One part's entry; `cut`: the body ended inside it (no digest, no value).
fn describe(part: &Part<'_>, cut: bool) -> Value {
    let disposition = part.header("content-disposition").unwrap_or("");
    let data = part.data;
    let mut p = Map::new();
    p.insert("name".into(), json!(short_param(disposition, "name")));
    let filename = short_param(disposition, "filename");
    if let Some(ct) = part.header("content-type") {
        p.insert("content_type".into(), json!(ct));
    }
    p.insert("size".into(), json!(data.len()));
    if !cut {
        p.insert("sha256".into(), json!(sha256_hex(data)));
    }
    match (&filename, std::str::from_utf8(data)) {
        (None, Ok(text)) if !cut && text.len() <= MAX_FIELD_VALUE => {
            p.insert("value".into(), json!(text));
        }
        _ => {}
    }
    if let Some(f) = filename {
        p.insert("filename".into(), json!(f));
    }
    Value::Object(p)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn multipart_uploads_are_summarised_part_by_part() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nsupport\r\n--B\r\nContent-Disposition: form-data; name=\"weights\"; filename=\"adapter_model.safetensors\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\xff\xfe\r\n--B--\r\n";
        let s = summary(body, Some("multipart/form-data; boundary=B"), None).unwrap();
        assert_eq!(s["summary"], "multipart");
        assert_eq!(s["size"], body.len());
        assert_eq!(s["sha256"].as_str().map(str::len), Some(64));
        let parts = s["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 2, "{s}");
        assert_eq!(parts[0]["name"], "name");
        assert_eq!(parts[0]["value"], "support");
        assert_eq!(parts[1]["filename"], "adapter_model.safetensors");
        assert_eq!(parts[1]["size"], 4);
        assert!(parts[1].get("value").is_none());
        assert!(s.get("parts_truncated").is_none());
    }

    #[test]
    fn binary_bodies_are_summarised_and_text_is_not() {
        let s = summary(
            &[0, 159, 146, 150],
            Some("application/octet-stream"),
            Some(10),
        )
        .unwrap();
        assert_eq!(
            (s["summary"].as_str(), s["size"].as_u64()),
            (Some("binary"), Some(10))
        );
        assert_eq!(s["recorded_bytes"], 4, "only the head was read: no digest");
        assert!(s.get("sha256").is_none());
        let s = summary(&[0xff, 0xfe], None, None).unwrap();
        assert_eq!(s["summary"], "binary");
        assert!(summary(b"{\"a\":1}", Some("application/json"), None).is_none());
        assert!(summary(b"<a>x</a>", Some("application/xml"), None).is_none());
    }
}
