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
    assert!(!superuser && !bypass, "the application role must be bound by RLS");
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(owned, 0, "the application role must own no table");
    let err = sqlx::query("CREATE TABLE sneaky (x int)").execute(db.pool()).await.unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
}
