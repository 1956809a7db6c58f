//! API keys: `enc_<prefix>_<secret>`. The prefix (10 alphanumerics) is stored in clear to find
//! the row and to let people tell keys apart; the secret (32 random bytes, base64url) is stored
//! only as its SHA-256 and compared in constant time.

use chrono::{DateTime, Utc};
use enclave_domain::{Scopes, UserId};
use enclave_store::ApiKeyRecord;
use subtle::ConstantTimeEq as _;

use crate::secret::{random_alphanumeric, random_token, sha256};

pub const API_KEY_PREFIX: &str = "enc_";
const PREFIX_CHARS: usize = 10;
const SECRET_CHARS: usize = 43;

/// A freshly generated key: the full text (shown once) and what gets stored.
pub struct ApiKeySecret {
    /// `enc_<prefix>_<secret>`: give it to the user once, never store or log it.
    pub full: String,
    /// `enc_<prefix>`: the stored, visible identifier.
    pub prefix: String,
    pub secret_hash: [u8; 32],
}

impl std::fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeySecret")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl ApiKeySecret {
    pub fn generate() -> Self {
        let prefix = format!("{API_KEY_PREFIX}{}", random_alphanumeric(PREFIX_CHARS));
        let secret = random_token();
        let secret_hash = sha256(secret.as_bytes());
        ApiKeySecret {
            full: format!("{prefix}_{secret}"),
            prefix,
            secret_hash,
        }
    }
}

/// A presented key split into its parts (shape only; nothing verified yet).
#[derive(Debug)]
pub struct ParsedApiKey<'a> {
    pub prefix: &'a str,
    secret: &'a str,
}

impl<'a> ParsedApiKey<'a> {
    /// `None` unless `text` has the exact shape of a key we issue.
    pub fn parse(text: &'a str) -> Option<Self> {
        let rest = text.strip_prefix(API_KEY_PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let shape_ok = id.len() == PREFIX_CHARS
            && id.bytes().all(|b| b.is_ascii_alphanumeric())
            && secret.len() == SECRET_CHARS
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        shape_ok.then(|| ParsedApiKey {
            prefix: &text[..API_KEY_PREFIX.len() + PREFIX_CHARS],
            secret,
        })
    }

    /// Constant-time comparison of the secret's hash with the stored one.
    pub fn matches(&self, stored_hash: &[u8; 32]) -> bool {
        sha256(self.secret.as_bytes()).ct_eq(stored_hash).into()
    }
}

/// What a tenant admin asks for when creating a key.
#[derive(Debug, Clone)]
pub struct NewApiKeyRequest {
    pub name: String,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<UserId>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

/// A created key: the stored record and the full key text, which is shown once.
pub struct CreatedApiKey {
    pub record: ApiKeyRecord,
    pub key: String,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_match_only_their_hash() {
        let k = ApiKeySecret::generate();
        assert!(k.full.starts_with(&k.prefix) && k.prefix.starts_with("enc_"));
        let parsed = ParsedApiKey::parse(&k.full).expect("own format parses");
        assert_eq!(parsed.prefix, k.prefix);
        assert!(parsed.matches(&k.secret_hash));
        let other = ApiKeySecret::generate();
        assert!(!parsed.matches(&other.secret_hash));
        assert!(
            !format!("{k:?}").contains(&k.full[k.prefix.len() + 1..]),
            "Debug must not print the secret"
        );
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let k = ApiKeySecret::generate();
        let cases = [
            String::new(),
            "enc_".to_owned(),
            k.full.replacen("enc_", "sk_", 1),
            k.full[..k.full.len() - 1].to_owned(),
            format!("{}x", k.full),
            k.full.replacen('_', "-", 2),
            format!("{}!", &k.full[..k.full.len() - 1]),
        ];
        for c in cases {
            assert!(ParsedApiKey::parse(&c).is_none(), "{c:?}");
        }
    }
}
