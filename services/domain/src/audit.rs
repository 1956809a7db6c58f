//! A tenant's audit settings: how its records are stored and how long they are kept at least.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// How a tenant's audit records are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditRedaction {
    /// As sent and answered (credentials are always removed).
    #[default]
    Raw,
    /// Every span the policy engine's PII detectors find is replaced by `[PII:<kind>]` before
    /// the record is hashed and written.
    PiiMasked,
}

impl AuditRedaction {
    pub const ALL: [AuditRedaction; 2] = [AuditRedaction::Raw, AuditRedaction::PiiMasked];

    pub const fn as_str(self) -> &'static str {
        match self {
            AuditRedaction::Raw => "raw",
            AuditRedaction::PiiMasked => "pii_masked",
        }
    }
}

impl fmt::Display for AuditRedaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditRedaction {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        AuditRedaction::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| DomainError::UnknownRedaction(s.chars().take(64).collect()))
    }
}

/// The minimum number of days audit records are kept: 1 to [`RetentionDays::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct RetentionDays(u32);

impl RetentionDays {
    /// A century: longer is a typo, not a policy (use "keep forever" instead).
    pub const MAX: u32 = 36_500;

    pub fn new(days: i64) -> Result<Self, DomainError> {
        match u32::try_from(days) {
            Ok(d) if (1..=Self::MAX).contains(&d) => Ok(RetentionDays(d)),
            _ => Err(DomainError::InvalidRetention { days }),
        }
    }

    pub const fn days(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for RetentionDays {
    type Error = DomainError;
    fn try_from(d: u32) -> Result<Self, DomainError> {
        RetentionDays::new(i64::from(d))
    }
}

impl From<RetentionDays> for u32 {
    fn from(r: RetentionDays) -> u32 {
        r.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn redaction_names_round_trip_and_unknown_ones_are_refused() {
        for r in AuditRedaction::ALL {
            assert_eq!(r.as_str().parse::<AuditRedaction>().unwrap(), r);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        assert_eq!(
            "masked".parse::<AuditRedaction>().unwrap_err().code(),
            "unknown_redaction"
        );
    }

    #[test]
    fn retention_is_one_day_to_a_century() {
        assert_eq!(RetentionDays::new(1).unwrap().days(), 1);
        assert_eq!(RetentionDays::new(36_500).unwrap().days(), 36_500);
        for bad in [0, -1, 36_501, i64::MAX] {
            assert_eq!(
                RetentionDays::new(bad).unwrap_err().code(),
                "invalid_retention_days"
            );
        }
    }
}
