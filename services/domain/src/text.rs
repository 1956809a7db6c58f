use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A tenant's short name, used in URLs and logs: 3..=40 of `[a-z0-9-]`, starting with a letter,
/// no leading/trailing/double hyphen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantSlug(String);

impl TenantSlug {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 40;

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let fail = |reason| {
            Err(DomainError::InvalidSlug {
                value: s.chars().take(64).collect(),
                reason,
            })
        };
        if s.len() < Self::MIN_LEN || s.len() > Self::MAX_LEN {
            return fail("must be 3 to 40 characters long");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return fail("only lowercase letters, digits and '-' are allowed");
        }
        if !s.as_bytes()[0].is_ascii_lowercase() {
            return fail("must start with a letter");
        }
        if s.ends_with('-') || s.contains("--") {
            return fail("must not end with '-' or contain '--'");
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, trimmed and lowercased so that lookups and uniqueness are case-insensitive.
/// Deliberately permissive about the domain (air-gapped installs use `admin@corp` style names).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let fail = |reason| Err(DomainError::InvalidEmail { reason });
        let s = s.trim().to_lowercase();
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return fail("must be 1 to 254 characters long");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return fail("must not contain spaces or control characters");
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return fail("must contain '@'");
        };
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return fail("the part before '@' must be 1 to 64 characters without '@'");
        }
        let labels_ok = domain.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
        if !labels_ok {
            return fail("the domain must be dot-separated labels of letters, digits and '-'");
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! text_impls {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
text_impls!(TenantSlug);
text_impls!(Email);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["acme", "acme-corp-2", "a12"] {
            assert_eq!(TenantSlug::parse(ok).unwrap().as_str(), ok);
        }
        let cases = [
            ("ab", "3 to 40"),
            ("Acme", "lowercase"),
            ("1acme", "start with a letter"),
            ("acme-", "end with"),
            ("ac--me", "contain '--'"),
            ("ac me", "lowercase"),
            ("ac_me", "lowercase"),
        ];
        for (bad, why) in cases {
            let err = TenantSlug::parse(bad).unwrap_err();
            assert!(err.to_string().contains(why), "{bad:?}: {err}");
        }
        assert!(TenantSlug::parse(&"a".repeat(41)).is_err());
        assert!(serde_json::from_str::<TenantSlug>("\"UPPER\"").is_err());
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        assert_eq!(Email::parse("admin@corp").unwrap().as_str(), "admin@corp");
        for bad in [
            "",
            "alice",
            "@x.com",
            "a@",
            "a@x..com",
            "a b@x.com",
            "a@-x.com",
            "a@x.com\n@y",
        ] {
            assert_eq!(
                Email::parse(bad).map_err(|e| e.code()),
                Err("invalid_email"),
                "{bad:?}"
            );
        }
    }
}
