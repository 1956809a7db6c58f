use chrono::{Duration, Utc};
use enclave_auth::NewApiKeyRequest;
use enclave_domain::{Scope, Scopes};

use crate::{setup, tenant};

fn request(expires_in: Option<Duration>) -> NewApiKeyRequest {
    NewApiKeyRequest {
        name: "ci".into(),
        scopes: Scopes::from_iter([Scope::Inference, Scope::AdaptersRead]),
        expires_at: expires_in.map(|d| Utc::now() + d),
        created_by: None,
        requests_per_minute: None,
        tokens_per_minute: None,
    }
}

#[tokio::test]
async fn api_keys_authenticate_until_revoked_or_expired() {
    let (_db, auth) = setup().await;
    let a = tenant(&auth, "alpha").await;
    let created = auth.create_api_key(&a.id, request(None)).await.unwrap();
    assert!(created.key.starts_with(&created.record.prefix));
    let p = auth.authenticate(&created.key).await.unwrap();
    assert_eq!(
        (p.api_key_id(), p.tenant_id),
        (Some(created.record.id), Some(a.id))
    );
    assert!(p.allows(Scope::Inference) && !p.allows(Scope::AdaptersWrite));

    // Same prefix, wrong secret; truncated; garbage.
    let (prefix, secret) = created
        .key
        .rsplit_once('_')
        .map(|(p, s)| (p.to_owned(), s.to_owned()))
        .unwrap();
    let wrong = format!("{prefix}_{}", secret.chars().rev().collect::<String>());
    for bad in [
        wrong.as_str(),
        &created.key[..created.key.len() - 1],
        "enc_nope",
    ] {
        assert_eq!(
            auth.authenticate(bad).await.unwrap_err().code(),
            "invalid_api_key",
            "{bad}"
        );
    }

    auth.store()
        .api_keys()
        .revoke(&a.id, &created.record.id)
        .await
        .unwrap();
    assert_eq!(
        auth.authenticate(&created.key).await.unwrap_err().code(),
        "key_revoked"
    );

    let short = auth
        .create_api_key(&a.id, request(Some(Duration::seconds(-1))))
        .await
        .unwrap();
    assert_eq!(
        auth.authenticate(&short.key).await.unwrap_err().code(),
        "key_expired"
    );
}

#[tokio::test]
async fn key_use_is_recorded_off_the_request_path() {
    let (_db, auth) = setup().await;
    let a = tenant(&auth, "alpha").await;
    let created = auth.create_api_key(&a.id, request(None)).await.unwrap();
    assert!(created.record.last_used_at.is_none());
    auth.authenticate(&created.key).await.unwrap();
    let mut used = None;
    for _ in 0..50 {
        used = auth
            .store()
            .api_keys()
            .get(&a.id, &created.record.id)
            .await
            .unwrap()
            .last_used_at;
        if used.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(used.is_some(), "last_used_at written in the background");
    // A second use within the minute does not write again.
    assert!(
        !auth
            .store()
            .api_keys()
            .touch(&a.id, &created.record.id)
            .await
            .unwrap()
    );
}
