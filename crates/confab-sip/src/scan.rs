//! Byte-level scanning helpers shared by the parser and the typed headers (crate-private).

/// RFC 3261 `token` characters: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" /
/// "'" / "~".
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[b as usize]
}

/// Whitespace inside a header value after framing: SP, HT, and the CR LF of folding.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

pub(crate) fn trim_lws_bytes(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_lws(*first) { s = rest } else { break }
    }
    while let [rest @ .., last] = s {
        if is_lws(*last) { s = rest } else { break }
    }
    s
}

pub(crate) fn all_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token)
}

/// Index of the first top-level comma in a header value: not inside a quoted string and
/// not inside `<...>`. Used to split comma-separated multi-value headers.
pub(crate) fn find_top_level_comma(v: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < v.len() {
        // outside quotes and angle brackets: the next interesting byte
        i += memchr::memchr3(b',', b'"', b'<', &v[i..])?;
        match v[i] {
            b',' => return Some(i),
            b'"' => {
                // skip the quoted string (quoted-pair aware); unterminated: no comma
                i += 1;
                loop {
                    i += memchr::memchr2(b'"', b'\\', v.get(i..)?)?;
                    if v[i] == b'\\' {
                        i += 2;
                    } else {
                        break;
                    }
                }
                i += 1;
            }
            _ => {
                // '<': skip to '>' (URIs contain no quotes); unterminated: no comma
                i += 1;
                i += memchr::memchr(b'>', v.get(i..)?)? + 1;
            }
        }
    }
    None
}

/// A cursor over a header value (already known to be UTF-8).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cur<'a> {
    pub(crate) s: &'a str,
    pub(crate) i: usize,
}

impl<'a> Cur<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cur { s, i: 0 }
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    #[inline]
    pub(crate) fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    #[inline]
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Skip LWS; returns whether anything was skipped.
    #[inline]
    pub(crate) fn skip_lws(&mut self) -> bool {
        let start = self.i;
        while let Some(b) = self.peek() {
            if is_lws(b) { self.i += 1 } else { break }
        }
        self.i > start
    }

    /// Skip LWS then eat `b` then skip LWS (RFC 3261 SEMI / COMMA / EQUAL / SLASH / COLON).
    pub(crate) fn sep(&mut self, b: u8) -> bool {
        let save = self.i;
        self.skip_lws();
        if self.eat(b) {
            self.skip_lws();
            true
        } else {
            self.i = save;
            false
        }
    }

    /// 1*token
    pub(crate) fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while let Some(b) = self.peek() {
            if is_token(b) { self.i += 1 } else { break }
        }
        if self.i > start {
            Some(&self.s[start..self.i])
        } else {
            None
        }
    }

    /// Take bytes while `f` holds.
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while let Some(b) = self.peek() {
            if f(b) { self.i += 1 } else { break }
        }
        &self.s[start..self.i]
    }

    /// A quoted-string starting at the cursor (which must be at `"`). Returns the text
    /// including the quotes. `Err` when unterminated.
    pub(crate) fn quoted(&mut self) -> Result<&'a str, ()> {
        let b = self.s.as_bytes();
        let start = self.i;
        if b.get(self.i) != Some(&b'"') {
            return Err(());
        }
        let mut i = self.i + 1;
        while i < b.len() {
            match b[i] {
                b'"' => {
                    self.i = i + 1;
                    return Ok(&self.s[start..self.i]);
                }
                b'\\' => {
                    // quoted-pair: \ followed by any char except CR/LF (RFC 3261 §25.1)
                    match b.get(i + 1) {
                        Some(b'\r' | b'\n') | None => return Err(()),
                        Some(_) => i += 2,
                    }
                }
                _ => i += 1,
            }
        }
        Err(())
    }
}

/// Remove the quotes and quoted-pair escapes from a quoted-string (as returned by
/// [`Cur::quoted`]); borrowed unless there was an escape.
pub(crate) fn unquote(q: &str) -> std::borrow::Cow<'_, str> {
    let inner = q
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(q);
    if !inner.contains('\\') {
        return std::borrow::Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Parse 1*DIGIT into a u64, `None` on overflow / empty / non-digit.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 40 {
        // 40 digits always overflow; bounded so the loop is short
        if s.is_empty() {
            return None;
        }
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_respect_quotes_and_angles() {
        assert_eq!(find_top_level_comma(b"a, b"), Some(1));
        assert_eq!(find_top_level_comma(b"\"x, y\" <sip:a>, b"), Some(14));
        assert_eq!(find_top_level_comma(b"<sip:a?x=1,2>, b"), Some(13));
        assert_eq!(find_top_level_comma(b"\"a\\\",\" <sip:a>"), None);
        assert_eq!(find_top_level_comma(b"\"unterminated, x"), None);
    }

    #[test]
    fn quoted_strings() {
        let mut c = Cur::new("\"J Rosenberg \\\\\\\"\"  <x>");
        assert_eq!(c.quoted(), Ok("\"J Rosenberg \\\\\\\"\""));
        assert_eq!(unquote("\"J Rosenberg \\\\\\\"\""), "J Rosenberg \\\"");
        let mut c = Cur::new("\"Mr. J. User <sip:j.user@example.com>");
        assert_eq!(c.quoted(), Err(()));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"0068"), Some(68));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"36893488147419103232"), None);
    }
}
