//! Authorization, Proxy-Authorization, WWW-Authenticate, Proxy-Authenticate
//! (RFC 3261 §20.7, §20.27, §20.28, §20.44; RFC 7616/8760 digest parameters).
//!
//! This is only the header syntax; computing and checking digests is not done here.

use std::borrow::Cow;

use crate::error::HeaderErrorKind;
use crate::scan::{Cur, unquote};

/// A credentials or challenge value: `scheme auth-param *(COMMA auth-param)`, or
/// `scheme token68` for schemes such as Basic/Bearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    /// The scheme as written (`Digest`, compare case-insensitively).
    pub scheme: &'a str,
    /// The auth-params as written (validated), empty for a token68 value.
    pub params_raw: &'a str,
    /// A token68 value (`Bearer abc.def`), when the value is not a param list.
    pub token68: Option<&'a str>,
}

/// One auth-param: the value as written (quotes kept; see [`AuthParam::unquoted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthParam<'a> {
    /// Name as written.
    pub name: &'a str,
    /// Value as written (token or quoted-string).
    pub value: &'a str,
}

impl<'a> AuthParam<'a> {
    /// The value with quotes and escapes removed.
    #[must_use]
    pub fn unquoted(&self) -> Cow<'a, str> {
        if self.value.starts_with('"') {
            unquote(self.value)
        } else {
            Cow::Borrowed(self.value)
        }
    }
}

/// Iterator over the auth-params of an [`Auth`].
#[derive(Debug, Clone)]
pub struct AuthParams<'a> {
    cur: Cur<'a>,
}

impl<'a> Iterator for AuthParams<'a> {
    type Item = AuthParam<'a>;
    fn next(&mut self) -> Option<AuthParam<'a>> {
        let c = &mut self.cur;
        c.skip_lws();
        c.eat(b',');
        c.skip_lws();
        let name = c.token()?;
        c.sep(b'=');
        let value = if c.peek() == Some(b'"') {
            c.quoted().ok()?
        } else {
            c.token()?
        };
        Some(AuthParam { name, value })
    }
}

impl<'a> Auth<'a> {
    /// Parse a credentials or challenge value.
    ///
    /// # Errors
    /// A [`HeaderErrorKind`] saying what is wrong.
    pub fn parse(s: &'a str) -> Result<Auth<'a>, HeaderErrorKind> {
        let mut c = Cur::new(s);
        c.skip_lws();
        let scheme = c
            .token()
            .ok_or(HeaderErrorKind::Syntax("missing auth scheme"))?;
        if c.at_end() {
            return Ok(Auth {
                scheme,
                params_raw: "",
                token68: None,
            });
        }
        if !c.skip_lws() {
            return Err(HeaderErrorKind::Syntax(
                "expected whitespace after auth scheme",
            ));
        }
        let ps = c.i;
        // token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
        let probe = c;
        let mut t = probe;
        let t68 = t.take_while(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
        let eqs = t.take_while(|b| b == b'=');
        t.skip_lws();
        if !t68.is_empty() && t.at_end() && (!eqs.is_empty() || !s[ps..].contains('=')) {
            return Ok(Auth {
                scheme,
                params_raw: "",
                token68: Some(crate::scan::trim_lws(&s[ps..])),
            });
        }
        let mut first = true;
        loop {
            c.skip_lws();
            if c.at_end() {
                break;
            }
            if !first {
                if !c.eat(b',') {
                    return Err(HeaderErrorKind::Syntax("expected , between auth-params"));
                }
                c.skip_lws();
            }
            first = false;
            c.token()
                .ok_or(HeaderErrorKind::Syntax("invalid auth-param name"))?;
            if !c.sep(b'=') {
                return Err(HeaderErrorKind::Syntax("auth-param without ="));
            }
            if c.peek() == Some(b'"') {
                c.quoted()
                    .map_err(|()| HeaderErrorKind::Syntax("unterminated quoted auth-param"))?;
            } else if c.token().is_none() {
                return Err(HeaderErrorKind::Syntax("invalid auth-param value"));
            }
        }
        Ok(Auth {
            scheme,
            params_raw: &s[ps..],
            token68: None,
        })
    }

    /// The auth-params in order.
    #[must_use]
    pub fn params(&self) -> AuthParams<'a> {
        AuthParams {
            cur: Cur::new(self.params_raw),
        }
    }

    /// An auth-param by name (case-insensitive), unquoted.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.params()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.unquoted())
    }

    /// Whether the scheme is Digest.
    #[must_use]
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }

    /// `username`.
    #[must_use]
    pub fn username(&self) -> Option<Cow<'a, str>> {
        self.param("username")
    }
    /// `realm`.
    #[must_use]
    pub fn realm(&self) -> Option<Cow<'a, str>> {
        self.param("realm")
    }
    /// `nonce`.
    #[must_use]
    pub fn nonce(&self) -> Option<Cow<'a, str>> {
        self.param("nonce")
    }
    /// `uri` (digest-uri).
    #[must_use]
    pub fn uri(&self) -> Option<Cow<'a, str>> {
        self.param("uri")
    }
    /// `response`.
    #[must_use]
    pub fn response(&self) -> Option<Cow<'a, str>> {
        self.param("response")
    }
    /// `algorithm`.
    #[must_use]
    pub fn algorithm(&self) -> Option<Cow<'a, str>> {
        self.param("algorithm")
    }
    /// `qop`.
    #[must_use]
    pub fn qop(&self) -> Option<Cow<'a, str>> {
        self.param("qop")
    }
    /// `cnonce`.
    #[must_use]
    pub fn cnonce(&self) -> Option<Cow<'a, str>> {
        self.param("cnonce")
    }
    /// `nc`.
    #[must_use]
    pub fn nc(&self) -> Option<Cow<'a, str>> {
        self.param("nc")
    }
    /// `opaque`.
    #[must_use]
    pub fn opaque(&self) -> Option<Cow<'a, str>> {
        self.param("opaque")
    }
    /// `stale`.
    #[must_use]
    pub fn stale(&self) -> Option<Cow<'a, str>> {
        self.param("stale")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_credentials() {
        let a = Auth::parse(
            "Digest username=\"bob\", realm=\"biloxi.com\",\r\n nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:bob@biloxi.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert!(a.is_digest());
        assert_eq!(a.username().unwrap(), "bob");
        assert_eq!(a.uri().unwrap(), "sip:bob@biloxi.com");
        assert_eq!(a.qop().unwrap(), "auth");
        assert_eq!(a.nc().unwrap(), "00000001");
        assert_eq!(a.params().count(), 9);
        let a = Auth::parse("Digest realm=\"a\\\"b\", stale=FALSE").unwrap();
        assert_eq!(a.realm().unwrap(), "a\"b");
        assert_eq!(a.stale().unwrap(), "FALSE");
    }

    #[test]
    fn other_schemes() {
        let a = Auth::parse("NoOneKnowsThisScheme opaque-data=here").unwrap();
        assert_eq!(a.scheme, "NoOneKnowsThisScheme");
        assert_eq!(a.param("opaque-data").unwrap(), "here");
        let a = Auth::parse("Bearer mF_9.B5f-4.1JqM").unwrap();
        assert_eq!(a.token68, Some("mF_9.B5f-4.1JqM"));
        let a = Auth::parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        assert_eq!(a.token68, Some("QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
    }

    #[test]
    fn malformed() {
        assert!(Auth::parse("").is_err());
        assert!(Auth::parse("Digest realm=\"unterminated").is_err());
        assert!(Auth::parse("Digest realm=a realm=b").is_err());
        assert!(Auth::parse("Digest realm=\"x\", nonce=").is_err());
        assert!(Auth::parse("Digest ,,").is_err());
    }
}
