use chrono::{DurationRound, TimeDelta, Utc};
use enclave_store::{TenantLimits, TestDb};

use crate::{new_key, tenant};

#[tokio::test]
async fn windows_count_per_subject_and_roll_over() {
    let db = TestDb::fresh().await;
    let store = db.store();
    let a = tenant(store, "alpha").await;
    let b = tenant(store, "bravo").await;
    let key = store
        .api_keys()
        .create(&a.id, new_key("enc_aaaaaaaaaa"))
        .await
        .unwrap();
    store
        .api_keys()
        .set_limits(&a.id, &key.id, Some(5), Some(100))
        .await
        .unwrap();
    store
        .rate_limits()
        .set_tenant_limits(
            &a.id,
            TenantLimits {
                requests_per_minute: Some(10),
                tokens_per_minute: None,
                monthly_token_budget: Some(50),
            },
        )
        .await
        .unwrap();
    let w0 = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap();
    let w1 = w0 + TimeDelta::minutes(1);

    let rl = store.rate_limits();
    rl.hit(&a.id, Some(&key.id), w0, 3).await.unwrap();
    rl.hit(&a.id, None, w0, 4).await.unwrap();
    let s = rl.hit(&a.id, Some(&key.id), w0, 5).await.unwrap();
    assert_eq!((s.tenant.requests, s.tenant.tokens), (3, 12));
    let k = s.key.unwrap();
    assert_eq!((k.requests, k.tokens), (2, 8));
    assert_eq!(s.key_limits.unwrap().requests_per_minute, Some(5));
    assert_eq!(s.tenant_limits.monthly_token_budget, Some(50));
    assert_eq!(s.month_tokens, 7, "tokens before this request");

    rl.add_tokens(&a.id, Some(&key.id), w0, 20).await.unwrap();
    let s = rl.hit(&a.id, Some(&key.id), w1, 1).await.unwrap();
    assert_eq!(
        (
            s.tenant.requests,
            s.tenant.prev_requests,
            s.tenant.prev_tokens
        ),
        (1, 3, 32)
    );
    assert_eq!(
        (s.key.unwrap().prev_requests, s.key.unwrap().prev_tokens),
        (2, 28)
    );
    assert_eq!(s.month_tokens, 32);

    // Tenant B's counters are its own.
    let sb = rl.hit(&b.id, None, w0, 1).await.unwrap();
    assert_eq!((sb.tenant.requests, sb.month_tokens), (1, 0));
    let usage = rl.usage(&a.id, w0).await.unwrap();
    assert_eq!((usage.requests, usage.tokens), (4, 33));

    assert_eq!(
        rl.prune_windows(w1).await.unwrap(),
        3,
        "tenant A, key, tenant B windows at w0"
    );
}
