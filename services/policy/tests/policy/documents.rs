//! Bad documents are rejected with their specific code.

use enclave_policy::{Limits, Policy, PolicyDocument};

fn code(toml: &str) -> &'static str {
    code_with(toml, &Limits::default())
}

fn code_with(toml: &str, limits: &Limits) -> &'static str {
    match PolicyDocument::parse_toml_with_limits(toml, limits) {
        Err(e) => e.code(),
        Ok(doc) => match Policy::compile(&doc, limits) {
            Err(e) => e.code(),
            Ok(_) => "accepted",
        },
    }
}

fn cat(body: &str) -> String {
    format!("[[category]]\nname = \"c\"\n{body}\n")
}

#[test]
fn table_of_bad_documents() {
    let many_words = format!(
        "action = \"mask\"\nwords = [{}]",
        (0..11)
            .map(|i| format!("\"w{i}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "invalid regex",
            cat("action = \"mask\"\n[[category.regex]]\nname = \"r1\"\npattern = \"(unclosed\""),
            "invalid_regex",
        ),
        (
            "nested quantifier",
            cat("action = \"mask\"\n[[category.regex]]\nname = \"r1\"\npattern = \"(a+)+$\""),
            "catastrophic_pattern",
        ),
        (
            "backreference",
            cat("action = \"mask\"\n[[category.regex]]\nname = \"r1\"\npattern = '(a)\\1'"),
            "unsupported_regex",
        ),
        (
            "huge pattern",
            cat("action = \"mask\"\n[[category.regex]]\nname = \"r1\"\npattern = '\\w{2000}'"),
            "pattern_too_large",
        ),
        (
            "empty-matching pattern",
            cat("action = \"mask\"\n[[category.regex]]\nname = \"r1\"\npattern = 'x?'"),
            "empty_match_pattern",
        ),
        ("empty category", cat("action = \"mask\""), "empty_category"),
        (
            "unknown action",
            cat("action = \"explode\"\nwords = [\"x\"]"),
            "unknown_action",
        ),
        (
            "unknown scope",
            cat("action = \"mask\"\nscope = \"sideways\"\nwords = [\"x\"]"),
            "unknown_scope",
        ),
        (
            "unknown field",
            cat("action = \"mask\"\nwords = [\"x\"]\ncolour = \"red\""),
            "invalid_document",
        ),
        (
            "unknown pii",
            cat("action = \"mask\"\npii = [\"passport\"]"),
            "unknown_pii_detector",
        ),
        ("oversized list", cat(&many_words), "word_list_too_large"),
        (
            "duplicate category",
            format!(
                "{}{}",
                cat("action = \"mask\"\nwords = [\"x\"]"),
                cat("action = \"flag\"\nwords = [\"y\"]")
            ),
            "duplicate_category",
        ),
        (
            "bad name",
            "[[category]]\nname = \"Bad Name\"\naction = \"mask\"\nwords = [\"x\"]".to_owned(),
            "invalid_category_name",
        ),
        (
            "invisible word",
            cat("action = \"mask\"\nwords = [\"\\u200b\"]"),
            "empty_word",
        ),
        (
            "word file without path",
            cat("action = \"mask\"\nword_files = [\"x.txt\"]"),
            "word_file_unresolved",
        ),
        (
            "alphanumeric separator",
            "[normalization]\nseparators = \"a\"\n".to_owned()
                + &cat("action = \"mask\"\nwords = [\"x\"]"),
            "invalid_separator",
        ),
        (
            "unknown detector kind",
            cat("action = \"flag\"")
                + "[[detector]]\nname = \"d\"\nkind = \"oracle\"\ncategories = [\"c\"]\n",
            "unknown_detector_kind",
        ),
    ];
    let limits = Limits {
        max_words: 10,
        ..Limits::default()
    };
    for (what, doc, expected) in cases {
        assert_eq!(code_with(&doc, &limits), expected, "{what}:\n{doc}");
    }
}

#[test]
fn good_document_with_detector_is_accepted() {
    let doc = cat("action = \"flag\"")
        + "[[detector]]\nname = \"clf\"\nkind = \"classifier\"\nmodel = \"abuse-v1\"\nthreshold = 0.7\ncategories = [\"c\"]\n";
    assert_eq!(code(&doc), "accepted");
}

#[test]
fn layering_rejects_redefining_a_baseline_category() {
    let base =
        PolicyDocument::parse_toml(&cat("action = \"block\"\nwords = [\"x\"]")).expect("base");
    let tenant =
        PolicyDocument::parse_toml(&cat("action = \"flag\"\nwords = [\"x\"]")).expect("tenant");
    let err = PolicyDocument::layered(&base, &tenant).expect_err("must conflict");
    assert_eq!(err.code(), "duplicate_category");
}

#[test]
fn shipped_policies_load_and_compile() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let limits = Limits::default();
    let base = PolicyDocument::load(&dir.join("baseline.toml"), &limits).expect("baseline");
    let tenant = PolicyDocument::load(&dir.join("example-tenant.toml"), &limits).expect("tenant");
    let policy = Policy::compile_layered(&base, Some(&tenant), &limits).expect("compile");
    let d = policy.apply("联系我 13812345678", enclave_policy::Scope::Output);
    assert!(!d.text.contains("13812345678"), "{}", d.text);
}
