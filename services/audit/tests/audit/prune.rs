//! Retention: months are dropped whole, only when every chain in them is past its retention,
//! oldest first; a dry run changes nothing; every chain verifies afterwards.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use enclave_audit::ops::verify_chains;
use enclave_audit::{
    ChainHash, PLATFORM_CHAIN, SeqRange, chain_hash, plan_before, plan_retention, prune_planned,
};
use enclave_domain::{AuditRedaction, RetentionDays, TenantId};
use enclave_store::TestDb;

use crate::{record, start_writer};

/// The first instant of the month `k` months before this one (UTC).
fn month_ago(k: u32) -> DateTime<Utc> {
    let now = Utc::now();
    let this = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).unwrap();
    (this - Months::new(k))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

/// Starts `tenant`'s chain with one record in each of `months` (stored then, as if written
/// then), hash-chained like the writer does, and sets the chain head so the writer goes on.
async fn backfill(db: &TestDb, tenant: TenantId, months: &[DateTime<Utc>]) {
    let mut tx = db.owner_pool().begin().await.unwrap();
    sqlx::query("SELECT set_config('enclave.rls_bypass', 'on', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut prev = ChainHash::GENESIS;
    let mut last = months[0];
    for (i, at) in months.iter().enumerate() {
        let seq = i as u64 + 1;
        let at = *at + chrono::Duration::hours(12);
        sqlx::query("SELECT audit_ensure_partition($1)")
            .bind(at)
            .execute(&mut *tx)
            .await
            .unwrap();
        let mut rec = record(tenant, seq);
        rec.time = at;
        let rec = rec.checked().unwrap();
        let value = serde_json::to_value(&rec).unwrap();
        let hash = chain_hash(&prev, &tenant, seq, &value);
        sqlx::query(
            "INSERT INTO audit_events (tenant_id, seq, inserted_at, record_id, event_time, prev_hash, hash, record)
             VALUES ($1, $2, $3, $4, $3, $5, $6, $7)",
        )
        .bind(tenant.as_uuid())
        .bind(seq as i64)
        .bind(at)
        .bind(rec.record_id)
        .bind(prev.as_bytes().as_slice())
        .bind(hash.as_bytes().as_slice())
        .bind(&value)
        .execute(&mut *tx)
        .await
        .unwrap();
        prev = hash;
        last = at;
    }
    sqlx::query(
        "INSERT INTO audit_chain_heads (tenant_id, seq, hash, last_inserted_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant.as_uuid())
    .bind(months.len() as i64)
    .bind(prev.as_bytes().as_slice())
    .bind(last)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn retention(db: &TestDb, tenant: TenantId, days: Option<i64>) {
    let days = days.map(|d| RetentionDays::new(d).unwrap());
    db.store()
        .audit_settings()
        .set(&tenant, AuditRedaction::Raw, days, None)
        .await
        .unwrap();
}

async fn partitions(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'audit_events'::regclass ORDER BY 1",
    )
    .fetch_all(db.owner_pool())
    .await
    .unwrap()
}

fn name(at: DateTime<Utc>) -> String {
    format!("audit_events_p{}", at.format("%Y%m"))
}

async fn all_verify(db: &TestDb) {
    let reports = verify_chains(db.pool(), None, SeqRange::default(), &[])
        .await
        .unwrap();
    assert!(!reports.is_empty());
    for r in &reports {
        assert!(r.is_ok(), "{r}");
    }
}

#[tokio::test]
async fn retention_prune_drops_only_months_every_chain_is_past_and_chains_still_verify() {
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    // a: 30 days, in months -5, -4, -3; c: in month -4, 400 days at first; b: month -3, forever.
    let (a, b, c) = (TenantId::new(), TenantId::new(), TenantId::new());
    let (m5, m4, m3) = (month_ago(5), month_ago(4), month_ago(3));
    backfill(&db, a, &[m5, m4, m3]).await;
    backfill(&db, b, &[m3]).await;
    backfill(&db, c, &[m4]).await;
    retention(&db, a, Some(30)).await;
    retention(&db, c, Some(400)).await;
    retention(&db, PLATFORM_CHAIN, Some(1)).await;
    let writer = start_writer(db.pool(), &dir).await;
    for t in [a, b, c] {
        writer.append(record(t, 99)).await.unwrap();
    }
    all_verify(&db).await;

    // Month -5 holds only a (past 30 days): it goes; month -4 holds c, not past 400 days.
    let plan = plan_retention(db.owner_pool(), Utc::now()).await.unwrap();
    let planned: Vec<&str> = plan.partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(planned, [name(m5)], "{plan:#?}");
    let kept = plan.kept.clone().expect("a kept month");
    assert_eq!(
        (kept.name.as_str(), kept.tenant, kept.retention_days),
        (name(m4).as_str(), c, Some(400))
    );
    assert_eq!(plan.cutoff, Some(m4));
    assert_eq!(plan.partitions[0].chains.get(&a), Some(&1));

    // A dry run is the plan alone: nothing changes.
    let before = partitions(&db).await;
    let again = plan_retention(db.owner_pool(), Utc::now()).await.unwrap();
    assert_eq!(again, plan);
    assert_eq!(partitions(&db).await, before);

    let dropped = prune_planned(db.owner_pool(), &writer, "ops", &plan)
        .await
        .unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(
        (dropped[0].name.as_str(), dropped[0].rows),
        (name(m5).as_str(), 1)
    );
    all_verify(&db).await;

    // c shortens its retention: month -4 goes too; month -3 stays for b (no retention).
    retention(&db, c, Some(30)).await;
    let plan = plan_retention(db.owner_pool(), Utc::now()).await.unwrap();
    let planned: Vec<&str> = plan.partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(planned, [name(m4)], "{plan:#?}");
    let kept = plan.kept.clone().expect("b keeps month -3");
    assert_eq!((kept.tenant, kept.retention_days), (b, None));
    prune_planned(db.owner_pool(), &writer, "ops", &plan)
        .await
        .unwrap();
    let left = partitions(&db).await;
    assert!(
        !left.contains(&name(m4)) && left.contains(&name(m3)),
        "{left:?}"
    );
    all_verify(&db).await;

    // Each prune wrote its own record in the platform chain, naming what it planned.
    let prunes: Vec<serde_json::Value> = {
        let mut tx = db.owner_pool().begin().await.unwrap();
        sqlx::query("SELECT set_config('enclave.rls_bypass', 'on', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query_scalar(
            "SELECT record FROM audit_events WHERE action = 'audit.prune' ORDER BY seq",
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap()
    };
    assert_eq!(prunes.len(), 2, "{prunes:#?}");
    assert_eq!(prunes[1]["request"]["mode"], "retention");
    assert_eq!(prunes[1]["request"]["partitions"][0], name(m4));

    // The explicit-cutoff plan still lists every month ending by the date.
    let explicit = plan_before(db.owner_pool(), m3 + Months::new(1))
        .await
        .unwrap();
    let listed: Vec<&str> = explicit
        .partitions
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(listed, [name(m3)]);
    writer.shutdown().await;
}
