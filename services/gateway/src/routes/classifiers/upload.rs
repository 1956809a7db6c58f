//! Reading a training upload: a JSON or XML body ([`CreateClassifierRequest`]), or the examples
//! alone as JSON Lines or CSV with the rest in the query string.

use std::collections::BTreeMap;

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web;
use futures::StreamExt as _;
use serde::Deserialize;

use crate::api::classifiers::{CreateClassifierRequest, TrainingExample};
use crate::error::ApiError;
use crate::negotiate::Format;

/// Largest training upload, whatever its format (the server's general body limit does not apply:
/// training sets are larger than API calls).
pub const MAX_UPLOAD_BYTES: usize = 8 << 20;

/// The query string of a JSON Lines or CSV upload.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    pub name: Option<String>,
    /// `label:threshold,...`, e.g. `abuse:0.7,pii_request:0.6`.
    pub thresholds: Option<String>,
    pub comment: Option<String>,
}

enum Kind {
    Negotiated(Format),
    Jsonl,
    Csv,
}

fn kind(req: &HttpRequest) -> Result<Kind, ApiError> {
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match media.as_deref() {
        Some(
            "application/x-ndjson"
            | "application/jsonl"
            | "application/jsonlines"
            | "application/json-lines"
            | "application/x-jsonlines",
        ) => Ok(Kind::Jsonl),
        Some("text/csv") => Ok(Kind::Csv),
        _ => Format::from_content_type(req.headers()).map(Kind::Negotiated),
    }
}

/// Reads the whole body, refusing more than [`MAX_UPLOAD_BYTES`] (413) without buffering it.
async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    let limit = MAX_UPLOAD_BYTES;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid(
                "invalid_body",
                format!("request body could not be read: {e}"),
                None,
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "missing_body",
            "a request body is required",
            None,
        ));
    }
    Ok(body)
}

/// The upload as one request, whichever format it came in.
pub async fn read(
    req: &HttpRequest,
    payload: web::Payload,
    query: UploadQuery,
) -> Result<CreateClassifierRequest, ApiError> {
    let kind = kind(req)?;
    let body = read_body(req, payload).await?;
    let examples = match kind {
        Kind::Negotiated(format) => return format.decode(&body),
        Kind::Jsonl => jsonl(&utf8(body)?)?,
        Kind::Csv => csv_examples(&body)?,
    };
    let name = query.name.ok_or_else(|| {
        ApiError::invalid_field(
            "missing_name",
            "name",
            "a JSON Lines or CSV upload names the classifier in the query string: ?name=...",
        )
    })?;
    Ok(CreateClassifierRequest {
        name,
        examples,
        thresholds: query.thresholds.as_deref().map(thresholds).transpose()?,
        comment: query.comment,
    })
}

fn utf8(body: Vec<u8>) -> Result<String, ApiError> {
    String::from_utf8(body).map_err(|e| {
        ApiError::invalid(
            "invalid_utf8",
            format!(
                "the upload is not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            None,
        )
    })
}

/// One example object per line; blank lines are skipped.
fn jsonl(text: &str) -> Result<Vec<TrainingExample>, ApiError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                ApiError::invalid(
                    "invalid_jsonl",
                    format!("line {} is not a training example: {e}", i + 1),
                    Some(format!("line {}", i + 1)),
                )
            })
        })
        .collect()
}

/// A header row naming `text` and `label` (other columns are ignored); a label cell may hold
/// several labels separated by `|`.
fn csv_examples(body: &[u8]) -> Result<Vec<TrainingExample>, ApiError> {
    let bad =
        |message: String, field: Option<String>| ApiError::invalid("invalid_csv", message, field);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| bad(format!("the header row is not valid CSV: {e}"), None))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(text_col), Some(label_col)) = (column("text"), column("label")) else {
        return Err(bad(
            "the header row must name a `text` and a `label` column".to_owned(),
            None,
        ));
    };
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Line numbers count the header as line 1.
        let line = i + 2;
        let record =
            record.map_err(|e| bad(format!("row {line}: {e}"), Some(format!("line {line}"))))?;
        let text = record.get(text_col).unwrap_or_default().to_owned();
        let labels: Vec<String> = record
            .get(label_col)
            .unwrap_or_default()
            .split('|')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        out.push(TrainingExample {
            text,
            label: None,
            labels: Some(labels),
        });
    }
    Ok(out)
}

/// `label:value,...` into a map; a malformed entry is `invalid_threshold`.
fn thresholds(spec: &str) -> Result<BTreeMap<String, f32>, ApiError> {
    spec.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let parsed = pair
                .split_once(':')
                .and_then(|(l, v)| Some((l.trim().to_owned(), v.trim().parse::<f32>().ok()?)));
            parsed.ok_or_else(|| {
                ApiError::invalid_field(
                    "invalid_threshold",
                    "thresholds",
                    format!(
                        "thresholds are `label:value` pairs separated by commas; got {:?}",
                        pair.chars().take(64).collect::<String>()
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_reads_quoted_cells_and_several_labels() {
        let rows = csv_examples(b"label,text\nabuse|threat,\"you, idiot\"\nbenign,hello\n")
            .expect("valid csv");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].text, "you, idiot");
        assert_eq!(
            rows[0].labels.as_deref(),
            Some(&["abuse".to_owned(), "threat".to_owned()][..])
        );
    }

    #[test]
    fn threshold_specs_parse_or_name_the_bad_pair() {
        let t = thresholds("abuse:0.7, benign:0.4").expect("valid");
        assert_eq!(t.get("abuse"), Some(&0.7));
        let err = thresholds("abuse=0.7").expect_err("bad pair");
        assert_eq!(err.code(), "invalid_threshold");
    }
}
