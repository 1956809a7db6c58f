use enclave_auth::AuthError;
use enclave_domain::{Email, Role};

use crate::{PASSWORD, login, member, setup, tenant};

#[tokio::test]
async fn login_refresh_and_logout() {
    let (_db, auth) = setup().await;
    let t = tenant(&auth, "alpha").await;
    let u = member(&auth, "Dev@Alpha.test", &t, Role::Developer).await;
    let pair = auth
        .login(login("  dev@ALPHA.test", PASSWORD))
        .await
        .unwrap();
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(pair.expires_in, 900);
    let p = auth.authenticate(&pair.access_token).await.unwrap();
    assert_eq!(
        (p.user_id(), p.tenant_id, p.role),
        (Some(u.id), Some(t.id), Role::Developer)
    );

    let next = auth.refresh(&pair.refresh_token).await.unwrap();
    assert_ne!(next.refresh_token, pair.refresh_token);
    assert_eq!(
        auth.authenticate(&next.access_token)
            .await
            .unwrap()
            .tenant_id,
        Some(t.id)
    );

    auth.logout(&next.refresh_token).await.unwrap();
    assert!(
        auth.refresh(&next.refresh_token).await.is_err(),
        "logged-out session cannot refresh"
    );
    auth.logout("ert_unknown").await.unwrap();
    assert_eq!(
        auth.refresh("ert_unknown").await.unwrap_err().code(),
        "invalid_refresh_token"
    );
}

#[tokio::test]
async fn reusing_a_refresh_token_revokes_the_whole_family() {
    let (_db, auth) = setup().await;
    let t = tenant(&auth, "alpha").await;
    member(&auth, "dev@alpha.test", &t, Role::Developer).await;
    let first = auth.login(login("dev@alpha.test", PASSWORD)).await.unwrap();
    let second = auth.refresh(&first.refresh_token).await.unwrap();

    let replay = auth.refresh(&first.refresh_token).await.unwrap_err();
    assert_eq!(replay.code(), "refresh_token_reused");
    // The attacker may hold `second`; it is dead as well.
    assert_eq!(
        auth.refresh(&second.refresh_token)
            .await
            .unwrap_err()
            .code(),
        "refresh_token_reused"
    );
    // A separate login (another family) is unaffected.
    let other = auth.login(login("dev@alpha.test", PASSWORD)).await.unwrap();
    auth.refresh(&other.refresh_token).await.unwrap();
}

#[tokio::test]
async fn failed_logins_are_throttled_with_backoff() {
    let (_db, auth) = setup().await;
    let t = tenant(&auth, "alpha").await;
    member(&auth, "dev@alpha.test", &t, Role::Developer).await;
    for _ in 0..3 {
        assert_eq!(
            auth.login(login("dev@alpha.test", "wrong password!"))
                .await
                .unwrap_err()
                .code(),
            "invalid_credentials"
        );
    }
    // The 4th failure locks (30 s base in the test config) ...
    assert_eq!(
        auth.login(login("dev@alpha.test", "wrong password!"))
            .await
            .unwrap_err()
            .code(),
        "invalid_credentials"
    );
    // ... and then even the right password waits.
    match auth.login(login("dev@alpha.test", PASSWORD)).await {
        Err(AuthError::Throttled { retry_after_secs }) => {
            assert!((25..=30).contains(&retry_after_secs), "{retry_after_secs}")
        }
        other => panic!("expected throttling, got {other:?}"),
    }
    // Another client address is not locked out by this one's failures.
    let mut elsewhere = login("dev@alpha.test", PASSWORD);
    elsewhere.client_ip = "198.51.100.7";
    auth.login(elsewhere).await.unwrap();
    // Unknown accounts are throttled the same way (no enumeration through the lock).
    for _ in 0..4 {
        let _ = auth.login(login("nobody@alpha.test", "whatever123")).await;
    }
    assert_eq!(
        auth.login(login("nobody@alpha.test", "whatever123"))
            .await
            .unwrap_err()
            .code(),
        "login_throttled"
    );
}

#[tokio::test]
async fn tenant_selection_at_login() {
    let (_db, auth) = setup().await;
    let a = tenant(&auth, "alpha").await;
    let b = tenant(&auth, "bravo").await;
    let c = tenant(&auth, "charlie").await;
    let u = member(&auth, "both@x.test", &a, Role::Developer).await;
    auth.store()
        .memberships()
        .upsert(&b.id, &u.id, Role::Auditor)
        .await
        .unwrap();

    assert_eq!(
        auth.login(login("both@x.test", PASSWORD))
            .await
            .unwrap_err()
            .code(),
        "tenant_required"
    );
    let mut in_b = login("both@x.test", PASSWORD);
    in_b.tenant = Some(b.id);
    let pair = auth.login(in_b).await.unwrap();
    assert_eq!(
        (pair.principal.tenant_id, pair.principal.role),
        (Some(b.id), Role::Auditor)
    );
    let mut in_c = login("both@x.test", PASSWORD);
    in_c.tenant = Some(c.id);
    assert_eq!(
        auth.login(in_c).await.unwrap_err().code(),
        "invalid_credentials",
        "not a member of C"
    );

    let admin = auth
        .create_user(&Email::parse("root@x.test").unwrap(), PASSWORD, true)
        .await
        .unwrap();
    let pair = auth.login(login("root@x.test", PASSWORD)).await.unwrap();
    let p = auth.authenticate(&pair.access_token).await.unwrap();
    assert_eq!(
        (p.user_id(), p.tenant_id, p.role),
        (Some(admin.id), None, Role::PlatformAdmin)
    );
    assert!(p.is_platform_admin());

    assert_eq!(
        auth.login(login("nobody@x.test", PASSWORD))
            .await
            .unwrap_err()
            .code(),
        "invalid_credentials"
    );
    assert_eq!(
        auth.login(login("not an email", PASSWORD))
            .await
            .unwrap_err()
            .code(),
        "invalid_credentials"
    );
}
