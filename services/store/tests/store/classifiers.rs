//! Classifier versions: numbered per name, immutable, invisible to other tenants.

use enclave_store::{NewClassifierVersion, StoreError};

fn new(name: &str) -> NewClassifierVersion {
    NewClassifierVersion {
        name: name.to_owned(),
        labels: vec!["abuse".into(), "benign".into()],
        model: "{\"format_version\":1}".into(),
        thresholds: serde_json::json!({"abuse": 0.5, "benign": 0.5}),
        metrics: serde_json::json!([]),
        config: serde_json::json!({}),
        train_examples: 80,
        holdout_examples: 20,
        data_sha256: "0".repeat(64),
        comment: None,
        created_by: None,
    }
}

#[tokio::test]
async fn versions_are_numbered_per_name_and_isolated_per_tenant() {
    let db = enclave_store::TestDb::fresh().await;
    let store = db.store();
    let a = crate::tenant(store, "alpha").await.id;
    let b = crate::tenant(store, "beta").await.id;
    let repo = store.classifiers();

    let v1 = repo.create(&a, new("abuse")).await.unwrap();
    let v2 = repo.create(&a, new("abuse")).await.unwrap();
    let other = repo.create(&a, new("pii")).await.unwrap();
    assert_eq!(
        (v1.info.version, v2.info.version, other.info.version),
        (1, 2, 1)
    );
    assert_eq!(repo.get(&a, "abuse", 1).await.unwrap(), v1);
    assert_eq!(repo.latest(&a, "abuse").await.unwrap().info.version, 2);
    let listed: Vec<(String, u32)> = repo
        .list(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.name, v.version))
        .collect();
    assert_eq!(
        listed,
        [("abuse".into(), 2), ("abuse".into(), 1), ("pii".into(), 1)]
    );

    assert!(matches!(
        repo.get(&b, "abuse", 1).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        repo.latest(&b, "abuse").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(repo.list(&b).await.unwrap().is_empty());
    // B's first version of the same name is its own 1.
    assert_eq!(repo.create(&b, new("abuse")).await.unwrap().info.version, 1);

    let err = sqlx::query("UPDATE classifier_versions SET comment = 'x'")
        .execute(db.admin_pool())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");
    let mut bad = new("Bad Name");
    bad.name = "Bad Name".into();
    assert!(repo.create(&a, bad).await.is_err(), "the name is checked");
}
