//! PII detectors: valid numbers are found, checksum-invalid look-alikes are not.

use enclave_policy::{PiiKind, RuleId, Scope};

use super::policy;

fn found(text: &str) -> Vec<(PiiKind, String)> {
    let p = policy(
        r#"
[[category]]
name = "pii"
action = "mask"
pii = ["cn_resident_id", "bank_card", "phone_cn", "phone_intl", "email", "ipv4", "ipv6"]
"#,
    );
    p.scan(text, Scope::Output)
        .into_iter()
        .map(|m| match m.rule {
            RuleId::Pii(k) => (k, m.matched),
            other => panic!("unexpected rule {other}"),
        })
        .collect()
}

#[test]
fn cn_resident_id_valid_and_invalid() {
    assert_eq!(
        found("身份证11010519491231002X。"),
        vec![(PiiKind::CnResidentId, "11010519491231002X".to_owned())]
    );
    assert_eq!(
        found("id 11010519491231002x ok"),
        vec![(PiiKind::CnResidentId, "11010519491231002x".to_owned())]
    );
    assert!(
        found("身份证110105194912310021。").is_empty(),
        "bad check digit"
    );
    assert!(
        found("身份证110105194902300028。")
            .iter()
            .all(|(k, _)| *k != PiiKind::CnResidentId),
        "february 30th"
    );
}

#[test]
fn bank_card_luhn() {
    assert_eq!(
        found("卡号4111 1111 1111 1111。"),
        vec![(PiiKind::BankCard, "4111 1111 1111 1111".to_owned())]
    );
    assert_eq!(
        found("card 5555-5555-5555-4444."),
        vec![(PiiKind::BankCard, "5555-5555-5555-4444".to_owned())]
    );
    assert!(found("card 4111 1111 1111 1112.").is_empty(), "Luhn fails");
    assert!(found("card 0000000000000.").is_empty(), "all zeros");
}

#[test]
fn phones() {
    assert_eq!(
        found("电话13812345678。"),
        vec![(PiiKind::PhoneCn, "13812345678".to_owned())]
    );
    assert_eq!(
        found("tel +86 138-1234-5678"),
        vec![(PiiKind::PhoneCn, "+86 138-1234-5678".to_owned())]
    );
    assert_eq!(
        found("call +44 20 7946 0958 now"),
        vec![(PiiKind::PhoneIntl, "+44 20 7946 0958".to_owned())]
    );
    assert!(
        found("电话12812345678。").is_empty(),
        "no mobile prefix 12x"
    );
}

#[test]
fn full_width_digits_are_normalised() {
    assert_eq!(
        found("电话１３８１２３４５６７８"),
        vec![(PiiKind::PhoneCn, "１３８１２３４５６７８".to_owned())]
    );
}

#[test]
fn email_and_ips() {
    assert_eq!(
        found("mail Li.Lei@Example.com.cn!"),
        vec![(PiiKind::Email, "Li.Lei@Example.com.cn".to_owned())]
    );
    assert_eq!(
        found("host 192.168.10.1 up"),
        vec![(PiiKind::Ipv4, "192.168.10.1".to_owned())]
    );
    assert!(found("version 300.1.2.3").is_empty());
    assert_eq!(
        found("addr 2001:db8::8a2e:370:7334 up"),
        vec![(PiiKind::Ipv6, "2001:db8::8a2e:370:7334".to_owned())]
    );
    assert!(found("at 12:30:45 today").is_empty());
}
