//! Row encodings of an export (JSON lines, CSV per RFC 4180, XML) and their parsers.

use std::io::{BufRead, BufReader, Read};

use chrono::{DateTime, SecondsFormat, Utc};
use enclave_domain::TenantId;
use quick_xml::XmlVersion;
use quick_xml::escape::escape;
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::AuditError;
use crate::canonical::ChainHash;
use crate::verify::ChainRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Jsonl,
    Csv,
    Xml,
}

impl std::str::FromStr for ExportFormat {
    type Err = AuditError;
    fn from_str(s: &str) -> Result<Self, AuditError> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            "xml" => Ok(ExportFormat::Xml),
            _ => Err(AuditError::InvalidQuery {
                field: "format",
                reason: format!(
                    "must be jsonl, csv or xml, got {:?}",
                    s.chars().take(32).collect::<String>()
                ),
            }),
        }
    }
}

impl ExportFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Xml => "application/xml",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
            ExportFormat::Xml => "xml",
        }
    }
}

/// One exported record, borrowed from the database row it was read from (no per-row copies).
pub(crate) struct ExportRow<'a> {
    pub tenant: &'a str,
    pub seq: i64,
    pub inserted_at: DateTime<Utc>,
    pub record_id: Uuid,
    pub prev_hash: &'a [u8],
    pub hash: &'a [u8],
    /// The record as PostgreSQL prints the stored jsonb (keys in jsonb order): the verifier
    /// parses it and hashes its canonical form, which depends only on the JSON value.
    pub record: &'a str,
    pub time: &'a str,
    pub actor_kind: &'a str,
    pub actor_id: &'a str,
    pub action: &'a str,
    pub phase: &'a str,
    pub model: &'a str,
    pub status_code: Option<i32>,
}

pub(crate) const CSV_HEADER: [&str; 14] = [
    "seq",
    "tenant_id",
    "record_id",
    "inserted_at",
    "time",
    "actor_kind",
    "actor_id",
    "action",
    "phase",
    "model",
    "status_code",
    "prev_hash",
    "hash",
    "record_json",
];

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Lower-case hex of a 32-byte hash into a stack buffer ("" for a malformed stored value,
/// which verification then reports as a broken link).
fn hex32<'b>(h: &[u8], buf: &'b mut [u8; 64]) -> &'b str {
    match hex::encode_to_slice(h, buf) {
        Ok(()) => std::str::from_utf8(buf).unwrap_or_default(),
        Err(_) => "",
    }
}

/// One RFC 4180 field: quoted (with `"` doubled) when it holds a comma, quote or line break.
/// Written by hand rather than through `csv::Writer`, which cannot hand its buffer back
/// without being consumed, so a streaming export would need a writer (and its 8 KiB buffer)
/// per row.
fn csv_field(out: &mut Vec<u8>, field: &[u8]) {
    if field
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.push(b'"');
        for &b in field {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field);
    }
}

fn csv_record<'f>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = &'f [u8]>) {
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field(out, f);
    }
    out.extend_from_slice(b"\r\n");
}

/// Encodes rows of one format into a byte buffer the exporter drains in chunks.
pub(crate) enum Encoder {
    Jsonl(Vec<u8>),
    Csv(Vec<u8>),
    Xml(Vec<u8>),
}

impl Encoder {
    /// A new encoder with the document start (header row, XML prolog) already written.
    pub fn begin(format: ExportFormat, tenant: &TenantId) -> Result<Encoder, AuditError> {
        Ok(match format {
            ExportFormat::Jsonl => Encoder::Jsonl(Vec::with_capacity(64 * 1024)),
            ExportFormat::Csv => {
                let mut b = Vec::with_capacity(64 * 1024);
                csv_record(&mut b, CSV_HEADER.iter().map(|h| h.as_bytes()));
                Encoder::Csv(b)
            }
            ExportFormat::Xml => Encoder::Xml(
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<audit-export tenant=\"{tenant}\" version=\"1\">\n")
                    .into_bytes(),
            ),
        })
    }

    /// An encoder for rows only (no document start), for one block of an export.
    pub fn body(format: ExportFormat) -> Encoder {
        let b = Vec::with_capacity(1 << 20);
        match format {
            ExportFormat::Jsonl => Encoder::Jsonl(b),
            ExportFormat::Csv => Encoder::Csv(b),
            ExportFormat::Xml => Encoder::Xml(b),
        }
    }

    /// Bytes encoded and not yet taken.
    pub fn pending(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Jsonl(b) | Encoder::Csv(b) | Encoder::Xml(b) => b,
        }
    }

    /// Writes the document end (XML's closing tag).
    pub fn end(&mut self) {
        if let Encoder::Xml(b) = self {
            b.extend_from_slice(b"</audit-export>\n");
        }
    }

    pub fn row(&mut self, r: &ExportRow<'_>) {
        let (mut prev, mut hash) = ([0u8; 64], [0u8; 64]);
        let (prev, hash) = (hex32(r.prev_hash, &mut prev), hex32(r.hash, &mut hash));
        let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let id = r.record_id.hyphenated().encode_lower(&mut id);
        let inserted_at = ts(&r.inserted_at);
        match self {
            Encoder::Jsonl(out) => {
                use std::io::Write;
                // Keys in canonical (byte) order; every value but the record needs no escaping.
                let _ = write!(
                    out,
                    "{{\"hash\":\"{hash}\",\"inserted_at\":\"{inserted_at}\",\"prev_hash\":\"{prev}\",\"record\":"
                );
                out.extend_from_slice(r.record.as_bytes());
                let _ = writeln!(
                    out,
                    ",\"record_id\":\"{id}\",\"seq\":{},\"tenant_id\":\"{}\"}}",
                    r.seq, r.tenant
                );
            }
            Encoder::Csv(out) => {
                let seq = r.seq.to_string();
                let status = r.status_code.map(|s| s.to_string()).unwrap_or_default();
                let fields: [&str; 14] = [
                    &seq,
                    r.tenant,
                    id,
                    &inserted_at,
                    r.time,
                    r.actor_kind,
                    r.actor_id,
                    r.action,
                    r.phase,
                    r.model,
                    &status,
                    prev,
                    hash,
                    r.record,
                ];
                csv_record(out, fields.iter().map(|f| f.as_bytes()));
            }
            Encoder::Xml(out) => {
                use std::io::Write;
                let _ = write!(
                    out,
                    "<event seq=\"{}\" record-id=\"{id}\" inserted-at=\"{inserted_at}\" prev-hash=\"{prev}\" hash=\"{hash}\"><time>{}</time><action>{}</action><status-code>{}</status-code><record>{}</record></event>\n",
                    r.seq,
                    escape(r.time),
                    escape(r.action),
                    r.status_code.map(|s| s.to_string()).unwrap_or_default(),
                    escape(r.record),
                );
            }
        }
    }
}

/// A JSON-lines export row as the verifier needs it.
#[derive(Deserialize)]
struct JsonlLine {
    seq: u64,
    record_id: String,
    prev_hash: String,
    hash: String,
    record: Value,
}

fn bad(reason: impl Into<String>) -> AuditError {
    AuditError::BadExport {
        reason: reason.into(),
    }
}

fn parse_row(
    seq: &str,
    record_id: &str,
    prev: &str,
    hash: &str,
    record: &str,
) -> Result<ChainRow, AuditError> {
    let seq: u64 = seq
        .parse()
        .map_err(|_| bad(format!("seq {seq:?} is not a number")))?;
    Ok(ChainRow {
        seq,
        record_id: record_id.parse().ok(),
        prev_hash: ChainHash::parse_hex(prev)
            .ok_or_else(|| bad(format!("seq {seq}: prev_hash is not 64 hex digits")))?,
        hash: ChainHash::parse_hex(hash)
            .ok_or_else(|| bad(format!("seq {seq}: hash is not 64 hex digits")))?,
        record: serde_json::from_str(record)
            .map_err(|e| bad(format!("seq {seq}: record is not JSON: {e}")))?,
    })
}

/// Reads the rows of an export in file order, calling `each` per row. A row that cannot be
/// parsed ends the walk with `BadExport` naming it.
pub(crate) fn read_rows<R: Read>(
    format: ExportFormat,
    input: R,
    mut each: impl FnMut(ChainRow),
) -> Result<(), AuditError> {
    match format {
        ExportFormat::Jsonl => {
            for (i, line) in BufReader::new(input).lines().enumerate() {
                let line = line.map_err(AuditError::io("reading the export"))?;
                // One parse per line, straight into the row (the record stays a JSON tree).
                let l: JsonlLine = serde_json::from_str(&line)
                    .map_err(|e| bad(format!("line {}: not an export row: {e}", i + 1)))?;
                let seq = l.seq;
                each(ChainRow {
                    seq,
                    record_id: l.record_id.parse().ok(),
                    prev_hash: ChainHash::parse_hex(&l.prev_hash)
                        .ok_or_else(|| bad(format!("seq {seq}: prev_hash is not 64 hex digits")))?,
                    hash: ChainHash::parse_hex(&l.hash)
                        .ok_or_else(|| bad(format!("seq {seq}: hash is not 64 hex digits")))?,
                    record: l.record,
                });
            }
        }
        ExportFormat::Csv => {
            let mut rd = csv::Reader::from_reader(input);
            let headers = rd.headers()?.clone();
            let col = |name: &str| {
                headers
                    .iter()
                    .position(|h| h == name)
                    .ok_or_else(|| bad(format!("csv column {name} missing")))
            };
            let (s, id, p, h, r) = (
                col("seq")?,
                col("record_id")?,
                col("prev_hash")?,
                col("hash")?,
                col("record_json")?,
            );
            for rec in rd.records() {
                let rec = rec?;
                let get = |i: usize| rec.get(i).unwrap_or("");
                each(parse_row(get(s), get(id), get(p), get(h), get(r))?);
            }
        }
        ExportFormat::Xml => read_xml(input, each)?,
    }
    Ok(())
}

fn read_xml<R: Read>(input: R, mut each: impl FnMut(ChainRow)) -> Result<(), AuditError> {
    let mut rd = quick_xml::Reader::from_reader(BufReader::new(input));
    let mut buf = Vec::new();
    let mut attrs: Option<[String; 4]> = None;
    let mut in_record = false;
    let mut record = String::new();
    loop {
        match rd.read_event_into(&mut buf)? {
            Event::Start(e) if e.name().as_ref() == "event" => {
                let mut a: [String; 4] = Default::default();
                for attr in e.attributes() {
                    let attr = attr.map_err(|e| bad(format!("xml attribute: {e}")))?;
                    let v = attr
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|e| bad(format!("xml attribute: {e}")))?
                        .into_owned();
                    match attr.key.as_ref() {
                        "seq" => a[0] = v,
                        "record-id" => a[1] = v,
                        "prev-hash" => a[2] = v,
                        "hash" => a[3] = v,
                        _ => {}
                    }
                }
                attrs = Some(a);
                record.clear();
            }
            Event::Start(e) if e.name().as_ref() == "record" => in_record = true,
            Event::Text(t) if in_record => {
                record.push_str(&t.xml_content(XmlVersion::Implicit1_0));
            }
            Event::GeneralRef(r) if in_record => {
                match r
                    .resolve_char_ref()
                    .map_err(|e| bad(format!("xml character reference: {e}")))?
                {
                    Some(c) => record.push(c),
                    None => {
                        let name = r.into_inner();
                        let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| bad(format!("unknown xml entity &{name};")))?;
                        record.push_str(resolved);
                    }
                }
            }
            Event::End(e) if e.name().as_ref() == "record" => in_record = false,
            Event::End(e) if e.name().as_ref() == "event" => {
                let [s, id, p, h] = attrs
                    .take()
                    .ok_or_else(|| bad("</event> without <event>"))?;
                each(parse_row(&s, &id, &p, &h, &record)?);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_rfc_4180_needs_it_and_read_back_intact() {
        let fields: [&[u8]; 5] = [b"plain", b"with,comma", b"say \"hi\"", b"two\r\nlines", b""];
        let mut out = Vec::new();
        csv_record(&mut out, fields);
        assert_eq!(
            out,
            b"plain,\"with,comma\",\"say \"\"hi\"\"\",\"two\r\nlines\",\r\n".to_vec()
        );
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&out[..]);
        let rec = rd.records().next().unwrap().unwrap();
        let got: Vec<&[u8]> = rec.iter().map(str::as_bytes).collect();
        assert_eq!(got, fields.to_vec());
    }
}
