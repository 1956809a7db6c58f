//! The leak test: every chunking of an answer yields exactly the non-streamed result, and no
//! emitted prefix ever contains a banned word (as the policy itself normalises text).

use std::sync::Arc;

use enclave_policy::{Action, Policy, Scope, StreamFilter};
use proptest::prelude::*;

use super::{masked, policy, stream};

const POLICY: &str = r#"
[normalization]
separators = " .-_*"
max_separator_run = 2

[[category]]
name = "banned"
action = "mask"
mask = "per_char"
words = ["bad", "badass", "evil plan", "坏词", "敏感词", "dog"]

[[category]]
name = "codes"
action = "mask"
mask = "label"
[[category.regex]]
name = "order"
pattern = '\border-\d{4,8}\b'

[[category]]
name = "pii"
action = "mask"
pii = ["phone_cn", "email", "bank_card"]
"#;

const ANSWER: &str = "This is BAD. Ｂ.Ａ.Ｄ and b\u{200B}a\u{200D}d; 坏 词 here, 敏\u{200D}感*词! \
    An evil  plan? BadAss and b̶a̶d̶. Call 138 1234 5678 or li@example.com, order-12345, \
    card 4111-1111-1111-1111. dogma? hot dog.";

fn banned_left(policy: &Policy, emitted: &str) -> Vec<String> {
    policy
        .scan(emitted, Scope::Output)
        .into_iter()
        .filter(|m| m.action == Action::Mask && m.category.as_str() == "banned")
        .map(|m| m.matched)
        .collect()
}

fn boundaries(text: &str) -> Vec<usize> {
    text.char_indices().map(|(i, _)| i).skip(1).collect()
}

fn check_chunks(policy: &Arc<Policy>, chunks: &[&str], expected: &str) {
    let (out, pieces) = stream(policy, chunks);
    assert_eq!(out, expected, "chunks {chunks:?}");
    let mut prefix = String::new();
    for p in &pieces {
        prefix.push_str(p);
        // A prefix may end in the middle of a masked run; only whole banned words count.
        let leaked = banned_left(policy, &prefix);
        assert!(
            leaked.is_empty(),
            "leaked {leaked:?} in prefix {prefix:?} for chunks {chunks:?}"
        );
    }
}

#[test]
fn whole_text_masks_every_banned_word() {
    let p = policy(POLICY);
    let out = masked(&p, ANSWER);
    assert!(banned_left(&p, &out).is_empty(), "{out}");
    assert!(out.contains("This is ***."), "{out}");
    assert!(out.contains("[REDACTED:codes]"), "{out}");
    assert!(!out.contains("4111"), "{out}");
    assert!(
        out.contains("***ma"),
        "a word inside a longer word is found (no whole-word rule): {out}"
    );
}

#[test]
fn every_single_split_point() {
    let p = policy(POLICY);
    let expected = masked(&p, ANSWER);
    for i in boundaries(ANSWER) {
        check_chunks(&p, &[&ANSWER[..i], &ANSWER[i..]], &expected);
    }
}

#[test]
fn every_pair_of_split_points_on_a_window() {
    let p = policy(POLICY);
    let text = &ANSWER[..ANSWER
        .char_indices()
        .nth(70)
        .map_or(ANSWER.len(), |(i, _)| i)];
    let expected = masked(&p, text);
    let b = boundaries(text);
    for (x, &i) in b.iter().enumerate() {
        for &j in &b[x + 1..] {
            check_chunks(&p, &[&text[..i], &text[i..j], &text[j..]], &expected);
        }
    }
}

#[test]
fn one_char_at_a_time() {
    let p = policy(POLICY);
    let expected = masked(&p, ANSWER);
    let chars: Vec<String> = ANSWER.chars().map(String::from).collect();
    let chunks: Vec<&str> = chars.iter().map(String::as_str).collect();
    check_chunks(&p, &chunks, &expected);
}

#[test]
fn block_emits_nothing_of_or_after_the_match() {
    let p = policy(
        r#"
[[category]]
name = "stop"
action = "block"
words = ["forbidden"]
[[category]]
name = "soft"
action = "mask"
words = ["meh"]
"#,
    );
    let text = "ok meh then FOR\u{200B}BIDDEN stuff after";
    let whole = p.apply(text, Scope::Output);
    assert_eq!(whole.text, "ok *** then ");
    assert!(whole.blocked.is_some());
    for i in boundaries(text) {
        let mut f = StreamFilter::new(p.clone());
        let a = f.push(&text[..i]);
        let b = if a.blocked.is_some() {
            Default::default()
        } else {
            f.push(&text[i..])
        };
        let out = a.emit + &b.emit;
        assert_eq!(out, whole.text, "split at {i}");
        assert!(
            a.blocked.is_some() || b.blocked.is_some(),
            "split at {i}: block not reported"
        );
    }
}

#[test]
fn holds_back_only_what_could_still_match() {
    let p = policy(
        &POLICY[..POLICY
            .find("[[category]]\nname = \"pii\"")
            .expect("pii section")],
    );
    let mut f = StreamFilter::new(p.clone());
    assert_eq!(
        f.push("hello wor").emit,
        "hello wor",
        "nothing here can start a word"
    );
    assert_eq!(f.push("ld, ba").emit, "ld, ", "'ba' could become 'bad'");
    assert_eq!(f.push("nana").emit, "banana");
    assert_eq!(f.push(" 坏").emit, " ", "'坏' could become '坏词'");
    assert_eq!(f.push("人").emit, "坏人");
    assert_eq!(
        f.push(" order-12").emit,
        " ",
        "the order pattern is still alive"
    );
    assert_eq!(
        f.push("34 x").emit,
        "[REDACTED:codes] x",
        "a boundary followed: decided and masked"
    );
}

#[test]
fn email_detection_holds_the_current_word() {
    let p = policy(POLICY);
    let mut f = StreamFilter::new(p);
    assert_eq!(
        f.push("hello wor").emit,
        "hello ",
        "'wor' could be the local part of an address"
    );
    assert_eq!(f.push("ld, ok").emit, "world, ");
}

fn partition(text: &str, cuts: &[usize]) -> Vec<String> {
    let b = boundaries(text);
    let mut idx: Vec<usize> = cuts.iter().map(|c| b[c % b.len()]).collect();
    idx.sort_unstable();
    idx.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for i in idx {
        out.push(text[last..i].to_owned());
        last = i;
    }
    out.push(text[last..].to_owned());
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn random_multi_split_partitions(cuts in proptest::collection::vec(0usize..10_000, 1..40)) {
        let p = policy(POLICY);
        let expected = masked(&p, ANSWER);
        let chunks = partition(ANSWER, &cuts);
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        check_chunks(&p, &refs, &expected);
    }
}
