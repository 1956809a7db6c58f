//! The operator paths behind `enclave audit ...`, and two writers (two gateway processes)
//! sharing one chain.

use chrono::{Duration, Utc};
use enclave_audit::ops::{
    export_file, load_or_create_key, load_public_key, manifest_path, public_key_path,
    verify_chains, verify_export_file,
};
use enclave_audit::{Durability, ExportFormat, Finding, SeqRange, verify_db};
use enclave_domain::TenantId;
use enclave_store::TestDb;

use crate::{record, start_writer};

#[tokio::test]
async fn verify_all_chains_names_the_altered_record_of_the_tampered_tenant_only() {
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let writer = start_writer(db.pool(), &dir).await;
    let (good, bad) = (TenantId::new(), TenantId::new());
    let mut ids = Vec::new();
    for i in 1..=8 {
        writer.append(record(good, i)).await.unwrap();
        ids.push(writer.append(record(bad, i)).await.unwrap().record_id);
    }
    writer.shutdown().await;
    db.admin_exec(&format!(
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only; \
         UPDATE audit_events SET record = jsonb_set(record, '{{latency_ms}}', '999') \
           WHERE tenant_id = '{bad}' AND seq = 6; \
         ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only;"
    ))
    .await
    .unwrap();

    let reports = verify_chains(db.pool(), None, SeqRange::default(), &[])
        .await
        .unwrap();

    assert_eq!(reports.len(), 2, "{reports:?}");
    let by = |t: TenantId| reports.iter().find(|r| r.tenant == t).unwrap();
    assert!(by(good).is_ok(), "{}", by(good));
    let failed = by(bad);
    assert_eq!(
        failed.first_finding(),
        Some(&Finding::Altered {
            seq: 6,
            record_id: Some(ids[5])
        })
    );
    let line = failed.to_string();
    assert!(
        line.contains("FAILED") && line.contains("seq 6") && line.contains(&ids[5].to_string()),
        "{line}"
    );
}

#[tokio::test]
async fn export_files_verify_offline_with_the_public_key_file_and_tampering_is_named() {
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let writer = start_writer(db.pool(), &dir).await;
    let tenant = TenantId::new();
    for i in 1..=20 {
        writer.append(record(tenant, i)).await.unwrap();
    }
    writer.shutdown().await;
    let key_path = dir.path().join("keys/audit-signing.pem");
    let key = load_or_create_key(&key_path).unwrap();
    let public = load_public_key(&public_key_path(&key_path)).unwrap();
    let (from, to) = (
        Utc::now() - Duration::hours(1),
        Utc::now() + Duration::hours(1),
    );
    for format in [ExportFormat::Jsonl, ExportFormat::Csv, ExportFormat::Xml] {
        let out = dir.path().join(format!("export.{}", format.extension()));
        let m = export_file(db.pool(), &tenant, from, to, format, &key, &out)
            .await
            .unwrap();
        assert!(manifest_path(&out).exists());
        assert_eq!((m.count, m.last_seq), (20, Some(20)), "{format:?}");
        let ok = verify_export_file(&out, None, &public).unwrap();
        assert!(ok.is_ok() && ok.checked == 20, "{format:?}: {ok}");

        // Swap records 9 and 10 (whole lines / events) in the file.
        let text = std::fs::read_to_string(&out).unwrap();
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        let header =
            usize::from(format != ExportFormat::Jsonl) + usize::from(format == ExportFormat::Xml);
        lines.swap(header + 8, header + 9);
        std::fs::write(&out, lines.concat()).unwrap();
        let bad = verify_export_file(&out, None, &public).unwrap();
        assert!(!bad.is_ok(), "{format:?}: reordering went unnoticed");
        let first = bad.first_finding().unwrap();
        assert!(
            matches!(first.seq(), 9 | 10),
            "{format:?}: first finding should name seq 9 or 10, got {first}"
        );
    }
}

#[tokio::test]
async fn two_writers_on_one_chain_stay_gapless() {
    let db = TestDb::fresh().await;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (w1, w2) = (
        start_writer(db.pool(), &d1).await,
        start_writer(db.pool(), &d2).await,
    );
    let tenant = TenantId::new();
    let mut tasks = Vec::new();
    for (k, w) in [w1.clone(), w2.clone()].into_iter().enumerate() {
        for j in 0..4u64 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..15u64 {
                    let r = w
                        .append(record(tenant, k as u64 * 1000 + j * 100 + i))
                        .await;
                    match r.unwrap().durability {
                        Durability::Database { seq, .. } => seqs.push(seq),
                        Durability::Spooled => panic!("database was reachable"),
                    }
                }
                seqs
            }));
        }
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    w1.shutdown().await;
    w2.shutdown().await;
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=120).collect::<Vec<u64>>());
    let report = verify_db(db.pool(), &tenant, SeqRange::default(), &[])
        .await
        .unwrap();
    assert!(report.is_ok() && report.checked == 120, "{report}");
}
