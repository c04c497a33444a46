//! `multipart/related` bodies (RFC 2387 over RFC 2046 §5.1) as resource-list NOTIFYs carry
//! them (RFC 4662 §5): a root part (the RLMI document) and one part per resource state,
//! tied together by `Content-ID`.
//!
//! [`Related::build`] chooses a boundary from caller randomness and makes sure it occurs in
//! no part; [`Related::parse`] splits a body given its `Content-Type` header value. Both
//! write and accept CRLF line ends; parsing also accepts bare LF (seen in the wild).

use crate::XmlError;

/// One body part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `Content-ID` without the angle brackets.
    pub content_id: Option<String>,
    /// `Content-Type` value as written (e.g. `application/pidf+xml;charset="UTF-8"`).
    pub content_type: String,
    /// Other headers (`Content-Transfer-Encoding`, ...), names as written, in order.
    pub headers: Vec<(String, String)>,
    /// The part's body.
    pub body: Vec<u8>,
}

impl Part {
    /// A part with `Content-Transfer-Encoding: binary` (RFC 4662 §5 uses it).
    pub fn new(
        content_id: impl Into<String>,
        content_type: impl Into<String>,
        body: Vec<u8>,
    ) -> Part {
        Part {
            content_id: Some(content_id.into()),
            content_type: content_type.into(),
            headers: vec![("Content-Transfer-Encoding".to_owned(), "binary".to_owned())],
            body,
        }
    }

    /// The media type without parameters, lowercase.
    pub fn media_type(&self) -> String {
        media_type(&self.content_type)
    }
}

/// A `multipart/related` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// The `boundary` parameter.
    pub boundary: String,
    /// The `type` parameter: the root part's media type.
    pub root_type: String,
    /// The `start` parameter (root Content-ID without brackets); the first part is the root
    /// when absent.
    pub start: Option<String>,
    /// The parts in order.
    pub parts: Vec<Part>,
}

/// Most parts [`Related::parse`] accepts.
pub const MAX_PARTS: usize = 10_000;

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn err(s: impl Into<String>) -> XmlError {
    XmlError::Multipart(s.into())
}

/// Splits `;`-separated parameters honouring quoted strings; returns (name, unquoted value).
fn params(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let bytes = value.as_bytes();
    let mut i = value.find(';').map_or(bytes.len(), |p| p + 1);
    while i < bytes.len() {
        let rest = &value[i..];
        let eq = rest.find('=');
        let semi = rest.find(';');
        let Some(eq) = eq.filter(|e| semi.is_none_or(|s| *e < s)) else {
            i += semi.map_or(rest.len(), |s| s + 1);
            continue;
        };
        let name = rest[..eq].trim().to_ascii_lowercase();
        let after = rest[eq + 1..].trim_start();
        let skipped = rest[eq + 1..].len() - after.len();
        let (val, used) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((k, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = k + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, 1 + end)
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), end)
        };
        out.push((name, val));
        let consumed = eq + 1 + skipped + used;
        let tail = &rest[consumed.min(rest.len())..];
        i += consumed + tail.find(';').map_or(tail.len(), |s| s + 1);
    }
    out
}

fn strip_brackets(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(s)
        .to_owned()
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    memchr::memmem::find(&hay[from..], needle).map(|p| p + from)
}

impl Related {
    /// The root part: the one whose Content-ID is `start`, else the first.
    pub fn root(&self) -> Option<&Part> {
        match &self.start {
            Some(s) => self
                .parts
                .iter()
                .find(|p| p.content_id.as_deref() == Some(s.as_str())),
            None => self.parts.first(),
        }
    }

    /// The part with Content-ID `cid` (no brackets).
    pub fn part(&self, cid: &str) -> Option<&Part> {
        self.parts
            .iter()
            .find(|p| p.content_id.as_deref() == Some(cid))
    }

    /// Builds a body. The first part is the root; `start` is its Content-ID. The boundary is
    /// made from `random` (caller randomness) and lengthened until it occurs in no part.
    pub fn build(parts: Vec<Part>, random: [u8; 12]) -> Result<Related, XmlError> {
        let root = parts.first().ok_or_else(|| err("no parts"))?;
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut boundary: String = random
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect();
        let mut n = 0u32;
        while parts
            .iter()
            .any(|p| find(&p.body, boundary.as_bytes(), 0).is_some())
        {
            n += 1;
            if n > 64 {
                return Err(err("no boundary found that occurs in no part"));
            }
            boundary.push(
                ALPHABET[(n as usize * 7 + usize::from(random[n as usize % 12])) % ALPHABET.len()]
                    as char,
            );
        }
        Ok(Related {
            boundary,
            root_type: root.media_type(),
            start: root.content_id.clone(),
            parts,
        })
    }

    /// The `Content-Type` header value for this body.
    pub fn content_type(&self) -> String {
        let mut s = format!("multipart/related;type=\"{}\"", self.root_type);
        if let Some(st) = &self.start {
            s.push_str(&format!(";start=\"<{st}>\""));
        }
        s.push_str(&format!(";boundary=\"{}\"", self.boundary));
        s
    }

    /// The body bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.parts.iter().map(|p| p.body.len() + 160).sum::<usize>() + 64);
        for p in &self.parts {
            out.extend_from_slice(b"--");
            out.extend_from_slice(self.boundary.as_bytes());
            out.extend_from_slice(b"\r\n");
            for (k, v) in &p.headers {
                out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
            if let Some(c) = &p.content_id {
                out.extend_from_slice(format!("Content-ID: <{c}>\r\n").as_bytes());
            }
            out.extend_from_slice(format!("Content-Type: {}\r\n\r\n", p.content_type).as_bytes());
            out.extend_from_slice(&p.body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(self.boundary.as_bytes());
        out.extend_from_slice(b"--\r\n");
        out
    }

    /// Splits `body` given the message's `Content-Type` header value.
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Related, XmlError> {
        let mt = media_type(content_type);
        if mt != "multipart/related" {
            return Err(err(format!(
                "Content-Type is `{mt}`, not multipart/related"
            )));
        }
        let ps = params(content_type);
        let get = |n: &str| ps.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let boundary = get("boundary").ok_or_else(|| err("no boundary parameter"))?;
        if boundary.is_empty() || boundary.len() > 70 {
            return Err(err("boundary must be 1 to 70 characters (RFC 2046 §5.1.1)"));
        }
        let root_type = get("type").ok_or_else(|| err("no type parameter (RFC 2387 §3.1)"))?;
        let start = get("start").map(|s| strip_brackets(&s));
        let delim = format!("--{boundary}");
        let delim = delim.as_bytes();

        // The first delimiter: at the start, or after a line end (preamble before it).
        let mut pos = if body.starts_with(delim) {
            0
        } else {
            let mut nl = Vec::with_capacity(delim.len() + 1);
            nl.push(b'\n');
            nl.extend_from_slice(delim);
            find(body, &nl, 0).ok_or_else(|| err("no boundary delimiter in the body"))? + 1
        };
        let mut next_delim = Vec::with_capacity(delim.len() + 1);
        next_delim.push(b'\n');
        next_delim.extend_from_slice(delim);

        let mut parts = Vec::new();
        loop {
            let after = pos + delim.len();
            if body[after..].starts_with(b"--") {
                break; // close delimiter; the epilogue is ignored
            }
            // Transport padding, then the line end.
            let mut p = after;
            while p < body.len() && matches!(body[p], b' ' | b'\t') {
                p += 1;
            }
            if body[p..].starts_with(b"\r\n") {
                p += 2;
            } else if body[p..].starts_with(b"\n") {
                p += 1;
            } else {
                return Err(err(format!(
                    "boundary delimiter at byte {pos} is not followed by a line end"
                )));
            }
            let end = find(body, &next_delim, p)
                .ok_or_else(|| err(format!("part {} has no closing delimiter", parts.len() + 1)))?;
            let content_end = if end > p && body[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            parts.push(parse_part(&body[p..content_end.max(p)], parts.len() + 1)?);
            if parts.len() > MAX_PARTS {
                return Err(err(format!("more than {MAX_PARTS} parts")));
            }
            pos = end + 1;
        }
        if parts.is_empty() {
            return Err(err("no parts"));
        }
        let r = Related {
            boundary,
            root_type,
            start,
            parts,
        };
        if r.root().is_none() {
            return Err(err("the start parameter names no part"));
        }
        Ok(r)
    }
}

fn parse_part(raw: &[u8], index: usize) -> Result<Part, XmlError> {
    // Headers end at the first empty line (CRLF CRLF or LF LF); a part may have none.
    let (head, body) = if raw.starts_with(b"\r\n") {
        (&raw[..0], &raw[2..])
    } else if raw.starts_with(b"\n") {
        (&raw[..0], &raw[1..])
    } else {
        match (find(raw, b"\r\n\r\n", 0), find(raw, b"\n\n", 0)) {
            (Some(a), Some(b)) if b + 1 < a => (&raw[..b], &raw[b + 2..]),
            (Some(a), _) => (&raw[..a], &raw[a + 4..]),
            (None, Some(b)) => (&raw[..b], &raw[b + 2..]),
            (None, None) => {
                return Err(err(format!(
                    "part {index} has no empty line after its headers"
                )));
            }
        }
    };
    let head = std::str::from_utf8(head)
        .map_err(|_| err(format!("part {index} has non-UTF-8 headers")))?;
    let mut part = Part {
        content_id: None,
        content_type: "text/plain".to_owned(),
        headers: Vec::new(),
        body: body.to_vec(),
    };
    let mut lines: Vec<String> = Vec::new();
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            // Folded continuation.
            match lines.last_mut() {
                Some(l) => {
                    l.push(' ');
                    l.push_str(line.trim());
                }
                None => return Err(err(format!("part {index} starts with a folded line"))),
            }
        } else if !line.is_empty() {
            lines.push(line.to_owned());
        }
    }
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| err(format!("part {index} has a header line without a colon")))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-id") {
            part.content_id = Some(strip_brackets(value));
        } else if name.eq_ignore_ascii_case("content-type") {
            part.content_type = value.to_owned();
        } else {
            part.headers.push((name.to_owned(), value.to_owned()));
        }
    }
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_with_quotes_and_semicolons() {
        assert_eq!(
            params(r#"multipart/related;type="application/rlmi+xml";start="<a;b@x>";boundary=abc"#),
            vec![
                ("type".to_owned(), "application/rlmi+xml".to_owned()),
                ("start".to_owned(), "<a;b@x>".to_owned()),
                ("boundary".to_owned(), "abc".to_owned()),
            ]
        );
        assert_eq!(
            params("multipart/related ; Boundary = \"x\\\"y\" ; type=a/b"),
            vec![
                ("boundary".to_owned(), "x\"y".to_owned()),
                ("type".to_owned(), "a/b".to_owned())
            ]
        );
    }
}
