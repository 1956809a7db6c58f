//! Integration tests against a real throwaway PostgreSQL (one cluster per process, one database
//! per test).

#![allow(clippy::unwrap_used)]

mod adapters;
mod audit_settings;
mod auth_tables;
mod classifiers;
mod limits;
mod output_templates;
mod schema;
mod tenancy;

use enclave_domain::{Email, Scopes, TenantSlug};
use enclave_store::{NewApiKey, NewTenant, NewUser, Store, Tenant, User};

pub async fn tenant(store: &Store, slug: &str) -> Tenant {
    store
        .tenants()
        .create(NewTenant {
            slug: TenantSlug::parse(slug).unwrap(),
            name: format!("{slug} Inc."),
        })
        .await
        .unwrap()
}

pub async fn user(store: &Store, email: &str) -> User {
    store
        .users()
        .create(NewUser {
            email: Email::parse(email).unwrap(),
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into()),
            is_platform_admin: false,
        })
        .await
        .unwrap()
}

pub fn new_key(prefix: &str) -> NewApiKey {
    NewApiKey {
        name: "ci".into(),
        prefix: prefix.into(),
        secret_hash: [7; 32],
        scopes: "inference".parse::<Scopes>().unwrap(),
        expires_at: None,
        created_by: None,
        requests_per_minute: None,
        tokens_per_minute: None,
    }
}
