use enclave_audit::{AuditFilter, Cursor, PolicyInfo, query};
use enclave_domain::TenantId;
use enclave_store::TestDb;
use serde_json::json;

use crate::{record, start_writer};

#[tokio::test]
async fn filters_and_cursor_pagination() {
    let db = TestDb::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let writer = start_writer(db.pool(), &dir).await;
    let tenant = TenantId::new();
    for i in 0..25u64 {
        let mut r = record(tenant, i);
        if i % 5 == 0 {
            r.policy = Some(PolicyInfo {
                version: "v1".into(),
                outcome: Some("block".into()),
                decisions: json!([]),
            });
            r.action = "completions.create".into();
        }
        if i == 7 {
            r.request = json!({"prompt": "the secret 100% word_x"});
        }
        writer.append(r).await.unwrap();
    }
    let blocked = AuditFilter {
        decision: Some("block".into()),
        ..Default::default()
    };
    let page = query(db.pool(), &tenant, &blocked, None, 100)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 5);
    let by_action = AuditFilter {
        action: Some("completions.create".into()),
        ..Default::default()
    };
    assert_eq!(
        query(db.pool(), &tenant, &by_action, None, 100)
            .await
            .unwrap()
            .events
            .len(),
        5
    );
    let text = AuditFilter {
        text: Some("100% WORD_X".into()),
        ..Default::default()
    };
    let found = query(db.pool(), &tenant, &text, None, 100).await.unwrap();
    assert_eq!(found.events.len(), 1);
    assert_eq!(found.events[0].seq, 8);
    // A NUL cannot reach PostgreSQL: the field is named, nothing is queried.
    for (field, filter) in [
        (
            "q",
            AuditFilter {
                text: Some("a\0b".into()),
                ..Default::default()
            },
        ),
        (
            "actor_id",
            AuditFilter {
                actor_id: Some("\0".into()),
                ..Default::default()
            },
        ),
    ] {
        match query(db.pool(), &tenant, &filter, None, 10).await {
            Err(enclave_audit::AuditError::InvalidQuery { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected InvalidQuery, got {other:?}"),
        }
    }
    // Wildcards in the search text are literal.
    let wild = AuditFilter {
        text: Some("100_".into()),
        ..Default::default()
    };
    assert_eq!(
        query(db.pool(), &tenant, &wild, None, 100)
            .await
            .unwrap()
            .events
            .len(),
        0
    );

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = query(db.pool(), &tenant, &AuditFilter::default(), cursor, 10)
            .await
            .unwrap();
        seen.extend(page.events.iter().map(|e| e.seq));
        match page.next_cursor {
            Some(c) => cursor = Some(Cursor::parse(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, (1..=25).rev().collect::<Vec<_>>());
    assert!(
        query(db.pool(), &tenant, &AuditFilter::default(), None, 0)
            .await
            .is_err()
    );
    assert!(Cursor::parse("nonsense").is_err());
    // Another tenant sees nothing of it.
    assert!(
        query(
            db.pool(),
            &TenantId::new(),
            &AuditFilter::default(),
            None,
            10
        )
        .await
        .unwrap()
        .events
        .is_empty()
    );
}
