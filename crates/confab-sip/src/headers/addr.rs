//! name-addr / addr-spec values: From, To, Contact, Route, Record-Route, Path,
//! P-Asserted-Identity (RFC 3261 §20.10, §20.20, §20.39, §20.30, §20.34; RFC 3327;
//! RFC 3325; RFC 5626 `+sip.instance` and `reg-id`).

use std::borrow::Cow;

use crate::error::HeaderErrorKind;
use crate::scan::{Cur, is_lws, is_token, unquote};
use crate::uri::{Params, Uri, scan_header_params};

/// `[display-name] <URI> *(;param)` or `URI *(;param)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written: a quoted string with its quotes, or a token sequence.
    pub display_name: Option<&'a str>,
    /// The URI, parsed.
    pub uri: Uri<'a>,
    /// The URI as written.
    pub uri_str: &'a str,
    /// Whether the URI was enclosed in `<>` (name-addr form).
    pub bracketed: bool,
    /// Header parameters after the address (`;tag=...`, `;expires=...`).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// The `tag` parameter (From/To).
    #[must_use]
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }

    /// The display name without quotes and escapes.
    #[must_use]
    pub fn display_name_unquoted(&self) -> Option<Cow<'a, str>> {
        self.display_name.map(|d| {
            if d.starts_with('"') {
                unquote(d)
            } else {
                Cow::Borrowed(d)
            }
        })
    }

    /// Parse one name-addr or addr-spec with parameters (one list element).
    ///
    /// # Errors
    /// A [`HeaderErrorKind`] saying what is wrong.
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, HeaderErrorKind> {
        let mut c = Cur::new(s);
        c.skip_lws();
        if c.at_end() {
            return Err(HeaderErrorKind::Empty);
        }
        let mut display_name = None;
        let mut bracketed = false;
        if c.peek() == Some(b'"') {
            let q = c
                .quoted()
                .map_err(|()| HeaderErrorKind::Syntax("unterminated quoted display name"))?;
            display_name = Some(q);
            c.skip_lws();
            if c.peek() != Some(b'<') {
                return Err(HeaderErrorKind::Syntax("expected < after display name"));
            }
        } else if c.peek() != Some(b'<') {
            // *(token LWS) followed by '<' is a display name; otherwise this is an addr-spec.
            let save = c.i;
            let ds = c.i;
            let mut de = c.i;
            while c.token().is_some() {
                de = c.i;
                c.skip_lws();
            }
            if c.peek() == Some(b'<') && de > ds {
                display_name = Some(&s[ds..de]);
            } else {
                c.i = save;
            }
        }
        let uri_str;
        if c.eat(b'<') {
            bracketed = true;
            let us = c.i;
            let u = c.take_while(|b| b != b'>');
            if !c.eat(b'>') {
                return Err(HeaderErrorKind::Syntax("missing >"));
            }
            if u.bytes().any(is_lws) {
                return Err(HeaderErrorKind::Syntax("whitespace inside <URI>"));
            }
            uri_str = &s[us..us + u.len()];
        } else {
            // addr-spec: may not contain ';', ',' or '?' (RFC 3261 §20).
            let u = c.take_while(|b| b != b';' && !is_lws(b) && b != b',');
            if u.contains('?') {
                return Err(HeaderErrorKind::Syntax(
                    "URI with '?' must be enclosed in <>",
                ));
            }
            uri_str = u;
        }
        if uri_str.is_empty() {
            return Err(HeaderErrorKind::Syntax("empty URI"));
        }
        let uri = Uri::parse(uri_str).map_err(|e| HeaderErrorKind::Syntax(e.0))?;
        let params = scan_header_params(&mut c).map_err(HeaderErrorKind::Syntax)?;
        c.skip_lws();
        if !c.at_end() {
            return Err(HeaderErrorKind::Syntax(if bracketed {
                "unexpected text after name-addr"
            } else {
                "unexpected text after addr-spec (display names with non-token characters must be quoted)"
            }));
        }
        if let Some(t) = params.get("tag")
            && !t.is_some_and(|t| !t.is_empty() && t.bytes().all(is_token))
        {
            return Err(HeaderErrorKind::Syntax("tag is not a token"));
        }
        Ok(NameAddr {
            display_name,
            uri,
            uri_str,
            bracketed,
            params,
        })
    }

    /// Parse a value that must be in name-addr form (Route, Record-Route, Path).
    pub(crate) fn parse_bracketed(s: &'a str) -> Result<NameAddr<'a>, HeaderErrorKind> {
        let na = NameAddr::parse(s)?;
        if !na.bracketed {
            return Err(HeaderErrorKind::Syntax("value must be a name-addr (<URI>)"));
        }
        Ok(na)
    }
}

/// One Contact value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (REGISTER removing all bindings, RFC 3261 §10.2.2).
    Star,
    /// An address with its contact-params.
    Addr(ContactAddr<'a>),
}

/// A Contact address and the contact-params a registrar reads, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactAddr<'a> {
    /// The address and all its parameters.
    pub addr: NameAddr<'a>,
    /// `q`, in thousandths (`q=0.33` → 330).
    pub q: Option<u16>,
    /// `expires` in seconds.
    pub expires: Option<u32>,
    /// `+sip.instance` without its quotes, e.g. `<urn:uuid:...>` (RFC 5626).
    pub instance: Option<&'a str>,
    /// `reg-id` (RFC 5626).
    pub reg_id: Option<u32>,
}

impl<'a> Contact<'a> {
    /// The address, unless this is `*`.
    #[must_use]
    pub fn addr(&self) -> Option<&ContactAddr<'a>> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => Some(a),
        }
    }

    /// Parse one Contact element.
    ///
    /// # Errors
    /// A [`HeaderErrorKind`] saying what is wrong.
    pub fn parse(s: &'a str) -> Result<Contact<'a>, HeaderErrorKind> {
        if crate::scan::trim_lws(s) == "*" {
            return Ok(Contact::Star);
        }
        let addr = NameAddr::parse(s)?;
        let mut ca = ContactAddr {
            addr,
            q: None,
            expires: None,
            instance: None,
            reg_id: None,
        };
        for p in addr.params.iter() {
            if p.name.eq_ignore_ascii_case("q") {
                ca.q = Some(
                    parse_qvalue(p.value.unwrap_or(""))
                        .ok_or(HeaderErrorKind::Syntax("invalid q value"))?,
                );
            } else if p.name.eq_ignore_ascii_case("expires") {
                ca.expires = Some(parse_delta(p.value.unwrap_or(""), "expires")?);
            } else if p.name.eq_ignore_ascii_case("+sip.instance") {
                let v = p
                    .value
                    .ok_or(HeaderErrorKind::Syntax("+sip.instance without value"))?;
                ca.instance = Some(
                    v.strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .ok_or(HeaderErrorKind::Syntax("+sip.instance must be quoted"))?,
                );
            } else if p.name.eq_ignore_ascii_case("reg-id") {
                ca.reg_id = Some(parse_delta(p.value.unwrap_or(""), "reg-id")?);
            }
        }
        Ok(Contact::Addr(ca))
    }
}

/// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths.
fn parse_qvalue(v: &str) -> Option<u16> {
    let b = v.as_bytes();
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, f),
        None => (v, ""),
    };
    if b.is_empty()
        || (int != "0" && int != "1")
        || frac.len() > 3
        || !frac.bytes().all(|d| d.is_ascii_digit())
    {
        return None;
    }
    let mut n: u16 = if int == "1" { 1000 } else { 0 };
    let mut scale = 100;
    for d in frac.bytes() {
        n += u16::from(d - b'0') * scale;
        scale /= 10;
    }
    (n <= 1000).then_some(n)
}

/// delta-seconds: 1*DIGIT, must fit in 32 bits (RFC 3261 §20.19: 0 to 2^32-1).
pub(crate) fn parse_delta(v: &str, what: &'static str) -> Result<u32, HeaderErrorKind> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderErrorKind::Syntax("expected a number of seconds"));
    }
    crate::scan::parse_u64(v.as_bytes())
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(HeaderErrorKind::OutOfRange(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::Host;

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(n.display_name_unquoted().unwrap(), "J Rosenberg \\\"");
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name, Some("caller"));
        let n = NameAddr::parse("sip:+16505552222@ss1.example.net;user=phone").unwrap();
        assert!(!n.bracketed);
        assert_eq!(n.params.get("user"), Some(Some("phone")));
        let n =
            NameAddr::parse("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>").unwrap();
        assert_eq!(n.display_name, Some("token1~` token2'+_ token3*%!.-"));
        let n = NameAddr::parse("<sip:[2001:db8::10]:5070>").unwrap();
        assert_eq!(
            n.uri.as_sip().unwrap().host,
            Host::Ipv6("2001:db8::10".parse().unwrap())
        );
        assert!(matches!(
            NameAddr::parse("isbn:2983792873").unwrap().uri,
            Uri::Other(_)
        ));
    }

    #[track_caller]
    fn bad(s: &str) {
        assert!(NameAddr::parse(s).is_err(), "{s:?} should fail");
    }

    #[test]
    fn malformed_name_addrs() {
        bad("\"Mr. J. User <sip:j.user@example.com>");
        bad("\"Watson, Thomas\" < sip:t.watson@example.org >");
        bad("Bell, Alexander <sip:a.g.bell@example.com>;tag=43");
        bad("sip:user@example.com?Route=%3Csip:sip.example.com%3E");
        bad("<sip:a@b");
        bad("<sip:a@b>;tag=");
        bad("<sip:a@b>;;");
        bad("");
        bad("<sip:2001:db8::10>");
    }

    #[test]
    fn contacts() {
        assert_eq!(Contact::parse(" * "), Ok(Contact::Star));
        let Contact::Addr(c) = Contact::parse(
            "<sip:alice@192.0.2.1;transport=tcp>;q=0.33;expires=3600;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";reg-id=1",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(c.q, Some(330));
        assert_eq!(c.expires, Some(3600));
        assert_eq!(
            c.instance,
            Some("<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>")
        );
        assert_eq!(c.reg_id, Some(1));
        assert!(Contact::parse("<sip:a@b>;q=1.5").is_err());
        assert!(Contact::parse("<sip:a@b>;expires=280297596632815").is_err());
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("1.001"), None);
    }
}
