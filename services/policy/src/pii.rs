//! PII detectors: a candidate regex (run on normalised text) plus a validator that rejects
//! look-alikes (checksums, dates, ranges), so invalid IDs and card numbers are not reported.

use serde::{Deserialize, Serialize};

/// Built-in PII detectors. Listed in the order they are tried at the same start position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// Chinese resident identity number (18 characters, GB 11643 checksum, valid birth date).
    CnResidentId,
    /// Payment card number, 13–19 digits with optional single spaces/hyphens, Luhn-valid.
    BankCard,
    /// Mainland China mobile number, optionally `+86`, optionally grouped 3-4-4.
    PhoneCn,
    /// International number in E.164 style: `+` country code and 7–14 more digits.
    PhoneIntl,
    Email,
    Ipv4,
    Ipv6,
}

impl PiiKind {
    pub(crate) const NAMES: &'static str =
        "cn_resident_id, bank_card, phone_cn, phone_intl, email, ipv4, ipv6";
    pub const ALL: [PiiKind; 7] = [
        PiiKind::CnResidentId,
        PiiKind::BankCard,
        PiiKind::PhoneCn,
        PiiKind::PhoneIntl,
        PiiKind::Email,
        PiiKind::Ipv4,
        PiiKind::Ipv6,
    ];

    pub fn parse(s: &str) -> Option<PiiKind> {
        PiiKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::CnResidentId => "cn_resident_id",
            PiiKind::BankCard => "bank_card",
            PiiKind::PhoneCn => "phone_cn",
            PiiKind::PhoneIntl => "phone_intl",
            PiiKind::Email => "email",
            PiiKind::Ipv4 => "ipv4",
            PiiKind::Ipv6 => "ipv6",
        }
    }

    /// Candidate pattern (compiled like user rules: case-insensitive, ASCII `\b`).
    pub(crate) fn pattern(self) -> &'static str {
        match self {
            PiiKind::CnResidentId => {
                r"\b[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dx]\b"
            }
            PiiKind::BankCard => r"\b\d(?:[ \-]?\d){12,18}\b",
            PiiKind::PhoneCn => r"(?:\+86[ \-]?|\b)1[3-9]\d[ \-]?\d{4}[ \-]?\d{4}\b",
            PiiKind::PhoneIntl => r"\+[1-9]\d{0,2}(?:[ \-]?\d){7,14}\b",
            PiiKind::Email => {
                r"[a-z0-9](?:[a-z0-9._%+\-]{0,63})@[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?){1,8}"
            }
            PiiKind::Ipv4 => r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b",
            PiiKind::Ipv6 => r"[0-9a-f:]{2,39}(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})?",
        }
    }

    /// Whether a candidate (normalised text) really is this kind of PII.
    pub fn validate(self, candidate: &str) -> bool {
        match self {
            PiiKind::CnResidentId => valid_cn_id(candidate),
            PiiKind::BankCard => valid_card(candidate),
            PiiKind::PhoneCn => digits(candidate).len() >= 11,
            PiiKind::PhoneIntl => (8..=15).contains(&digits(candidate).len()),
            PiiKind::Email => valid_email(candidate),
            PiiKind::Ipv4 => candidate.parse::<std::net::Ipv4Addr>().is_ok(),
            PiiKind::Ipv6 => valid_ipv6(candidate),
        }
    }
}

fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// GB 11643-1999: weights 2^(17-i) mod 11, check character from "10X98765432".
pub fn valid_cn_id(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let expected = CHECK[(sum % 11) as usize];
    if b[17].to_ascii_uppercase() != expected {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
    valid_date(num(6..10), num(10..12), num(12..14))
}

fn valid_date(year: u32, month: u32, day: u32) -> bool {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1800..=2099).contains(&year) && (1..=days).contains(&day)
}

/// Luhn check over 13–19 digits; all-equal digit strings are rejected (e.g. "0000000000000").
pub fn valid_card(s: &str) -> bool {
    let d = digits(s);
    if !(13..=19).contains(&d.len()) || d.iter().all(|&x| x == d[0]) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                if x * 2 > 9 { x * 2 - 9 } else { x * 2 }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let tld = domain.rsplit('.').next().unwrap_or("");
    !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && tld.len() >= 2
        && tld.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Parses as IPv6 and has at least three non-empty groups, so "a::b" in code or "12:30:45"
/// is not reported.
fn valid_ipv6(s: &str) -> bool {
    s.parse::<std::net::Ipv6Addr>().is_ok() && s.split(':').filter(|g| !g.is_empty()).count() >= 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cn_id_checksum_and_date() {
        assert!(valid_cn_id("11010519491231002X"));
        assert!(valid_cn_id("11010519491231002x"));
        assert!(!valid_cn_id("110105194912310021"), "wrong check digit");
        assert!(!valid_cn_id("110105194902300028"), "february 30th");
    }

    #[test]
    fn luhn() {
        assert!(valid_card("4111 1111 1111 1111"));
        assert!(valid_card("5555-5555-5555-4444"));
        assert!(!valid_card("4111 1111 1111 1112"));
        assert!(!valid_card("0000000000000"));
    }

    #[test]
    fn ip_and_email() {
        assert!(PiiKind::Ipv4.validate("192.168.1.20"));
        assert!(!PiiKind::Ipv4.validate("300.1.1.1"));
        assert!(PiiKind::Ipv6.validate("2001:db8::8a2e:370:7334"));
        assert!(!PiiKind::Ipv6.validate("12:30:45"));
        assert!(PiiKind::Email.validate("li.lei@example.com.cn"));
        assert!(!PiiKind::Email.validate("a@b.c1"));
    }
}
