//! What the gateway needs to run a served model as a judge: the prompt and the answer parser.
//! The answer is constrained (see [`JudgeSpec::answer_regex`]) to `none` or a comma-separated list
//! of allowed labels, so parsing is exact rather than heuristic.

use serde::{Deserialize, Serialize};

use super::Detection;

/// Prompt template and allowed labels for a judge detector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeSpec {
    /// Template with `{labels}` and `{text}` placeholders.
    pub prompt_template: String,
    pub labels: Vec<String>,
}

/// Why a judge answer was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JudgeParseError {
    #[error("judge answer is empty")]
    Empty,
    #[error("judge answered {0:?}, which is not an allowed label")]
    UnknownLabel(String),
    #[error("judge answered `none` together with labels")]
    NoneWithLabels,
}

pub const DEFAULT_JUDGE_PROMPT: &str = "You are a content safety classifier. Classify the text below into zero or more of \
these categories: {labels}.\nAnswer with the matching category names separated by commas, or `none`. Answer with \
nothing else.\n\nText:\n<<<\n{text}\n>>>\nAnswer:";

impl JudgeSpec {
    pub fn new(labels: Vec<String>) -> Self {
        JudgeSpec {
            prompt_template: DEFAULT_JUDGE_PROMPT.to_owned(),
            labels,
        }
    }

    /// The prompt for one text. The text is inserted verbatim after the instructions.
    pub fn render(&self, text: &str) -> String {
        self.prompt_template
            .replace("{labels}", &self.labels.join(", "))
            .replace("{text}", text)
    }

    /// Regex for constrained decoding of the answer: `none` or `label(, label)*`.
    pub fn answer_regex(&self) -> String {
        let alts: Vec<String> = self
            .labels
            .iter()
            .map(|l| regex_syntax::escape(l))
            .collect();
        let one = format!("(?:{})", alts.join("|"));
        format!("(?:none|{one}(?:, ?{one})*)")
    }
}

/// Parses a constrained judge answer into detections (score 1.0 per label).
pub fn parse_judge_answer(
    answer: &str,
    allowed: &[String],
) -> Result<Vec<Detection>, JudgeParseError> {
    let line = answer
        .trim()
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches('.');
    let line = line
        .strip_prefix("labels:")
        .or_else(|| line.strip_prefix("Labels:"))
        .unwrap_or(line)
        .trim();
    if line.is_empty() {
        return Err(JudgeParseError::Empty);
    }
    let parts: Vec<&str> = line
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.iter().any(|p| p.eq_ignore_ascii_case("none")) {
        return if parts.len() == 1 {
            Ok(Vec::new())
        } else {
            Err(JudgeParseError::NoneWithLabels)
        };
    }
    let mut out: Vec<Detection> = Vec::new();
    for p in parts {
        let Some(label) = allowed.iter().find(|l| l.eq_ignore_ascii_case(p)) else {
            return Err(JudgeParseError::UnknownLabel(p.to_owned()));
        };
        if !out.iter().any(|d| &d.label == label) {
            out.push(Detection {
                label: label.clone(),
                score: 1.0,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_constrained_answers() {
        let allowed = vec!["abuse".to_owned(), "pii_request".to_owned()];
        assert_eq!(parse_judge_answer(" none\n", &allowed), Ok(vec![]));
        let d = parse_judge_answer("abuse, PII_REQUEST.", &allowed).expect("valid");
        assert_eq!(
            d.iter().map(|d| d.label.as_str()).collect::<Vec<_>>(),
            ["abuse", "pii_request"]
        );
        assert_eq!(
            parse_judge_answer("weather", &allowed),
            Err(JudgeParseError::UnknownLabel("weather".into()))
        );
        assert_eq!(
            parse_judge_answer("none, abuse", &allowed),
            Err(JudgeParseError::NoneWithLabels)
        );
        assert_eq!(
            parse_judge_answer("  ", &allowed),
            Err(JudgeParseError::Empty)
        );
    }

    #[test]
    fn answer_regex_accepts_what_the_parser_accepts() {
        let spec = JudgeSpec::new(vec!["abuse".to_owned(), "pii_request".to_owned()]);
        let re = regex::Regex::new(&format!("^{}$", spec.answer_regex())).expect("regex");
        assert!(
            re.is_match("none") && re.is_match("abuse, pii_request") && !re.is_match("weather")
        );
        assert!(
            spec.render("hi").contains("abuse, pii_request") && spec.render("hi").contains("hi")
        );
    }
}
