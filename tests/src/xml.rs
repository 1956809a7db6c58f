//! Reading the gateway's XML documents in tests: the text of the first element at a path.

use quick_xml::Reader;
use quick_xml::events::Event;

/// Text of the first element whose ancestry (root first) is exactly `path`, unescaped.
/// `Err` when the document is not well-formed.
pub fn text_at(doc: &str, path: &[&str]) -> anyhow::Result<Option<String>> {
    let mut reader = Reader::from_str(doc);
    let mut stack: Vec<String> = Vec::new();
    let mut found: Option<String> = None;
    loop {
        match reader.read_event()? {
            Event::Start(e) => {
                stack.push(e.name().as_ref().to_owned());
                if stack == path {
                    found = Some(String::new());
                }
            }
            Event::Empty(e) => {
                stack.push(e.name().as_ref().to_owned());
                if stack == path {
                    return Ok(Some(String::new()));
                }
                stack.pop();
            }
            Event::Text(t) => {
                if let Some(f) = found.as_mut() {
                    f.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(f) = found.as_mut() {
                    let name = r.xml10_content().to_string();
                    f.push_str(&resolve(&name)?);
                }
            }
            Event::CData(c) => {
                if let Some(f) = found.as_mut() {
                    f.push_str(&c.into_inner());
                }
            }
            Event::End(_) => {
                if found.is_some() && stack == path {
                    return Ok(found);
                }
                stack.pop();
            }
            Event::Eof => return Ok(None),
            _ => {}
        }
    }
}

fn resolve(name: &str) -> anyhow::Result<String> {
    Ok(match name {
        "lt" => "<".into(),
        "gt" => ">".into(),
        "amp" => "&".into(),
        "quot" => "\"".into(),
        "apos" => "'".into(),
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x") {
                u32::from_str_radix(hex, 16)?
            } else if let Some(dec) = name.strip_prefix('#') {
                dec.parse()?
            } else {
                anyhow::bail!("unknown entity &{name};")
            };
            char::from_u32(code)
                .map(String::from)
                .ok_or_else(|| anyhow::anyhow!("bad character reference &{name};"))?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_text_with_references() {
        let doc =
            r#"<?xml version="1.0"?><a><b><item><c>x &amp; y &#x41;</c></item></b><c>no</c></a>"#;
        assert_eq!(
            text_at(doc, &["a", "b", "item", "c"]).unwrap().as_deref(),
            Some("x & y A")
        );
        assert_eq!(text_at(doc, &["a", "c"]).unwrap().as_deref(), Some("no"));
        assert_eq!(text_at(doc, &["a", "missing"]).unwrap(), None);
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(text_at("<a><b></a>", &["a", "b"]).is_err());
    }
}
