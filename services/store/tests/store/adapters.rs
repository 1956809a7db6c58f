//! Adapters: versions numbered and content-addressed, aliases movable, deletes refused while an
//! alias points at what they would remove, and another tenant sees nothing.

use enclave_domain::{
    AdapterAlias, AdapterName, AdapterRef, AdapterSelector, AdapterVersion, TenantId,
};
use enclave_store::{NewAdapterVersion, Removal, Store, StoreError, TestDb};

use crate::tenant;

fn digest(n: u8) -> AdapterVersion {
    AdapterVersion::from_digest(&[n; 32])
}

fn new_version(name: &str, v: &AdapterVersion, aliases: &[&str]) -> NewAdapterVersion {
    NewAdapterVersion {
        name: AdapterName::parse(name).unwrap(),
        version: v.clone(),
        size_bytes: 1234,
        rank: 16,
        targets: vec!["q_proj".into(), "v_proj".into()],
        base_model: "SmolLM2-135M-Instruct".into(),
        base_architecture: "llama".into(),
        declared_base: Some("HuggingFaceTB/SmolLM2-135M-Instruct".into()),
        warnings: vec![],
        created_by: None,
        aliases: aliases
            .iter()
            .map(|a| AdapterAlias::parse(a).unwrap())
            .collect(),
    }
}

fn r(s: &str) -> AdapterRef {
    AdapterRef::parse(s).unwrap()
}

async fn count(db: &TestDb, table: &str, tenant: &TenantId) -> i64 {
    let sql = format!("SELECT count(*) FROM {table} WHERE tenant_id = '{tenant}'");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(db.admin_pool())
        .await
        .unwrap()
}

async fn setup(store: &Store) -> TenantId {
    let t = tenant(store, "alpha").await.id;
    let (v1, created) = store
        .adapters()
        .create_version(&t, new_version("support", &digest(1), &["prod"]))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(v1.number, 1);
    assert_eq!(v1.aliases, [AdapterAlias::prod()]);
    let (v2, _) = store
        .adapters()
        .create_version(&t, new_version("support", &digest(2), &["canary"]))
        .await
        .unwrap();
    assert_eq!(v2.number, 2);
    t
}

#[tokio::test]
async fn versions_resolve_by_alias_number_and_digest_prefix() {
    let db = TestDb::fresh().await;
    let store = db.store();
    let t = setup(store).await;
    let a = store.adapters();
    assert_eq!(
        a.resolve(&t, &r("support")).await.unwrap().version,
        digest(1),
        "bare name = prod"
    );
    assert_eq!(
        a.resolve(&t, &r("support@canary")).await.unwrap().version,
        digest(2)
    );
    assert_eq!(
        a.resolve(&t, &r("support@v2")).await.unwrap().version,
        digest(2)
    );
    assert_eq!(
        a.resolve(&t, &r("support@0101010101"))
            .await
            .unwrap()
            .version,
        digest(1)
    );
    for missing in [
        "support@v3",
        "support@staging",
        "other",
        "support@0303030303",
    ] {
        assert!(
            matches!(
                a.resolve(&t, &r(missing)).await,
                Err(StoreError::NotFound { .. })
            ),
            "{missing}"
        );
    }
    // Same content again: idempotent, no new number.
    let (again, created) = a
        .create_version(&t, new_version("support", &digest(2), &[]))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.number, 2);
    // Promote canary to prod.
    let prod = AdapterAlias::prod();
    let canary = AdapterSelector::Alias(AdapterAlias::parse("canary").unwrap());
    let moved = a
        .set_alias(
            &t,
            &AdapterName::parse("support").unwrap(),
            &prod,
            &canary,
            None,
        )
        .await
        .unwrap();
    assert_eq!(moved.version, digest(2));
    assert_eq!(
        a.resolve(&t, &r("support")).await.unwrap().version,
        digest(2)
    );
    let listed = a.list(&t).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].versions.len(), 2);
    assert!(listed[0].versions[0].aliases.is_empty());
    assert_eq!(listed[0].versions[1].aliases.len(), 2);
}

#[tokio::test]
async fn deletes_are_refused_while_an_alias_points_there() {
    let db = TestDb::fresh().await;
    let store = db.store();
    let t = setup(store).await;
    let a = store.adapters();
    let name = AdapterName::parse("support").unwrap();
    let v1 = AdapterSelector::Number(1);
    assert_eq!(
        a.delete_version(&t, &name, &v1).await.unwrap(),
        Removal::AliasedBy(vec![AdapterAlias::prod()])
    );
    assert!(matches!(a.delete(&t, &name).await.unwrap(), Removal::AliasedBy(v) if v.len() == 2));
    assert_eq!(
        count(&db, "adapter_versions", &t).await,
        2,
        "nothing deleted"
    );

    a.set_alias(
        &t,
        &name,
        &AdapterAlias::prod(),
        &AdapterSelector::Number(2),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        a.delete_version(&t, &name, &v1).await.unwrap(),
        Removal::Removed {
            unreferenced: vec![digest(1)]
        }
    );
    // Numbers are never reused.
    let (v3, _) = a
        .create_version(&t, new_version("support", &digest(3), &[]))
        .await
        .unwrap();
    assert_eq!(v3.number, 3);
    // The same content under another name keeps its files when one name lets go.
    a.create_version(&t, new_version("copy", &digest(3), &[]))
        .await
        .unwrap();
    a.delete_alias(&t, &name, &AdapterAlias::prod())
        .await
        .unwrap();
    a.delete_alias(&t, &name, &AdapterAlias::parse("canary").unwrap())
        .await
        .unwrap();
    assert_eq!(
        a.delete(&t, &name).await.unwrap(),
        Removal::Removed {
            unreferenced: vec![digest(2)]
        }
    );
    assert!(a.is_referenced(&t, &digest(3)).await.unwrap());
    assert_eq!(count(&db, "adapters", &t).await, 1);
}

#[tokio::test]
async fn another_tenant_sees_nothing_and_cannot_alias() {
    let db = TestDb::fresh().await;
    let store = db.store();
    let t = setup(store).await;
    let other = tenant(store, "bravo").await.id;
    let a = store.adapters();
    let name = AdapterName::parse("support").unwrap();
    assert!(a.list(&other).await.unwrap().is_empty());
    assert!(matches!(
        a.get(&other, &name).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        a.resolve(&other, &r("support@v1")).await,
        Err(StoreError::NotFound { .. })
    ));
    let err = a
        .set_alias(
            &other,
            &name,
            &AdapterAlias::prod(),
            &AdapterSelector::Number(1),
            None,
        )
        .await;
    assert!(matches!(err, Err(StoreError::NotFound { .. })));
    assert!(matches!(
        a.delete(&other, &name).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(!a.is_referenced(&other, &digest(1)).await.unwrap());
    // Row-level security: a raw query in B's context without a WHERE sees none of A's rows.
    let mut tx = store.tenant_tx(&other).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM adapter_versions")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let m: i64 = sqlx::query_scalar("SELECT count(*) FROM adapter_aliases")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((n, m), (0, 0));
    assert_eq!(count(&db, "adapter_aliases", &t).await, 2);
}
