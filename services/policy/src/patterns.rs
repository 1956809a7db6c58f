//! User regex rules: parsing, safety checks and the rewrite applied before compilation.
//!
//! Patterns run on the normalised text (view A), case-insensitively. `\b`/`\B` and the word
//! start/end assertions are rewritten to their ASCII forms: CJK and other non-ASCII characters
//! count as non-word characters, so `\b1[3-9]\d{9}\b` finds a phone number glued to Chinese text,
//! and the streaming filter can decide with a DFA where a match could still begin.

use std::sync::Arc;

use regex_syntax::hir::{
    Capture, Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind, Look, Repetition,
};

use crate::error::PolicyError;
use crate::limits::Limits;

/// A validated user regex rule.
#[derive(Clone, Debug)]
pub(crate) struct UserPattern {
    name: Arc<str>,
    pub(crate) hir: Hir,
}

impl UserPattern {
    pub(crate) fn parse(
        category: &str,
        name: &str,
        pattern: &str,
        limits: &Limits,
    ) -> Result<Self, PolicyError> {
        let hir = compile_hir(pattern, limits).map_err(|p| p.into_error(category, name, limits))?;
        Ok(UserPattern {
            name: name.into(),
            hir,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }
}

#[derive(Debug)]
pub(crate) enum Problem {
    Syntax(String),
    Unsupported(String),
    Catastrophic(&'static str),
    Empty,
    TooLarge,
}

impl Problem {
    pub(crate) fn into_error(self, category: &str, rule: &str, limits: &Limits) -> PolicyError {
        let (category, rule) = (category.to_owned(), rule.to_owned());
        match self {
            Problem::Syntax(message) => PolicyError::InvalidRegex {
                category,
                rule,
                message,
            },
            Problem::Unsupported(message) => PolicyError::UnsupportedRegex {
                category,
                rule,
                message,
            },
            Problem::Catastrophic(reason) => PolicyError::CatastrophicPattern {
                category,
                rule,
                reason,
            },
            Problem::Empty => PolicyError::EmptyMatchPattern { category, rule },
            Problem::TooLarge => PolicyError::PatternTooLarge {
                category,
                rule,
                limit: limits.regex_size_limit,
            },
        }
    }
}

/// Parses, checks and rewrites one pattern.
pub(crate) fn compile_hir(pattern: &str, limits: &Limits) -> Result<Hir, Problem> {
    use regex_syntax::ast::ErrorKind as A;
    let ast = regex_syntax::ast::parse::ParserBuilder::new()
        .nest_limit(64)
        .build()
        .parse(pattern)
        .map_err(|e| match e.kind() {
            A::UnsupportedBackreference | A::UnsupportedLookAround => {
                Problem::Unsupported(e.to_string())
            }
            A::NestLimitExceeded(_) => Problem::Catastrophic("nesting is too deep"),
            A::RepetitionCountDecimalEmpty | A::RepetitionCountInvalid | A::DecimalInvalid => {
                Problem::Syntax(e.to_string())
            }
            _ => Problem::Syntax(e.to_string()),
        })?;
    let hir = regex_syntax::hir::translate::TranslatorBuilder::new()
        .unicode(true)
        .utf8(true)
        .case_insensitive(true)
        .build()
        .translate(pattern, &ast)
        .map_err(|e| Problem::Syntax(e.to_string()))?;
    if nested_unbounded(&hir, false) {
        return Err(Problem::Catastrophic(
            "nested unbounded repetition (e.g. (a+)+)",
        ));
    }
    let hir = ascii_words(hir);
    if hir.properties().minimum_len() == Some(0) || hir.properties().minimum_len().is_none() {
        return Err(Problem::Empty);
    }
    check_size(&hir, limits)?;
    Ok(hir)
}

fn check_size(hir: &Hir, limits: &Limits) -> Result<(), Problem> {
    use regex_automata::nfa::thompson;
    let config = thompson::Config::new()
        .nfa_size_limit(Some(limits.regex_size_limit))
        .shrink(false);
    match thompson::Compiler::new()
        .configure(config)
        .build_from_hir(hir)
    {
        Ok(_) => Ok(()),
        Err(e) if e.size_limit().is_some() => Err(Problem::TooLarge),
        Err(e) => Err(Problem::Unsupported(e.to_string())),
    }
}

fn nested_unbounded(hir: &Hir, inside_unbounded: bool) -> bool {
    match hir.kind() {
        HirKind::Repetition(r) => {
            let unbounded = r.max.is_none() || r.max.is_some_and(|m| m > 1000);
            if unbounded && inside_unbounded {
                return true;
            }
            nested_unbounded(&r.sub, inside_unbounded || unbounded)
        }
        HirKind::Capture(c) => nested_unbounded(&c.sub, inside_unbounded),
        HirKind::Concat(xs) | HirKind::Alternation(xs) => {
            xs.iter().any(|x| nested_unbounded(x, inside_unbounded))
        }
        _ => false,
    }
}

fn ascii_look(l: Look) -> Look {
    match l {
        Look::WordUnicode => Look::WordAscii,
        Look::WordUnicodeNegate => Look::WordAsciiNegate,
        Look::WordStartUnicode => Look::WordStartAscii,
        Look::WordEndUnicode => Look::WordEndAscii,
        Look::WordStartHalfUnicode => Look::WordStartHalfAscii,
        Look::WordEndHalfUnicode => Look::WordEndHalfAscii,
        other => other,
    }
}

/// Rebuilds the HIR with ASCII word assertions. Captures are dropped (rules only need spans).
fn ascii_words(hir: Hir) -> Hir {
    match hir.into_kind() {
        HirKind::Look(l) => Hir::look(ascii_look(l)),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            sub: Box::new(ascii_words(*r.sub)),
            ..r
        }),
        HirKind::Capture(Capture { sub, .. }) => ascii_words(*sub),
        HirKind::Concat(xs) => Hir::concat(xs.into_iter().map(ascii_words).collect()),
        HirKind::Alternation(xs) => Hir::alternation(xs.into_iter().map(ascii_words).collect()),
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(l) => Hir::literal(l.0),
        HirKind::Class(c) => Hir::class(fold_class(c)),
    }
}

/// Classes with more characters than this are left as they are (folding is per character).
const FOLD_CLASS_MAX: u32 = 64;

/// Rewrites a class for normalised text. `\d` becomes `[0-9]`: normalisation already turns
/// full-width and other compatibility digits into ASCII, and the Unicode class makes automata
/// large and slow on CJK text. A small class keeps only the normal forms of its characters:
/// case-insensitive translation turns `k` into `[Kk\u{212A}]`, which normalised text only ever
/// contains as `k`; folding it back to the literal `k` lets the regex engine find literal
/// prefixes and skip text with a prefilter.
fn fold_class(class: Class) -> Class {
    let Class::Unicode(u) = &class else {
        return class;
    };
    if u == unicode_digits() {
        return Class::Unicode(ClassUnicode::new([ClassUnicodeRange::new('0', '9')]));
    }
    let size: u32 = u
        .ranges()
        .iter()
        .map(|r| u32::from(r.end()) - u32::from(r.start()) + 1)
        .sum();
    if size > FOLD_CLASS_MAX {
        return class;
    }
    let mut folded = Vec::new();
    for c in u.ranges().iter().flat_map(|r| r.start()..=r.end()) {
        let mut buf = [0u8; 4];
        let n = crate::normalize::normalize(c.encode_utf8(&mut buf));
        let mut chars = n.chars();
        if let (Some(x), None) = (chars.next(), chars.next()) {
            folded.push(ClassUnicodeRange::new(x, x));
        }
    }
    if folded.is_empty() {
        return class;
    }
    Class::Unicode(ClassUnicode::new(folded))
}

/// The Unicode class `\d` translates to.
fn unicode_digits() -> &'static ClassUnicode {
    static DIGITS: std::sync::OnceLock<ClassUnicode> = std::sync::OnceLock::new();
    DIGITS.get_or_init(|| {
        let hir = regex_syntax::ParserBuilder::new()
            .unicode(true)
            .build()
            .parse(r"\d");
        match hir.as_ref().map(Hir::kind) {
            Ok(HirKind::Class(Class::Unicode(u))) => u.clone(),
            // Only reached if regex-syntax stops translating `\d` to a class: fold nothing then.
            _ => ClassUnicode::empty(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(p: &str) -> Problem {
        match compile_hir(p, &Limits::default()) {
            Err(e) => e,
            Ok(_) => panic!("{p:?} was accepted"),
        }
    }

    #[test]
    fn rejects_bad_patterns_with_specific_problems() {
        assert!(matches!(problem("(a"), Problem::Syntax(_)));
        assert!(matches!(problem(r"(a)\1"), Problem::Unsupported(_)));
        assert!(matches!(problem("(?=a)b"), Problem::Unsupported(_)));
        assert!(matches!(problem("(a+)+b"), Problem::Catastrophic(_)));
        assert!(matches!(problem("(a*b*)*c"), Problem::Catastrophic(_)));
        assert!(matches!(problem("a*"), Problem::Empty));
        assert!(matches!(problem(r"\w{1000}\w{1000}"), Problem::TooLarge));
    }

    #[test]
    fn folds_classes_to_normalised_text() {
        let literal = |p: &str| match compile_hir(p, &Limits::default()).map(|h| h.into_kind()) {
            Ok(HirKind::Literal(l)) => String::from_utf8(l.0.into_vec()).ok(),
            _ => None,
        };
        assert_eq!(
            literal("Order"),
            Some("order".into()),
            "case variants fold to lowercase"
        );
        assert_eq!(
            literal("ＡＢ"),
            Some("ab".into()),
            "full-width folds like the text"
        );
        let digits = compile_hir(r"\d", &Limits::default()).map(|h| h.into_kind());
        let Ok(HirKind::Class(Class::Unicode(u))) = digits else {
            panic!("\\d is not a class: {digits:?}");
        };
        assert_eq!(u.ranges(), [ClassUnicodeRange::new('0', '9')]);
    }

    #[test]
    fn accepts_bounded_patterns() {
        assert!(compile_hir(r"\border-\d{6}\b", &Limits::default()).is_ok());
        assert!(compile_hir(r"(ab){1,3}c+", &Limits::default()).is_ok());
    }
}
