//! Each way of forging or replaying an access token, refused with its own reason.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::Utc;
use enclave_auth::{AccessClaims, AuthError};
use enclave_domain::Role;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::{PASSWORD, login, member, setup, tenant};

fn claims_for(sub: &str, tenant: &enclave_domain::TenantId, exp_offset: i64) -> AccessClaims {
    let now = Utc::now().timestamp();
    AccessClaims {
        sub: sub.to_owned(),
        tenant: Some(tenant.to_string()),
        role: "developer".into(),
        iat: now,
        exp: now + exp_offset,
        jti: "j".into(),
        iss: "enclave".into(),
        aud: "enclave-api".into(),
    }
}

/// `what` is the case's name; for `invalid_token` it must also be the refusal's reason when
/// it names one of the reasons below, so each attack is proven to fail at its own check.
fn expect_code(r: Result<enclave_domain::Principal, AuthError>, code: &str, what: &str) {
    const REASONS: [&str; 6] = [
        "bad signature",
        "algorithm not allowed",
        "unknown signing key",
        "wrong issuer",
        "wrong audience",
        "malformed",
    ];
    match r {
        Err(e) => {
            assert_eq!(e.code(), code, "{what}: {e}");
            if REASONS.contains(&what) {
                assert!(
                    e.to_string().contains(what),
                    "{what}: refused for another reason: {e}"
                );
            }
        }
        Ok(p) => panic!("{what}: accepted as {p:?}"),
    }
}

/// A PKCS#8 Ed25519 key that is not in the ring.
fn foreign_key() -> EncodingKey {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[42u8; 32]);
    EncodingKey::from_ed_der(&der)
}

#[tokio::test]
async fn forged_and_stale_access_tokens_are_refused() {
    let (db, auth) = setup().await;
    let t = tenant(&auth, "alpha").await;
    let u = member(&auth, "dev@alpha.test", &t, Role::Developer).await;
    let sub = u.id.to_string();
    let ring = auth.key_ring();
    let kid = ring.active_kid().unwrap();

    // Control: a well-formed token of ours is accepted.
    let good = ring.sign(&claims_for(&sub, &t.id, 600)).await.unwrap();
    assert_eq!(
        auth.authenticate(&good).await.unwrap().user_id(),
        Some(u.id)
    );

    expect_code(
        auth.authenticate(&ring.sign(&claims_for(&sub, &t.id, -60)).await.unwrap())
            .await,
        "token_expired",
        "expired",
    );

    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.clone());
    let forged =
        jsonwebtoken::encode(&header, &claims_for(&sub, &t.id, 600), &foreign_key()).unwrap();
    expect_code(
        auth.authenticate(&forged).await,
        "invalid_token",
        "bad signature",
    );

    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut sig = B64.decode(&parts[2]).unwrap();
    sig[0] ^= 1;
    parts[2] = B64.encode(sig);
    expect_code(
        auth.authenticate(&parts.join(".")).await,
        "invalid_token",
        "bad signature",
    );

    let none_header = B64.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#));
    let payload = B64.encode(serde_json::to_vec(&claims_for(&sub, &t.id, 600)).unwrap());
    expect_code(
        auth.authenticate(&format!("{none_header}.{payload}."))
            .await,
        "invalid_token",
        "malformed",
    );

    // HS256 keyed with our public key (the classic RS/HS confusion, here EdDSA/HS).
    let public: Vec<u8> =
        sqlx::query_scalar("SELECT public_key FROM signing_keys WHERE status = 'active'")
            .fetch_one(db.admin_pool())
            .await
            .unwrap();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(kid.clone());
    let confused = jsonwebtoken::encode(
        &hs,
        &claims_for(&sub, &t.id, 600),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    expect_code(
        auth.authenticate(&confused).await,
        "invalid_token",
        "algorithm not allowed",
    );

    let mut unknown = Header::new(Algorithm::EdDSA);
    unknown.kid = Some("no-such-kid".into());
    let t_unknown =
        jsonwebtoken::encode(&unknown, &claims_for(&sub, &t.id, 600), &foreign_key()).unwrap();
    expect_code(
        auth.authenticate(&t_unknown).await,
        "invalid_token",
        "unknown signing key",
    );

    let mut wrong_iss = claims_for(&sub, &t.id, 600);
    wrong_iss.iss = "someone-else".into();
    expect_code(
        auth.authenticate(&ring.sign(&wrong_iss).await.unwrap())
            .await,
        "invalid_token",
        "wrong issuer",
    );
    let mut wrong_aud = claims_for(&sub, &t.id, 600);
    wrong_aud.aud = "other-api".into();
    expect_code(
        auth.authenticate(&ring.sign(&wrong_aud).await.unwrap())
            .await,
        "invalid_token",
        "wrong audience",
    );

    // A developer cannot mint themselves platform admin: the account must hold it.
    let mut escalated = claims_for(&sub, &t.id, 600);
    escalated.role = "platform_admin".into();
    expect_code(
        auth.authenticate(&ring.sign(&escalated).await.unwrap())
            .await,
        "user_inactive",
        "role escalation",
    );

    for junk in ["", "a.b", "a.b.c", "Bearer x", &good[..good.len() - 10]] {
        expect_code(auth.authenticate(junk).await, "invalid_token", junk);
    }
    let _ = PASSWORD;
}

#[tokio::test]
async fn tokens_of_deleted_or_disabled_users_are_refused() {
    let (db, auth) = setup().await;
    let t = tenant(&auth, "alpha").await;
    let gone = member(&auth, "gone@alpha.test", &t, Role::Developer).await;
    let off = member(&auth, "off@alpha.test", &t, Role::Developer).await;
    let gone_pair = auth
        .login(login("gone@alpha.test", PASSWORD))
        .await
        .unwrap();
    let off_pair = auth.login(login("off@alpha.test", PASSWORD)).await.unwrap();
    auth.authenticate(&gone_pair.access_token).await.unwrap();
    auth.authenticate(&off_pair.access_token).await.unwrap();

    // A second gateway process (its own cache) sharing the database.
    let other = enclave_auth::Authenticator::new(db.store().clone(), crate::config())
        .await
        .unwrap();
    other.authenticate(&gone_pair.access_token).await.unwrap();

    auth.delete_user(&gone.id).await.unwrap();
    auth.set_user_disabled(&off.id, true).await.unwrap();
    expect_code(
        auth.authenticate(&gone_pair.access_token).await,
        "user_inactive",
        "deleted user",
    );
    expect_code(
        auth.authenticate(&off_pair.access_token).await,
        "user_inactive",
        "disabled user",
    );
    // The other process notices within its cache TTL.
    tokio::time::sleep(other.config().user_status_ttl).await;
    expect_code(
        other.authenticate(&gone_pair.access_token).await,
        "user_inactive",
        "deleted user elsewhere",
    );

    // Their sessions are over too.
    assert!(auth.refresh(&gone_pair.refresh_token).await.is_err());
    assert!(auth.refresh(&off_pair.refresh_token).await.is_err());
    assert_eq!(
        auth.login(login("off@alpha.test", PASSWORD))
            .await
            .unwrap_err()
            .code(),
        "invalid_credentials"
    );
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_retired() {
    let (db, auth) = setup().await;
    let t = tenant(&auth, "alpha").await;
    member(&auth, "dev@alpha.test", &t, Role::Developer).await;
    let before = auth.login(login("dev@alpha.test", PASSWORD)).await.unwrap();
    let old_kid = auth.key_ring().active_kid().unwrap();

    // Another gateway rotates; this one picks it up from Postgres.
    let other = enclave_auth::Authenticator::new(db.store().clone(), crate::config())
        .await
        .unwrap();
    let new_kid = other.rotate_signing_key().await.unwrap();
    assert_ne!(new_kid, old_kid);
    let after = other
        .login(login("dev@alpha.test", PASSWORD))
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&after.access_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    auth.authenticate(&after.access_token)
        .await
        .expect("unknown kid triggers a reload");
    auth.authenticate(&before.access_token)
        .await
        .expect("old key still verifies");
    other
        .authenticate(&before.access_token)
        .await
        .expect("old key still verifies elsewhere");

    auth.store().signing_keys().retire(&old_kid).await.unwrap();
    let fresh = enclave_auth::Authenticator::new(db.store().clone(), crate::config())
        .await
        .unwrap();
    expect_code(
        fresh.authenticate(&before.access_token).await,
        "invalid_token",
        "retired key",
    );
    fresh.authenticate(&after.access_token).await.unwrap();
    assert_eq!(
        auth.store()
            .signing_keys()
            .retire(&new_kid)
            .await
            .unwrap_err()
            .code(),
        "not_found",
        "active key cannot be retired"
    );
}

#[tokio::test]
async fn live_tokens_follow_membership_and_tenant_status() {
    let (_db, auth) = setup().await;
    let t = tenant(&auth, "alpha").await;
    let dev = member(&auth, "dev@alpha.test", &t, Role::Developer).await;
    let pair = auth.login(login("dev@alpha.test", PASSWORD)).await.unwrap();
    let key = auth
        .create_api_key(
            &t.id,
            enclave_auth::NewApiKeyRequest {
                name: "ci".into(),
                scopes: enclave_domain::Scopes::from_iter([enclave_domain::Scope::Inference]),
                expires_at: None,
                created_by: None,
                requests_per_minute: None,
                tokens_per_minute: None,
            },
        )
        .await
        .unwrap();

    // A role change applies to the token at once: the token's own claim is history.
    auth.store()
        .memberships()
        .upsert(&t.id, &dev.id, Role::Auditor)
        .await
        .unwrap();
    auth.forget_user(&dev.id);
    assert_eq!(
        auth.authenticate(&pair.access_token).await.unwrap().role,
        Role::Auditor
    );

    // Suspension refuses the tenant's tokens and keys; resuming lets them back in.
    auth.set_tenant_status(&t.id, enclave_store::TenantStatus::Suspended)
        .await
        .unwrap();
    expect_code(
        auth.authenticate(&pair.access_token).await,
        "tenant_suspended",
        "token of a suspended tenant",
    );
    expect_code(
        auth.authenticate(&key.key).await,
        "tenant_suspended",
        "key of a suspended tenant",
    );
    auth.set_tenant_status(&t.id, enclave_store::TenantStatus::Active)
        .await
        .unwrap();
    auth.authenticate(&key.key).await.unwrap();

    // Removing the membership ends the token and the session.
    auth.remove_member(&t.id, &dev.id).await.unwrap();
    expect_code(
        auth.authenticate(&pair.access_token).await,
        "user_inactive",
        "token after removal from the tenant",
    );
    assert!(auth.refresh(&pair.refresh_token).await.is_err());
}
