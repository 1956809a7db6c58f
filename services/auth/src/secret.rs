//! Random opaque secrets and their stored form.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// `n` bytes from the thread-local CSPRNG (ChaCha, seeded and reseeded from the OS).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes[..]);
    bytes
}

/// 32 random bytes, base64url without padding (43 characters, 256 bits).
pub(crate) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Alphanumeric characters (uniform: rejection sampling over 62 symbols).
pub(crate) fn random_alphanumeric(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<32>() {
            // 248 = 4 * 62: values above would bias the first symbols.
            if b < 248 && out.len() < len {
                out.push(ALPHABET[usize::from(b % 62)] as char);
            }
        }
    }
    out
}

/// SHA-256, the stored form of high-entropy secrets (API keys, refresh tokens). A slow KDF
/// adds nothing when the input has 256 random bits, and costs on every request.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        let s = random_alphanumeric(10);
        assert_eq!(s.len(), 10);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
