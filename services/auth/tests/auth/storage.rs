//! Nothing secret is stored in a usable form: scan every table's rows for the plaintexts.

use enclave_domain::{Email, Role};

use crate::{PASSWORD, login, setup, tenant};

#[tokio::test]
async fn tables_hold_no_plaintext_password_key_or_token() {
    let (db, auth) = setup().await;
    let t = tenant(&auth, "alpha").await;
    let u = auth
        .create_user(&Email::parse("dev@alpha.test").unwrap(), PASSWORD, false)
        .await
        .unwrap();
    auth.store()
        .memberships()
        .upsert(&t.id, &u.id, Role::TenantAdmin)
        .await
        .unwrap();
    let key = auth
        .create_api_key(
            &t.id,
            enclave_auth::NewApiKeyRequest {
                name: "k".into(),
                scopes: "inference".parse().unwrap(),
                expires_at: None,
                created_by: Some(u.id),
                requests_per_minute: None,
                tokens_per_minute: None,
            },
        )
        .await
        .unwrap();
    let pair = auth.login(login("dev@alpha.test", PASSWORD)).await.unwrap();
    let rotated = auth.refresh(&pair.refresh_token).await.unwrap();
    let _ = auth
        .login(login("dev@alpha.test", "a wrong password"))
        .await;

    let key_secret = key.key.rsplit_once('_').unwrap().1.to_owned();
    let secrets = [
        PASSWORD,
        key.key.as_str(),
        &key_secret,
        &pair.refresh_token,
        &rotated.refresh_token,
        &pair.access_token,
    ];
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(db.admin_pool())
            .await
            .unwrap();
    assert!(tables.len() >= 10, "{tables:?}");
    let mut scanned = 0;
    for table in &tables {
        // Table names come from the catalogue, quoted as identifiers.
        let sql = format!(
            "SELECT row_to_json(t)::text FROM \"{}\" t",
            table.replace('"', "\"\"")
        );
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(db.admin_pool())
            .await
            .unwrap();
        for row in rows {
            scanned += 1;
            for s in &secrets {
                assert!(!row.contains(s), "{table} holds a secret in clear: {row}");
            }
        }
    }
    assert!(scanned > 8, "the scan saw the rows it should ({scanned})");
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(db.admin_pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"));
}
