use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A permission an API key (or, through its role, a user) carries. `Admin` implies every other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Scope {
    /// Chat and text completions, model listing.
    Inference,
    AdaptersRead,
    AdaptersWrite,
    PoliciesRead,
    PoliciesWrite,
    AuditRead,
    /// Everything in the tenant: users, keys, limits, plus all scopes above.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::Inference,
        Scope::AdaptersRead,
        Scope::AdaptersWrite,
        Scope::PoliciesRead,
        Scope::PoliciesWrite,
        Scope::AuditRead,
        Scope::Admin,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Inference => "inference",
            Scope::AdaptersRead => "adapters:read",
            Scope::AdaptersWrite => "adapters:write",
            Scope::PoliciesRead => "policies:read",
            Scope::PoliciesWrite => "policies:write",
            Scope::AuditRead => "audit:read",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or_else(|| DomainError::UnknownScope(s.chars().take(64).collect()))
    }
}

impl TryFrom<String> for Scope {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Scope> for &'static str {
    fn from(s: Scope) -> &'static str {
        s.as_str()
    }
}

/// A set of scopes (no duplicates, stable order). Serialised as a JSON array of scope names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Whether an action needing `scope` is allowed (`admin` allows everything).
    pub fn allows(&self, scope: Scope) -> bool {
        self.0.contains(&scope) || self.0.contains(&Scope::Admin)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// Scope names, e.g. for a `text[]` column.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|s| s.as_str().to_owned()).collect()
    }

    /// Parses every name; the first unknown one is the error.
    pub fn parse_all<I, S>(names: I) -> Result<Self, DomainError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        names
            .into_iter()
            .map(|n| n.as_ref().parse())
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Scopes)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        Scopes(iter.into_iter().collect())
    }
}

impl fmt::Display for Scopes {
    /// Space-separated, as in OAuth's `scope` claim.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(s.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for Scopes {
    type Err = DomainError;
    /// Space- or comma-separated names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scopes::parse_all(s.split([' ', ',']).filter(|p| !p.is_empty()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
            assert_eq!(
                serde_json::to_string(&scope).unwrap(),
                format!("\"{scope}\"")
            );
        }
        assert_eq!(
            "adapters:delete".parse::<Scope>().unwrap_err().code(),
            "unknown_scope"
        );
    }

    #[test]
    fn scopes_parse_dedupe_and_serialise_as_a_list() {
        let scopes: Scopes = "inference, audit:read inference".parse().unwrap();
        assert_eq!(scopes.to_strings(), ["inference", "audit:read"]);
        assert_eq!(
            serde_json::to_string(&scopes).unwrap(),
            r#"["inference","audit:read"]"#
        );
        let back: Scopes = serde_json::from_str(r#"["audit:read","inference"]"#).unwrap();
        assert_eq!(back, scopes);
        assert!(serde_json::from_str::<Scopes>(r#"["root"]"#).is_err());
    }

    #[test]
    fn admin_implies_everything_and_others_imply_only_themselves() {
        let admin = Scopes::from_iter([Scope::Admin]);
        assert!(Scope::ALL.iter().all(|s| admin.allows(*s)));
        let read = Scopes::from_iter([Scope::AdaptersRead]);
        assert!(read.allows(Scope::AdaptersRead));
        assert!(!read.allows(Scope::AdaptersWrite));
        assert!(!Scopes::empty().allows(Scope::Inference));
    }
}
