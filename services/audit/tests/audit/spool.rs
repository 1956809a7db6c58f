use enclave_audit::{Durability, SeqRange, query, verify_db};
use enclave_domain::TenantId;
use enclave_store::TestDb;

use crate::{record, start_writer, unreachable_pool};

#[tokio::test]
async fn unreachable_database_spools_then_replays_in_order() {
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new();
    // Some records before the outage.
    let writer = start_writer(db.pool(), &dir).await;
    for i in 0..3 {
        writer.append(record(tenant, i)).await.unwrap();
    }
    writer.shutdown().await;

    let down = start_writer(&unreachable_pool(), &dir).await;
    let mut ids = Vec::new();
    for i in 3..40 {
        let r = record(tenant, i);
        ids.push(r.record_id);
        let receipt = down.append(r).await.unwrap();
        assert_eq!(receipt.durability, Durability::Spooled);
    }
    assert!(
        !down.replay_spool().await.unwrap(),
        "still unreachable: the spool stays"
    );
    down.shutdown().await;
    assert!(
        std::fs::metadata(dir.path().join("audit.spool"))
            .unwrap()
            .len()
            > 0
    );

    // The database is back (a writer on the real pool, same spool): replay, then new appends.
    let up = start_writer(db.pool(), &dir).await;
    let after = up.append(record(tenant, 40)).await.unwrap();
    assert_eq!(
        after.durability,
        Durability::Database {
            seq: 41,
            hash: match after.durability {
                Durability::Database { hash, .. } => hash,
                _ => unreachable!(),
            }
        }
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("audit.spool"))
            .unwrap()
            .len(),
        0
    );

    let report = verify_db(db.pool(), &tenant, SeqRange::default(), &[])
        .await
        .unwrap();
    assert!(report.is_ok() && report.checked == 41, "{report:?}");
    let page = query(db.pool(), &tenant, &Default::default(), None, 100)
        .await
        .unwrap();
    let stored: Vec<_> = page
        .events
        .iter()
        .rev()
        .skip(3)
        .take(37)
        .map(|e| e.record_id)
        .collect();
    assert_eq!(stored, ids, "spooled records keep their append order");
}

#[tokio::test]
async fn replay_is_idempotent_after_a_crash_between_commit_and_truncate() {
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new();
    let down = start_writer(&unreachable_pool(), &dir).await;
    for i in 0..5 {
        down.append(record(tenant, i)).await.unwrap();
    }
    down.shutdown().await;
    let spool = std::fs::read(dir.path().join("audit.spool")).unwrap();
    let up = start_writer(db.pool(), &dir).await;
    up.shutdown().await;
    // As if the process died after committing the replay but before emptying the spool.
    std::fs::write(dir.path().join("audit.spool"), spool).unwrap();
    let again = start_writer(db.pool(), &dir).await;
    again.shutdown().await;
    let report = verify_db(db.pool(), &tenant, SeqRange::default(), &[])
        .await
        .unwrap();
    assert!(report.is_ok() && report.checked == 5, "{report:?}");
}
