//! Server-Sent Events: an event is a run of `field: value` lines ended by a blank line; its
//! payload is the `data` lines joined with newlines.

/// The `data` payloads of every event in `body`, in order (including `[DONE]`).
pub fn data_events(body: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if let Some(d) = data.take() {
                events.push(d);
            }
            continue;
        }
        if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }
    if let Some(d) = data {
        events.push(d);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_multi_line_data_and_splits_on_blank_lines() {
        let body =
            "data: {\"a\":1}\n\ndata: <x>\r\ndata: </x>\r\n\r\n: comment\n\ndata: [DONE]\n\n";
        assert_eq!(data_events(body), vec!["{\"a\":1}", "<x>\n</x>", "[DONE]"]);
    }

    #[test]
    fn ignores_other_fields_and_keeps_an_unterminated_last_event() {
        let body = "event: chunk\nid: 1\ndata:x\n\ndata: tail";
        assert_eq!(data_events(body), vec!["x", "tail"]);
    }
}
