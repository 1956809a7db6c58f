//! Streamed export with a signed manifest, and its offline verification.

mod format;
mod parallel;

use std::io::Read;
use std::path::Path;

use chrono::{DateTime, SubsecRound, Utc};
use enclave_domain::TenantId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use self::format::Encoder;
pub use self::format::ExportFormat;
use crate::AuditError;
use crate::canonical::{ChainHash, canonical_json};
use crate::signing::{AuditPublicKey, AuditSigningKey};
use crate::verify::{ChainVerifier, Finding, VerifyReport};

/// What an export contains, signed: checked offline with [`verify_export`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportManifest {
    pub version: u32,
    pub tenant: TenantId,
    pub format: ExportFormat,
    /// The range asked for (records stored in `from..to`).
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub count: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The hash the first exported record links to (the record before the range).
    pub first_prev_hash: Option<ChainHash>,
    pub first_hash: Option<ChainHash>,
    pub last_hash: Option<ChainHash>,
    /// SHA-256 of the export file, hex.
    pub file_sha256: String,
    pub created_at: DateTime<Utc>,
    pub key_id: String,
    /// Ed25519 signature over the canonical JSON of every other field, hex.
    pub signature: String,
}

impl ExportManifest {
    fn signed_bytes(&self) -> Result<Vec<u8>, AuditError> {
        let mut v = serde_json::to_value(self).map_err(AuditError::json("export manifest"))?;
        if let Some(m) = v.as_object_mut() {
            m.remove("signature");
        }
        let mut out = b"enclave-audit-export-v1\0".to_vec();
        out.extend_from_slice(&canonical_json(&v));
        Ok(out)
    }

    /// True when `key` (same key id) signed this manifest.
    pub fn signature_valid(&self, key: &AuditPublicKey) -> bool {
        let Ok(sig) = hex::decode(&self.signature) else {
            return false;
        };
        key.key_id() == self.key_id && self.signed_bytes().is_ok_and(|m| key.verify(&m, &sig))
    }
}

/// Streams `tenant`'s records stored in `from..to` (in chain order) to `out` in `format`, in
/// bounded memory (a few blocks of rows, whatever the row count), and returns the signed
/// manifest. Blocks are read and encoded by several connections at once from one shared
/// snapshot, and written in chain order. The range is on storage time, which keeps
/// an export a contiguous piece of the chain.
pub async fn export<W: AsyncWrite + Unpin + Send>(
    pool: &PgPool,
    tenant: &TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    format: ExportFormat,
    key: &AuditSigningKey,
    out: &mut W,
) -> Result<ExportManifest, AuditError> {
    if from >= to {
        return Err(AuditError::InvalidQuery {
            field: "from",
            reason: "must be before `to`".into(),
        });
    }
    let mut sha = Sha256::new();
    let mut m = ExportManifest {
        version: 1,
        tenant: *tenant,
        format,
        from,
        to,
        count: 0,
        first_seq: None,
        last_seq: None,
        first_prev_hash: None,
        first_hash: None,
        last_hash: None,
        file_sha256: String::new(),
        created_at: Utc::now().trunc_subsecs(6),
        key_id: key.key_id().to_owned(),
        signature: String::new(),
    };
    let mut enc = Encoder::begin(format, tenant)?;
    drain(&mut enc, &mut sha, out).await?;
    let mut blocks = parallel::Blocks::start(pool, tenant, from, to, format).await?;
    while let Some(block) = blocks.next().await? {
        if let Some((seq, prev, hash)) = block.first {
            if m.count == 0 {
                m.first_seq = Some(seq);
                m.first_prev_hash = Some(prev);
                m.first_hash = Some(hash);
            }
        }
        if let Some((seq, hash)) = block.last {
            m.last_seq = Some(seq);
            m.last_hash = Some(hash);
        }
        m.count += block.count;
        sha.update(&block.bytes);
        out.write_all(&block.bytes)
            .await
            .map_err(AuditError::io("writing the export"))?;
    }
    blocks.finish().await?;
    enc.end();
    drain(&mut enc, &mut sha, out).await?;
    out.flush()
        .await
        .map_err(AuditError::io("writing the export"))?;
    m.file_sha256 = hex::encode(sha.finalize());
    m.signature = hex::encode(key.sign(&m.signed_bytes()?));
    Ok(m)
}

/// Hands what the encoder holds to the output and the file hash.
async fn drain<W: AsyncWrite + Unpin + Send>(
    enc: &mut Encoder,
    sha: &mut Sha256,
    out: &mut W,
) -> Result<(), AuditError> {
    let buf = enc.pending();
    sha.update(&buf[..]);
    out.write_all(buf)
        .await
        .map_err(AuditError::io("writing the export"))?;
    buf.clear();
    Ok(())
}

/// Hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    sha: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

/// Checks an export file offline against its manifest and the exporter's public key: the
/// manifest's signature, the file's SHA-256, and the chain inside the file (naming the first
/// record that is altered, missing, inserted or reordered). Problems with the file as a whole
/// are reported as `Finding::Export`.
pub fn verify_export(
    file: &Path,
    manifest: &ExportManifest,
    key: &AuditPublicKey,
) -> Result<VerifyReport, AuditError> {
    let f = std::fs::File::open(file).map_err(AuditError::io("opening the export file"))?;
    let mut reader = HashingReader {
        inner: std::io::BufReader::new(f),
        sha: Sha256::new(),
    };
    let start = manifest.first_seq.unwrap_or(1);
    let mut v = ChainVerifier::new(
        manifest.tenant,
        start,
        manifest.first_prev_hash.unwrap_or(ChainHash::GENESIS),
    );
    let parsed = format::read_rows(manifest.format, &mut reader, |row| v.feed(row));
    let _ = std::io::copy(&mut reader, &mut std::io::sink());
    let file_sha = hex::encode(reader.sha.finalize());
    let mut report = v.finish();
    if let Err(e) = parsed {
        report.push(Finding::Export {
            reason: e.to_string(),
        });
    }
    if !manifest.signature_valid(key) {
        report.push(Finding::Export {
            reason: format!(
                "manifest signature does not verify with key {}",
                key.key_id()
            ),
        });
    }
    if file_sha != manifest.file_sha256 {
        report.push(Finding::Export {
            reason: "file SHA-256 differs from the manifest".into(),
        });
    }
    if report.checked != manifest.count || report.last_hash != manifest.last_hash {
        report.push(Finding::Export {
            reason: format!(
                "file holds {} records ending at {:?}; the manifest says {} ending at {:?}",
                report.checked, report.last_hash, manifest.count, manifest.last_hash
            ),
        });
    }
    Ok(report)
}
