//! URIs: SIP/SIPS (RFC 3261 §19.1, IPv6 references as corrected by RFC 5954), tel
//! (RFC 3966), and any other scheme kept as an absolute URI (so a UAS can answer 416).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::message::Message;
use crate::scan::{Cur, is_lws, is_token};

/// A URI that failed to parse; the text says what is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed URI: {0}")]
pub struct UriError(pub &'static str);

/// A parsed URI, borrowing from the text it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uri<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:` (RFC 3966).
    Tel(TelUri<'a>),
    /// Any other scheme, kept as written (e.g. `urn:`, `http:`, `nobodyKnowsThisScheme:`).
    Other(AbsoluteUri<'a>),
}

/// A `sip:` / `sips:` URI (RFC 3261 §19.1.1). All parts are as written (still escaped);
/// compare with [`SipUri::equivalent`], which applies the §19.1.4 rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part, still %-escaped (may contain `;`, `?`, as RFC 4475 semiuri shows).
    pub user: Option<&'a str>,
    /// The password, still %-escaped.
    pub password: Option<&'a str>,
    /// The host.
    pub host: Host<'a>,
    /// The explicit port, if any.
    pub port: Option<u16>,
    /// The uri-parameters (`;transport=tcp;lr`).
    pub params: Params<'a>,
    /// The headers after `?`, as written (without the `?`).
    pub headers: Option<&'a str>,
}

/// A host: domain name, IPv4 address or IPv6 reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// A domain name as written (compare case-insensitively).
    Domain(&'a str),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address (written as `[...]` in SIP URIs and Via sent-by).
    Ipv6(Ipv6Addr),
}

impl Host<'_> {
    /// The IP address, when the host is one.
    #[must_use]
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Host::Ipv4(a) => Some(IpAddr::V4(a)),
            Host::Ipv6(a) => Some(IpAddr::V6(a)),
            Host::Domain(_) => None,
        }
    }

    /// Equality per RFC 3261 §19.1.4: domain names case-insensitively, addresses by value.
    #[must_use]
    pub fn equivalent(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
            (Host::Ipv4(a), Host::Ipv4(b)) => a == b,
            (Host::Ipv6(a), Host::Ipv6(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Host<'_> {
    /// Canonical form: IPv6 in brackets (a reference, as in a SIP URI or Via).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelUri<'a> {
    /// The number as written, e.g. `+1-201-555-0123` or `7042`.
    pub number: &'a str,
    /// Whether it is a global number (starts with `+`).
    pub global: bool,
    /// Parameters (`;phone-context=...;ext=...`).
    pub params: Params<'a>,
}

/// A URI of a scheme this crate does not interpret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsoluteUri<'a> {
    /// The scheme as written.
    pub scheme: &'a str,
    /// Everything after the first colon.
    pub rest: &'a str,
}

/// A `;`-separated parameter list (URI parameters or header parameters), validated at
/// parse time and scanned on lookup (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One parameter: name and optional value, both as written (a quoted value keeps its
/// quotes; see [`Param::unquoted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// Name as written.
    pub name: &'a str,
    /// Value as written, if there is an `=`.
    pub value: Option<&'a str>,
}

impl<'a> Param<'a> {
    /// The value with quotes and quoted-pair escapes removed.
    #[must_use]
    pub fn unquoted(&self) -> Option<std::borrow::Cow<'a, str>> {
        self.value.map(|v| {
            if v.starts_with('"') {
                crate::scan::unquote(v)
            } else {
                std::borrow::Cow::Borrowed(v)
            }
        })
    }
}

impl<'a> Params<'a> {
    /// The parameters as written, starting with `;` (empty if none).
    #[must_use]
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Whether there are no parameters.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The parameters in order.
    #[must_use]
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            cur: Cur::new(self.raw),
        }
    }

    /// Look a parameter up by name (case-insensitive). `Some(None)` for a parameter without
    /// value (`;lr`), `Some(Some(v))` with the value as written.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    /// Whether the parameter is present.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Iterator over [`Params`].
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    cur: Cur<'a>,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Param<'a>;
    fn next(&mut self) -> Option<Param<'a>> {
        let c = &mut self.cur;
        c.skip_lws();
        if !c.eat(b';') {
            return None;
        }
        c.skip_lws();
        let name = c.take_while(|b| b != b'=' && b != b';' && !is_lws(b));
        let save = c.i;
        c.skip_lws();
        let value = if c.eat(b'=') {
            c.skip_lws();
            if c.peek() == Some(b'"') {
                c.quoted().ok()
            } else {
                Some(c.take_while(|b| b != b';' && !is_lws(b)))
            }
        } else {
            c.i = save;
            None
        };
        Some(Param { name, value })
    }
}

/// Characters allowed in a generic-param value that is not quoted (token / host, which
/// includes IPv6 references with `[`, `]`, `:`).
fn is_gen_value(b: u8) -> bool {
    is_token(b) || matches!(b, b'[' | b']' | b':')
}

/// Validate `*( SEMI generic-param )` at the cursor (RFC 3261 §25.1), with LWS allowed around
/// `;` and `=`. Stops at end or at a `,` (caller decides whether that is allowed).
/// Returns the raw params text.
pub(crate) fn scan_header_params<'a>(c: &mut Cur<'a>) -> Result<Params<'a>, &'static str> {
    let start = c.i;
    loop {
        let save = c.i;
        c.skip_lws();
        if !c.eat(b';') {
            c.i = save;
            break;
        }
        c.skip_lws();
        if c.token().is_none() {
            return Err("empty or invalid parameter name");
        }
        if c.sep(b'=') {
            if c.peek() == Some(b'"') {
                c.quoted()
                    .map_err(|()| "unterminated quoted parameter value")?;
            } else if c.take_while(is_gen_value).is_empty() {
                return Err("empty parameter value");
            }
        }
    }
    Ok(Params {
        raw: &c.s[start..c.i],
    })
}

// ---------------------------------------------------------------------------------------
// URI parsing
// ---------------------------------------------------------------------------------------

const UNRESERVED: u8 = 1;
const USER: u8 = 2;
const PASSWORD: u8 = 4;
const PARAM: u8 = 8;
const HEADER: u8 = 16;
const HOST: u8 = 32;

/// Character classes of RFC 3261 §25.1 as bit masks (one table lookup per byte).
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let unreserved = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            );
        let mut m = 0;
        if unreserved {
            m |= UNRESERVED | USER | PASSWORD | PARAM | HEADER;
        }
        if matches!(c, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
            m |= USER;
        }
        if matches!(c, b'&' | b'=' | b'+' | b'$' | b',') {
            m |= PASSWORD;
        }
        if matches!(c, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            m |= PARAM;
        }
        if matches!(c, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$') {
            m |= HEADER;
        }
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_') {
            m |= HOST;
        }
        t[i] = m;
        i += 1;
    }
    t
};

/// Advance from `i` over characters of class `mask` and `%HH` escapes; returns the index
/// of the first other byte.
#[inline]
fn scan_escaped(b: &[u8], mut i: usize, mask: u8) -> usize {
    while i < b.len() {
        let c = b[i];
        if CLASS[c as usize] & mask != 0 {
            i += 1;
        } else if c == b'%'
            && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            i += 3;
        } else {
            break;
        }
    }
    i
}

/// Validate that `s` consists of characters of class `mask` and `%HH` escapes.
fn check_escaped(s: &str, mask: u8) -> bool {
    scan_escaped(s.as_bytes(), 0, mask) == s.len()
}

/// Parse an IPv6 address as written inside `[...]`. Tolerates the RFC 3261 ABNF bug form
/// with three colons before an embedded IPv4 address (`2001:db8:::192.0.2.1`, RFC 5118
/// §4.10 says to accept both).
pub(crate) fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
    if let Ok(a) = s.parse::<Ipv6Addr>() {
        return Some(a);
    }
    let i = s.find(":::")?;
    if s.len() > 64 || !s[i + 3..].contains('.') {
        return None;
    }
    let mut buf = [0u8; 64];
    let (a, b) = (&s.as_bytes()[..i], &s.as_bytes()[i + 1..]);
    buf[..a.len()].copy_from_slice(a);
    buf[a.len()..a.len() + b.len()].copy_from_slice(b);
    std::str::from_utf8(&buf[..a.len() + b.len()])
        .ok()?
        .parse()
        .ok()
}

/// Parse a host (`hostname / IPv4address / IPv6reference`).
pub(crate) fn parse_host(s: &str) -> Result<Host<'_>, &'static str> {
    if let Some(inner) = s.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or("unterminated IPv6 reference")?;
        return parse_ipv6(inner)
            .map(Host::Ipv6)
            .ok_or("invalid IPv6 address");
    }
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return Err("empty host");
    };
    let mut digits_dots = true;
    let mut prev = 0u8;
    for &c in b {
        if CLASS[c as usize] & HOST == 0 || (c == b'.' && prev == b'.') {
            return Err("invalid host name");
        }
        digits_dots &= c.is_ascii_digit() || c == b'.';
        prev = c;
    }
    if digits_dots {
        return s
            .parse::<Ipv4Addr>()
            .map(Host::Ipv4)
            .map_err(|_| "invalid IPv4 address");
    }
    if first == b'.' || first == b'-' {
        return Err("invalid host name");
    }
    Ok(Host::Domain(s))
}

impl<'a> Uri<'a> {
    /// Parse a URI (as written in a Request-URI or between `<` and `>`).
    ///
    /// # Errors
    /// [`UriError`] naming what is wrong.
    pub fn parse(s: &'a str) -> Result<Uri<'a>, UriError> {
        let colon = memchr::memchr(b':', s.as_bytes()).ok_or(UriError("no scheme"))?;
        let scheme = &s[..colon];
        if scheme.is_empty()
            || !scheme.as_bytes()[0].is_ascii_alphabetic()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(UriError("invalid scheme"));
        }
        let rest = &s[colon + 1..];
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse_rest(false, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_rest(true, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse_rest(rest).map(Uri::Tel)
        } else {
            if rest.is_empty()
                || rest
                    .bytes()
                    .any(|b| b <= b' ' || b == 0x7f || b == b'<' || b == b'>' || b == b'"')
            {
                return Err(UriError("invalid characters in absolute URI"));
            }
            Ok(Uri::Other(AbsoluteUri { scheme, rest }))
        }
    }

    /// The SIP/SIPS URI, if it is one.
    #[must_use]
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The scheme, lower-case for the known ones, as written otherwise.
    #[must_use]
    pub fn scheme(&self) -> &'a str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Other(o) => o.scheme,
        }
    }
}

impl<'a> SipUri<'a> {
    /// Parse a `sip:`/`sips:` URI.
    ///
    /// # Errors
    /// [`UriError`] if it is not a well-formed SIP or SIPS URI.
    pub fn parse(s: &'a str) -> Result<SipUri<'a>, UriError> {
        match Uri::parse(s)? {
            Uri::Sip(u) => Ok(u),
            _ => Err(UriError("not a sip: or sips: URI")),
        }
    }

    fn parse_rest(secure: bool, rest: &'a str) -> Result<SipUri<'a>, UriError> {
        // userinfo: '@' can appear only as its terminator (escaped everywhere else).
        let (user, password, hostpart) = match memchr::memchr(b'@', rest.as_bytes()) {
            Some(at) => {
                let ui = &rest[..at];
                let (u, p) = match memchr::memchr(b':', ui.as_bytes()) {
                    Some(c) => (&ui[..c], Some(&ui[c + 1..])),
                    None => (ui, None),
                };
                if u.is_empty() || !check_escaped(u, USER) {
                    return Err(UriError("invalid user part"));
                }
                if let Some(p) = p
                    && !check_escaped(p, PASSWORD)
                {
                    return Err(UriError("invalid password"));
                }
                (Some(u), p, &rest[at + 1..])
            }
            None => (None, None, rest),
        };
        // host
        let hb = hostpart.as_bytes();
        let host_end = if hb.first() == Some(&b'[') {
            memchr::memchr(b']', hb).ok_or(UriError("unterminated IPv6 reference"))? + 1
        } else {
            hb.iter()
                .position(|&b| matches!(b, b':' | b';' | b'?'))
                .unwrap_or(hb.len())
        };
        let host = parse_host(&hostpart[..host_end]).map_err(UriError)?;
        let mut i = host_end;
        let mut port = None;
        if hb.get(i) == Some(&b':') {
            let ps = i + 1;
            let pe = hb[ps..]
                .iter()
                .position(|&b| matches!(b, b';' | b'?'))
                .map_or(hb.len(), |p| ps + p);
            let digits = &hostpart[ps..pe];
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(UriError("invalid port"));
            }
            port = Some(
                digits
                    .parse::<u16>()
                    .map_err(|_| UriError("port out of range"))?,
            );
            i = pe;
        }
        let ps = i;
        while hb.get(i) == Some(&b';') {
            let ns = i + 1;
            i = scan_escaped(hb, ns, PARAM);
            if i == ns {
                return Err(UriError("invalid uri-parameter name"));
            }
            if hb.get(i) == Some(&b'=') {
                let vs = i + 1;
                i = scan_escaped(hb, vs, PARAM);
                if i == vs {
                    return Err(UriError("invalid uri-parameter value"));
                }
            }
            if !matches!(hb.get(i), None | Some(b';' | b'?')) {
                return Err(UriError("invalid uri-parameter"));
            }
        }
        let params = Params {
            raw: &hostpart[ps..i],
        };
        let headers = if hb.get(i) == Some(&b'?') {
            let h = &hostpart[i + 1..];
            for hdr in h.split('&') {
                let (n, v) = hdr
                    .split_once('=')
                    .ok_or(UriError("URI header without ="))?;
                if n.is_empty() || !check_escaped(n, HEADER) || !check_escaped(v, HEADER) {
                    return Err(UriError("invalid URI header"));
                }
            }
            Some(h)
        } else if i < hb.len() {
            return Err(UriError("unexpected character after host"));
        } else {
            None
        };
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The `transport` parameter.
    #[must_use]
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }

    /// Whether `;lr` is present (loose routing, RFC 3261 §19.1.1).
    #[must_use]
    pub fn lr(&self) -> bool {
        self.params.contains("lr")
    }

    /// The `maddr` parameter.
    #[must_use]
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// The `user` parameter (`phone`, `ip`, `dialstring`).
    #[must_use]
    pub fn user_param(&self) -> Option<&'a str> {
        self.params.get("user").flatten()
    }

    /// URI equality per RFC 3261 §19.1.4: scheme, userinfo (case-sensitive after
    /// %-decoding), host (case-insensitive / by address), port (an absent port does not
    /// match an explicit default), the `user`, `ttl`, `method`, `transport` and `maddr`
    /// parameters must match if present in either, other parameters only when present in
    /// both, and the headers must match as sets. Not an equivalence relation (parameters
    /// present on one side only are ignored), hence not `PartialEq`.
    #[must_use]
    pub fn equivalent(&self, other: &SipUri<'_>) -> bool {
        if self.secure != other.secure
            || self.port != other.port
            || !self.host.equivalent(&other.host)
        {
            return false;
        }
        let eq_opt_cs = |a: Option<&str>, b: Option<&str>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => pct_eq(a, b, false),
            _ => false,
        };
        if !eq_opt_cs(self.user, other.user) || !eq_opt_cs(self.password, other.password) {
            return false;
        }
        for p in self.params.iter() {
            match other.params.iter().find(|q| pct_eq(p.name, q.name, true)) {
                Some(q) if !opt_pct_eq_ci(p.value, q.value) => return false,
                Some(_) => {}
                None if is_must_match(p.name) => return false,
                None => {}
            }
        }
        for q in other.params.iter() {
            if is_must_match(q.name) && !self.params.iter().any(|p| pct_eq(p.name, q.name, true)) {
                return false;
            }
        }
        let hdrs = |h: Option<&'a str>| h.into_iter().flat_map(|h| h.split('&'));
        let ohdrs = |h: Option<&str>| h.map_or(0, |h| h.split('&').count());
        if hdrs(self.headers).count() != ohdrs(other.headers) {
            return false;
        }
        for h in hdrs(self.headers) {
            let (n, v) = h.split_once('=').unwrap_or((h, ""));
            let found = other
                .headers
                .into_iter()
                .flat_map(|h| h.split('&'))
                .any(|o| {
                    let (on, ov) = o.split_once('=').unwrap_or((o, ""));
                    pct_eq(n, on, true) && pct_eq(v, ov, true)
                });
            if !found {
                return false;
            }
        }
        true
    }
}

fn is_must_match(name: &str) -> bool {
    ["user", "ttl", "method", "transport", "maddr"]
        .iter()
        .any(|m| pct_eq(name, m, true))
}

fn opt_pct_eq_ci(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => pct_eq(a, b, true),
        _ => false,
    }
}

/// Iterate the octets of a %-escaped string, decoded.
fn decoded(s: &str) -> impl Iterator<Item = u8> + '_ {
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let c = *b.get(i)?;
        if c == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|x| hex(*x)),
                b.get(i + 2).and_then(|x| hex(*x)),
            )
        {
            i += 3;
            return Some(h << 4 | l);
        }
        i += 1;
        Some(c)
    })
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Compare two %-escaped strings after decoding, optionally ASCII-case-insensitively.
fn pct_eq(a: &str, b: &str, ci: bool) -> bool {
    let (mut x, mut y) = (decoded(a), decoded(b));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) => {
                if if ci {
                    !p.eq_ignore_ascii_case(&q)
                } else {
                    p != q
                } {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

fn tel_param_value_ok(v: &str) -> bool {
    v.split(['#', '*', '@'])
        .all(|part| check_escaped(part, PARAM))
}

impl<'a> TelUri<'a> {
    fn parse_rest(rest: &'a str) -> Result<TelUri<'a>, UriError> {
        let end = rest.find(';').unwrap_or(rest.len());
        let number = &rest[..end];
        let global = number.starts_with('+');
        let digits = if global { &number[1..] } else { number };
        let is_visual = |b: u8| matches!(b, b'-' | b'.' | b'(' | b')');
        let ok = if global {
            digits.bytes().any(|b| b.is_ascii_digit())
                && digits.bytes().all(|b| b.is_ascii_digit() || is_visual(b))
        } else {
            digits
                .bytes()
                .any(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#')
                && digits
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#' || is_visual(b))
        };
        if !ok {
            return Err(UriError("invalid telephone number"));
        }
        let ptext = &rest[end..];
        for p in ptext.split(';').skip(1) {
            let (n, v) = p.split_once('=').map_or((p, None), |(n, v)| (n, Some(v)));
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(UriError("invalid tel parameter name"));
            }
            if let Some(v) = v
                && (v.is_empty() || !tel_param_value_ok(v))
            {
                return Err(UriError("invalid tel parameter value"));
            }
        }
        Ok(TelUri {
            number,
            global,
            params: Params { raw: ptext },
        })
    }
}

impl Message {
    /// The Request-URI, parsed (lazily, on each call). `None` for a response.
    pub fn request_uri(&self) -> Option<Result<Uri<'_>, UriError>> {
        let raw = self.request_uri_bytes()?;
        Some(
            std::str::from_utf8(raw)
                .map_err(|_| UriError("not UTF-8"))
                .and_then(Uri::parse),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn sip(s: &str) -> SipUri<'_> {
        match SipUri::parse(s) {
            Ok(u) => u,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn sip_uri_parts() {
        let u = sip("sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?subject=hi&x=y");
        assert!(u.secure);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Host::Ipv6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.lr());
        assert_eq!(u.headers, Some("subject=hi&x=y"));
        // RFC 4475 semiuri / intmeth user parts
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        let u = sip(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        );
        assert_eq!(
            u.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        // RFC 5118 4.3: port inside the brackets is part of the address
        let u = sip("sip:[2001:db8::10:5070]");
        assert_eq!(u.host, Host::Ipv6("2001:db8::10:5070".parse().unwrap()));
        assert_eq!(u.port, None);
        // RFC 5118 4.10: three colons tolerated
        let u = sip("sip:[2001:db8:::192.0.2.1]");
        assert_eq!(u.host, Host::Ipv6("2001:db8::192.0.2.1".parse().unwrap()));
        let u = sip("sip:[::ffff:192.0.2.2]");
        assert_eq!(u.host, Host::Ipv6("::ffff:192.0.2.2".parse().unwrap()));
    }

    #[track_caller]
    fn bad(s: &str) {
        assert!(Uri::parse(s).is_err(), "{s} should not parse");
    }

    #[test]
    fn malformed_uris() {
        bad("sip:2001:db8::10"); // RFC 5118 4.2
        bad("sip:[2001:db8::10");
        bad("sip:user@");
        bad("sip:user@host:99999");
        bad("sip:user@host:");
        bad("sip:us er@host");
        bad("sip:user@host;");
        bad("sip:%zz@host");
        bad("sip:host?noequals");
        bad("tel:abc-x");
        bad("nocolon");
        bad("1abc:x");
        bad("http:");
    }

    #[test]
    fn other_schemes_are_kept() {
        assert_eq!(
            Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent")
                .unwrap()
                .scheme(),
            "nobodyKnowsThisScheme"
        );
        assert!(matches!(
            Uri::parse("soap.beep://192.0.2.103:3002"),
            Ok(Uri::Other(_))
        ));
        let Uri::Tel(t) = Uri::parse("tel:+1-201-555-0123;ext=1").unwrap() else {
            panic!()
        };
        assert!(t.global);
        assert_eq!(t.params.get("ext"), Some(Some("1")));
        assert!(matches!(
            Uri::parse("tel:7042;phone-context=example.com"),
            Ok(Uri::Tel(_))
        ));
    }

    #[track_caller]
    fn eqv(a: &str, b: &str, expected: bool) {
        assert_eq!(sip(a).equivalent(&sip(b)), expected, "{a} vs {b}");
        assert_eq!(sip(b).equivalent(&sip(a)), expected, "{b} vs {a}");
    }

    #[test]
    fn rfc3261_19_1_4_equality_examples() {
        // equivalent
        eqv(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp",
            true,
        );
        eqv(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5",
            true,
        );
        eqv(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;security=on",
            true,
        );
        eqv(
            "sip:carol@chicago.com;newparam=5",
            "sip:carol@chicago.com;security=on",
            true,
        );
        eqv(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            true,
        );
        eqv(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            true,
        );
        // not equivalent
        eqv(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP",
            false,
        );
        eqv("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060", false);
        eqv(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp",
            false,
        );
        eqv(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp",
            false,
        );
        eqv(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting",
            false,
        );
        eqv("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4", false);
        eqv(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off",
            false,
        );
        eqv("sip:[2001:db8::10]", "sip:[2001:0db8:0:0::10]", true);
    }
}
