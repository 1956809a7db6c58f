use std::collections::BTreeMap;

use enclave_audit::{Durability, Phase, SeqRange, verify_db};
use enclave_domain::TenantId;
use enclave_store::TestDb;

use crate::{record, start_writer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_writers_give_gapless_verifying_chains() {
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let writer = start_writer(db.pool(), &dir).await;
    let tenants = [TenantId::new(), TenantId::new()];
    let tasks: Vec<_> = (0..64u64)
        .map(|w| {
            let writer = writer.clone();
            let tenant = tenants[(w % 2) as usize];
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..25 {
                    let r = writer.append(record(tenant, w * 100 + i)).await.unwrap();
                    match r.durability {
                        Durability::Database { seq, .. } => seqs.push((tenant, seq)),
                        Durability::Spooled => panic!("database is up, nothing should spool"),
                    }
                }
                seqs
            })
        })
        .collect();
    let mut per_tenant: BTreeMap<TenantId, Vec<u64>> = BTreeMap::new();
    for t in tasks {
        for (tenant, seq) in t.await.unwrap() {
            per_tenant.entry(tenant).or_default().push(seq);
        }
    }
    for (tenant, mut seqs) in per_tenant {
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (1..=800).collect::<Vec<_>>(),
            "tenant {tenant}: gapless, no duplicates"
        );
        let report = verify_db(db.pool(), &tenant, SeqRange::default(), &[])
            .await
            .unwrap();
        assert!(report.is_ok(), "{:?}", report.findings);
        assert_eq!(report.checked, 800);
    }
}

#[tokio::test]
async fn tenants_see_only_their_own_chain() {
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let writer = start_writer(db.pool(), &dir).await;
    let (a, b) = (TenantId::new(), TenantId::new());
    writer.append(record(a, 1)).await.unwrap();
    // Row-level security: the app role inside tenant b's context sees no row of a.
    let mut tx = db.store().tenant_tx(&b).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let report = verify_db(db.pool(), &b, SeqRange::default(), &[])
        .await
        .unwrap();
    assert_eq!(report.checked, 0);
}

#[tokio::test]
async fn a_dropped_stream_guard_leaves_started_and_aborted_records() {
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let writer = start_writer(db.pool(), &dir).await;
    let tenant = TenantId::new();
    let (_, guard) = writer.begin_stream(record(tenant, 1)).await.unwrap();
    drop(guard); // the client went away
    let (_, guard) = writer.begin_stream(record(tenant, 2)).await.unwrap();
    guard
        .complete(enclave_audit::AuditResponse::default(), 200)
        .await
        .unwrap();
    let mut phases = Vec::new();
    for _ in 0..50 {
        let page = enclave_audit::query(db.pool(), &tenant, &Default::default(), None, 10)
            .await
            .unwrap();
        phases = page
            .events
            .iter()
            .rev()
            .map(|e| e.record["phase"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>();
        if phases.len() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut sorted = phases.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["aborted", "completed", "started", "started"],
        "{phases:?}"
    );
    let _ = Phase::Aborted;
}
