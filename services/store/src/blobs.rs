//! Adapter files under the data directory, content-addressed:
//! `<root>/<tenant id>/<digest>/{adapter_config.json, adapter_model.safetensors}`.
//!
//! A version is written into a fresh directory under `<root>/.tmp/`, each file fsynced, then the
//! directory is renamed into place (atomic on one file system) and the parent fsynced: a reader
//! sees all of a version or none of it, also after a crash. Reads re-check the digest, so a
//! damaged file is refused rather than served.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use enclave_domain::{AdapterVersion, TenantId};
use sha2::{Digest as _, Sha256};

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const TMP_DIR: &str = ".tmp";

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("adapter files at {path} do not match their digest {expected}")]
    Corrupt { path: PathBuf, expected: String },
}

/// The two files of a PEFT adapter.
#[derive(Clone)]
pub struct AdapterFiles {
    pub config: Vec<u8>,
    pub weights: Vec<u8>,
}

impl std::fmt::Debug for AdapterFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterFiles")
            .field("config_bytes", &self.config.len())
            .field("weights_bytes", &self.weights.len())
            .finish()
    }
}

impl AdapterFiles {
    /// The version id: SHA-256 over `len(config)` (8 bytes, little endian), the config bytes and
    /// the weights bytes. The length prefix keeps two different splits of the same bytes apart.
    pub fn digest(&self) -> AdapterVersion {
        let mut h = Sha256::new();
        h.update((self.config.len() as u64).to_le_bytes());
        h.update(&self.config);
        h.update(&self.weights);
        let out: [u8; 32] = h.finalize().into();
        AdapterVersion::from_digest(&out)
    }

    pub fn size_bytes(&self) -> u64 {
        (self.config.len() + self.weights.len()) as u64
    }
}

/// Handle to the adapter file tree (cheap to clone).
#[derive(Debug, Clone)]
pub struct AdapterBlobs {
    root: PathBuf,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BlobError {
    let path = path.to_owned();
    move |source| BlobError::Io {
        action,
        path,
        source,
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BlobError> {
    let mut f = fs::File::create(path).map_err(io("create", path))?;
    f.write_all(bytes).map_err(io("write", path))?;
    f.sync_all().map_err(io("fsync", path))
}

fn sync_dir(path: &Path) -> Result<(), BlobError> {
    fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", path))
}

impl AdapterBlobs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        AdapterBlobs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a version's files live.
    pub fn dir(&self, tenant: &TenantId, version: &AdapterVersion) -> PathBuf {
        self.root.join(tenant.to_string()).join(version.as_str())
    }

    /// Stores `files` under their digest. Returns `false` when that version is already there.
    pub fn put(
        &self,
        tenant: &TenantId,
        files: &AdapterFiles,
    ) -> Result<(AdapterVersion, bool), BlobError> {
        let version = files.digest();
        let dest = self.dir(tenant, &version);
        if dest.is_dir() {
            return Ok((version, false));
        }
        let tmp_root = self.root.join(TMP_DIR);
        fs::create_dir_all(&tmp_root).map_err(io("create", &tmp_root))?;
        let tmp = tmp_root.join(uuid::Uuid::new_v4().simple().to_string());
        fs::create_dir(&tmp).map_err(io("create", &tmp))?;
        let written = (|| {
            write_synced(&tmp.join(CONFIG_FILE), &files.config)?;
            write_synced(&tmp.join(WEIGHTS_FILE), &files.weights)?;
            sync_dir(&tmp)?;
            let parent = self.root.join(tenant.to_string());
            fs::create_dir_all(&parent).map_err(io("create", &parent))?;
            match fs::rename(&tmp, &dest) {
                Ok(()) => sync_dir(&parent).map(|()| true),
                // Another upload of the same content won the race: its files are identical.
                Err(_) if dest.is_dir() => Ok(false),
                Err(e) => Err(io("rename into", &dest)(e)),
            }
        })();
        if !matches!(written, Ok(true)) {
            let _ = fs::remove_dir_all(&tmp);
        }
        written.map(|created| (version, created))
    }

    /// Reads a version's files and checks them against the digest.
    pub fn read(
        &self,
        tenant: &TenantId,
        version: &AdapterVersion,
    ) -> Result<AdapterFiles, BlobError> {
        let dir = self.dir(tenant, version);
        let config = fs::read(dir.join(CONFIG_FILE)).map_err(io("read", &dir.join(CONFIG_FILE)))?;
        let weights =
            fs::read(dir.join(WEIGHTS_FILE)).map_err(io("read", &dir.join(WEIGHTS_FILE)))?;
        let files = AdapterFiles { config, weights };
        if files.digest() != *version {
            return Err(BlobError::Corrupt {
                path: dir,
                expected: version.to_string(),
            });
        }
        Ok(files)
    }

    /// Removes a version's files: renamed out of place first (atomic), then deleted.
    pub fn remove(&self, tenant: &TenantId, version: &AdapterVersion) -> Result<(), BlobError> {
        let dir = self.dir(tenant, version);
        if !dir.exists() {
            return Ok(());
        }
        let tmp_root = self.root.join(TMP_DIR);
        fs::create_dir_all(&tmp_root).map_err(io("create", &tmp_root))?;
        let trash = tmp_root.join(format!("rm-{}", uuid::Uuid::new_v4().simple()));
        fs::rename(&dir, &trash).map_err(io("rename", &dir))?;
        fs::remove_dir_all(&trash).map_err(io("remove", &trash))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_written_whole_and_checked_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = AdapterBlobs::new(dir.path().join("adapters"));
        let tenant = TenantId::new();
        let files = AdapterFiles {
            config: b"{\"peft_type\":\"LORA\"}".to_vec(),
            weights: vec![1, 2, 3],
        };
        let (v, created) = blobs.put(&tenant, &files).unwrap();
        assert!(created);
        assert_eq!(
            blobs.put(&tenant, &files).unwrap(),
            (v.clone(), false),
            "idempotent"
        );
        assert_eq!(blobs.read(&tenant, &v).unwrap().weights, vec![1, 2, 3]);
        let tmp: Vec<_> = fs::read_dir(dir.path().join("adapters/.tmp"))
            .unwrap()
            .collect();
        assert!(tmp.is_empty(), "no temporary directory left behind");
        // Same bytes split differently are a different version.
        let shifted = AdapterFiles {
            config: b"{\"peft_type\":\"LORA\"}\x01".to_vec(),
            weights: vec![2, 3],
        };
        assert_ne!(shifted.digest(), v);
        fs::write(blobs.dir(&tenant, &v).join(WEIGHTS_FILE), [9, 9, 9]).unwrap();
        assert!(matches!(
            blobs.read(&tenant, &v),
            Err(BlobError::Corrupt { .. })
        ));
        blobs.remove(&tenant, &v).unwrap();
        assert!(!blobs.dir(&tenant, &v).exists());
        assert!(blobs.read(&tenant, &v).is_err());
    }
}
