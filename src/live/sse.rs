//! Incremental Server-Sent-Events framing (the subset OpenAI-compatible servers use).
//!
//! A TCP read can hold several events or a fragment of one, so bytes are buffered and split on
//! blank lines (`\n\n`, `\r\n\r\n` or mixed). Only `data:` fields are kept (one leading space
//! stripped, several `data:` lines joined with `\n`); comment lines (`:` keep-alives) and the
//! other fields (`event:`, `id:`, `retry:`) are skipped. Events are handed out only once
//! complete, so a UTF-8 sequence split across reads is never decoded half-way.

/// Buffers bytes and yields complete events' `data` payloads.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned for a blank line (no boundary before this point).
    scanned: usize,
}

/// Upper bound on one event's size (a bigger one is malformed: a server that never sends a
/// blank line must not make the client buffer without limit).
pub const MAX_EVENT_BYTES: usize = 16 << 20;

#[derive(Debug, PartialEq, Eq)]
pub enum SseError {
    TooLarge,
    Utf8,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; pushes the `data` payload of every event it completes into `out`
    /// (events without a `data` field are dropped).
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        self.buf.extend_from_slice(bytes);
        let mut start = 0usize;
        let mut i = self.scanned.max(start);
        while i < self.buf.len() {
            if self.buf[i] == b'\n' {
                // A blank line follows a line end: "\n\n" or "\n\r\n".
                let next = i + 1;
                let blank_end = if next < self.buf.len() && self.buf[next] == b'\n' {
                    Some(next + 1)
                } else if next + 1 < self.buf.len() && self.buf[next] == b'\r' && self.buf[next + 1] == b'\n' {
                    Some(next + 2)
                } else {
                    None
                };
                if let Some(end) = blank_end {
                    if let Some(d) = parse_event(&self.buf[start..i])? {
                        out.push(d);
                    }
                    start = end;
                    i = end;
                    continue;
                }
            }
            i += 1;
        }
        if start > 0 {
            self.buf.drain(..start);
        }
        // Re-scan from the last byte (it may be the first half of a boundary).
        self.scanned = self.buf.len().saturating_sub(2);
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err(SseError::TooLarge);
        }
        Ok(())
    }

    /// Bytes of an incomplete event still buffered (non-empty at end of stream = truncated).
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// At end of stream: the last event if the server closed without the final blank line.
    pub fn finish(&mut self) -> Result<Option<String>, SseError> {
        let rest = std::mem::take(&mut self.buf);
        self.scanned = 0;
        let trimmed = trim_line_end(&rest);
        if trimmed.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(None);
        }
        parse_event(trimmed)
    }
}

fn trim_line_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = s {
        s = rest;
    }
    s
}

/// Parses one event block (lines without the terminating blank line).
fn parse_event(block: &[u8]) -> Result<Option<String>, SseError> {
    let mut data: Option<String> = None;
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line[0] == b':' {
            continue;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(p) => {
                let v = &line[p + 1..];
                (&line[..p], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if field != b"data" {
            continue;
        }
        let v = std::str::from_utf8(value).map_err(|_| SseError::Utf8)?;
        match &mut data {
            Some(d) => {
                d.push('\n');
                d.push_str(v);
            }
            None => data = Some(v.to_string()),
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::new();
        let mut out = vec![];
        for c in chunks {
            p.push(c, &mut out).unwrap();
        }
        out.extend(p.finish().unwrap());
        out
    }

    #[test]
    fn splits_events_across_and_within_reads() {
        let s = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n: ping\n\ndata: [DONE]\n\n";
        let want = vec!["{\"a\":1}", "{\"b\":2}", "[DONE]"];
        assert_eq!(all(&[s]), want);
        // Every split point gives the same events.
        for cut in 0..s.len() {
            assert_eq!(all(&[&s[..cut], &s[cut..]]), want, "cut at {cut}");
        }
        // Byte by byte.
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(all(&bytes), want);
    }

    #[test]
    fn crlf_multiline_fields_and_utf8_split() {
        assert_eq!(all(&[b"event: x\r\ndata: a\r\ndata:b\r\nid: 3\r\n\r\ndata: c\n\r\n"]), vec!["a\nb", "c"]);
        let s = "data: héllo\n\n".as_bytes();
        let i = s.iter().position(|&b| b == 0xC3).unwrap() + 1; // inside the 2-byte é
        assert_eq!(all(&[&s[..i], &s[i..]]), vec!["héllo"]);
        // No data field: dropped. Missing final blank line: recovered by finish().
        assert_eq!(all(&[b"event: ping\n\ndata: last"]), vec!["last"]);
        let mut p = SseParser::new();
        assert_eq!(p.push(b"data: \xff\xfe\n\n", &mut vec![]), Err(SseError::Utf8));
    }
}
