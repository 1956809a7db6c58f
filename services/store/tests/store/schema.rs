use enclave_store::TestDb;

#[tokio::test]
async fn migrations_apply_and_the_app_role_is_confined() {
    let db = TestDb::fresh().await;
    db.store().ping().await.unwrap();
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert!(
        !superuser && !bypass,
        "the application role must be bound by RLS"
    );
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(owned, 0, "the application role must own no table");
    let err = sqlx::query("CREATE TABLE sneaky (x int)")
        .execute(db.pool())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
}

#[tokio::test]
async fn rls_is_forced_even_for_the_table_owner() {
    let db = TestDb::fresh().await;
    let t = crate::tenant(db.store(), "alpha").await;
    // The owner (migrator) owns the tables; FORCE makes the policies bind it too.
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(db.owner_pool())
        .await
        .unwrap();
    assert_eq!(seen, 0);
    let superuser: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE id = $1")
        .bind(t.id.as_uuid())
        .fetch_one(db.admin_pool())
        .await
        .unwrap();
    assert_eq!(superuser, 1);
    let forced: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT relname::text, relrowsecurity, relforcerowsecurity FROM pg_class
         WHERE relname IN ('tenants','memberships','api_keys','tenant_limits','rate_windows','usage_counters')",
    )
    .fetch_all(db.admin_pool())
    .await
    .unwrap();
    assert_eq!(forced.len(), 6);
    assert!(
        forced.iter().all(|(_, on, force)| *on && *force),
        "{forced:?}"
    );
}
