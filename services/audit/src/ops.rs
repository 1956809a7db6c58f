//! The library side of the operator commands (`enclave audit verify|export|prune|checkpoint`):
//! key files, time arguments, export files with their manifests, and verification outcomes. The
//! CLI only parses arguments and prints.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use enclave_domain::TenantId;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::db::system_tx;
use crate::{
    AuditError, AuditPublicKey, AuditSigningKey, ExportFormat, ExportManifest, SeqRange,
    VerifyReport, export, verify_db, verify_export,
};

/// The key id of a public key: `audit-` and the first 16 hex digits of its SHA-256, so a key
/// file needs no separate id and a verifier derives the same id from the public key alone.
pub fn key_id_for(public: &[u8; 32]) -> String {
    format!("audit-{}", &hex::encode(Sha256::digest(public))[..16])
}

/// Where the public half of the key in `private` is written.
pub fn public_key_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn key_err(path: &Path, what: &str, e: impl fmt::Display) -> AuditError {
    AuditError::Key {
        reason: format!("{what} {}: {e}", path.display()),
    }
}

/// Reads the Ed25519 signing key (PKCS#8 PEM) at `path`.
pub fn load_key(path: &Path) -> Result<AuditSigningKey, AuditError> {
    let pem = std::fs::read_to_string(path).map_err(|e| key_err(path, "reading", e))?;
    let probe = AuditSigningKey::from_pkcs8_pem("probe", &pem)?;
    AuditSigningKey::from_pkcs8_pem(&key_id_for(&probe.public().to_bytes()), &pem)
}

/// Reads the signing key at `path`, creating it on first use (mode 0600, its directory 0700)
/// with the public key beside it (`<path>.pub`, for offline verification elsewhere).
pub fn load_or_create_key(path: &Path) -> Result<AuditSigningKey, AuditError> {
    if path.exists() {
        return load_key(path);
    }
    let fresh = AuditSigningKey::generate("probe")?;
    let pem = fresh.to_pkcs8_pem()?;
    let key = AuditSigningKey::from_pkcs8_pem(&key_id_for(&fresh.public().to_bytes()), &pem)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| key_err(dir, "creating", e))?;
        set_mode(dir, 0o700)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, pem.as_bytes()).map_err(|e| key_err(&tmp, "writing", e))?;
    set_mode(&tmp, 0o600)?;
    std::fs::rename(&tmp, path).map_err(|e| key_err(path, "installing", e))?;
    let public = public_key_path(path);
    std::fs::write(&public, key.public().to_public_key_pem()?)
        .map_err(|e| key_err(&public, "writing", e))?;
    Ok(key)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), AuditError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| key_err(path, "restricting", e))
}

/// Reads a public key (SPKI PEM), deriving its key id.
pub fn load_public_key(path: &Path) -> Result<AuditPublicKey, AuditError> {
    let pem = std::fs::read_to_string(path).map_err(|e| key_err(path, "reading", e))?;
    let probe = AuditPublicKey::from_public_key_pem("probe", &pem)?;
    AuditPublicKey::from_public_key_pem(&key_id_for(&probe.to_bytes()), &pem)
}

/// Parses a time argument: RFC 3339 (`2026-11-01T00:00:00Z`) or a date (`2026-11-01`,
/// midnight UTC).
pub fn parse_time(field: &'static str, s: &str) -> Result<DateTime<Utc>, AuditError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| AuditError::InvalidQuery {
            field,
            reason: format!(
                "expected YYYY-MM-DD or an RFC 3339 time, got {:?}",
                s.chars().take(40).collect::<String>()
            ),
        })
}

/// Every tenant that has an audit chain (the platform chain included), in id order.
pub async fn chain_tenants(pool: &PgPool) -> Result<Vec<TenantId>, AuditError> {
    let mut tx = system_tx(pool).await?;
    let rows: Vec<(uuid::Uuid,)> =
        sqlx::query_as("SELECT tenant_id FROM audit_chain_heads ORDER BY tenant_id")
            .fetch_all(&mut *tx)
            .await
            .map_err(AuditError::db("listing audit chains"))?;
    tx.commit()
        .await
        .map_err(AuditError::db("listing audit chains"))?;
    Ok(rows
        .into_iter()
        .map(|(t,)| TenantId::from_uuid(t))
        .collect())
}

/// Verifies one tenant's chain, or every chain when `tenant` is `None`.
pub async fn verify_chains(
    pool: &PgPool,
    tenant: Option<TenantId>,
    range: SeqRange,
    trusted: &[AuditPublicKey],
) -> Result<Vec<VerifyReport>, AuditError> {
    let tenants = match tenant {
        Some(t) => vec![t],
        None => chain_tenants(pool).await?,
    };
    let mut out = Vec::with_capacity(tenants.len());
    for t in tenants {
        out.push(verify_db(pool, &t, range, trusted).await?);
    }
    Ok(out)
}

/// Where the manifest of the export at `file` is kept: `<file>.manifest.json`.
pub fn manifest_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

/// Exports `tenant`'s records stored in `from..to` to the file `out` and its signed manifest
/// to [`manifest_path`]`(out)`. Streams: memory stays bounded whatever the row count.
#[allow(clippy::too_many_arguments)]
pub async fn export_file(
    pool: &PgPool,
    tenant: &TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    format: ExportFormat,
    key: &AuditSigningKey,
    out: &Path,
) -> Result<ExportManifest, AuditError> {
    let file = tokio::fs::File::create(out)
        .await
        .map_err(AuditError::io("creating the export file"))?;
    let mut w = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let manifest = export(pool, tenant, from, to, format, key, &mut w).await?;
    let file = w.into_inner();
    file.sync_all()
        .await
        .map_err(AuditError::io("syncing the export file"))?;
    let json = serde_json::to_vec_pretty(&manifest).map_err(AuditError::json("export manifest"))?;
    tokio::fs::write(manifest_path(out), json)
        .await
        .map_err(AuditError::io("writing the export manifest"))?;
    Ok(manifest)
}

/// Reads a manifest written by [`export_file`].
pub fn read_manifest(path: &Path) -> Result<ExportManifest, AuditError> {
    let bytes = std::fs::read(path).map_err(|e| AuditError::BadExport {
        reason: format!("reading the manifest {}: {e}", path.display()),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| AuditError::BadExport {
        reason: format!("manifest {}: {e}", path.display()),
    })
}

/// Verifies an export file offline against its manifest (default: [`manifest_path`]) and the
/// exporter's public key.
pub fn verify_export_file(
    file: &Path,
    manifest: Option<&Path>,
    key: &AuditPublicKey,
) -> Result<VerifyReport, AuditError> {
    let manifest = read_manifest(&manifest.map_or_else(|| manifest_path(file), Path::to_owned))?;
    verify_export(file, &manifest, key)
}

impl fmt::Display for VerifyReport {
    /// One line: the tenant, how much was checked, and the first problem (if any).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = match (self.first_seq, self.last_seq) {
            (Some(a), Some(b)) => format!(" (seq {a}..={b})"),
            _ => String::new(),
        };
        match self.first_finding() {
            None => write!(
                f,
                "tenant {}: {} records verified{range}",
                self.tenant, self.checked
            ),
            Some(first) => write!(
                f,
                "tenant {}: FAILED after {} records{range}: {first}{}",
                self.tenant,
                self.checked,
                match self.findings.len() {
                    1 => String::new(),
                    n => format!(
                        " (and {} more finding{})",
                        n - 1 + usize::from(self.truncated),
                        if n > 2 { "s" } else { "" }
                    ),
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arguments_parse_or_name_the_field() {
        assert_eq!(
            parse_time("from", "2026-11-01").unwrap(),
            "2026-11-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_time("to", "2026-11-01T12:30:00+02:00").unwrap(),
            "2026-11-01T10:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        for bad in ["", "yesterday", "2026-13-01", "01/11/2026"] {
            match parse_time("before", bad) {
                Err(AuditError::InvalidQuery { field, .. }) => assert_eq!(field, "before", "{bad}"),
                other => panic!("{bad:?} should be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_created_key_reloads_with_the_same_id_and_verifies_with_its_public_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit.pem");
        let key = load_or_create_key(&path).unwrap();
        let again = load_or_create_key(&path).unwrap();
        assert_eq!(key.key_id(), again.key_id());
        assert!(key.key_id().starts_with("audit-"));
        let public = load_public_key(&public_key_path(&path)).unwrap();
        assert_eq!(public.key_id(), key.key_id());
        assert!(public.verify(b"m", &key.sign(b"m")));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
