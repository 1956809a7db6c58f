//! Names of LoRA adapters and the ways a request selects one (`model` = `name`, `name@alias`,
//! `name@v3` or `name@<sha256 prefix>`).
//!
//! The three kinds of selector never overlap, so a reference has one meaning: aliases may not look
//! like a version number (`v` + digits) or like a digest prefix (8+ hex characters), and version
//! numbers and digests are spelled differently.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// The alias a bare adapter name (`model: "support-bot"`) resolves to.
pub const DEFAULT_ALIAS: &str = "prod";

fn invalid(kind: &'static str, value: &str, reason: &'static str) -> DomainError {
    DomainError::InvalidAdapterRef {
        kind,
        value: value.chars().take(80).collect(),
        reason,
    }
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
}

/// A tenant's name for an adapter: 1..=64 of `[a-z0-9._-]`, starting with a letter or digit.
/// `base` is reserved (it names the bare base model in `model`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AdapterName(String);

impl AdapterName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let fail = |reason| Err(invalid("adapter name", s, reason));
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return fail("must be 1 to 64 characters long");
        }
        if !s.bytes().all(is_name_char) {
            return fail("only lowercase letters, digits, '.', '_' and '-' are allowed");
        }
        if !s.as_bytes()[0].is_ascii_alphanumeric() {
            return fail("must start with a letter or digit");
        }
        if s == "base" {
            return fail("`base` is reserved for the base model");
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A movable per-adapter label (`prod`, `canary`, ...): 1..=32 of `[a-z0-9_-]`, starting with a
/// letter; never `v<digits>` nor 8+ hex characters (those select versions).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AdapterAlias(String);

impl AdapterAlias {
    pub const MAX_LEN: usize = 32;

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let fail = |reason| Err(invalid("alias", s, reason));
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return fail("must be 1 to 32 characters long");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return fail("only lowercase letters, digits, '_' and '-' are allowed");
        }
        if !s.as_bytes()[0].is_ascii_lowercase() {
            return fail("must start with a letter");
        }
        if looks_like_version_number(s) || DigestPrefix::looks_like(s) {
            return fail(
                "must not look like a version (`v3`) or a digest prefix (8+ hex characters)",
            );
        }
        Ok(Self(s.to_owned()))
    }

    pub fn prod() -> Self {
        Self(DEFAULT_ALIAS.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An immutable adapter version: the SHA-256 (lowercase hex) of its content.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AdapterVersion(String);

impl AdapterVersion {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid(
                "adapter version",
                s,
                "must be 64 lowercase hex characters (SHA-256)",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// From raw digest bytes.
    pub fn from_digest(bytes: &[u8; 32]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let s = bytes
            .iter()
            .flat_map(|b| {
                [
                    HEX[usize::from(b >> 4)] as char,
                    HEX[usize::from(b & 15)] as char,
                ]
            })
            .collect();
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters, for display.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

/// 8..=64 lowercase hex characters: the start of an [`AdapterVersion`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DigestPrefix(String);

impl DigestPrefix {
    pub const MIN_LEN: usize = 8;

    fn looks_like(s: &str) -> bool {
        (Self::MIN_LEN..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, v: &AdapterVersion) -> bool {
        v.as_str().starts_with(&self.0)
    }
}

impl From<&AdapterVersion> for DigestPrefix {
    fn from(v: &AdapterVersion) -> Self {
        DigestPrefix(v.0.clone())
    }
}

fn looks_like_version_number(s: &str) -> bool {
    s.strip_prefix('v')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_version_number(s: &str) -> Option<u32> {
    let digits = s.strip_prefix('v')?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// Which version of an adapter a reference means.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AdapterSelector {
    /// `name@prod`, `name@canary`; a bare `name` means [`DEFAULT_ALIAS`].
    Alias(AdapterAlias),
    /// `name@v3`: the third version uploaded under this name.
    Number(u32),
    /// `name@3f2a9c01...`: the version whose digest starts with these characters.
    Digest(DigestPrefix),
}

/// What a request's `model` names when it is not the base model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AdapterRef {
    pub name: AdapterName,
    pub selector: AdapterSelector,
}

impl AdapterRef {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let (name, selector) = match s.split_once('@') {
            None => (s, AdapterSelector::Alias(AdapterAlias::prod())),
            Some((name, sel)) => (name, Self::parse_selector(sel)?),
        };
        Ok(AdapterRef {
            name: AdapterName::parse(name)?,
            selector,
        })
    }

    fn parse_selector(sel: &str) -> Result<AdapterSelector, DomainError> {
        if let Some(n) = parse_version_number(sel) {
            return Ok(AdapterSelector::Number(n));
        }
        if DigestPrefix::looks_like(sel) {
            return Ok(AdapterSelector::Digest(DigestPrefix(sel.to_owned())));
        }
        AdapterAlias::parse(sel)
            .map(AdapterSelector::Alias)
            .map_err(|_| {
                invalid(
                    "adapter reference",
                    sel,
                    "after '@' expected an alias, `v<number>` or 8+ hex characters of a version",
                )
            })
    }
}

impl fmt::Display for AdapterSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdapterSelector::Alias(a) => f.write_str(a.as_str()),
            AdapterSelector::Number(n) => write!(f, "v{n}"),
            AdapterSelector::Digest(d) => f.write_str(d.as_str()),
        }
    }
}

impl fmt::Display for AdapterRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name.as_str(), self.selector)
    }
}

macro_rules! string_newtype {
    ($t:ident) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $t {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $t {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
    };
}
string_newtype!(AdapterName);
string_newtype!(AdapterAlias);
string_newtype!(AdapterVersion);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DIGEST: &str = "3f2a9c0112345678901234567890123456789012345678901234567890abcdef";

    #[test]
    fn references_parse_into_one_meaning() {
        let cases = [
            (
                "support".to_owned(),
                AdapterSelector::Alias(AdapterAlias::prod()),
            ),
            (
                "support@canary".to_owned(),
                AdapterSelector::Alias(AdapterAlias::parse("canary").unwrap()),
            ),
            ("support@v12".to_owned(), AdapterSelector::Number(12)),
            (
                "support@3f2a9c01".to_owned(),
                AdapterSelector::Digest(DigestPrefix("3f2a9c01".into())),
            ),
            (
                format!("support@{DIGEST}"),
                AdapterSelector::Digest(DigestPrefix(DIGEST.into())),
            ),
        ];
        for (input, want) in cases {
            let r = AdapterRef::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.name.as_str(), "support", "{input}");
            assert_eq!(r.selector, want, "{input}");
        }
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "", "base", "Support", "a b", "x@", "x@v0", "x@3f2a", "x@Prod", "@prod", "x@a@b", "-x",
        ] {
            assert!(AdapterRef::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn aliases_never_look_like_versions() {
        for bad in ["v0", "v1", "v22", "deadbeef", "abcdef0123", "1abc", ""] {
            assert!(AdapterAlias::parse(bad).is_err(), "{bad:?}");
        }
        for ok in ["prod", "canary", "v", "v1x", "deadbeefz", "staging-2"] {
            assert!(AdapterAlias::parse(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn versions_are_full_lowercase_sha256() {
        assert!(AdapterVersion::parse(DIGEST).is_ok());
        assert!(AdapterVersion::parse(&DIGEST.to_uppercase()).is_err());
        assert!(AdapterVersion::parse(&DIGEST[..63]).is_err());
        let v = AdapterVersion::from_digest(&[0xab; 32]);
        assert_eq!(v.as_str(), "ab".repeat(32));
        assert_eq!(v.short(), "abababababab");
    }
}
