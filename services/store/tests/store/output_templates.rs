use enclave_store::{NewOutputTemplate, StoreError, TestDb};
use serde_json::json;

fn new(name: &str, template: &str) -> NewOutputTemplate {
    NewOutputTemplate {
        name: name.into(),
        schema: json!({"type": "object"}),
        template: template.into(),
        comment: None,
        created_by: None,
    }
}

#[tokio::test]
async fn versions_number_per_name_and_the_newest_is_active() {
    let db = TestDb::fresh().await;
    let t = crate::tenant(db.store(), "alpha").await;
    let repo = db.store().output_templates();
    let v1 = repo.create(&t.id, new("csv", "a")).await.unwrap();
    let v2 = repo.create(&t.id, new("csv", "b")).await.unwrap();
    let other = repo.create(&t.id, new("kv", "c")).await.unwrap();
    assert_eq!((v1.version, v2.version, other.version), (1, 2, 1));
    assert!(v2.active && other.active);
    let active = repo.get(&t.id, "csv", None).await.unwrap();
    assert_eq!((active.version, active.template.as_str()), (2, "b"));
    let pinned = repo.get(&t.id, "csv", Some(1)).await.unwrap();
    assert_eq!((pinned.template.as_str(), pinned.active), ("a", false));
    assert_eq!(repo.list(&t.id).await.unwrap().len(), 3);
    assert!(matches!(
        repo.get(&t.id, "csv", Some(3)).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn templates_and_key_defaults_are_tenant_scoped() {
    let db = TestDb::fresh().await;
    let a = crate::tenant(db.store(), "alpha").await;
    let b = crate::tenant(db.store(), "beta").await;
    let repo = db.store().output_templates();
    repo.create(&a.id, new("csv", "a")).await.unwrap();
    assert!(matches!(
        repo.get(&b.id, "csv", None).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(repo.list(&b.id).await.unwrap().is_empty());

    let key = db
        .store()
        .api_keys()
        .create(&a.id, crate::new_key("enc_aaaaaaaaaa"))
        .await
        .unwrap();
    let format = json!({"type": "template", "template": {"id": "csv"}});
    repo.set_key_default(&a.id, &key.id, Some(&format))
        .await
        .unwrap();
    assert_eq!(
        repo.key_default(&a.id, &key.id).await.unwrap(),
        Some(format)
    );
    assert_eq!(repo.key_default(&b.id, &key.id).await.unwrap(), None);
    assert!(matches!(
        repo.set_key_default(&b.id, &key.id, None).await,
        Err(StoreError::NotFound { .. })
    ));
    repo.set_key_default(&a.id, &key.id, None).await.unwrap();
    assert_eq!(repo.key_default(&a.id, &key.id).await.unwrap(), None);
}
