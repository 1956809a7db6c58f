use chrono::{Duration, Utc};
use enclave_store::{NewRefreshToken, Rotation, TestDb, ThrottlePolicy};

use crate::{tenant, user};

fn token(user_id: enclave_domain::UserId, hash: u8) -> NewRefreshToken {
    NewRefreshToken {
        user_id,
        tenant_id: None,
        family_id: uuid::Uuid::now_v7(),
        token_hash: [hash; 32],
        expires_at: Utc::now() + Duration::hours(1),
    }
}

#[tokio::test]
async fn refresh_rotation_and_reuse_revokes_the_family() {
    let db = TestDb::fresh().await;
    let store = db.store();
    let t = tenant(store, "alpha").await;
    let u = user(store, "a@alpha.test").await;
    let mut first = token(u.id, 1);
    first.tenant_id = Some(t.id);
    let rec = store.refresh_tokens().insert(&first).await.unwrap();

    let Rotation::Rotated { previous, next } = store
        .refresh_tokens()
        .rotate(&[1; 32], token(u.id, 2))
        .await
        .unwrap()
    else {
        panic!("first use rotates")
    };
    assert_eq!(previous.id, rec.id);
    assert_eq!(
        (next.family_id, next.tenant_id, next.user_id),
        (rec.family_id, Some(t.id), u.id)
    );

    // Replaying the first token: reuse, and the successor dies with the family.
    let reuse = store
        .refresh_tokens()
        .rotate(&[1; 32], token(u.id, 3))
        .await
        .unwrap();
    assert!(
        matches!(reuse, Rotation::Reused { family_id, .. } if family_id == rec.family_id),
        "{reuse:?}"
    );
    let after = store
        .refresh_tokens()
        .rotate(&[2; 32], token(u.id, 4))
        .await
        .unwrap();
    assert!(
        matches!(after, Rotation::Reused { .. }),
        "successor must be revoked too: {after:?}"
    );
    assert_eq!(
        store
            .refresh_tokens()
            .rotate(&[9; 32], token(u.id, 5))
            .await
            .unwrap(),
        Rotation::Unknown
    );

    let mut old = token(u.id, 6);
    old.expires_at = Utc::now() - Duration::seconds(1);
    store.refresh_tokens().insert(&old).await.unwrap();
    assert_eq!(
        store
            .refresh_tokens()
            .rotate(&[6; 32], token(u.id, 7))
            .await
            .unwrap(),
        Rotation::Expired
    );
}

#[tokio::test]
async fn logout_revokes_the_family() {
    let db = TestDb::fresh().await;
    let store = db.store();
    let u = user(store, "a@alpha.test").await;
    store
        .refresh_tokens()
        .insert(&token(u.id, 1))
        .await
        .unwrap();
    assert!(
        store
            .refresh_tokens()
            .revoke_family_of(&[1; 32])
            .await
            .unwrap()
    );
    assert!(matches!(
        store
            .refresh_tokens()
            .rotate(&[1; 32], token(u.id, 2))
            .await
            .unwrap(),
        Rotation::Reused { .. }
    ));
    assert!(
        !store
            .refresh_tokens()
            .revoke_family_of(&[8; 32])
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn login_throttle_backs_off_exponentially_after_free_attempts() {
    let db = TestDb::fresh().await;
    let t = db.store().login_throttle();
    let policy = ThrottlePolicy {
        free_attempts: 2,
        base: std::time::Duration::from_secs(10),
        max: std::time::Duration::from_secs(35),
        reset_after: std::time::Duration::from_secs(3600),
    };
    let lock_secs = |s: enclave_store::ThrottleState| {
        s.locked_until.map(|u| (u - Utc::now()).num_milliseconds())
    };
    for expected_failures in 1..=2 {
        let s = t
            .record_failure("a@x.test", "10.0.0.1", &policy)
            .await
            .unwrap();
        assert_eq!((s.failures, s.locked_until), (expected_failures, None));
    }
    let mut locks = Vec::new();
    for _ in 0..4 {
        locks.push(
            lock_secs(
                t.record_failure("a@x.test", "10.0.0.1", &policy)
                    .await
                    .unwrap(),
            )
            .unwrap(),
        );
    }
    let expected = [10_000, 20_000, 35_000, 35_000];
    for (got, want) in locks.iter().zip(expected) {
        assert!(
            (want - 1_000..=want).contains(got),
            "locks {locks:?} vs {expected:?}"
        );
    }
    // Another client address is counted separately; success clears.
    assert!(t.state("a@x.test", "10.0.0.2").await.unwrap().is_none());
    t.clear("a@x.test", "10.0.0.1").await.unwrap();
    assert!(t.state("a@x.test", "10.0.0.1").await.unwrap().is_none());
}
