//! Integration tests against a real throwaway PostgreSQL: logins, tokens, keys and the attacks
//! the gateway must refuse.

#![allow(clippy::unwrap_used)]

mod attacks;
mod keys;
mod sessions;
mod storage;

use std::time::Duration;

use enclave_auth::{AuthConfig, Authenticator};
use enclave_domain::{Email, Role, TenantSlug};
use enclave_store::{NewTenant, Tenant, TestDb, ThrottlePolicy, User};

pub const PASSWORD: &str = "correct horse battery staple";

pub fn config() -> AuthConfig {
    AuthConfig {
        throttle: ThrottlePolicy {
            free_attempts: 3,
            base: Duration::from_secs(30),
            max: Duration::from_secs(600),
            reset_after: Duration::from_secs(3600),
        },
        ..AuthConfig::default()
    }
}

pub async fn setup() -> (TestDb, Authenticator) {
    let db = TestDb::fresh().await;
    let auth = Authenticator::new(db.store().clone(), config())
        .await
        .unwrap();
    (db, auth)
}

pub async fn tenant(auth: &Authenticator, slug: &str) -> Tenant {
    auth.store()
        .tenants()
        .create(NewTenant {
            slug: TenantSlug::parse(slug).unwrap(),
            name: slug.into(),
        })
        .await
        .unwrap()
}

/// A user with `PASSWORD` and `role` in `tenant`.
pub async fn member(auth: &Authenticator, email: &str, tenant: &Tenant, role: Role) -> User {
    let user = auth
        .create_user(&Email::parse(email).unwrap(), PASSWORD, false)
        .await
        .unwrap();
    auth.store()
        .memberships()
        .upsert(&tenant.id, &user.id, role)
        .await
        .unwrap();
    user
}

pub fn login<'a>(email: &'a str, password: &'a str) -> enclave_auth::LoginRequest<'a> {
    enclave_auth::LoginRequest {
        email,
        password,
        tenant: None,
        client_ip: "192.0.2.1",
    }
}
