//! Access tokens: EdDSA (Ed25519) JWTs with a `kid`, signed by the active key of a ring kept in
//! Postgres. Rotation makes a new key active while the previous ones keep verifying until they
//! are retired, so nobody is logged out by a rotation.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use enclave_store::{KeySeal, KeyStatus, NewSigningKey, SigningKeyRecord, Store, StoreError};

use crate::AuthError;
use crate::secret::{random_alphanumeric, random_bytes};

/// Claims of an access token. `tenant` is absent for a platform admin's platform session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
}

/// PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410): a fixed 16-byte header, then the seed.
fn ed25519_pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    const HEADER: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = HEADER.to_vec();
    der.extend_from_slice(seed);
    der
}

struct Ring {
    signer: Option<(String, EncodingKey)>,
    verifiers: HashMap<String, DecodingKey>,
    loaded_at: Instant,
}

/// The in-process view of the signing keys; reloaded from Postgres every `refresh` and on an
/// unknown `kid` (at most once a second), so a rotation by one gateway reaches the others.
pub struct KeyRing {
    store: Store,
    ring: RwLock<Arc<Ring>>,
    refresh: Duration,
    last_miss_reload: std::sync::Mutex<Option<Instant>>,
}

impl KeyRing {
    /// Loads the ring, creating the first key on a fresh install.
    pub async fn load_or_init(store: Store, refresh: Duration) -> Result<KeyRing, AuthError> {
        let ring = KeyRing {
            store,
            ring: RwLock::new(Arc::new(Ring {
                signer: None,
                verifiers: HashMap::new(),
                loaded_at: Instant::now(),
            })),
            refresh,
            last_miss_reload: std::sync::Mutex::new(None),
        };
        ring.reload().await?;
        if ring.snapshot().signer.is_none() {
            match ring.rotate().await {
                // Another gateway created the first key at the same moment: use theirs.
                Ok(_) | Err(AuthError::Store(StoreError::Conflict { .. })) => ring.reload().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(ring)
    }

    /// Generates a new Ed25519 key and makes it the signing key; returns its `kid`.
    pub async fn rotate(&self) -> Result<String, AuthError> {
        let seed: [u8; 32] = random_bytes();
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        let kid = format!(
            "k{}-{}",
            chrono::Utc::now().format("%Y%m%d"),
            random_alphanumeric(8)
        );
        // Sealing: stored as `plain`, i.e. protected by database access control (only the
        // owner and application roles can read `signing_keys`). See the crate docs.
        let new = NewSigningKey {
            kid: kid.clone(),
            public_key: public,
            private_key: seed.to_vec(),
            seal: KeySeal::Plain,
        };
        self.store.signing_keys().rotate_in(new).await?;
        self.reload().await?;
        Ok(kid)
    }

    pub async fn reload(&self) -> Result<(), AuthError> {
        let records = self.store.signing_keys().verifying().await?;
        let ring = build_ring(&records)?;
        // INVARIANT: no code panics while holding this lock.
        #[allow(clippy::unwrap_used)]
        let mut guard = self.ring.write().unwrap();
        *guard = Arc::new(ring);
        Ok(())
    }

    fn snapshot(&self) -> Arc<Ring> {
        // INVARIANT: no code panics while holding this lock.
        #[allow(clippy::unwrap_used)]
        self.ring.read().unwrap().clone()
    }

    async fn fresh_snapshot(&self) -> Result<Arc<Ring>, AuthError> {
        let ring = self.snapshot();
        if ring.loaded_at.elapsed() < self.refresh {
            return Ok(ring);
        }
        self.reload().await?;
        Ok(self.snapshot())
    }

    /// The kid tokens are signed with now.
    pub fn active_kid(&self) -> Option<String> {
        self.snapshot().signer.as_ref().map(|(kid, _)| kid.clone())
    }

    /// Signs `claims` with the active key (`alg: EdDSA`, `kid` set).
    pub async fn sign(&self, claims: &AccessClaims) -> Result<String, AuthError> {
        let ring = self.fresh_snapshot().await?;
        let (kid, key) = ring
            .signer
            .as_ref()
            .ok_or_else(|| AuthError::Crypto("no active signing key".into()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, key)
            .map_err(|e| AuthError::Crypto(format!("jwt encode: {e}")))
    }

    /// Verifies signature, algorithm (EdDSA only), kid, expiry, issuer and audience.
    pub async fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<AccessClaims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken {
            reason: "malformed",
        })?;
        // Pinned before any key is chosen: refuses `none`, HS256-with-the-public-key and
        // every other algorithm confusion.
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::InvalidToken {
                reason: "algorithm not allowed",
            });
        }
        let kid = header.kid.ok_or(AuthError::InvalidToken {
            reason: "missing kid",
        })?;
        let key = self.verifier(&kid).await?.ok_or(AuthError::InvalidToken {
            reason: "unknown signing key",
        })?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.leeway = 5;
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &key, &validation).map_err(|e| match e
                .kind()
            {
                ErrorKind::ExpiredSignature => AuthError::ExpiredToken,
                ErrorKind::InvalidSignature => AuthError::InvalidToken {
                    reason: "bad signature",
                },
                ErrorKind::InvalidIssuer => AuthError::InvalidToken {
                    reason: "wrong issuer",
                },
                ErrorKind::InvalidAudience => AuthError::InvalidToken {
                    reason: "wrong audience",
                },
                ErrorKind::ImmatureSignature => AuthError::InvalidToken {
                    reason: "not yet valid",
                },
                ErrorKind::InvalidAlgorithm => AuthError::InvalidToken {
                    reason: "algorithm not allowed",
                },
                _ => AuthError::InvalidToken {
                    reason: "malformed",
                },
            })?;
        Ok(data.claims)
    }

    async fn verifier(&self, kid: &str) -> Result<Option<DecodingKey>, AuthError> {
        let ring = self.fresh_snapshot().await?;
        if let Some(k) = ring.verifiers.get(kid) {
            return Ok(Some(k.clone()));
        }
        let may_reload = {
            // INVARIANT: no code panics while holding this lock.
            #[allow(clippy::unwrap_used)]
            let mut last = self.last_miss_reload.lock().unwrap();
            let ok = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if ok {
                *last = Some(Instant::now());
            }
            ok
        };
        if !may_reload {
            return Ok(None);
        }
        self.reload().await?;
        Ok(self.snapshot().verifiers.get(kid).cloned())
    }
}

fn build_ring(records: &[SigningKeyRecord]) -> Result<Ring, AuthError> {
    let mut signer = None;
    let mut verifiers = HashMap::new();
    for r in records {
        verifiers.insert(r.kid.clone(), DecodingKey::from_ed_der(&r.public_key));
        if r.status == KeyStatus::Active {
            if r.seal != KeySeal::Plain {
                return Err(AuthError::Crypto(format!(
                    "signing key {} is sealed with {}, which this build cannot open",
                    r.kid,
                    r.seal.as_str()
                )));
            }
            let seed: [u8; 32] = r.private_key.as_slice().try_into().map_err(|_| {
                AuthError::Crypto(format!("signing key {} has a malformed private key", r.kid))
            })?;
            signer = Some((
                r.kid.clone(),
                EncodingKey::from_ed_der(&ed25519_pkcs8(&seed)),
            ));
        }
    }
    Ok(Ring {
        signer,
        verifiers,
        loaded_at: Instant::now(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn pkcs8_wrapping_is_what_jsonwebtoken_signs_with() {
        let seed = [7u8; 32];
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        let enc = jsonwebtoken::EncodingKey::from_ed_der(&super::ed25519_pkcs8(&seed));
        let dec = jsonwebtoken::DecodingKey::from_ed_der(&public);
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64});
        let token = jsonwebtoken::encode(&header, &claims, &enc).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        v.required_spec_claims.clear();
        v.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(&token, &dec, &v).unwrap();
    }
}
