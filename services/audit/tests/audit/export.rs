use chrono::{Duration, Utc};
use enclave_audit::{AuditSigningKey, ExportFormat, Finding, export, verify_export};
use enclave_domain::TenantId;
use enclave_store::TestDb;
use serde_json::json;

use crate::{record, start_writer};

async fn filled(n: u64) -> (TestDb, TenantId) {
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let writer = start_writer(db.pool(), &dir).await;
    let tenant = TenantId::new();
    for i in 0..n {
        let mut r = record(tenant, i);
        r.request =
            json!({"prompt": format!("a, \"quoted\" word\nand a second line <tag> & more {i}")});
        writer.append(r).await.unwrap();
    }
    writer.shutdown().await;
    (db, tenant)
}

#[tokio::test]
async fn exports_verify_offline_and_a_changed_byte_is_named() {
    let (db, tenant) = filled(30).await;
    let key = AuditSigningKey::generate("export-key").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for format in [ExportFormat::Jsonl, ExportFormat::Csv, ExportFormat::Xml] {
        let path = dir.path().join(format!("out.{}", format.extension()));
        let mut file = tokio::fs::File::create(&path).await.unwrap();
        let (from, to) = (
            Utc::now() - Duration::hours(1),
            Utc::now() + Duration::hours(1),
        );
        let manifest = export(db.pool(), &tenant, from, to, format, &key, &mut file)
            .await
            .unwrap();
        drop(file);
        assert_eq!(
            (manifest.count, manifest.first_seq, manifest.last_seq),
            (30, Some(1), Some(30)),
            "{format:?}"
        );
        let ok = verify_export(&path, &manifest, &key.public()).unwrap();
        assert!(
            ok.is_ok() && ok.checked == 30,
            "{format:?}: {:?}",
            ok.findings
        );

        // One byte changed inside record 17's prompt.
        let text = std::fs::read_to_string(&path).unwrap();
        let tampered = text.replacen("more 16", "more 99", 1);
        assert_ne!(text, tampered);
        std::fs::write(&path, tampered).unwrap();
        let bad = verify_export(&path, &manifest, &key.public()).unwrap();
        assert!(
            matches!(bad.first_finding(), Some(Finding::Altered { seq: 17, .. })),
            "{format:?}: {:?}",
            bad.findings
        );
        assert!(
            bad.findings
                .iter()
                .any(|f| matches!(f, Finding::Export { reason } if reason.contains("SHA-256")))
        );

        // A manifest re-signed by someone else does not verify with the exporter's key.
        let other = AuditSigningKey::generate("export-key").unwrap();
        let forged = verify_export(&path, &manifest, &other.public()).unwrap();
        assert!(
            forged
                .findings
                .iter()
                .any(|f| matches!(f, Finding::Export { reason } if reason.contains("signature")))
        );
    }
}

#[tokio::test]
async fn csv_quotes_commas_quotes_and_newlines_per_rfc_4180() {
    let (db, tenant) = filled(2).await;
    let key = AuditSigningKey::generate("k").unwrap();
    let mut out = Vec::new();
    export(
        db.pool(),
        &tenant,
        Utc::now() - Duration::hours(1),
        Utc::now() + Duration::hours(1),
        ExportFormat::Csv,
        &key,
        &mut out,
    )
    .await
    .unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    // Fields holding quotes are wrapped in quotes with inner quotes doubled.
    assert!(text.contains("\"\""), "{text}");
    let mut rd = csv::Reader::from_reader(out.as_slice());
    let headers = rd.headers().unwrap().clone();
    let col = headers.iter().position(|h| h == "record_json").unwrap();
    let rows: Vec<_> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.len() == headers.len()));
    let rec: serde_json::Value = serde_json::from_str(&rows[1][col]).unwrap();
    assert_eq!(
        rec["request"]["prompt"],
        "a, \"quoted\" word\nand a second line <tag> & more 1"
    );
}

#[tokio::test]
async fn xml_export_is_well_formed() {
    let (db, tenant) = filled(3).await;
    let key = AuditSigningKey::generate("k").unwrap();
    let mut out = Vec::new();
    export(
        db.pool(),
        &tenant,
        Utc::now() - Duration::hours(1),
        Utc::now() + Duration::hours(1),
        ExportFormat::Xml,
        &key,
        &mut out,
    )
    .await
    .unwrap();
    let mut rd = quick_xml::Reader::from_reader(out.as_slice());
    rd.config_mut().check_end_names = true;
    let mut buf = Vec::new();
    let mut events = 0;
    loop {
        match rd.read_event_into(&mut buf).unwrap() {
            quick_xml::events::Event::Start(e) if e.name().as_ref() == "event" => events += 1,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    assert_eq!(events, 3);
}
