use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id. UUID v7 is time-ordered, so new rows land at the end of B-tree indexes.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an id read back from the database (already a valid UUID).
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            pub const fn into_uuid(self) -> Uuid {
                self.0
            }

            pub fn parse(s: &str) -> Result<Self, DomainError> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| DomainError::InvalidId {
                    kind: $kind,
                    value: s.chars().take(64).collect(),
                })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

uuid_id!(
    /// A tenant: the unit of isolation. Every tenant-scoped repository function takes one first.
    TenantId,
    "tenant id"
);
uuid_id!(
    /// A user account (a person who logs in with email and password, or through the IdP).
    UserId,
    "user id"
);
uuid_id!(
    /// An API key (its public identity; the secret is never part of it).
    ApiKeyId,
    "api key id"
);

/// The id that ties logs, audit records and responses of one request together: the caller's
/// `X-Request-Id` when it is sane (1..=128 of `[A-Za-z0-9._:-]`), or a fresh UUID v7.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestId(String);

impl RequestId {
    pub const MAX_LEN: usize = 128;

    pub fn new() -> Self {
        Self(Uuid::now_v7().to_string())
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.is_empty() {
            return Err(DomainError::InvalidRequestId { reason: "empty" });
        }
        if s.len() > Self::MAX_LEN {
            return Err(DomainError::InvalidRequestId {
                reason: "longer than 128 characters",
            });
        }
        let ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if !ok {
            return Err(DomainError::InvalidRequestId {
                reason: "only letters, digits and . _ : - are allowed",
            });
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RequestId {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for RequestId {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<RequestId> for String {
    fn from(id: RequestId) -> String {
        id.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let id = TenantId::new();
        assert_eq!(id.to_string().parse::<TenantId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<TenantId>(&json).unwrap(), id);
    }

    #[test]
    fn bad_ids_name_their_kind() {
        let err = "not-a-uuid".parse::<ApiKeyId>().unwrap_err();
        assert_eq!(err.code(), "invalid_id");
        assert!(err.to_string().contains("api key id"), "{err}");
        assert!(serde_json::from_str::<UserId>("\"x\"").is_err());
    }

    #[test]
    fn new_ids_are_time_ordered() {
        let a = UserId::new();
        let b = UserId::new();
        assert!(a < b, "v7 ids sort by creation time: {a} {b}");
    }

    #[test]
    fn request_ids_accept_sane_caller_values_only() {
        assert_eq!(
            RequestId::parse("abc-123_x.y:z").unwrap().as_str(),
            "abc-123_x.y:z"
        );
        for bad in ["", "a b", "x\ny", "é", &"a".repeat(129)] {
            assert!(RequestId::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(RequestId::new().as_str().len() == 36);
    }
}
