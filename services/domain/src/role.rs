use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{DomainError, Scope, Scopes};

/// What a principal may do. `PlatformAdmin` is a property of a user account (all tenants);
/// the other three are held per tenant through a membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    PlatformAdmin,
    TenantAdmin,
    Developer,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::PlatformAdmin,
        Role::TenantAdmin,
        Role::Developer,
        Role::Auditor,
    ];
    /// Roles a membership can carry (platform admin is not held per tenant).
    pub const TENANT_ROLES: [Role; 3] = [Role::TenantAdmin, Role::Developer, Role::Auditor];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::TenantAdmin => "tenant_admin",
            Role::Developer => "developer",
            Role::Auditor => "auditor",
        }
    }

    pub const fn is_tenant_role(self) -> bool {
        !matches!(self, Role::PlatformAdmin)
    }

    /// The scopes a user holding this role gets (API keys carry their own list instead).
    pub fn scopes(self) -> Scopes {
        match self {
            Role::PlatformAdmin | Role::TenantAdmin => Scopes::from_iter([Scope::Admin]),
            Role::Developer => Scopes::from_iter([
                Scope::Inference,
                Scope::AdaptersRead,
                Scope::AdaptersWrite,
                Scope::PoliciesRead,
            ]),
            Role::Auditor => Scopes::from_iter([Scope::AuditRead]),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| DomainError::UnknownRole(s.chars().take(64).collect()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_in_text_and_json() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
        }
        assert_eq!("owner".parse::<Role>().unwrap_err().code(), "unknown_role");
        assert_eq!(
            "TENANT_ADMIN".parse::<Role>().unwrap_err().code(),
            "unknown_role"
        );
    }

    #[test]
    fn role_scopes_follow_least_privilege() {
        assert!(Role::TenantAdmin.scopes().allows(Scope::AuditRead));
        assert!(Role::Developer.scopes().allows(Scope::Inference));
        assert!(!Role::Developer.scopes().allows(Scope::AuditRead));
        assert!(!Role::Developer.scopes().allows(Scope::Admin));
        assert!(Role::Auditor.scopes().allows(Scope::AuditRead));
        assert!(!Role::Auditor.scopes().allows(Scope::Inference));
    }
}
