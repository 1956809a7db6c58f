//! argon2id password hashes (PHC strings), verified in constant time.

use argon2::{Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _};

use crate::AuthError;

/// Length rules; deliberately no composition rules (NIST SP 800-63B).
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    /// Upper bound in bytes: hashing cost grows with input, so unbounded input is a DoS lever.
    pub max_bytes: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_chars: 10,
            max_bytes: 1024,
        }
    }
}

/// argon2id with the crate defaults (m = 19 MiB, t = 2, p = 1: OWASP's recommendation).
/// Holds a hash of a random password so that logins for unknown emails cost the same time.
#[derive(Clone)]
pub struct PasswordHasher {
    policy: PasswordPolicy,
    dummy: String,
}

impl PasswordHasher {
    pub fn new(policy: PasswordPolicy) -> Result<Self, AuthError> {
        let dummy = hash_raw(crate::secret::random_token().as_bytes())?;
        Ok(PasswordHasher { policy, dummy })
    }

    /// Checks the policy, then hashes with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<String, AuthError> {
        let chars = password.chars().count();
        if chars < self.policy.min_chars {
            return Err(AuthError::WeakPassword {
                reason: format!("must be at least {} characters", self.policy.min_chars),
            });
        }
        if password.len() > self.policy.max_bytes {
            return Err(AuthError::WeakPassword {
                reason: format!("must be at most {} bytes", self.policy.max_bytes),
            });
        }
        hash_raw(password.as_bytes())
    }

    /// Whether `password` matches `phc` (argon2 compares the outputs in constant time). A
    /// malformed stored hash counts as a mismatch and is logged.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        if password.len() > self.policy.max_bytes {
            // Still spend the time, so length does not tell anything.
            self.burn(password);
            return false;
        }
        match PasswordHash::new(phc) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(e) => {
                tracing::error!(error = %e, "stored password hash does not parse");
                false
            }
        }
    }

    /// Runs one verification against the dummy hash: the cost of a login whose account does
    /// not exist (or has no password) matches a real one.
    pub fn burn(&self, password: &str) {
        let input = &password.as_bytes()[..password.len().min(self.policy.max_bytes)];
        if let Ok(parsed) = PasswordHash::new(&self.dummy) {
            let _ = Argon2::default().verify_password(input, &parsed);
        }
    }
}

fn hash_raw(password: &[u8]) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Crypto(format!("argon2: {e}")))
}

/// A random password for bootstrap accounts (43 base64url characters, 256 bits), to be shown
/// to the operator once and changed by them.
pub fn generate_password() -> String {
    crate::secret::random_token()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_argon2id_and_verify() {
        let h = PasswordHasher::new(PasswordPolicy::default()).unwrap();
        let a = h.hash("correct horse battery").unwrap();
        let b = h.hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(h.verify("correct horse battery", &a));
        assert!(!h.verify("correct horse batterY", &a));
        assert!(!h.verify("correct horse battery", "not a phc string"));
    }

    #[test]
    fn policy_bounds_length() {
        let h = PasswordHasher::new(PasswordPolicy::default()).unwrap();
        assert_eq!(h.hash("short").unwrap_err().code(), "weak_password");
        assert_eq!(
            h.hash(&"x".repeat(1025)).unwrap_err().code(),
            "weak_password"
        );
    }
}
