use enclave_audit::{Finding, SeqRange, verify_db};
use enclave_domain::TenantId;
use enclave_store::TestDb;

use crate::{record, start_writer};

async fn chain_of(n: u64) -> (TestDb, TenantId) {
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let writer = start_writer(db.pool(), &dir).await;
    let tenant = TenantId::new();
    for i in 1..=n {
        writer.append(record(tenant, i)).await.unwrap();
    }
    writer.shutdown().await;
    (db, tenant)
}

async fn first_finding(db: &TestDb, tenant: &TenantId) -> Finding {
    let report = verify_db(db.pool(), tenant, SeqRange::default(), &[])
        .await
        .unwrap();
    report
        .first_finding()
        .cloned()
        .unwrap_or_else(|| panic!("tampering went unnoticed: {report:?}"))
}

/// As a hostile superuser: switch the append-only trigger off, run `sql`, switch it back on.
async fn tamper(db: &TestDb, sql: &str) {
    db.admin_exec(&format!(
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only; {sql}; \
         ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only;"
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn superuser_update_delete_and_reorder_are_detected_and_named() {
    let (db, t) = chain_of(10).await;
    tamper(&db, &format!("UPDATE audit_events SET record = jsonb_set(record, '{{status_code}}', '500') WHERE tenant_id = '{t}' AND seq = 5")).await;
    assert!(matches!(
        first_finding(&db, &t).await,
        Finding::Altered { seq: 5, .. }
    ));

    let (db, t) = chain_of(10).await;
    tamper(
        &db,
        &format!("DELETE FROM audit_events WHERE tenant_id = '{t}' AND seq = 7"),
    )
    .await;
    assert_eq!(first_finding(&db, &t).await, Finding::Missing { seq: 7 });

    let (db, t) = chain_of(10).await;
    tamper(&db, &format!(
        "UPDATE audit_events SET seq = CASE seq WHEN 3 THEN 4 ELSE 3 END WHERE tenant_id = '{t}' AND seq IN (3, 4)"
    ))
    .await;
    assert!(
        matches!(
            first_finding(&db, &t).await,
            Finding::Reordered {
                seq: 3,
                original_seq: 4,
                ..
            }
        ),
        "{:?}",
        first_finding(&db, &t).await
    );

    // The tail removed: only the chain head knows.
    let (db, t) = chain_of(10).await;
    tamper(
        &db,
        &format!("DELETE FROM audit_events WHERE tenant_id = '{t}' AND seq = 10"),
    )
    .await;
    assert_eq!(
        first_finding(&db, &t).await,
        Finding::Head {
            head_seq: 10,
            last_seq: 9
        }
    );
}

#[tokio::test]
async fn app_role_cannot_update_or_delete_and_the_trigger_stops_the_owner() {
    let (db, t) = chain_of(3).await;
    for sql in [
        "UPDATE audit_events SET record = '{}' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
        "TRUNCATE audit_events",
    ] {
        let mut tx = db.store().tenant_tx(&t).await.unwrap();
        let err = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *tx)
            .await
            .expect_err(sql);
        assert!(
            err.to_string().contains("permission denied"),
            "{sql}: {err}"
        );
    }
    for sql in [
        "UPDATE audit_events SET record = '{}' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
        "TRUNCATE audit_events",
    ] {
        let mut tx = db.owner_pool().begin().await.unwrap();
        sqlx::query("SELECT set_config('enclave.rls_bypass', 'on', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let err = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *tx)
            .await
            .expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let report = verify_db(db.pool(), &t, SeqRange::default(), &[])
        .await
        .unwrap();
    assert!(report.is_ok() && report.checked == 3, "{report:?}");
}

#[tokio::test]
async fn checkpoints_catch_a_rewritten_chain() {
    let (db, t) = chain_of(5).await;
    let key = enclave_audit::AuditSigningKey::generate("k1").unwrap();
    let signed = enclave_audit::checkpoint_heads(db.pool(), &key)
        .await
        .unwrap();
    assert!(signed.iter().any(|c| c.tenant == t && c.seq == 5));
    let ok = verify_db(db.pool(), &t, SeqRange::default(), &[key.public()])
        .await
        .unwrap();
    assert!(ok.is_ok(), "{:?}", ok.findings);
    // Another key is not trusted.
    let other = enclave_audit::AuditSigningKey::generate("k1").unwrap();
    let bad = verify_db(db.pool(), &t, SeqRange::default(), &[other.public()])
        .await
        .unwrap();
    assert!(
        matches!(
            bad.first_finding(),
            Some(Finding::Checkpoint { seq: 5, .. })
        ),
        "{bad:?}"
    );
}
