//! Reading an adapter upload: `multipart/form-data` (the two PEFT files, or one archive part),
//! or a raw `.tar` / `.zip` body. Pickle files (`.bin`, `.pt`, `.pth`, `.pkl`, `.ckpt`) are
//! refused wherever they appear: loading one would run code from the uploader.
//!
//! The multipart and tar readers are small hand-written parsers over the already size-limited
//! body (no streaming needed: the whole adapter is validated in memory before anything is kept).

use std::io::Read as _;

use enclave_store::AdapterFiles;
use enclave_store::blobs::{CONFIG_FILE, WEIGHTS_FILE};

use crate::error::ApiError;

const PICKLE_EXTENSIONS: [&str; 5] = [".bin", ".pt", ".pth", ".pkl", ".ckpt"];

/// What an upload carried besides the files.
#[derive(Debug, Default)]
pub struct UploadForm {
    pub name: Option<String>,
    pub aliases: Vec<String>,
    pub config: Option<Vec<u8>>,
    pub weights: Option<Vec<u8>>,
}

impl UploadForm {
    /// Both files, or which one is missing.
    pub fn files(&mut self) -> Result<AdapterFiles, ApiError> {
        let missing = |f: &str| {
            ApiError::invalid(
                "adapter_missing_file",
                format!(
                    "the upload has no {f}; send adapter_config.json and adapter_model.safetensors"
                ),
                Some(f.to_owned()),
            )
        };
        let config = self.config.take().ok_or_else(|| missing(CONFIG_FILE))?;
        let weights = self.weights.take().ok_or_else(|| missing(WEIGHTS_FILE))?;
        Ok(AdapterFiles { config, weights })
    }

    /// Files from an archive or a multipart part, by base name.
    fn take_file(&mut self, path: &str, bytes: Vec<u8>) -> Result<(), ApiError> {
        let base = path.rsplit(['/', '\\']).next().unwrap_or(path);
        if base.starts_with("._") {
            return Ok(()); // macOS resource forks in archives
        }
        refuse_pickle(base, &bytes)?;
        let slot = match base {
            CONFIG_FILE | "adapter_config" => &mut self.config,
            WEIGHTS_FILE | "adapter_model" => &mut self.weights,
            _ => return Ok(()), // README.md, tokenizer files, ...: not needed
        };
        if slot.is_some() {
            return Err(malformed(format!("{base} appears twice in the upload")));
        }
        *slot = Some(bytes);
        Ok(())
    }
}

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::invalid("adapter_upload_malformed", message, None)
}

fn refuse_pickle(name: &str, bytes: &[u8]) -> Result<(), ApiError> {
    let lower = name.to_ascii_lowercase();
    // Protocol 2+ pickles start with 0x80 <protocol>; PyTorch's zip checkpoints hold `data.pkl`.
    let pickle_magic = bytes.len() > 1 && bytes[0] == 0x80 && (2..=5).contains(&bytes[1]);
    if PICKLE_EXTENSIONS.iter().any(|e| lower.ends_with(e)) || pickle_magic {
        return Err(ApiError::Status {
            status: actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "adapter_pickle_refused",
            message: format!(
                "{name} is a pickle (PyTorch .bin/.pt) file; pickles can run code when loaded and are refused. \
                 Save the adapter with safetensors (PEFT: save_pretrained(..., safe_serialization=True))"
            ),
        });
    }
    Ok(())
}

/// Parses a body by its `Content-Type`.
pub fn parse(
    content_type: &str,
    body: Vec<u8>,
    query_name: Option<String>,
    query_aliases: Vec<String>,
) -> Result<UploadForm, ApiError> {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut form = match mime.as_str() {
        "multipart/form-data" => multipart(content_type, &body)?,
        "application/x-tar"
        | "application/tar"
        | "application/zip"
        | "application/octet-stream" => {
            let mut form = UploadForm::default();
            archive(&mut form, "upload", body)?;
            form
        }
        _ => {
            return Err(ApiError::UnsupportedMediaType {
                content_type: content_type.chars().take(100).collect(),
            });
        }
    };
    if form.name.is_none() {
        form.name = query_name;
    }
    form.aliases.extend(query_aliases);
    Ok(form)
}

/// A `.tar` (uncompressed) or `.zip` by its magic bytes.
fn archive(form: &mut UploadForm, what: &str, bytes: Vec<u8>) -> Result<(), ApiError> {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        zip(form, bytes)
    } else if bytes.len() >= 512 && &bytes[257..262] == b"ustar" {
        tar(form, &bytes)
    } else {
        refuse_pickle(what, &bytes)?;
        Err(ApiError::invalid(
            "adapter_archive_invalid",
            format!("{what} is neither an uncompressed .tar nor a .zip"),
            Some("archive".to_owned()),
        ))
    }
}

fn tar(form: &mut UploadForm, bytes: &[u8]) -> Result<(), ApiError> {
    let bad = |m: &str| {
        ApiError::invalid(
            "adapter_archive_invalid",
            format!("tar archive: {m}"),
            Some("archive".to_owned()),
        )
    };
    let mut at = 0;
    while at + 512 <= bytes.len() {
        let h = &bytes[at..at + 512];
        if h.iter().all(|&b| b == 0) {
            break; // end-of-archive marker
        }
        let field = |r: std::ops::Range<usize>| {
            let f = &h[r];
            String::from_utf8_lossy(&f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())])
                .into_owned()
        };
        let size_text = field(124..136);
        let size = usize::from_str_radix(size_text.trim(), 8).map_err(|_| bad("bad size field"))?;
        let (name, prefix, kind) = (field(0..100), field(345..500), h[156]);
        let start = at + 512;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| bad("truncated"))?;
        if kind == b'0' || kind == 0 {
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            form.take_file(&path, bytes[start..end].to_vec())?;
        }
        at = start + size.div_ceil(512) * 512;
    }
    Ok(())
}

fn zip(form: &mut UploadForm, bytes: Vec<u8>) -> Result<(), ApiError> {
    let limit = bytes.len() as u64 * 4 + (1 << 20);
    let bad = |e: &dyn std::fmt::Display| {
        ApiError::invalid(
            "adapter_archive_invalid",
            format!("zip archive: {e}"),
            Some("archive".to_owned()),
        )
    };
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| bad(&e))?;
    for i in 0..z.len() {
        let mut entry = z.by_index(i).map_err(|e| bad(&e))?;
        if !entry.is_file() {
            continue;
        }
        let name = entry.name().map_err(|e| bad(&e))?.into_owned();
        // Bounded read: a compressed entry may claim any size (zip bombs).
        let mut data = Vec::new();
        (&mut entry)
            .take(limit)
            .read_to_end(&mut data)
            .map_err(|e| bad(&e))?;
        if data.len() as u64 >= limit {
            return Err(bad(&format!("{name} expands beyond the upload limit")));
        }
        form.take_file(&name, data)?;
    }
    Ok(())
}

fn multipart(content_type: &str, body: &[u8]) -> Result<UploadForm, ApiError> {
    use crate::multipart::{Malformed, param, parts};
    let boundary = param(content_type, "boundary")
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or_else(|| malformed("multipart/form-data without a boundary"))?;
    let mut form = UploadForm::default();
    for p in parts(body, &boundary) {
        let p = p.map_err(|e| {
            malformed(match e {
                Malformed::NoParts => "multipart body has no parts",
                Malformed::NoCrlf => "multipart boundary not followed by CRLF",
                Malformed::NoHeadEnd => "multipart part without headers end",
                Malformed::Truncated(_) => "multipart body is truncated (no closing boundary)",
            })
        })?;
        let disposition = p
            .header("content-disposition")
            .ok_or_else(|| malformed("multipart part without Content-Disposition"))?;
        let field = param(disposition, "name").unwrap_or_default();
        let filename = param(disposition, "filename");
        part(&mut form, &field, filename.as_deref(), p.data)?;
    }
    Ok(form)
}

fn part(
    form: &mut UploadForm,
    field: &str,
    filename: Option<&str>,
    data: &[u8],
) -> Result<(), ApiError> {
    let text = || {
        String::from_utf8(data.to_vec())
            .map_err(|_| malformed(format!("form field {field} is not UTF-8")))
    };
    match (field, filename) {
        ("name", None) => form.name = Some(text()?),
        ("alias", None) => form.aliases.push(text()?),
        ("archive", _) => archive(form, filename.unwrap_or("archive"), data.to_vec())?,
        (_, Some(f)) if f.ends_with(".tar") || f.ends_with(".zip") => {
            archive(form, f, data.to_vec())?
        }
        (_, Some(f)) => form.take_file(f, data.to_vec())?,
        (f, None) => form.take_file(f, data.to_vec())?,
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn multipart_parts_and_fields_are_read() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nsupport\r\n\
--XX\r\nContent-Disposition: form-data; name=\"alias\"\r\n\r\nprod\r\n\
--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"adapter_config.json\"\r\nContent-Type: application/json\r\n\r\n{}\r\n\
--XX\r\nContent-Disposition: form-data; name=\"w\"; filename=\"adapter_model.safetensors\"\r\n\r\n\x01\r\n\x02\r\n--XX--\r\n";
        let mut form = parse(
            "multipart/form-data; boundary=XX",
            body.to_vec(),
            None,
            vec![],
        )
        .unwrap();
        assert_eq!(form.name.as_deref(), Some("support"));
        assert_eq!(form.aliases, ["prod"]);
        let files = form.files().unwrap();
        assert_eq!(files.config, b"{}");
        assert_eq!(files.weights, b"\x01\r\n\x02");
    }

    #[test]
    fn pickles_are_refused_by_name_and_by_content() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"w\"; filename=\"adapter_model.bin\"\r\n\r\nabc\r\n--B--\r\n";
        let err = parse(
            "multipart/form-data; boundary=B",
            body.to_vec(),
            None,
            vec![],
        )
        .unwrap_err();
        assert!(err.to_string().contains("pickle"), "{err}");
        let err = parse(
            "application/octet-stream",
            vec![0x80, 0x04, 0x95, 0, 0, 0],
            None,
            vec![],
        )
        .unwrap_err();
        assert!(err.to_string().contains("pickle"), "{err}");
    }

    #[test]
    fn truncated_multipart_is_malformed() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nsupport".to_vec();
        let err = parse("multipart/form-data; boundary=B", body, None, vec![]).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
