use chrono::{DateTime, Utc};

use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Signs new tokens (at most one key).
    Active,
    /// Rotated out: verifies tokens it signed until they expire, signs nothing.
    VerifyOnly,
    /// Verifies nothing; its private key is erased.
    Retired,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::VerifyOnly => "verify_only",
            KeyStatus::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(KeyStatus::Active),
            "verify_only" => Ok(KeyStatus::VerifyOnly),
            "retired" => Ok(KeyStatus::Retired),
            other => Err(StoreError::corrupt(
                "signing key",
                format!("status {other:?}"),
            )),
        }
    }
}

/// How the private key bytes are protected at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySeal {
    /// Stored as is; protected by database access control only.
    Plain,
    /// XChaCha20-Poly1305 under a key-encryption key kept outside the database.
    XChaCha20Poly1305,
}

impl KeySeal {
    pub fn as_str(self) -> &'static str {
        match self {
            KeySeal::Plain => "plain",
            KeySeal::XChaCha20Poly1305 => "xchacha20poly1305",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "plain" => Ok(KeySeal::Plain),
            "xchacha20poly1305" => Ok(KeySeal::XChaCha20Poly1305),
            other => Err(StoreError::corrupt(
                "signing key",
                format!("seal {other:?}"),
            )),
        }
    }
}

#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub algorithm: String,
    pub public_key: [u8; 32],
    /// Sealed per `seal`; empty once retired.
    pub private_key: Vec<u8>,
    pub seal: KeySeal,
    pub status: KeyStatus,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("status", &self.status)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

pub struct NewSigningKey {
    pub kid: String,
    pub public_key: [u8; 32],
    pub private_key: Vec<u8>,
    pub seal: KeySeal,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    algorithm: String,
    public_key: Vec<u8>,
    private_key: Vec<u8>,
    seal: String,
    status: String,
    created_at: DateTime<Utc>,
    rotated_at: Option<DateTime<Utc>>,
}

impl TryFrom<KeyRow> for SigningKeyRecord {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> Result<Self> {
        Ok(SigningKeyRecord {
            public_key: <[u8; 32]>::try_from(r.public_key.as_slice())
                .map_err(|_| StoreError::corrupt("signing key", "public key length"))?,
            kid: r.kid,
            algorithm: r.algorithm,
            private_key: r.private_key,
            seal: KeySeal::parse(&r.seal)?,
            status: KeyStatus::parse(&r.status)?,
            created_at: r.created_at,
            rotated_at: r.rotated_at,
        })
    }
}

/// The JWT signing key ring (EdDSA / Ed25519), shared by all gateways through Postgres.
pub struct SigningKeys<'s> {
    pub(crate) store: &'s Store,
}

impl SigningKeys<'_> {
    /// Makes `new` the active key; the previous active key becomes verify-only. When two
    /// processes rotate at once, one gets `Conflict` (one active key at most).
    pub async fn rotate_in(&self, new: NewSigningKey) -> Result<SigningKeyRecord> {
        let mut tx = self.store.pool().begin().await?;
        sqlx::query("UPDATE signing_keys SET status = 'verify_only', rotated_at = now() WHERE status = 'active'")
            .execute(&mut *tx)
            .await?;
        let row: KeyRow = sqlx::query_as(
            "INSERT INTO signing_keys (kid, algorithm, public_key, private_key, seal, status)
             VALUES ($1, 'EdDSA', $2, $3, $4, 'active')
             RETURNING kid, algorithm, public_key, private_key, seal, status, created_at, rotated_at",
        )
        .bind(&new.kid)
        .bind(new.public_key.as_slice())
        .bind(&new.private_key)
        .bind(new.seal.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        row.try_into()
    }

    /// Keys that verify tokens (active and verify-only), newest first.
    pub async fn verifying(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT kid, algorithm, public_key, private_key, seal, status, created_at, rotated_at
             FROM signing_keys WHERE status IN ('active', 'verify_only') ORDER BY created_at DESC",
        )
        .fetch_all(self.store.pool())
        .await?;
        rows.into_iter().map(SigningKeyRecord::try_from).collect()
    }

    /// Retires a verify-only key: tokens it signed stop verifying, and its private key is erased.
    /// The active key cannot be retired (rotate first).
    pub async fn retire(&self, kid: &str) -> Result<()> {
        let done = sqlx::query(
            "UPDATE signing_keys SET status = 'retired', retired_at = now(), private_key = '\\x'::bytea
             WHERE kid = $1 AND status = 'verify_only'",
        )
        .bind(kid)
        .execute(self.store.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                entity: "verify-only signing key",
            });
        }
        Ok(())
    }

    /// Retires every verify-only key rotated out before `before` (after the access-token TTL,
    /// nothing they signed is still valid).
    pub async fn retire_rotated_before(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE signing_keys SET status = 'retired', retired_at = now(), private_key = '\\x'::bytea
             WHERE status = 'verify_only' AND rotated_at < $1",
        )
        .bind(before)
        .execute(self.store.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
