use enclave_domain::{AuditRedaction, RetentionDays};
use enclave_store::{AuditSettings, TestDb};

#[tokio::test]
async fn audit_settings_default_replace_and_stay_in_their_tenant() {
    let db = TestDb::fresh().await;
    let (a, b) = (
        crate::tenant(db.store(), "alpha").await,
        crate::tenant(db.store(), "beta").await,
    );
    let repo = db.store().audit_settings();
    assert_eq!(repo.get(&a.id).await.unwrap(), AuditSettings::default());
    let days = RetentionDays::new(90).unwrap();
    let set = repo
        .set(&a.id, AuditRedaction::PiiMasked, Some(days), None)
        .await
        .unwrap();
    assert_eq!(
        (set.redaction, set.retention_days),
        (AuditRedaction::PiiMasked, Some(days))
    );
    assert!(set.updated_at.is_some());
    let replaced = repo
        .set(&a.id, AuditRedaction::Raw, None, None)
        .await
        .unwrap();
    assert_eq!(
        (replaced.redaction, replaced.retention_days),
        (AuditRedaction::Raw, None)
    );
    repo.set(&a.id, AuditRedaction::PiiMasked, Some(days), None)
        .await
        .unwrap();
    // B's context sees none of A's row (RLS, forced for the owner too).
    assert_eq!(repo.get(&b.id).await.unwrap(), AuditSettings::default());
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_settings")
        .fetch_one(db.owner_pool())
        .await
        .unwrap();
    assert_eq!(seen, 0, "without a tenant context no row is visible");
    // The database refuses what the API refuses.
    let bad =
        sqlx::query("INSERT INTO audit_settings (tenant_id, redaction) VALUES ($1, 'masked')")
            .bind(b.id.as_uuid())
            .execute(db.admin_pool())
            .await;
    assert!(bad.is_err(), "unknown redaction stored");
}
