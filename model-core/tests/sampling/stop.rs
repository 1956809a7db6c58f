//! StopMatcher against a reference, over every chunking of short texts and random chunkings
//! of long ones, with multi-byte characters.

use enclave_model_core::sampling::StopMatcher;
use proptest::prelude::*;

/// The text before the first stop occurrence (the one ending first; on equal ends the longer),
/// and that stop.
fn reference_stop(text: &str, stops: &[String]) -> (String, Option<String>) {
    for (end, _) in text.char_indices().skip(1).chain([(text.len(), ' ')]) {
        let hit = stops
            .iter()
            .filter(|s| text[..end].ends_with(s.as_str()))
            .max_by_key(|s| s.len());
        if let Some(s) = hit {
            return (text[..end - s.len()].to_string(), Some(s.clone()));
        }
    }
    (text.to_string(), None)
}

/// Longest suffix of `text` that is a proper prefix of some stop.
fn reference_hold(text: &str, stops: &[String]) -> usize {
    (1..=text.len())
        .rev()
        .find(|&k| {
            text.is_char_boundary(text.len() - k)
                && stops
                    .iter()
                    .any(|s| s.len() > k && s.starts_with(&text[text.len() - k..]))
        })
        .unwrap_or(0)
}

/// Streams `chunks` through a matcher, checking every step; returns what the caller would show.
fn stream(chunks: &[&str], stops: &[String]) -> Result<(String, Option<String>), TestCaseError> {
    let mut m = StopMatcher::new(stops);
    let mut shown = String::new();
    let mut fed = String::new();
    let mut stopped = None;
    for chunk in chunks {
        fed.push_str(chunk);
        let step = m.push(chunk);
        shown.push_str(&step.text);
        for s in stops {
            prop_assert!(
                !shown.contains(s.as_str()),
                "shown {shown:?} contains stop {s:?}"
            );
        }
        if let Some(s) = step.stopped {
            prop_assert!(stopped.is_none(), "stopped twice");
            stopped = Some(s);
        }
        if stopped.is_none() {
            prop_assert_eq!(
                format!("{shown}{}", m.held_back()),
                fed.clone(),
                "shown + held != fed"
            );
            prop_assert_eq!(
                m.held_back().len(),
                reference_hold(&fed, stops),
                "held back too much or too little"
            );
        }
    }
    shown.push_str(&m.finish());
    Ok((shown, stopped))
}

const ALPHABET: [&str; 6] = ["a", "b", "é", "日", "🙂", "\n"];

fn word(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET.to_vec()), 1..=max).prop_map(|v| v.concat())
}

/// Text built from single characters and whole stop strings, so stops occur often.
fn text_and_stops(max_pieces: usize) -> impl Strategy<Value = (String, Vec<String>)> {
    prop::collection::vec(word(3), 1..=3).prop_flat_map(move |stops| {
        let piece = (
            any::<bool>(),
            any::<prop::sample::Index>(),
            prop::sample::select(ALPHABET.to_vec()),
        );
        prop::collection::vec(piece, 0..=max_pieces).prop_map(move |pieces| {
            let text: String = pieces
                .iter()
                .map(|(is_stop, idx, c)| {
                    if *is_stop {
                        idx.get(&stops).clone()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            (text, stops.clone())
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every way of cutting a short text into chunks (at char boundaries) gives the same result.
    #[test]
    fn stop_matching_is_independent_of_chunking((text, stops) in text_and_stops(5)) {
        let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
        prop_assume!(bounds.len() <= 11);
        let want = reference_stop(&text, &stops);
        for cuts in 0u32..(1 << bounds.len()) {
            let mut chunks = Vec::new();
            let mut start = 0;
            for (bit, &b) in bounds.iter().enumerate() {
                if cuts & (1 << bit) != 0 {
                    chunks.push(&text[start..b]);
                    start = b;
                }
            }
            chunks.push(&text[start..]);
            prop_assert_eq!(stream(&chunks, &stops)?, want.clone(), "chunks {:?}", chunks);
        }
    }

    /// Longer texts with random cut points, empty chunks included.
    #[test]
    fn stop_matching_on_long_texts((text, stops) in text_and_stops(40), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..30)) {
        let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
        let mut points: Vec<usize> = cuts.iter().map(|c| *c.get(&bounds)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for p in points {
            chunks.push(&text[start..p]);
            start = p;
        }
        chunks.push(&text[start..]);
        prop_assert_eq!(stream(&chunks, &stops)?, reference_stop(&text, &stops));
    }
}
