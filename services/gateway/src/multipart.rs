//! `multipart/form-data` split into parts (RFC 7578), shared by adapter uploads, which refuse a
//! malformed body, and audit records, which summarise whatever was read.

/// One part: its header block (lossy UTF-8) and its bytes.
#[derive(Debug)]
pub(crate) struct Part<'a> {
    pub head: String,
    pub data: &'a [u8],
}

impl Part<'_> {
    /// A header's value, e.g. `content-disposition` (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim())
        })
    }
}

/// Why splitting stopped before the closing boundary.
#[derive(Debug)]
pub(crate) enum Malformed<'a> {
    /// No boundary anywhere in the body.
    NoParts,
    /// A boundary followed by something other than CRLF or the closing `--`.
    NoCrlf,
    /// A part whose header block never ends.
    NoHeadEnd,
    /// The body ends inside this part (no boundary after it).
    Truncated(Part<'a>),
}

/// The parts of `body`, in order; after an error the iterator ends.
pub(crate) fn parts<'a>(body: &'a [u8], boundary: &str) -> Parts<'a> {
    Parts {
        body,
        delim: format!("--{boundary}").into_bytes(),
        next_delim: format!("\r\n--{boundary}").into_bytes(),
        at: None,
        done: false,
    }
}

pub(crate) struct Parts<'a> {
    body: &'a [u8],
    delim: Vec<u8>,
    next_delim: Vec<u8>,
    /// Just past the last boundary read (`None` before the first).
    at: Option<usize>,
    done: bool,
}

impl<'a> Parts<'a> {
    fn next_part(&mut self) -> Option<Result<Part<'a>, Malformed<'a>>> {
        let body = self.body;
        let at = match self.at {
            Some(at) => at,
            None => match find(body, &self.delim, 0) {
                Some(first) => first + self.delim.len(),
                None => return Some(Err(Malformed::NoParts)),
            },
        };
        let rest = body.get(at..).unwrap_or_default();
        if rest.starts_with(b"--") {
            return None;
        }
        if !rest.starts_with(b"\r\n") {
            return Some(Err(Malformed::NoCrlf));
        }
        // Searched from the boundary's own CRLF, so a part without headers has an empty head.
        let Some(head_end) = find(body, b"\r\n\r\n", at) else {
            return Some(Err(Malformed::NoHeadEnd));
        };
        let head = String::from_utf8_lossy(body.get(at + 2..head_end).unwrap_or_default());
        let head = head.into_owned();
        let data_start = head_end + 4;
        let Some(data_end) = find(body, &self.next_delim, data_start) else {
            let data = body.get(data_start..).unwrap_or_default();
            return Some(Err(Malformed::Truncated(Part { head, data })));
        };
        self.at = Some(data_end + self.next_delim.len());
        Some(Ok(Part {
            head,
            data: body.get(data_start..data_end).unwrap_or_default(),
        }))
    }
}

impl<'a> Iterator for Parts<'a> {
    type Item = Result<Part<'a>, Malformed<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_part();
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// `key="value"` parameters of a header value (`form-data; name="x"; filename="y"`).
pub(crate) fn param(header: &str, key: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_heads_and_truncation() {
        let body = b"preamble--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--B\r\n\r\nno head\r\n--B--\r\n";
        let got: Vec<_> = parts(body, "B").collect();
        assert_eq!(got.len(), 2);
        let Some(Ok(a)) = got.first() else {
            panic!("{got:?}")
        };
        let disposition = a.header("Content-Disposition").unwrap_or_default();
        assert_eq!(param(disposition, "name").as_deref(), Some("a"));
        assert_eq!(a.data, b"x");
        let Some(Ok(b)) = got.get(1) else {
            panic!("{got:?}")
        };
        assert_eq!((b.head.as_str(), b.data), ("", &b"no head"[..]));

        let cut = b"--B\r\nContent-Disposition: form-data; name=\"w\"\r\n\r\nabc";
        let got: Vec<_> = parts(cut, "B").collect();
        assert!(
            matches!(got.as_slice(), [Err(Malformed::Truncated(p))] if p.data == b"abc"),
            "{got:?}"
        );
        assert!(matches!(
            parts(b"nothing", "B").collect::<Vec<_>>().as_slice(),
            [Err(Malformed::NoParts)]
        ));
        assert!(matches!(
            parts(b"--Bx", "B").collect::<Vec<_>>().as_slice(),
            [Err(Malformed::NoCrlf)]
        ));
    }
}
