//! [`StopMatcher`]: finds stop sequences in streamed text that arrives in arbitrary chunks, and
//! says how much of the text is safe to show.
//!
//! "First stop" means the occurrence that *ends* first (on equal ends, the longer one). That is
//! the one a reader going left to right completes first, so the result does not depend on how
//! the text was chunked. Only the longest suffix of the pending text that is a proper prefix of
//! some stop is held back; everything before it is released at once. Linear scans are enough:
//! stops are few (the engine's limit) and short ([`super::MAX_STOP_SEQUENCE_BYTES`]).

/// What one [`StopMatcher::push`] released.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopStep {
    /// Text that may be shown now; never contains a stop sequence or any part of a matched one.
    pub text: String,
    /// The stop sequence that ended the generation in this push, if one did. Text after it is
    /// discarded, and later pushes release nothing.
    pub stopped: Option<String>,
}

/// Streaming stop-sequence matcher for one sequence's detokenized output.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not yet released: always a proper prefix of some stop.
    pending: String,
    longest: usize,
    stopped: bool,
}

impl StopMatcher {
    /// Empty strings in `stops` are ignored (they would match everywhere).
    pub fn new(stops: &[String]) -> Self {
        let stops: Vec<String> = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        let longest = stops.iter().map(String::len).max().unwrap_or(0);
        StopMatcher {
            stops,
            pending: String::new(),
            longest,
            stopped: false,
        }
    }

    /// Feeds the next piece of text.
    pub fn push(&mut self, text: &str) -> StopStep {
        if self.stopped {
            return StopStep::default();
        }
        if self.stops.is_empty() {
            return StopStep {
                text: text.to_owned(),
                stopped: None,
            };
        }
        let searched_before = self.pending.len();
        self.pending.push_str(text);
        if let Some((start, index)) = self.first_match(searched_before) {
            self.stopped = true;
            self.pending.truncate(start);
            let text = std::mem::take(&mut self.pending);
            return StopStep {
                text,
                stopped: Some(self.stops[index].clone()),
            };
        }
        let keep = self.held_suffix_len();
        let text = self.pending.drain(..self.pending.len() - keep).collect();
        StopStep {
            text,
            stopped: None,
        }
    }

    /// Ends the stream: releases the held-back text (none once a stop matched).
    pub fn finish(self) -> String {
        if self.stopped {
            String::new()
        } else {
            self.pending
        }
    }

    /// Text currently held back because it could still become a stop sequence.
    pub fn held_back(&self) -> &str {
        &self.pending
    }

    /// Whether a stop sequence has matched.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The match with the smallest end (then smallest start) that ends after byte `searched`;
    /// nothing ending at or before it can exist, or an earlier push would have stopped.
    fn first_match(&self, searched: usize) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize, usize)> = None; // (end, start, stop index)
        for (index, stop) in self.stops.iter().enumerate() {
            let from = self
                .pending
                .floor_char_boundary(searched.saturating_sub(stop.len() - 1));
            if let Some(pos) = self.pending[from..].find(stop.as_str()) {
                let start = from + pos;
                let candidate = (start + stop.len(), start, index);
                if best.is_none_or(|b| (candidate.0, candidate.1) < (b.0, b.1)) {
                    best = Some(candidate);
                }
            }
        }
        best.map(|(_, start, index)| (start, index))
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of some stop.
    fn held_suffix_len(&self) -> usize {
        let len = self.pending.len();
        let bytes = self.pending.as_bytes();
        // A stop's prefix starts on a char boundary, so a byte match implies one here too.
        (1..=len.min(self.longest.saturating_sub(1)))
            .rev()
            .find(|&k| {
                let tail = &bytes[len - k..];
                self.stops
                    .iter()
                    .any(|s| s.len() > k && s.as_bytes().starts_with(tail))
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn holds_back_only_a_possible_prefix() {
        let mut m = StopMatcher::new(&stops(&["</end>"]));
        assert_eq!(m.push("hello </e").text, "hello ");
        assert_eq!(m.held_back(), "</e");
        assert_eq!(m.push("x").text, "</ex");
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn stop_across_pushes_discards_the_rest() {
        let mut m = StopMatcher::new(&stops(&["STOP"]));
        assert_eq!(m.push("abST").text, "ab");
        let step = m.push("OP and more");
        assert_eq!(
            step,
            StopStep {
                text: String::new(),
                stopped: Some("STOP".into())
            }
        );
        assert_eq!(m.push("ignored"), StopStep::default());
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn earliest_end_wins_then_longest() {
        let mut m = StopMatcher::new(&stops(&["xbc", "b"]));
        assert_eq!(m.push("axbc").text, "ax");
        let mut m = StopMatcher::new(&stops(&["c", "bc"]));
        let step = m.push("abc");
        assert_eq!(
            (step.text.as_str(), step.stopped.as_deref()),
            ("a", Some("bc"))
        );
    }

    #[test]
    fn multibyte_stops_and_text() {
        let mut m = StopMatcher::new(&stops(&["停止", "é!"]));
        assert_eq!(m.push("日本停").text, "日本");
        assert_eq!(m.push("ok é").text, "停ok ");
        let step = m.push("!");
        assert_eq!(step.stopped.as_deref(), Some("é!"));
        assert_eq!(step.text, "");
    }

    #[test]
    fn no_stops_passes_text_through() {
        let mut m = StopMatcher::new(&stops(&[""]));
        assert_eq!(m.push("abc").text, "abc");
        assert_eq!(m.finish(), "");
    }
}
