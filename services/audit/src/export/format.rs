//! Row encodings of an export (JSON lines, CSV per RFC 4180, XML) and their parsers.

use std::io::{BufRead, BufReader, Read};

use chrono::{DateTime, SecondsFormat, Utc};
use enclave_domain::TenantId;
use quick_xml::XmlVersion;
use quick_xml::escape::escape;
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AuditError;
use crate::canonical::{ChainHash, canonical_json};
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

/// One exported record.
pub(crate) struct ExportRow {
    pub tenant: TenantId,
    pub seq: u64,
    pub inserted_at: DateTime<Utc>,
    pub record_id: Uuid,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
    pub record: Value,
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

fn text(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Encodes the document start (header row, XML prolog).
pub(crate) fn begin(
    format: ExportFormat,
    tenant: &TenantId,
    out: &mut Vec<u8>,
) -> Result<(), AuditError> {
    match format {
        ExportFormat::Jsonl => {}
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(CSV_HEADER)?;
            w.flush().map_err(AuditError::io("writing csv"))?;
        }
        ExportFormat::Xml => out.extend_from_slice(
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<audit-export tenant=\"{tenant}\" version=\"1\">\n").as_bytes(),
        ),
    }
    Ok(())
}

pub(crate) fn end(format: ExportFormat, out: &mut Vec<u8>) {
    if format == ExportFormat::Xml {
        out.extend_from_slice(b"</audit-export>\n");
    }
}

/// Encodes one row. The record is written as canonical JSON in every format, so the offline
/// verifier recomputes hashes from exactly what the file holds.
pub(crate) fn row(
    format: ExportFormat,
    r: &ExportRow,
    out: &mut Vec<u8>,
) -> Result<(), AuditError> {
    let record_json = canonical_json(&r.record);
    match format {
        ExportFormat::Jsonl => {
            let line = json!({
                "seq": r.seq, "tenant_id": r.tenant, "record_id": r.record_id, "inserted_at": ts(&r.inserted_at),
                "prev_hash": r.prev_hash, "hash": r.hash, "record": r.record,
            });
            out.extend_from_slice(&canonical_json(&line));
            out.push(b'\n');
        }
        ExportFormat::Csv => {
            let record_json = String::from_utf8_lossy(&record_json);
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record([
                r.seq.to_string(),
                r.tenant.to_string(),
                r.record_id.to_string(),
                ts(&r.inserted_at),
                text(&r.record, &["time"]),
                text(&r.record, &["actor", "kind"]),
                text(&r.record, &["actor", "id"]),
                text(&r.record, &["action"]),
                text(&r.record, &["phase"]),
                text(&r.record, &["model"]),
                text(&r.record, &["status_code"]),
                r.prev_hash.to_hex(),
                r.hash.to_hex(),
                record_json.into_owned(),
            ])?;
            w.flush().map_err(AuditError::io("writing csv"))?;
        }
        ExportFormat::Xml => {
            let record_json = String::from_utf8_lossy(&record_json);
            let s = format!(
                "<event seq=\"{}\" record-id=\"{}\" inserted-at=\"{}\" prev-hash=\"{}\" hash=\"{}\"><time>{}</time><action>{}</action><status-code>{}</status-code><record>{}</record></event>\n",
                r.seq,
                r.record_id,
                ts(&r.inserted_at),
                r.prev_hash,
                r.hash,
                escape(text(&r.record, &["time"]).as_str()),
                escape(text(&r.record, &["action"]).as_str()),
                escape(text(&r.record, &["status_code"]).as_str()),
                escape(record_json.as_ref()),
            );
            out.extend_from_slice(s.as_bytes());
        }
    }
    Ok(())
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
                let v: Value = serde_json::from_str(&line)
                    .map_err(|e| bad(format!("line {}: not JSON: {e}", i + 1)))?;
                let s = |k: &str| {
                    v.get(k)
                        .map(|x| match x {
                            Value::String(s) => s.clone(),
                            o => o.to_string(),
                        })
                        .unwrap_or_default()
                };
                let record = v.get("record").map(|r| r.to_string()).unwrap_or_default();
                each(parse_row(
                    &s("seq"),
                    &s("record_id"),
                    &s("prev_hash"),
                    &s("hash"),
                    &record,
                )?);
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
