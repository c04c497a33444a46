//! Walking a message body the way a client renders it: MIME headers, `multipart/*`
//! (RFC 2046 §5.1), `message/cpim` (RFC 3862), text parts with their charset and
//! transfer encoding, SDP offers, and file names in `Content-Disposition`.
//!
//! The walk records what it found (links, file names, content it could not read) and, when
//! links are to be disabled, the edits ("splices") that rewrite each text part in place;
//! everything else keeps its bytes. A rewritten part inside a CPIM wrapper or a multipart
//! part has its own `Content-Length` (when it has one) fixed by another splice.

use std::borrow::Cow;
use std::ops::Range;

use base64::Engine as _;

use super::sdp;
use super::url;

/// Deepest nesting of multipart / CPIM containers looked into.
pub(crate) const MAX_DEPTH: u8 = 6;
/// Most parts of one multipart body looked into.
pub(crate) const MAX_PARTS: usize = 64;

/// A media type read from a header value: `type/subtype` and the raw parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Media<'a> {
    ty: &'a str,
    sub: &'a str,
    params: &'a str,
}

impl<'a> Media<'a> {
    /// `None` when the value is not `type/subtype[;params]`.
    pub(crate) fn parse(value: &'a str) -> Option<Media<'a>> {
        let (main, params) = value.split_once(';').unwrap_or((value, ""));
        let (ty, sub) = main.split_once('/')?;
        let (ty, sub) = (trim_ws(ty), trim_ws(sub));
        if ty.is_empty() || sub.is_empty() {
            return None;
        }
        Some(Media { ty, sub, params })
    }

    pub(crate) fn is(&self, ty: &str, sub: &str) -> bool {
        self.ty.eq_ignore_ascii_case(ty) && self.sub.eq_ignore_ascii_case(sub)
    }

    pub(crate) fn param(&self, name: &str) -> Option<Cow<'a, str>> {
        param(self.params, name)
    }
}

/// Trims SP, HTAB, CR and LF (folded header values keep their line breaks).
fn trim_ws(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\r', '\n'])
}

/// The value of parameter `name` in `;a=b; c="d"` (unquoted, quoted-pairs resolved).
pub(crate) fn param<'a>(params: &'a str, name: &str) -> Option<Cow<'a, str>> {
    let mut rest = params;
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', '\t', '\r', '\n', ';']);
        let eq = rest.find(['=', ';'])?;
        let key = trim_ws(&rest[..eq]);
        if rest.as_bytes()[eq] == b';' {
            rest = &rest[eq..];
            continue;
        }
        let after = rest[eq + 1..].trim_start_matches([' ', '\t', '\r', '\n']);
        let (value, next): (Cow<'a, str>, &'a str) = if let Some(q) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut end = None;
            let mut chars = q.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            let end = end.unwrap_or(q.len());
            (Cow::Owned(out), &q[end..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (Cow::Borrowed(trim_ws(&after[..end])), &after[end..])
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value);
        }
        rest = next;
    }
    None
}

/// The header block of a MIME entity and where its body starts.
/// `None` when there is no blank line ending the headers.
fn split_entity(part: &[u8]) -> Option<(&[u8], usize)> {
    if part.starts_with(b"\r\n") {
        return Some((&[], 2));
    }
    if part.starts_with(b"\n") {
        return Some((&[], 1));
    }
    let mut i = 0;
    while let Some(off) = memchr(b'\n', &part[i..]) {
        let lf = i + off;
        let next = lf + 1;
        if part[next..].starts_with(b"\r\n") {
            return Some((&part[..lf + 1], next + 2));
        }
        if part[next..].starts_with(b"\n") {
            return Some((&part[..lf + 1], next + 1));
        }
        i = next;
    }
    None
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

/// The value range of the first header called `name` in a header block (folded lines
/// included, surrounding whitespace trimmed).
fn header(block: &[u8], name: &str) -> Option<Range<usize>> {
    let mut line = 0;
    while line < block.len() {
        let end = memchr(b'\n', &block[line..]).map_or(block.len(), |o| line + o + 1);
        let l = &block[line..end];
        if l.len() > name.len()
            && l[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && !matches!(l[0], b' ' | b'\t')
        {
            let mut j = name.len();
            while j < l.len() && matches!(l[j], b' ' | b'\t') {
                j += 1;
            }
            if j < l.len() && l[j] == b':' {
                // The value runs on over continuation lines.
                let mut vend = end;
                while vend < block.len() && matches!(block[vend], b' ' | b'\t') {
                    vend = memchr(b'\n', &block[vend..]).map_or(block.len(), |o| vend + o + 1);
                }
                let mut s = line + j + 1;
                let mut e = vend;
                while s < e && matches!(block[s], b' ' | b'\t' | b'\r' | b'\n') {
                    s += 1;
                }
                while e > s && matches!(block[e - 1], b' ' | b'\t' | b'\r' | b'\n') {
                    e -= 1;
                }
                return Some(s..e);
            }
        }
        line = end;
    }
    None
}

/// One edit of the body: replace `range` with `with`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Splice {
    pub(crate) range: Range<usize>,
    pub(crate) with: Vec<u8>,
}

/// The headers of a MIME entity that matter here.
#[derive(Debug, Clone, Default)]
pub(crate) struct Headers<'a> {
    pub(crate) content_type: Option<&'a [u8]>,
    pub(crate) transfer_encoding: Option<&'a [u8]>,
    pub(crate) disposition: Option<&'a [u8]>,
    /// Absolute range of the Content-Length value, if the entity has one.
    pub(crate) content_length: Option<Range<usize>>,
}

impl<'a> Headers<'a> {
    /// Reads a header block that sits at absolute offset `base` of the top-level body.
    fn read(block: &'a [u8], base: usize) -> Headers<'a> {
        let get = |n| header(block, n).map(|r| &block[r]);
        Headers {
            content_type: get("content-type"),
            transfer_encoding: get("content-transfer-encoding"),
            disposition: get("content-disposition"),
            content_length: header(block, "content-length").map(|r| base + r.start..base + r.end),
        }
    }
}

/// What the walk is looking for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Look<'p> {
    /// Look for links in text parts.
    pub(crate) links: bool,
    /// Rewrite text parts with this prefix before each link.
    pub(crate) prefix: Option<&'p [u8]>,
    /// Blocked file extensions (normalised), when the file rule applies.
    pub(crate) extensions: Option<&'p [String]>,
}

/// What the walk found.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Links seen in text (the larger of the raw and decoded counts for HTML).
    pub(crate) links: usize,
    /// An HTML part has links only visible after decoding character references, which the
    /// prefix cannot be inserted before.
    pub(crate) hidden_links: bool,
    /// A text part or container the walk could not read, and why.
    pub(crate) unreadable: Option<&'static str>,
    /// The first blocked file name (or `*` for an offer without one).
    pub(crate) blocked_file: Option<String>,
    /// Edits that disable the links (only with `Look::prefix`).
    pub(crate) splices: Vec<Splice>,
}

pub(crate) struct Walker<'p> {
    look: Look<'p>,
    pub(crate) found: Findings,
}

impl<'p> Walker<'p> {
    pub(crate) fn new(look: Look<'p>) -> Walker<'p> {
        Walker {
            look,
            found: Findings::default(),
        }
    }

    fn unreadable(&mut self, why: &'static str) {
        self.found.unreadable.get_or_insert(why);
    }

    /// Walks the entity `body` at absolute offset `base`, described by `h`.
    pub(crate) fn entity(&mut self, body: &[u8], base: usize, h: Headers<'_>, depth: u8) {
        if depth > MAX_DEPTH {
            return self.unreadable("content nested too deeply");
        }
        if let (Some(exts), Some(d)) = (self.look.extensions, h.disposition) {
            let d = String::from_utf8_lossy(d);
            let name = param_of(&d, "filename*")
                .map(|v| Cow::Owned(rfc2231_value(&v)))
                .or_else(|| param_of(&d, "filename"));
            if let Some(name) = name
                && super::is_blocked_name(Some(name.as_bytes()), exts)
            {
                self.found.blocked_file.get_or_insert(name.into_owned());
            }
        }
        let ct = match h.content_type.map(std::str::from_utf8) {
            None => None,
            Some(Ok(s)) => match Media::parse(s) {
                Some(m) => Some(m),
                None => return self.unreadable("malformed Content-Type"),
            },
            Some(Err(_)) => return self.unreadable("malformed Content-Type"),
        };
        // RFC 2046 §5.1: the default content type is text/plain.
        let media = ct.unwrap_or(Media {
            ty: "text",
            sub: "plain",
            params: "",
        });
        let cte = h
            .transfer_encoding
            .map(|c| String::from_utf8_lossy(c).to_ascii_lowercase());
        let plain_cte = cte
            .as_deref()
            .is_none_or(|c| matches!(c, "7bit" | "8bit" | "binary"));
        if media.ty.eq_ignore_ascii_case("multipart") {
            if !plain_cte {
                return self.unreadable("encoded multipart body");
            }
            return self.multipart(body, base, &media, depth);
        }
        if media.is("message", "cpim") {
            if !plain_cte {
                return self.unreadable("encoded message/cpim body");
            }
            return self.cpim(body, base, depth);
        }
        if media.is("application", "sdp") {
            if let Some(exts) = self.look.extensions {
                if !plain_cte {
                    return self.unreadable("encoded SDP body");
                }
                sdp::for_each_file_offer(body, |name| {
                    if super::is_blocked_name(name, exts) && self.found.blocked_file.is_none() {
                        self.found.blocked_file = Some(name.map_or_else(
                            || "*".to_owned(),
                            |n| String::from_utf8_lossy(n).into_owned(),
                        ));
                    }
                });
            }
            return;
        }
        if media.ty.eq_ignore_ascii_case("text") && self.look.links {
            self.text(body, base, &media, cte.as_deref());
        }
        // Anything else (IMDN, isComposing, images ...) is not text: it passes untouched.
    }

    fn text(&mut self, body: &[u8], base: usize, media: &Media<'_>, cte: Option<&str>) {
        if let Some(cs) = media.param("charset")
            && !ascii_compatible(&cs)
        {
            return self.unreadable("text in a charset the filter cannot read");
        }
        let decoded;
        let (bytes, b64) = match cte {
            None | Some("7bit" | "8bit" | "binary") => (body, false),
            Some("base64") => {
                let clean: Vec<u8> = body
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                match base64::engine::general_purpose::STANDARD.decode(&clean) {
                    Ok(d) => {
                        decoded = d;
                        (&decoded[..], true)
                    }
                    Err(_) => return self.unreadable("invalid base64 text"),
                }
            }
            Some(_) => {
                return self.unreadable("text in a transfer encoding the filter cannot read");
            }
        };
        if bytes.starts_with(&[0xfe, 0xff]) || bytes.starts_with(&[0xff, 0xfe]) {
            return self.unreadable("UTF-16 text");
        }
        let html = media.is("text", "html");
        let raw = url::count_links(bytes, html);
        let mut links = raw;
        if html {
            let seen = url::count_links(&url::html_decoded(bytes), true);
            if seen > raw {
                self.found.hidden_links = true;
                links = seen;
            }
        }
        self.found.links += links;
        if raw > 0
            && let Some(prefix) = self.look.prefix
            && let Some(new) = url::disable_links(bytes, html, prefix)
        {
            let with = if b64 { base64_lines(&new) } else { new };
            self.found.splices.push(Splice {
                range: base..base + body.len(),
                with,
            });
        }
    }

    /// Walks an inner entity and fixes its Content-Length if the walk rewrote it.
    fn inner(&mut self, content: &[u8], base: usize, h: Headers<'_>, depth: u8) {
        let before = self.found.splices.len();
        let content_length = h.content_length.clone();
        self.entity(content, base, h, depth + 1);
        let delta: isize = self.found.splices[before..]
            .iter()
            .map(|s| s.with.len() as isize - s.range.len() as isize)
            .sum();
        if delta != 0
            && let Some(cl) = content_length
        {
            let new_len = content.len() as isize + delta;
            self.found.splices.push(Splice {
                range: cl,
                with: new_len.to_string().into_bytes(),
            });
        }
    }

    fn multipart(&mut self, body: &[u8], base: usize, media: &Media<'_>, depth: u8) {
        let Some(boundary) = media.param("boundary") else {
            return self.unreadable("multipart body without boundary");
        };
        if boundary.is_empty() || boundary.len() > 200 {
            return self.unreadable("invalid multipart boundary");
        }
        let parts = match split_multipart(body, boundary.as_bytes()) {
            Ok(p) => p,
            Err(why) => return self.unreadable(why),
        };
        let before = self.found.splices.len();
        for part in parts {
            let p = &body[part.clone()];
            let Some((block, body_at)) = split_entity(p) else {
                self.unreadable("multipart part without a blank line after its headers");
                continue;
            };
            let h = Headers::read(block, base + part.start);
            self.inner(&p[body_at..], base + part.start + body_at, h, depth);
        }
        // A rewritten part must not create a delimiter line.
        let mut delimiter = Vec::with_capacity(boundary.len() + 2);
        delimiter.extend_from_slice(b"--");
        delimiter.extend_from_slice(boundary.as_bytes());
        if self.found.splices[before..]
            .iter()
            .any(|s| contains(&s.with, &delimiter))
        {
            self.unreadable("a rewritten part would contain the multipart boundary");
        }
    }

    fn cpim(&mut self, body: &[u8], base: usize, depth: u8) {
        // RFC 3862 §2: message headers, blank line, MIME headers, blank line, content.
        let Some((_, mime_at)) = split_entity(body) else {
            return self.unreadable("malformed message/cpim (no end of message headers)");
        };
        let rest = &body[mime_at..];
        let Some((block, content_at)) = split_entity(rest) else {
            return self.unreadable("malformed message/cpim (no end of MIME headers)");
        };
        let h = Headers::read(block, base + mime_at);
        self.inner(&rest[content_at..], base + mime_at + content_at, h, depth);
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len() && hay.windows(needle.len()).any(|w| w == needle)
}

fn param_of<'a>(disposition: &'a str, name: &str) -> Option<Cow<'a, str>> {
    let params = disposition.split_once(';').map_or("", |(_, p)| p);
    param(params, name)
}

/// RFC 2231 extended value `charset'lang'percent-encoded` → its bytes as text.
fn rfc2231_value(v: &str) -> String {
    let encoded = v.splitn(3, '\'').nth(2).unwrap_or(v);
    String::from_utf8_lossy(&percent_decode(encoded.as_bytes())).into_owned()
}

/// `%XX` decoded; a `%` not followed by two hex digits stays.
pub(crate) fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && i + 2 < s.len()
            && let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Charsets whose ASCII range is ASCII (where a link's bytes are the link's characters).
fn ascii_compatible(charset: &str) -> bool {
    let c = charset.trim().to_ascii_lowercase();
    ![
        "utf-16",
        "utf16",
        "utf-32",
        "utf32",
        "ucs-2",
        "ucs2",
        "ucs-4",
        "ucs4",
        "utf-7",
        "utf7",
        "unicode",
        "iso-10646-ucs",
        "csunicode",
        "cp1200",
        "cp1201",
        "utf-ebcdic",
        "ibm0",
        "ebcdic",
        "cp037",
        "cp500",
    ]
    .iter()
    .any(|bad| c.starts_with(bad))
}

/// Base64 in 76-character lines (RFC 2045 §6.8) separated by CRLF (none after the last:
/// the line break before a delimiter belongs to the delimiter).
fn base64_lines(data: &[u8]) -> Vec<u8> {
    let enc = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(enc.len() + enc.len() / 76 * 2);
    for (i, chunk) in enc.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(chunk);
    }
    out
}

/// The byte ranges of the parts of a multipart body (RFC 2046 §5.1.1): each from after
/// its delimiter line to before the line break preceding the next delimiter. A missing
/// close delimiter ends the last part at the end of the body.
pub(crate) fn split_multipart(
    body: &[u8],
    boundary: &[u8],
) -> Result<Vec<Range<usize>>, &'static str> {
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut line = 0;
    while line <= body.len() {
        let end = memchr(b'\n', &body[line..]).map_or(body.len(), |o| line + o + 1);
        let l = &body[line..end];
        if let Some(after) = l.strip_prefix(b"--")
            && let Some(rest) = after.strip_prefix(boundary)
        {
            let close = rest.starts_with(b"--");
            let tail = if close { &rest[2..] } else { rest };
            if tail
                .iter()
                .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            {
                if let Some(s) = start.take() {
                    // The line break before the delimiter belongs to the delimiter.
                    let mut e = line;
                    if e > s && body[e - 1] == b'\n' {
                        e -= 1;
                        if e > s && body[e - 1] == b'\r' {
                            e -= 1;
                        }
                    }
                    parts.push(s..e.max(s));
                    if parts.len() > MAX_PARTS {
                        return Err("multipart body with too many parts");
                    }
                }
                if close {
                    return Ok(parts);
                }
                start = Some(end);
            }
        }
        if end == body.len() {
            break;
        }
        line = end;
    }
    match start {
        Some(s) => {
            parts.push(s..body.len());
            Ok(parts)
        }
        None if parts.is_empty() => Err("multipart body without its boundary"),
        None => Ok(parts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters() {
        let m = Media::parse("multipart/mixed; boundary=\"a b\\\"c\";charset=UTF-8").unwrap();
        assert!(m.is("Multipart", "MIXED"));
        assert_eq!(m.param("boundary").as_deref(), Some("a b\"c"));
        assert_eq!(m.param("charset").as_deref(), Some("UTF-8"));
        assert_eq!(m.param("missing"), None);
        assert!(Media::parse("text").is_none());
        assert!(Media::parse("/plain").is_none());
        assert_eq!(param(";;flag; x = 1 ", "x").as_deref(), Some("1"));
        assert_eq!(
            param("; x=\"unterminated", "x").as_deref(),
            Some("unterminated")
        );
        assert_eq!(rfc2231_value("UTF-8''evil%2Eexe"), "evil.exe");
        assert_eq!(percent_decode(b"a%2g%41%"), b"a%2gA%");
    }

    #[test]
    fn headers_with_folding() {
        let block = b"Content-Type: text/plain;\r\n charset=utf-8\r\nContent-Length:  12 \r\n";
        let h = Headers::read(block, 100);
        assert_eq!(h.content_type.unwrap(), b"text/plain;\r\n charset=utf-8");
        let cl = h.content_length.unwrap();
        assert_eq!(&block[cl.start - 100..cl.end - 100], b"12");
        assert!(h.disposition.is_none());
        assert!(header(b"X-Content-Type: a\r\n", "content-type").is_none());
    }

    #[test]
    fn entities_and_multipart_splitting() {
        assert_eq!(split_entity(b"\r\nbody"), Some((&b""[..], 2)));
        assert_eq!(
            split_entity(b"A: b\r\n\r\nbody"),
            Some((&b"A: b\r\n"[..], 8))
        );
        assert_eq!(split_entity(b"A: b\n\nbody"), Some((&b"A: b\n"[..], 6)));
        assert_eq!(split_entity(b"A: b\r\nno blank line"), None);

        let body = b"preamble\r\n--b\r\nA: 1\r\n\r\none\r\n--b \r\n\r\ntwo\r\n--b--\r\nepilogue";
        let parts = split_multipart(body, b"b").unwrap();
        let texts: Vec<&[u8]> = parts.iter().map(|r| &body[r.clone()]).collect();
        assert_eq!(texts, [&b"A: 1\r\n\r\none"[..], b"\r\ntwo"]);
        // "--bx" is not a delimiter of boundary "b"; a missing close ends at the body's end.
        let body = b"--b\r\n\r\n--bx\r\n";
        let parts = split_multipart(body, b"b").unwrap();
        assert_eq!(&body[parts[0].clone()], b"\r\n--bx\r\n");
        assert!(split_multipart(b"no delimiter", b"b").is_err());
        let many = "--b\r\n\r\nx\r\n".repeat(MAX_PARTS + 2);
        assert!(split_multipart(many.as_bytes(), b"b").is_err());
    }
}
