use serde::{Deserialize, Serialize};

use crate::{ApiKeyId, Role, Scope, Scopes, TenantId, UserId};

/// Who is calling, established by authentication and immutable for the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    User(UserId),
    ApiKey(ApiKeyId),
}

/// An authenticated caller. `tenant_id` is `None` only for a platform admin acting outside any
/// tenant; everything a handler does on a tenant's data goes through [`Principal::tenant_id`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub actor: Actor,
    pub tenant_id: Option<TenantId>,
    pub role: Role,
    pub scopes: Scopes,
}

impl Principal {
    /// A user acting with `role` (its scopes follow from the role).
    pub fn user(user: UserId, tenant_id: Option<TenantId>, role: Role) -> Self {
        Principal {
            actor: Actor::User(user),
            tenant_id,
            role,
            scopes: role.scopes(),
        }
    }

    /// An API key of `tenant` with its own scope list. Its role is informational (`tenant_admin`
    /// for a key holding `admin`, `auditor` for an audit-only key, else `developer`);
    /// authorisation decisions use the scopes.
    pub fn api_key(key: ApiKeyId, tenant: TenantId, scopes: Scopes) -> Self {
        let role = if scopes.iter().any(|s| s == Scope::Admin) {
            Role::TenantAdmin
        } else if !scopes.is_empty() && scopes.iter().all(|s| s == Scope::AuditRead) {
            Role::Auditor
        } else {
            Role::Developer
        };
        Principal {
            actor: Actor::ApiKey(key),
            tenant_id: Some(tenant),
            role,
            scopes,
        }
    }

    pub fn is_platform_admin(&self) -> bool {
        self.role == Role::PlatformAdmin
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.allows(scope)
    }

    pub fn user_id(&self) -> Option<UserId> {
        match self.actor {
            Actor::User(u) => Some(u),
            Actor::ApiKey(_) => None,
        }
    }

    pub fn api_key_id(&self) -> Option<ApiKeyId> {
        match self.actor {
            Actor::ApiKey(k) => Some(k),
            Actor::User(_) => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_principals_get_a_role_from_their_scopes() {
        let t = TenantId::new();
        let k = ApiKeyId::new();
        let p = Principal::api_key(k, t, Scopes::from_iter([Scope::Inference]));
        assert_eq!(p.role, Role::Developer);
        assert!(p.allows(Scope::Inference) && !p.allows(Scope::Admin));
        assert_eq!(p.api_key_id(), Some(k));
        assert_eq!(
            Principal::api_key(k, t, Scopes::from_iter([Scope::Admin])).role,
            Role::TenantAdmin
        );
        assert_eq!(
            Principal::api_key(k, t, Scopes::from_iter([Scope::AuditRead])).role,
            Role::Auditor
        );
    }

    #[test]
    fn user_principals_take_scopes_from_their_role() {
        let p = Principal::user(UserId::new(), None, Role::PlatformAdmin);
        assert!(p.is_platform_admin() && p.allows(Scope::AuditRead));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["actor"]["kind"], "user");
        assert_eq!(json["role"], "platform_admin");
    }
}
