//! Finding links in message text.
//!
//! What counts as a link (decided here, documented in the crate doc):
//!
//! 1. `scheme://` with any RFC 3986 scheme (`ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")`),
//!    followed by at least one character that can be part of a URL: `http://`, `https://`,
//!    `ftp://`, `file://`, `smb://`, `ssh://`, and every other scheme a client might render as
//!    a link. No word boundary is needed before the scheme.
//! 2. `www.` at a word boundary followed by a letter or digit (`www.example.com`).
//! 3. A scheme that needs no `//`, at a word boundary, directly followed by a non-space
//!    character: `mailto:`, `sip:`, `sips:`, `tel:`, `callto:`, `im:`, `pres:`, `xmpp:`,
//!    `file:`, `news:`, `data:`, `javascript:`, `vbscript:`, `search-ms:` and every `ms-*:`
//!    scheme (Windows protocol handlers).
//! 4. In HTML only: an attribute value starting with `//` (protocol-relative URL).
//!
//! Not links: bare domain names (`example.com`: too many false positives with file names
//! and abbreviations), `Tel: +1 555` (space after the colon), scheme words inside longer
//! words (`xsip:`). A word boundary is a position not preceded by a letter, digit or `_`.
//!
//! Scanning works on bytes (any ASCII-compatible charset), allocation-free, one pass.

/// Schemes recognised without `//` (lowercase).
const COLON_SCHEMES: &[&[u8]] = &[
    b"mailto",
    b"sip",
    b"sips",
    b"tel",
    b"callto",
    b"im",
    b"pres",
    b"xmpp",
    b"file",
    b"news",
    b"data",
    b"javascript",
    b"vbscript",
    b"search-ms",
];

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_scheme_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// A byte that can continue a URL (anything visible except the delimiters that end a
/// link in text and markup).
fn is_url_char(b: u8) -> bool {
    b > b' ' && b != 0x7f && !matches!(b, b'<' | b'>' | b'"' | b'\'' | b'`')
}

fn at_boundary(text: &[u8], i: usize) -> bool {
    i == 0 || !is_word(text[i - 1])
}

fn colon_scheme(word: &[u8]) -> bool {
    COLON_SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(word))
        || (word.len() > 3 && word[..3].eq_ignore_ascii_case(b"ms-"))
}

fn url_end(text: &[u8], mut i: usize) -> usize {
    while i < text.len() && is_url_char(text[i]) {
        i += 1;
    }
    i
}

/// Calls `found(start)` for the start offset of every link in `text`, in order, links not
/// overlapping. `html` adds rule 4.
pub(crate) fn for_each_link(text: &[u8], html: bool, mut found: impl FnMut(usize)) {
    let n = text.len();
    let mut i = 0;
    // Nothing before `floor` may start a new link (it belongs to the previous one).
    let mut floor = 0;
    while i < n {
        let c = text[i];
        if c == b':' {
            if text[i + 1..].starts_with(b"//") {
                let mut s = i;
                while s > floor && is_scheme_char(text[s - 1]) {
                    s -= 1;
                }
                while s < i && !text[s].is_ascii_alphabetic() {
                    s += 1;
                }
                if s < i && i + 3 < n && is_url_char(text[i + 3]) {
                    found(s);
                    i = url_end(text, i + 3);
                    floor = i;
                    continue;
                }
            } else if i + 1 < n && text[i + 1] > b' ' && is_url_char(text[i + 1]) {
                let mut s = i;
                while s > floor && (text[s - 1].is_ascii_alphanumeric() || text[s - 1] == b'-') {
                    s -= 1;
                }
                if s < i && at_boundary(text, s) && colon_scheme(&text[s..i]) {
                    found(s);
                    i = url_end(text, i + 1);
                    floor = i;
                    continue;
                }
            }
        } else if (c | 0x20) == b'w'
            && i + 4 < n
            && text[i..i + 4].eq_ignore_ascii_case(b"www.")
            && text[i + 4].is_ascii_alphanumeric()
            && (i == 0
                || !(is_word(text[i - 1]) || matches!(text[i - 1], b'.' | b'-' | b'@' | b'/')))
        {
            found(i);
            i = url_end(text, i + 4);
            floor = i;
            continue;
        } else if html
            && c == b'/'
            && i + 2 < n
            && text[i + 1] == b'/'
            && (text[i + 2].is_ascii_alphanumeric() || text[i + 2] == b'[')
            && attribute_value_start(text, i)
        {
            found(i);
            i = url_end(text, i + 2);
            floor = i;
            continue;
        }
        i += 1;
    }
}

/// Whether `i` starts an HTML attribute value: preceded by `=`, `="` or `='` (spaces
/// allowed around `=`).
fn attribute_value_start(text: &[u8], i: usize) -> bool {
    let mut j = i;
    if j > 0 && matches!(text[j - 1], b'"' | b'\'') {
        j -= 1;
    }
    while j > 0 && matches!(text[j - 1], b' ' | b'\t' | b'\r' | b'\n') {
        j -= 1;
    }
    j > 0 && text[j - 1] == b'='
}

/// Number of links in `text`.
pub(crate) fn count_links(text: &[u8], html: bool) -> usize {
    let mut n = 0;
    for_each_link(text, html, |_| n += 1);
    n
}

/// `text` with `prefix` inserted before every link, or `None` if there is none.
pub(crate) fn disable_links(text: &[u8], html: bool, prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    for_each_link(text, html, |start| {
        let o = out.get_or_insert_with(|| Vec::with_capacity(text.len() + 4 * prefix.len()));
        o.extend_from_slice(&text[copied..start]);
        o.extend_from_slice(prefix);
        copied = start;
    });
    let mut o = out?;
    o.extend_from_slice(&text[copied..]);
    Some(o)
}

/// HTML as a browser would read it for links: character references decoded (`&#58;`,
/// `&#x3a;`, `&colon;` ... with or without `;`) and tab, CR and LF removed (browsers drop
/// them inside URLs: `java&#9;script:`).
pub(crate) fn html_decoded(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if matches!(c, b'\t' | b'\r' | b'\n') {
            i += 1;
            continue;
        }
        if c == b'&'
            && let Some((ch, len)) = char_reference(&text[i..])
        {
            if !matches!(ch, '\t' | '\r' | '\n') {
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            i += len;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Decodes the character reference at the start of `s` (which starts with `&`).
fn char_reference(s: &[u8]) -> Option<(char, usize)> {
    if s.get(1) == Some(&b'#') {
        let (hex, start) = match s.get(2) {
            Some(b'x' | b'X') => (true, 3),
            _ => (false, 2),
        };
        let mut end = start;
        let mut value: u32 = 0;
        while end < s.len() {
            let d = match (hex, s[end]) {
                (_, d @ b'0'..=b'9') => u32::from(d - b'0'),
                (true, d @ b'a'..=b'f') => u32::from(d - b'a' + 10),
                (true, d @ b'A'..=b'F') => u32::from(d - b'A' + 10),
                _ => break,
            };
            // Browsers read every digit; an out-of-range value becomes U+FFFD.
            value = value
                .saturating_mul(if hex { 16 } else { 10 })
                .saturating_add(d);
            end += 1;
        }
        if end == start {
            return None;
        }
        if s.get(end) == Some(&b';') {
            end += 1;
        }
        return Some((char::from_u32(value).unwrap_or('\u{fffd}'), end));
    }
    const NAMED: &[(&[u8], char)] = &[
        (b"colon", ':'),
        (b"sol", '/'),
        (b"period", '.'),
        (b"amp", '&'),
        (b"lt", '<'),
        (b"gt", '>'),
        (b"quot", '"'),
        (b"apos", '\''),
        (b"Tab", '\t'),
        (b"NewLine", '\n'),
        (b"nbsp", '\u{a0}'),
    ];
    NAMED.iter().find_map(|(name, ch)| {
        let rest = &s[1..];
        if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name) {
            let mut len = 1 + name.len();
            if s.get(len) == Some(&b';') {
                len += 1;
            }
            Some((*ch, len))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, html: bool, expected: &[&str]) {
        let mut got = Vec::new();
        for_each_link(text.as_bytes(), html, |s| got.push(&text[s..]));
        let got: Vec<String> = got
            .iter()
            .map(|rest| {
                let end = url_end(rest.as_bytes(), 0);
                rest[..end].to_owned()
            })
            .collect();
        assert_eq!(got, expected, "{text:?}");
    }

    #[test]
    fn links_found_and_not_found() {
        check(
            "see http://example.com/a?b=c now",
            false,
            &["http://example.com/a?b=c"],
        );
        check("HTTPS://EXAMPLE.COM", false, &["HTTPS://EXAMPLE.COM"]);
        check(
            "ftp://x file:///etc/passwd smb://host/share",
            false,
            &["ftp://x", "file:///etc/passwd", "smb://host/share"],
        );
        check(
            "(https://a.example) and\thttp://b",
            false,
            &["https://a.example)", "http://b"],
        );
        check("go to www.example.com.", false, &["www.example.com."]);
        check("WWW.Example.org", false, &["WWW.Example.org"]);
        check("awww.example.com foo.www.bar user@www.x", false, &[]);
        check(
            "mailto:a@b sip:bob@example.com tel:+15551234",
            false,
            &["mailto:a@b", "sip:bob@example.com", "tel:+15551234"],
        );
        check(
            "javascript:alert(1) ms-msdt:/id search-ms:query=x",
            false,
            &["javascript:alert(1)", "ms-msdt:/id", "search-ms:query=x"],
        );
        check(
            "Tel: +1 555 1234, note:this, xsip:a, 10:30, re:topic",
            false,
            &[],
        );
        check("http:// nothing, ://x, 1://x", false, &[]);
        check(
            "http://www.example.com/www.x",
            false,
            &["http://www.example.com/www.x"],
        );
        check("x+y://z", false, &["x+y://z"]);
        check("_http://x", false, &["http://x"]);
        check("_www.x _sip:x", false, &[]);
        check("<a href=\"//evil.example/x\">", true, &["//evil.example/x"]);
        check("<a href = '//evil.example'>", true, &["//evil.example"]);
        check("a // comment", true, &[]);
        check("<a href=\"//evil.example\">", false, &[]);
        check("", false, &[]);
        check("http:", false, &[]);
    }

    #[test]
    fn prefix_goes_before_every_link() {
        let out = disable_links(b"a http://x b www.y c sip:z", false, b"_").unwrap();
        assert_eq!(out, b"a _http://x b _www.y c _sip:z");
        assert_eq!(disable_links(b"no links here", false, b"_"), None);
        let out = disable_links(b"http://x", false, b"nolink_").unwrap();
        assert_eq!(out, b"nolink_http://x");
    }

    #[test]
    fn html_character_references_are_decoded() {
        assert_eq!(html_decoded(b"http&#58;//x"), b"http://x");
        assert_eq!(html_decoded(b"http&#x3A//x"), b"http://x");
        assert_eq!(html_decoded(b"http&colon;&sol;&sol;x"), b"http://x");
        assert_eq!(html_decoded(b"java\tscript&#10;:x"), b"javascript:x");
        assert_eq!(
            html_decoded(b"a &amp; b &unknown; &#;"),
            b"a & b &unknown; &#;"
        );
        assert_eq!(html_decoded(b"&#99999999999;"), "\u{fffd}".as_bytes());
        assert_eq!(
            count_links(&html_decoded(b"<a href=\"http&#58;//x\">"), true),
            1
        );
        assert_eq!(count_links(b"<a href=\"http&#58;//x\">", true), 0);
    }
}
