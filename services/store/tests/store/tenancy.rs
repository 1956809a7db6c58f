use enclave_domain::{ApiKeyId, Role, TenantId, TenantSlug};
use enclave_store::{StoreError, TenantLimits, TenantStatus, TestDb};

use crate::{new_key, tenant, user};

#[tokio::test]
async fn rls_hides_other_tenants_rows_even_from_a_query_without_where() {
    let db = TestDb::fresh().await;
    let store = db.store();
    let a = tenant(store, "alpha").await;
    let b = tenant(store, "bravo").await;
    store
        .api_keys()
        .create(&a.id, new_key("enc_aaaaaaaaaa"))
        .await
        .unwrap();
    store
        .api_keys()
        .create(&b.id, new_key("enc_bbbbbbbbbb"))
        .await
        .unwrap();

    // The second wall: a raw query that forgets its tenant filter, run as the app role.
    let mut tx = store.tenant_tx(&a.id).await.unwrap();
    let prefixes: Vec<String> = sqlx::query_scalar("SELECT prefix FROM api_keys")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    let tenants: Vec<String> = sqlx::query_scalar("SELECT slug FROM tenants")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    let limits: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_limits")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(prefixes, ["enc_aaaaaaaaaa"]);
    assert_eq!(tenants, ["alpha"]);
    assert_eq!(limits, 1);

    // Without any tenant context the app role sees no tenant rows at all.
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(none, 0);

    // Nor can it write a row into another tenant while acting for A.
    let mut tx = store.tenant_tx(&a.id).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'developer')",
    )
    .bind(b.id.as_uuid())
    .bind(user(store, "x@example.com").await.id.as_uuid())
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);

    // A raw UPDATE without WHERE touches only A's rows.
    let mut tx = store.tenant_tx(&a.id).await.unwrap();
    let n = sqlx::query("UPDATE api_keys SET name = 'renamed'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    tx.commit().await.unwrap();
    assert_eq!(n, 1);
    let b_names: Vec<String> = sqlx::query_scalar("SELECT name FROM api_keys WHERE tenant_id = $1")
        .bind(b.id.as_uuid())
        .fetch_all(db.admin_pool())
        .await
        .unwrap();
    assert_eq!(b_names, ["ci"]);
}

#[tokio::test]
async fn cross_tenant_repository_calls_answer_not_found_and_change_nothing() {
    let db = TestDb::fresh().await;
    let store = db.store();
    let a = tenant(store, "alpha").await;
    let b = tenant(store, "bravo").await;
    let key = store
        .api_keys()
        .create(&a.id, new_key("enc_aaaaaaaaaa"))
        .await
        .unwrap();
    let u = user(store, "dev@alpha.test").await;
    store
        .memberships()
        .upsert(&a.id, &u.id, Role::Developer)
        .await
        .unwrap();

    let not_found = |r: Result<_, StoreError>, what: &str| match r {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    };
    not_found(
        store.api_keys().get(&b.id, &key.id).await.map(drop),
        "get key",
    );
    not_found(
        store.api_keys().revoke(&b.id, &key.id).await.map(drop),
        "revoke key",
    );
    not_found(
        store
            .api_keys()
            .set_limits(&b.id, &key.id, Some(1), None)
            .await
            .map(drop),
        "key limits",
    );
    not_found(
        store.memberships().get(&b.id, &u.id).await.map(drop),
        "get membership",
    );
    not_found(
        store.memberships().remove(&b.id, &u.id).await,
        "remove membership",
    );
    assert!(store.api_keys().list(&b.id).await.unwrap().is_empty());
    assert!(store.memberships().list(&b.id).await.unwrap().is_empty());

    let still = store.api_keys().get(&a.id, &key.id).await.unwrap();
    assert!(still.revoked_at.is_none() && still.requests_per_minute.is_none());
    assert_eq!(
        store.memberships().get(&a.id, &u.id).await.unwrap().role,
        Role::Developer
    );

    // Unknown ids behave the same as foreign ones.
    not_found(
        store
            .api_keys()
            .get(&a.id, &ApiKeyId::new())
            .await
            .map(drop),
        "unknown key",
    );
    not_found(
        store.tenants().get(&TenantId::new()).await.map(drop),
        "unknown tenant",
    );
}

#[tokio::test]
async fn tenants_conflict_on_slug_and_keep_limits_as_data() {
    let db = TestDb::fresh().await;
    let store = db.store();
    let a = tenant(store, "alpha").await;
    let err = store
        .tenants()
        .create(enclave_store::NewTenant {
            slug: TenantSlug::parse("alpha").unwrap(),
            name: "again".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.field()),
        ("conflict", Some("slug")),
        "{err:?}"
    );

    assert_eq!(
        store.rate_limits().tenant_limits(&a.id).await.unwrap(),
        TenantLimits::default()
    );
    let limits = TenantLimits {
        requests_per_minute: Some(60),
        tokens_per_minute: Some(10_000),
        monthly_token_budget: Some(1_000_000),
    };
    store
        .rate_limits()
        .set_tenant_limits(&a.id, limits)
        .await
        .unwrap();
    assert_eq!(
        store.rate_limits().tenant_limits(&a.id).await.unwrap(),
        limits
    );
    let bad = TenantLimits {
        requests_per_minute: Some(0),
        ..limits
    };
    assert_eq!(
        store
            .rate_limits()
            .set_tenant_limits(&a.id, bad)
            .await
            .unwrap_err()
            .code(),
        "invalid"
    );

    let suspended = store
        .tenants()
        .set_status(&a.id, TenantStatus::Suspended)
        .await
        .unwrap();
    assert_eq!(suspended.status, TenantStatus::Suspended);
    assert_eq!(
        store
            .tenants()
            .get_by_slug(&TenantSlug::parse("alpha").unwrap())
            .await
            .unwrap()
            .id,
        a.id
    );
    let b = tenant(store, "bravo").await;
    let listed: Vec<_> = store
        .tenants()
        .list(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, [a.id, b.id]);
    assert_eq!(
        store.tenants().list(Some(&a.id), 10).await.unwrap().len(),
        1
    );
    assert_eq!(
        store.tenants().rename(&a.id, "").await.unwrap_err().code(),
        "invalid"
    );
}

#[tokio::test]
async fn users_are_unique_by_email_and_soft_deleted() {
    let db = TestDb::fresh().await;
    let store = db.store();
    let a = tenant(store, "alpha").await;
    let u = user(store, "Ann@Example.com").await;
    assert_eq!(u.email.as_str(), "ann@example.com");
    let dup = store
        .users()
        .create(enclave_store::NewUser {
            email: u.email.clone(),
            password_hash: None,
            is_platform_admin: false,
        })
        .await
        .unwrap_err();
    assert_eq!(dup.field(), Some("email"));
    store
        .memberships()
        .upsert(&a.id, &u.id, Role::Auditor)
        .await
        .unwrap();
    assert_eq!(
        store
            .memberships()
            .upsert(&a.id, &u.id, Role::PlatformAdmin)
            .await
            .unwrap_err()
            .code(),
        "invalid"
    );

    store.users().delete(&u.id).await.unwrap();
    assert!(store.users().status(&u.id).await.unwrap().is_none());
    assert!(
        store
            .users()
            .credentials_by_email(&u.email)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.memberships().list(&a.id).await.unwrap().is_empty());
    assert!(matches!(
        store
            .memberships()
            .upsert(&a.id, &u.id, Role::Developer)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // The email is free again; the old id stays resolvable by superuser for audit.
    user(store, "ann@example.com").await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(db.admin_pool())
        .await
        .unwrap();
    assert_eq!(rows, 2);
}

/// Tenant isolation relies on every transaction starting clean: a transaction left open on a
/// pooled connection would carry its snapshot (and possibly `enclave.rls_bypass`) into the next
/// borrower's. A request dropped while its `BEGIN` is in flight (a client disconnecting) must
/// therefore leave the connection outside any transaction (sqlx < 0.9.1 did not).
#[tokio::test]
async fn a_begin_cancelled_in_flight_leaves_no_transaction_open() {
    let db = TestDb::fresh().await;
    let mut conn = db.store().pool().acquire().await.unwrap();
    // Two statements share a transaction id only inside an open transaction block.
    let open = async |conn: &mut sqlx::PgConnection| -> bool {
        let mut ids = Vec::new();
        for _ in 0..2 {
            let id: i64 = sqlx::query_scalar("SELECT txid_current()")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            ids.push(id);
        }
        ids[0] == ids[1]
    };
    assert!(
        !open(&mut conn).await,
        "the detector sees a transaction on a clean connection"
    );
    let zero = std::time::Duration::ZERO;
    // A slow statement sent and abandoned keeps the connection busy for 200 ms, so the BEGIN
    // queued behind it is on the wire but unanswered when the zero timeout drops the begin.
    let slow = sqlx::query("SELECT pg_sleep(0.2)");
    assert!(
        tokio::time::timeout(zero, slow.execute(&mut *conn))
            .await
            .is_err()
    );
    let cut_off = tokio::time::timeout(zero, sqlx::Connection::begin(&mut *conn))
        .await
        .is_err();
    assert!(cut_off, "the begin was meant to be cut off in flight");
    assert!(
        !open(&mut conn).await,
        "the cancelled BEGIN's transaction is still open"
    );
}
