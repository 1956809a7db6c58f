//! Ed25519 keys for checkpoints and export manifests, and signed chain-head checkpoints.

use chrono::{DateTime, SubsecRound, Utc};
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey,
    spki::der::pem::LineEnding,
};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use enclave_domain::TenantId;
use serde::Serialize;
use sqlx::PgPool;

use crate::AuditError;
use crate::canonical::ChainHash;
use crate::db::{system_tx, tenant_tx};

fn check_key_id(key_id: &str) -> Result<String, AuditError> {
    let ok = (1..=64).contains(&key_id.len())
        && key_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(key_id.to_owned())
    } else {
        Err(AuditError::Key {
            reason: format!(
                "key id must be 1..=64 of [A-Za-z0-9._-], got {:?}",
                key_id.chars().take(64).collect::<String>()
            ),
        })
    }
}

/// A private signing key with its id (the id travels with every signature).
pub struct AuditSigningKey {
    key_id: String,
    key: SigningKey,
}

impl std::fmt::Debug for AuditSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AuditSigningKey {
    pub fn generate(key_id: &str) -> Result<Self, AuditError> {
        Self::from_seed(key_id, rand::random::<[u8; 32]>())
    }

    pub fn from_seed(key_id: &str, seed: [u8; 32]) -> Result<Self, AuditError> {
        Ok(AuditSigningKey {
            key_id: check_key_id(key_id)?,
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(key_id: &str, pem: &str) -> Result<Self, AuditError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| AuditError::Key {
            reason: format!("not an Ed25519 PKCS#8 PEM key: {e}"),
        })?;
        Ok(AuditSigningKey {
            key_id: check_key_id(key_id)?,
            key,
        })
    }

    pub fn to_pkcs8_pem(&self) -> Result<String, AuditError> {
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| AuditError::Key {
                reason: e.to_string(),
            })?;
        Ok(pem.to_string())
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public(&self) -> AuditPublicKey {
        AuditPublicKey {
            key_id: self.key_id.clone(),
            key: self.key.verifying_key(),
        }
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

/// A public key that verifies checkpoints and export manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPublicKey {
    key_id: String,
    key: VerifyingKey,
}

impl AuditPublicKey {
    pub fn from_bytes(key_id: &str, bytes: &[u8]) -> Result<Self, AuditError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| AuditError::Key {
            reason: "an Ed25519 public key is 32 bytes".into(),
        })?;
        let key = VerifyingKey::from_bytes(&arr).map_err(|e| AuditError::Key {
            reason: e.to_string(),
        })?;
        Ok(AuditPublicKey {
            key_id: check_key_id(key_id)?,
            key,
        })
    }

    /// Reads an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_public_key_pem(key_id: &str, pem: &str) -> Result<Self, AuditError> {
        let key = VerifyingKey::from_public_key_pem(pem).map_err(|e| AuditError::Key {
            reason: format!("not an Ed25519 public key PEM: {e}"),
        })?;
        Ok(AuditPublicKey {
            key_id: check_key_id(key_id)?,
            key,
        })
    }

    pub fn to_public_key_pem(&self) -> Result<String, AuditError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| AuditError::Key {
                reason: e.to_string(),
            })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn verify(&self, msg: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.key.verify(msg, &Signature::from_bytes(&sig)).is_ok()
    }
}

/// "Tenant T's chain had head `hash` at `seq`", signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub tenant: TenantId,
    pub seq: u64,
    pub hash: ChainHash,
    pub signed_at: DateTime<Utc>,
    pub key_id: String,
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
}

/// The bytes a checkpoint signature covers.
pub fn checkpoint_message(
    tenant: &TenantId,
    seq: u64,
    hash: &ChainHash,
    signed_at: &DateTime<Utc>,
) -> Vec<u8> {
    let mut m = b"enclave-audit-checkpoint-v1\0".to_vec();
    m.extend_from_slice(tenant.as_uuid().as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash.as_bytes());
    m.extend_from_slice(&signed_at.timestamp_micros().to_be_bytes());
    m
}

impl Checkpoint {
    /// True when `key` (same id) signed this checkpoint.
    pub fn verify(&self, key: &AuditPublicKey) -> bool {
        key.key_id == self.key_id
            && key.verify(
                &checkpoint_message(&self.tenant, self.seq, &self.hash, &self.signed_at),
                &self.signature,
            )
    }
}

/// Signs every tenant's current chain head that moved since its last checkpoint by this key
/// (run periodically by the server, and by `enclave audit checkpoint`). Returns what it signed.
pub async fn checkpoint_heads(
    pool: &PgPool,
    key: &AuditSigningKey,
) -> Result<Vec<Checkpoint>, AuditError> {
    let mut tx = system_tx(pool).await?;
    let heads: Vec<(uuid::Uuid, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT h.tenant_id, h.seq, h.hash FROM audit_chain_heads h
         WHERE h.seq > 0 AND NOT EXISTS (SELECT 1 FROM audit_checkpoints c
             WHERE c.tenant_id = h.tenant_id AND c.seq = h.seq AND c.key_id = $1)",
    )
    .bind(key.key_id())
    .fetch_all(&mut *tx)
    .await
    .map_err(AuditError::db("reading chain heads"))?;
    let signed_at = Utc::now().trunc_subsecs(6);
    let mut out = Vec::with_capacity(heads.len());
    for (tenant, seq, hash) in heads {
        let tenant = TenantId::from_uuid(tenant);
        let hash = ChainHash::from_slice(&hash).unwrap_or_default();
        let seq = u64::try_from(seq).unwrap_or(0);
        let signature = key
            .sign(&checkpoint_message(&tenant, seq, &hash, &signed_at))
            .to_vec();
        sqlx::query(
            "INSERT INTO audit_checkpoints (tenant_id, seq, hash, signed_at, key_id, public_key, signature)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_uuid())
        .bind(seq as i64)
        .bind(hash.as_bytes().as_slice())
        .bind(signed_at)
        .bind(key.key_id())
        .bind(key.public().to_bytes().as_slice())
        .bind(&signature)
        .execute(&mut *tx)
        .await
        .map_err(AuditError::db("storing a checkpoint"))?;
        out.push(Checkpoint {
            tenant,
            seq,
            hash,
            signed_at,
            key_id: key.key_id().to_owned(),
            signature,
        });
    }
    tx.commit()
        .await
        .map_err(AuditError::db("committing checkpoints"))?;
    Ok(out)
}

/// A tenant's checkpoints with seq in `from..=to`, in seq order.
pub(crate) async fn load_checkpoints(
    pool: &PgPool,
    tenant: &TenantId,
    from: u64,
    to: u64,
) -> Result<Vec<Checkpoint>, AuditError> {
    let mut tx = tenant_tx(pool, tenant).await?;
    type Row = (i64, Vec<u8>, DateTime<Utc>, String, Vec<u8>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, hash, signed_at, key_id, signature FROM audit_checkpoints
         WHERE tenant_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
    )
    .bind(tenant.as_uuid())
    .bind(from as i64)
    .bind(i64::try_from(to).unwrap_or(i64::MAX))
    .fetch_all(&mut *tx)
    .await
    .map_err(AuditError::db("reading checkpoints"))?;
    tx.commit()
        .await
        .map_err(AuditError::db("reading checkpoints"))?;
    Ok(rows
        .into_iter()
        .map(|(seq, hash, signed_at, key_id, signature)| Checkpoint {
            tenant: *tenant,
            seq: seq as u64,
            hash: ChainHash::from_slice(&hash).unwrap_or_default(),
            signed_at,
            key_id,
            signature,
        })
        .collect())
}
