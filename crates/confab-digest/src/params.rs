//! The `Digest` auth-param syntax: challenges (`WWW-Authenticate`, `Proxy-Authenticate`)
//! and credentials (`Authorization`, `Proxy-Authorization`), parsed and built.
//!
//! Grammar (RFC 7235 §2.1 / RFC 7616 §3.3-3.4, RFC 3261 §25.1 for SIP):
//!
//! ```text
//! credentials = auth-scheme 1*SP [ auth-param *( OWS "," OWS auth-param ) ]
//! auth-param  = token BWS "=" BWS ( token / quoted-string )
//! quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//! quoted-pair   = "\" ( HTAB / SP / VCHAR / obs-text )
//! ```
//!
//! The parser is lenient where real clients differ and the meaning is unambiguous: any
//! parameter may be quoted or not (SIP clients quote `qop`, `nc` and `algorithm` although the
//! grammar says token), empty list elements (`a=1,,b=2`) are skipped, CR and LF count as
//! whitespace (folded SIP headers), scheme and parameter names ignore ASCII case. It is
//! strict where leniency would be a risk: a known parameter given twice, an unterminated
//! quoted string or a control character is an error naming the byte offset.
//!
//! Values borrow from the input (`Cow::Borrowed`) unless a quoted string contains escapes.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use crate::Algorithm;

/// Why an auth-param list could not be parsed. Offsets are byte offsets into the header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// The header value is empty.
    #[error("empty header value")]
    Empty,
    /// The scheme is not `Digest`.
    #[error("authentication scheme `{0}` is not Digest")]
    NotDigest(String),
    /// A parameter name (token) was expected.
    #[error("expected a parameter name at byte {0}")]
    ExpectedName(usize),
    /// `=` was expected after a parameter name.
    #[error("expected `=` after parameter name at byte {0}")]
    ExpectedEquals(usize),
    /// A value (token or quoted string) was expected.
    #[error("expected a parameter value at byte {0}")]
    ExpectedValue(usize),
    /// A quoted string does not end.
    #[error("quoted string starting at byte {0} is not terminated")]
    UnterminatedQuote(usize),
    /// A control character inside a quoted string.
    #[error("control character in quoted string at byte {0}")]
    ControlChar(usize),
    /// Something other than `,` follows a parameter.
    #[error("expected `,` between parameters at byte {0}")]
    ExpectedComma(usize),
    /// A known parameter appears twice.
    #[error("parameter `{0}` appears more than once")]
    Duplicate(&'static str),
    /// A required parameter is missing.
    #[error("required parameter `{0}` is missing")]
    Missing(&'static str),
    /// A parameter's value is not acceptable.
    #[error("parameter `{name}` is invalid: {reason}")]
    Invalid {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The `algorithm` names an algorithm this crate does not implement.
    #[error("algorithm `{0}` is not supported")]
    UnknownAlgorithm(String),
}

/// RFC 7230 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Splits `Scheme rest` into the scheme token and the parameter text.
pub fn split_scheme(value: &str) -> Result<(&str, &str), ParamError> {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() && is_ws(bytes[i]) {
        i += 1;
    }
    let start = i;
    while i < bytes.len() && is_tchar(bytes[i]) {
        i += 1;
    }
    if i == start {
        return Err(if value.trim().is_empty() {
            ParamError::Empty
        } else {
            ParamError::ExpectedName(start)
        });
    }
    if i < bytes.len() && !is_ws(bytes[i]) {
        return Err(ParamError::ExpectedName(i));
    }
    Ok((&value[start..i], &value[i..]))
}

/// An iterator over `name=value` pairs of an auth-param list.
///
/// Yields `Err` once on the first syntax error and then stops.
#[derive(Debug, Clone)]
pub struct AuthParams<'a> {
    input: &'a str,
    /// Offset of `input` inside the whole header value, for error positions.
    base: usize,
    pos: usize,
    done: bool,
}

impl<'a> AuthParams<'a> {
    /// Iterates over the parameters in `list` (the text after the scheme). `base` is added to
    /// error offsets.
    pub fn new(list: &'a str, base: usize) -> AuthParams<'a> {
        AuthParams {
            input: list,
            base,
            pos: 0,
            done: false,
        }
    }

    fn err(&mut self, e: ParamError) -> Option<Result<(&'a str, Cow<'a, str>), ParamError>> {
        self.done = true;
        Some(Err(e))
    }

    fn skip_ws(&mut self) {
        let b = self.input.as_bytes();
        while self.pos < b.len() && is_ws(b[self.pos]) {
            self.pos += 1;
        }
    }

    fn quoted(&mut self) -> Result<Cow<'a, str>, ParamError> {
        let b = self.input.as_bytes();
        let open = self.pos;
        self.pos += 1;
        let start = self.pos;
        let mut owned: Option<String> = None;
        let mut run = start;
        while self.pos < b.len() {
            match b[self.pos] {
                b'"' => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(&self.input[start..end]),
                        Some(mut s) => {
                            s.push_str(&self.input[run..end]);
                            Cow::Owned(s)
                        }
                    });
                }
                b'\\' => {
                    let Some(&next) = b.get(self.pos + 1) else {
                        return Err(ParamError::UnterminatedQuote(self.base + open));
                    };
                    if next == b'\r'
                        || next == b'\n'
                        || (next < 0x20 && next != b'\t')
                        || next == 0x7f
                    {
                        return Err(ParamError::ControlChar(self.base + self.pos + 1));
                    }
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(&self.input[run..self.pos]);
                    // The escaped character may be multi-byte UTF-8: copy the whole char.
                    let ch_len = self.input[self.pos + 1..]
                        .chars()
                        .next()
                        .map_or(1, char::len_utf8);
                    s.push_str(&self.input[self.pos + 1..self.pos + 1 + ch_len]);
                    self.pos += 1 + ch_len;
                    run = self.pos;
                }
                c if (c < 0x20 && c != b'\t') || c == 0x7f => {
                    return Err(ParamError::ControlChar(self.base + self.pos));
                }
                _ => self.pos += 1,
            }
        }
        Err(ParamError::UnterminatedQuote(self.base + open))
    }
}

impl<'a> Iterator for AuthParams<'a> {
    type Item = Result<(&'a str, Cow<'a, str>), ParamError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let b = self.input.as_bytes();
        // Skip whitespace and empty list elements.
        loop {
            self.skip_ws();
            if self.pos < b.len() && b[self.pos] == b',' {
                self.pos += 1;
            } else {
                break;
            }
        }
        if self.pos >= b.len() {
            self.done = true;
            return None;
        }
        let name_start = self.pos;
        while self.pos < b.len() && is_tchar(b[self.pos]) {
            self.pos += 1;
        }
        if self.pos == name_start {
            return self.err(ParamError::ExpectedName(self.base + name_start));
        }
        let name = &self.input[name_start..self.pos];
        self.skip_ws();
        if self.pos >= b.len() || b[self.pos] != b'=' {
            return self.err(ParamError::ExpectedEquals(self.base + self.pos));
        }
        self.pos += 1;
        self.skip_ws();
        let value = if self.pos < b.len() && b[self.pos] == b'"' {
            match self.quoted() {
                Ok(v) => v,
                Err(e) => return self.err(e),
            }
        } else {
            let start = self.pos;
            while self.pos < b.len() && is_tchar(b[self.pos]) {
                self.pos += 1;
            }
            if self.pos == start {
                return self.err(ParamError::ExpectedValue(self.base + start));
            }
            Cow::Borrowed(&self.input[start..self.pos])
        };
        self.skip_ws();
        if self.pos < b.len() {
            if b[self.pos] != b',' {
                return self.err(ParamError::ExpectedComma(self.base + self.pos));
            }
            self.pos += 1;
        }
        Some(Ok((name, value)))
    }
}

const CHALLENGE_PARAMS: &[&str] = &[
    "realm",
    "nonce",
    "opaque",
    "stale",
    "algorithm",
    "qop",
    "domain",
    "charset",
    "userhash",
];
const CREDENTIAL_PARAMS: &[&str] = &[
    "username",
    "username*",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "cnonce",
    "opaque",
    "qop",
    "nc",
    "userhash",
];

/// The canonical (lowercase) spelling of a known parameter name, or `""` for an unknown one.
/// Compares without allocating.
fn known_name(name: &str, known: &[&'static str]) -> &'static str {
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .copied()
        .unwrap_or("")
}

/// Splits off the `Digest` scheme and iterates over the parameters.
fn digest_params(value: &str) -> Result<AuthParams<'_>, ParamError> {
    let (scheme, rest) = split_scheme(value)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(ParamError::NotDigest(scheme.to_owned()));
    }
    Ok(AuthParams::new(rest, value.len() - rest.len()))
}

/// A quality of protection (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: authentication of method and URI.
    Auth,
    /// `auth-int`: also the message body.
    AuthInt,
}

impl Qop {
    /// The wire token.
    pub const fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }

    fn from_token(s: &str) -> Option<Qop> {
        if s.eq_ignore_ascii_case("auth") {
            Some(Qop::Auth)
        } else if s.eq_ignore_ascii_case("auth-int") {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `qop` options a challenge offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct QopOptions {
    /// `auth` is offered.
    pub auth: bool,
    /// `auth-int` is offered.
    pub auth_int: bool,
}

impl QopOptions {
    /// Only `auth`.
    pub const AUTH: QopOptions = QopOptions {
        auth: true,
        auth_int: false,
    };

    fn is_empty(self) -> bool {
        !self.auth && !self.auth_int
    }
}

/// Writes `name="value"` with `"` and `\` escaped (RFC 7230 §3.2.6 quoted-pair).
fn write_quoted(out: &mut String, name: &str, value: &str) {
    if !out.ends_with(' ') {
        out.push_str(", ");
    }
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn write_token(out: &mut String, name: &str, value: &str) {
    if !out.ends_with(' ') {
        out.push_str(", ");
    }
    out.push_str(name);
    out.push('=');
    out.push_str(value);
}

fn set_once<T>(slot: &mut Option<T>, name: &'static str, v: T) -> Result<(), ParamError> {
    if slot.is_some() {
        return Err(ParamError::Duplicate(name));
    }
    *slot = Some(v);
    Ok(())
}

fn parse_bool(name: &'static str, v: &str) -> Result<bool, ParamError> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(ParamError::Invalid {
            name,
            reason: "expected true or false",
        })
    }
}

fn parse_algorithm(v: &str) -> Result<Algorithm, ParamError> {
    Algorithm::from_token(v).ok_or_else(|| ParamError::UnknownAlgorithm(v.to_owned()))
}

/// A `Digest` challenge (`WWW-Authenticate` / `Proxy-Authenticate`, RFC 7616 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// The protection space; for Confab the served domain.
    pub realm: Cow<'a, str>,
    /// Server nonce.
    pub nonce: Cow<'a, str>,
    /// Opaque data the client echoes.
    pub opaque: Option<Cow<'a, str>>,
    /// The previous request failed only because its nonce expired (`stale=true`).
    pub stale: bool,
    /// The algorithm; `None` = parameter absent (meaning MD5).
    pub algorithm: Option<Algorithm>,
    /// Offered `qop` values; empty = parameter absent (legacy RFC 2069 challenge).
    /// Unknown values in a parsed challenge are ignored.
    pub qop: QopOptions,
    /// The `domain` URI list, as one string.
    pub domain: Option<Cow<'a, str>>,
    /// `charset=UTF-8` was given.
    pub charset_utf8: bool,
    /// `userhash=true` was given.
    pub userhash: bool,
}

impl<'a> Challenge<'a> {
    /// A challenge with `qop="auth"`, the given algorithm, no opaque, not stale.
    pub fn new(realm: &'a str, nonce: &'a str, algorithm: Algorithm) -> Challenge<'a> {
        Challenge {
            realm: Cow::Borrowed(realm),
            nonce: Cow::Borrowed(nonce),
            opaque: None,
            stale: false,
            algorithm: Some(algorithm),
            qop: QopOptions::AUTH,
            domain: None,
            charset_utf8: false,
            userhash: false,
        }
    }

    /// Parses a header value such as `Digest realm="x", nonce="y", qop="auth"`.
    pub fn parse(value: &'a str) -> Result<Challenge<'a>, ParamError> {
        let (mut realm, mut nonce, mut opaque, mut stale, mut algorithm) =
            (None, None, None, None, None);
        let (mut qop, mut domain, mut charset, mut userhash) = (None, None, None, None);
        for p in digest_params(value)? {
            let (name, v) = p?;
            match known_name(name, CHALLENGE_PARAMS) {
                "realm" => set_once(&mut realm, "realm", v)?,
                "nonce" => set_once(&mut nonce, "nonce", v)?,
                "opaque" => set_once(&mut opaque, "opaque", v)?,
                "stale" => set_once(&mut stale, "stale", parse_bool("stale", &v)?)?,
                "algorithm" => set_once(&mut algorithm, "algorithm", parse_algorithm(&v)?)?,
                "qop" => {
                    let mut opts = QopOptions::default();
                    for item in v.split(',') {
                        match Qop::from_token(item.trim()) {
                            Some(Qop::Auth) => opts.auth = true,
                            Some(Qop::AuthInt) => opts.auth_int = true,
                            None => {}
                        }
                    }
                    set_once(&mut qop, "qop", opts)?;
                }
                "domain" => set_once(&mut domain, "domain", v)?,
                "charset" => set_once(&mut charset, "charset", v.eq_ignore_ascii_case("UTF-8"))?,
                "userhash" => set_once(&mut userhash, "userhash", parse_bool("userhash", &v)?)?,
                _ => {}
            }
        }
        Ok(Challenge {
            realm: realm.ok_or(ParamError::Missing("realm"))?,
            nonce: nonce.ok_or(ParamError::Missing("nonce"))?,
            opaque,
            stale: stale.unwrap_or(false),
            algorithm,
            qop: qop.unwrap_or_default(),
            domain,
            charset_utf8: charset.unwrap_or(false),
            userhash: userhash.unwrap_or(false),
        })
    }

    /// The algorithm in effect (absent means MD5).
    pub fn effective_algorithm(&self) -> Algorithm {
        self.algorithm.unwrap_or(Algorithm::Md5)
    }

    /// Appends the header value (`Digest realm="..", ...`) to `out`.
    pub fn write_to(&self, out: &mut String) {
        out.push_str("Digest ");
        write_quoted(out, "realm", &self.realm);
        if let Some(d) = &self.domain {
            write_quoted(out, "domain", d);
        }
        write_quoted(out, "nonce", &self.nonce);
        if let Some(o) = &self.opaque {
            write_quoted(out, "opaque", o);
        }
        if self.stale {
            write_token(out, "stale", "true");
        }
        if let Some(a) = self.algorithm {
            write_token(out, "algorithm", a.as_str());
        }
        if !self.qop.is_empty() {
            let list = match (self.qop.auth, self.qop.auth_int) {
                (true, true) => "auth,auth-int",
                (true, false) => "auth",
                _ => "auth-int",
            };
            write_quoted(out, "qop", list);
        }
        if self.charset_utf8 {
            write_token(out, "charset", "UTF-8");
        }
        if self.userhash {
            write_token(out, "userhash", "true");
        }
    }
}

impl fmt::Display for Challenge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(160);
        self.write_to(&mut s);
        f.write_str(&s)
    }
}

/// `Digest` credentials (`Authorization` / `Proxy-Authorization`, RFC 7616 §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The username (from `username`, or decoded from `username*`); with `userhash` it is
    /// the hex `H(username:realm)`.
    pub username: Cow<'a, str>,
    /// The realm.
    pub realm: Cow<'a, str>,
    /// The server nonce echoed.
    pub nonce: Cow<'a, str>,
    /// The `uri` parameter (the digest-URI; for SIP the Request-URI as the client saw it).
    pub uri: Cow<'a, str>,
    /// The request digest (hex).
    pub response: Cow<'a, str>,
    /// The algorithm; `None` = parameter absent (meaning MD5).
    pub algorithm: Option<Algorithm>,
    /// Client nonce (required with `qop` and with `-sess` algorithms).
    pub cnonce: Option<Cow<'a, str>>,
    /// Opaque echoed from the challenge.
    pub opaque: Option<Cow<'a, str>>,
    /// The chosen `qop`; `None` = legacy RFC 2069 computation.
    pub qop: Option<Qop>,
    /// The nonce count exactly as sent (1 to 8 hex digits, RFC says 8).
    pub nc: Option<Cow<'a, str>>,
    /// `userhash=true` was given.
    pub userhash: bool,
}

impl<'a> Credentials<'a> {
    /// Parses a header value such as `Digest username="bob", realm="x", ...`.
    ///
    /// Checks presence rules: `username` (or `username*`), `realm`, `nonce`, `uri` and
    /// `response` are required; with `qop`, `cnonce` and `nc` are required; `nc` must be
    /// 1 to 8 hex digits; `username` and `username*` are exclusive, and `username*` is not
    /// allowed with `userhash=true` (RFC 7616 §3.4.4).
    pub fn parse(value: &'a str) -> Result<Credentials<'a>, ParamError> {
        let (mut username, mut username_ext, mut realm, mut nonce, mut uri) =
            (None, None, None, None, None);
        let (mut response, mut algorithm, mut cnonce, mut opaque, mut qop) =
            (None, None, None, None, None);
        let (mut nc, mut userhash) = (None, None);
        for p in digest_params(value)? {
            let (name, v) = p?;
            match known_name(name, CREDENTIAL_PARAMS) {
                "username" => set_once(&mut username, "username", v)?,
                "username*" => set_once(&mut username_ext, "username*", v)?,
                "realm" => set_once(&mut realm, "realm", v)?,
                "nonce" => set_once(&mut nonce, "nonce", v)?,
                "uri" => set_once(&mut uri, "uri", v)?,
                "response" => set_once(&mut response, "response", v)?,
                "algorithm" => set_once(&mut algorithm, "algorithm", parse_algorithm(&v)?)?,
                "cnonce" => set_once(&mut cnonce, "cnonce", v)?,
                "opaque" => set_once(&mut opaque, "opaque", v)?,
                "qop" => {
                    let q = Qop::from_token(v.trim()).ok_or(ParamError::Invalid {
                        name: "qop",
                        reason: "expected auth or auth-int",
                    })?;
                    set_once(&mut qop, "qop", q)?;
                }
                "nc" => {
                    if v.is_empty() || v.len() > 8 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(ParamError::Invalid {
                            name: "nc",
                            reason: "expected 8 hex digits",
                        });
                    }
                    set_once(&mut nc, "nc", v)?;
                }
                "userhash" => set_once(&mut userhash, "userhash", parse_bool("userhash", &v)?)?,
                _ => {}
            }
        }
        let userhash = userhash.unwrap_or(false);
        let username = match (username, username_ext) {
            (Some(u), None) => u,
            (None, Some(ext)) => {
                if userhash {
                    return Err(ParamError::Invalid {
                        name: "username*",
                        reason: "not allowed with userhash=true",
                    });
                }
                Cow::Owned(decode_ext_value(&ext)?)
            }
            (Some(_), Some(_)) => return Err(ParamError::Duplicate("username")),
            (None, None) => return Err(ParamError::Missing("username")),
        };
        if qop.is_some() {
            if cnonce.is_none() {
                return Err(ParamError::Missing("cnonce"));
            }
            if nc.is_none() {
                return Err(ParamError::Missing("nc"));
            }
        }
        Ok(Credentials {
            username,
            realm: realm.ok_or(ParamError::Missing("realm"))?,
            nonce: nonce.ok_or(ParamError::Missing("nonce"))?,
            uri: uri.ok_or(ParamError::Missing("uri"))?,
            response: response.ok_or(ParamError::Missing("response"))?,
            algorithm,
            cnonce,
            opaque,
            qop,
            nc,
            userhash,
        })
    }

    /// The algorithm in effect (absent means MD5).
    pub fn effective_algorithm(&self) -> Algorithm {
        self.algorithm.unwrap_or(Algorithm::Md5)
    }

    /// The nonce count as a number, if `nc` was given.
    pub fn nonce_count(&self) -> Option<u32> {
        self.nc
            .as_deref()
            .and_then(|s| u32::from_str_radix(s, 16).ok())
    }

    /// Appends the header value (`Digest username="..", ...`) to `out`. A username that is
    /// not plain printable ASCII is written as `username*` (RFC 7616 §3.4.4).
    pub fn write_to(&self, out: &mut String) {
        out.push_str("Digest ");
        if self.username.bytes().all(|b| (0x20..0x7f).contains(&b)) || self.userhash {
            write_quoted(out, "username", &self.username);
        } else {
            out.push_str("username*=UTF-8''");
            for b in self.username.bytes() {
                if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                    out.push(char::from(b));
                } else {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
        write_quoted(out, "realm", &self.realm);
        write_quoted(out, "nonce", &self.nonce);
        write_quoted(out, "uri", &self.uri);
        write_quoted(out, "response", &self.response);
        if let Some(a) = self.algorithm {
            write_token(out, "algorithm", a.as_str());
        }
        if let Some(c) = &self.cnonce {
            write_quoted(out, "cnonce", c);
        }
        if let Some(o) = &self.opaque {
            write_quoted(out, "opaque", o);
        }
        if let Some(q) = self.qop {
            write_token(out, "qop", q.as_str());
        }
        if let Some(nc) = &self.nc {
            write_token(out, "nc", nc);
        }
        if self.userhash {
            write_token(out, "userhash", "true");
        }
    }

    /// Copies every borrowed value so the credentials outlive the header text.
    pub fn into_owned(self) -> Credentials<'static> {
        let own = |c: Cow<'a, str>| Cow::Owned(c.into_owned());
        Credentials {
            username: own(self.username),
            realm: own(self.realm),
            nonce: own(self.nonce),
            uri: own(self.uri),
            response: own(self.response),
            algorithm: self.algorithm,
            cnonce: self.cnonce.map(own),
            opaque: self.opaque.map(own),
            qop: self.qop,
            nc: self.nc.map(own),
            userhash: self.userhash,
        }
    }
}

impl fmt::Display for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(256);
        self.write_to(&mut s);
        f.write_str(&s)
    }
}

/// Decodes an RFC 8187 ext-value `UTF-8'lang'pct-encoded` (only UTF-8 is accepted).
fn decode_ext_value(v: &str) -> Result<String, ParamError> {
    const BAD: ParamError = ParamError::Invalid {
        name: "username*",
        reason: "expected UTF-8'lang'percent-encoded",
    };
    let mut parts = v.splitn(3, '\'');
    let (Some(charset), Some(_lang), Some(text)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD);
    };
    if !charset.eq_ignore_ascii_case("UTF-8") {
        return Err(ParamError::Invalid {
            name: "username*",
            reason: "only the UTF-8 charset is supported",
        });
    }
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or(BAD)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(BAD);
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| BAD)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ParamError::Invalid {
        name: "username*",
        reason: "not valid UTF-8 after percent-decoding",
    })
}
