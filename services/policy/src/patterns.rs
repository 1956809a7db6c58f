//! User regex rules: parsing, safety checks and the rewrite applied before compilation.
//!
//! Patterns run on the normalised text (view A), case-insensitively. `\b`/`\B` and the word
//! start/end assertions are rewritten to their ASCII forms: CJK and other non-ASCII characters
//! count as non-word characters, so `\b1[3-9]\d{9}\b` finds a phone number glued to Chinese text,
//! and the streaming filter can decide with a DFA where a match could still begin.

use std::sync::Arc;

use regex_syntax::hir::{Capture, Hir, HirKind, Look, Repetition};

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
        HirKind::Class(c) => Hir::class(c),
    }
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
    fn accepts_bounded_patterns() {
        assert!(compile_hir(r"\border-\d{6}\b", &Limits::default()).is_ok());
        assert!(compile_hir(r"(ab){1,3}c+", &Limits::default()).is_ok());
    }
}
