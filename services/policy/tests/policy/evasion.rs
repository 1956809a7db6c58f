//! Each evasion technique is caught (one test each).

use enclave_policy::Scope;

use super::{masked, policy};

const P: &str = r#"
[normalization]
separators = " .-_*"
[[category]]
name = "banned"
action = "mask"
words = ["bad", "坏词"]
"#;

fn caught(text: &str) {
    let p = policy(P);
    let m = p.scan(text, Scope::Output);
    assert_eq!(m.len(), 1, "{text:?}: {m:?}");
    assert_eq!(
        m[0].matched,
        text.trim_matches(|c: char| c == '<' || c == '>'),
        "span covers the whole evasion"
    );
}

#[test]
fn full_width() {
    caught("ｂａｄ");
}

#[test]
fn mixed_case() {
    caught("BaD");
}

#[test]
fn zero_width_joiners() {
    caught("b\u{200D}a\u{200B}\u{2060}d");
    caught("坏\u{200C}词");
}

#[test]
fn inserted_separators() {
    caught("b.a.d");
    caught("b -a* d");
    caught("坏 词");
}

#[test]
fn combining_characters() {
    caught("b\u{0336}a\u{0336}d\u{0336}");
    caught("bá\u{0301}d");
}

#[test]
fn separators_do_not_join_ordinary_words() {
    let p = policy(P);
    assert_eq!(
        masked(&p, "a ba dream"),
        "a ba dream",
        "'ba dream' is not 'bad'"
    );
    assert!(
        p.scan("b...a...d", Scope::Output).is_empty(),
        "runs longer than max_separator_run are kept"
    );
}
