//! Header field names: the known ones as an enum (long and compact forms map to the same
//! variant), everything else compared case-insensitively by its spelling.

use std::fmt;

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident => $canon:literal $(, $compact:literal)? ;)*) => {
        /// A header field name known to this crate.
        ///
        /// Parsing maps the long form and the compact form (RFC 3261 §7.3.3, and later RFCs'
        /// compact forms) case-insensitively to one variant, so `v:`, `VIA:` and `Via:` are all
        /// [`HeaderName::Via`]. Names not in this list are [`HeaderName::Other`]; look them up
        /// with a `&str` (see [`HeaderKey`]). The message keeps the name exactly as it was
        /// written: this enum is only for lookup.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        #[repr(u8)]
        pub enum HeaderName {
            $( $(#[$doc])* #[doc = concat!("`", $canon, "`", $(" (compact `", $compact, "`)")?)] $variant, )*
            /// Any other name (an extension or vendor header such as `ms-*` or `X-*`).
            Other,
        }

        impl HeaderName {
            /// The canonical (long) spelling, e.g. `"Call-ID"`. `""` for [`HeaderName::Other`].
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// The compact form, if the header has one (`Via` → `v`).
            #[must_use]
            pub const fn compact(self) -> Option<&'static str> {
                match self {
                    $( $( HeaderName::$variant => Some($compact), )? )*
                    _ => None,
                }
            }

            /// Every known name, for tests and tables.
            pub const ALL: &'static [HeaderName] = &[ $( HeaderName::$variant, )* ];

            fn from_lower(lower: &[u8]) -> HeaderName {
                $(
                    if lower == lower_of($canon).as_slice_for(lower.len()) $( || lower == $compact.as_bytes() )? {
                        return HeaderName::$variant;
                    }
                )*
                HeaderName::Other
            }
        }
    };
}

// Helper so the macro can compare against a lowercase copy of the canonical name without
// allocating: canonical names are ASCII and at most 32 bytes.
struct Lower {
    buf: [u8; 32],
    len: usize,
}
impl Lower {
    fn as_slice_for(&self, want: usize) -> &[u8] {
        if want != self.len {
            &[]
        } else {
            &self.buf[..self.len]
        }
    }
}
const fn lower_of(s: &str) -> Lower {
    let b = s.as_bytes();
    let mut buf = [0u8; 32];
    let mut i = 0;
    while i < b.len() && i < 32 {
        buf[i] = b[i].to_ascii_lowercase();
        i += 1;
    }
    Lower { buf, len: b.len() }
}

header_names! {
    Accept => "Accept";
    AcceptContact => "Accept-Contact", "a";
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    AlertInfo => "Alert-Info";
    Allow => "Allow";
    AllowEvents => "Allow-Events", "u";
    AuthenticationInfo => "Authentication-Info";
    Authorization => "Authorization";
    CallId => "Call-ID", "i";
    CallInfo => "Call-Info";
    Contact => "Contact", "m";
    ContentDisposition => "Content-Disposition";
    ContentEncoding => "Content-Encoding", "e";
    ContentLanguage => "Content-Language";
    ContentLength => "Content-Length", "l";
    ContentType => "Content-Type", "c";
    CSeq => "CSeq";
    Date => "Date";
    ErrorInfo => "Error-Info";
    Event => "Event", "o";
    Expires => "Expires";
    FlowTimer => "Flow-Timer";
    From => "From", "f";
    Identity => "Identity", "y";
    InReplyTo => "In-Reply-To";
    MaxForwards => "Max-Forwards";
    MimeVersion => "MIME-Version";
    MinExpires => "Min-Expires";
    MinSe => "Min-SE";
    Organization => "Organization";
    PAssertedIdentity => "P-Asserted-Identity";
    PPreferredIdentity => "P-Preferred-Identity";
    Path => "Path";
    Priority => "Priority";
    Privacy => "Privacy";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyRequire => "Proxy-Require";
    RAck => "RAck";
    Reason => "Reason";
    RecordRoute => "Record-Route";
    ReferTo => "Refer-To", "r";
    ReferredBy => "Referred-By", "b";
    RejectContact => "Reject-Contact", "j";
    Replaces => "Replaces";
    ReplyTo => "Reply-To";
    RequestDisposition => "Request-Disposition", "d";
    Require => "Require";
    RetryAfter => "Retry-After";
    Route => "Route";
    RSeq => "RSeq";
    Server => "Server";
    ServiceRoute => "Service-Route";
    SessionExpires => "Session-Expires", "x";
    SipEtag => "SIP-ETag";
    SipIfMatch => "SIP-If-Match";
    Subject => "Subject", "s";
    SubscriptionState => "Subscription-State";
    Supported => "Supported", "k";
    Timestamp => "Timestamp";
    To => "To", "t";
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Via => "Via", "v";
    Warning => "Warning";
    WwwAuthenticate => "WWW-Authenticate";
}

impl HeaderName {
    /// Classify a header name as written on the wire (case-insensitive, compact forms
    /// included). Returns [`HeaderName::Other`] for anything unknown, including names longer
    /// than 32 bytes.
    #[must_use]
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        if name.is_empty() || name.len() > 32 {
            return HeaderName::Other;
        }
        let mut buf = [0u8; 32];
        for (d, s) in buf.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        let lower = &buf[..name.len()];
        // Fast paths for the headers every message carries.
        match lower {
            b"via" | b"v" => HeaderName::Via,
            b"from" | b"f" => HeaderName::From,
            b"to" | b"t" => HeaderName::To,
            b"call-id" | b"i" => HeaderName::CallId,
            b"cseq" => HeaderName::CSeq,
            b"contact" | b"m" => HeaderName::Contact,
            b"max-forwards" => HeaderName::MaxForwards,
            b"content-length" | b"l" => HeaderName::ContentLength,
            b"content-type" | b"c" => HeaderName::ContentType,
            b"route" => HeaderName::Route,
            b"record-route" => HeaderName::RecordRoute,
            _ => HeaderName::from_lower(lower),
        }
    }

    /// The reason phrase a 400 response uses when this header is malformed,
    /// e.g. `"Malformed Via header"`.
    #[must_use]
    pub fn malformed_reason(self) -> &'static str {
        match self {
            HeaderName::Via => "Malformed Via header",
            HeaderName::From => "Malformed From header",
            HeaderName::To => "Malformed To header",
            HeaderName::CallId => "Malformed Call-ID header",
            HeaderName::CSeq => "Malformed CSeq header",
            HeaderName::MaxForwards => "Malformed Max-Forwards header",
            HeaderName::Contact => "Malformed Contact header",
            HeaderName::ContentLength => "Malformed Content-Length header",
            HeaderName::ContentType => "Malformed Content-Type header",
            HeaderName::Route => "Malformed Route header",
            HeaderName::RecordRoute => "Malformed Record-Route header",
            HeaderName::Expires => "Malformed Expires header",
            HeaderName::Authorization => "Malformed Authorization header",
            HeaderName::ProxyAuthorization => "Malformed Proxy-Authorization header",
            HeaderName::Event => "Malformed Event header",
            HeaderName::Require => "Malformed Require header",
            HeaderName::ProxyRequire => "Malformed Proxy-Require header",
            _ => "Malformed header",
        }
    }

    /// The reason phrase a 400 response uses when a single-valued header is repeated,
    /// e.g. `"Multiple CSeq headers"`.
    #[must_use]
    pub fn repeated_reason(self) -> &'static str {
        match self {
            HeaderName::From => "Multiple From headers",
            HeaderName::To => "Multiple To headers",
            HeaderName::CallId => "Multiple Call-ID headers",
            HeaderName::CSeq => "Multiple CSeq headers",
            HeaderName::MaxForwards => "Multiple Max-Forwards headers",
            HeaderName::ContentLength => "Multiple Content-Length headers",
            HeaderName::ContentType => "Multiple Content-Type headers",
            HeaderName::Expires => "Multiple Expires headers",
            _ => "Repeated single-value header",
        }
    }

    /// The reason phrase a 400 response uses when this mandatory header is absent.
    #[must_use]
    pub fn missing_reason(self) -> &'static str {
        match self {
            HeaderName::Via => "Missing Via header",
            HeaderName::From => "Missing From header",
            HeaderName::To => "Missing To header",
            HeaderName::CallId => "Missing Call-ID header",
            HeaderName::CSeq => "Missing CSeq header",
            _ => "Missing mandatory header",
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if *self == HeaderName::Other {
            "(extension header)"
        } else {
            self.as_str()
        })
    }
}

/// How a caller names the header(s) it wants: a known [`HeaderName`] or any spelling as a
/// `&str` (normalised: `"v"`, `"VIA"` and `HeaderName::Via` find the same lines; an unknown
/// name like `"ms-client-diagnostics"` is matched case-insensitively against the spelling
/// on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKey<'a> {
    /// A known header (never [`HeaderName::Other`] when built through `From`).
    Known(HeaderName),
    /// An extension header, matched case-insensitively.
    Other(&'a str),
}

impl From<HeaderName> for HeaderKey<'_> {
    fn from(n: HeaderName) -> Self {
        HeaderKey::Known(n)
    }
}

impl<'a> From<&'a str> for HeaderKey<'a> {
    fn from(s: &'a str) -> Self {
        match HeaderName::from_bytes(s.as_bytes()) {
            HeaderName::Other => HeaderKey::Other(s),
            n => HeaderKey::Known(n),
        }
    }
}

impl HeaderKey<'_> {
    /// Whether a header written as `raw` (classified as `name`) matches this key.
    #[must_use]
    pub fn matches(&self, name: HeaderName, raw: &[u8]) -> bool {
        match *self {
            HeaderKey::Known(n) => n == name && n != HeaderName::Other,
            HeaderKey::Other(s) => {
                name == HeaderName::Other && raw.eq_ignore_ascii_case(s.as_bytes())
            }
        }
    }

    /// The spelling to write when this key is used to add a new header line.
    #[must_use]
    pub fn spelling(&self) -> &str {
        match self {
            HeaderKey::Known(n) => n.as_str(),
            HeaderKey::Other(s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(raw: &str, expected: HeaderName) {
        assert_eq!(HeaderName::from_bytes(raw.as_bytes()), expected, "{raw}");
    }

    #[test]
    fn long_compact_and_case_forms_normalise() {
        check("Via", HeaderName::Via);
        check("v", HeaderName::Via);
        check("V", HeaderName::Via);
        check("MaX-fOrWaRdS", HeaderName::MaxForwards);
        check("i", HeaderName::CallId);
        check("CALL-id", HeaderName::CallId);
        check("l", HeaderName::ContentLength);
        check("L", HeaderName::ContentLength);
        check("x", HeaderName::SessionExpires);
        check("y", HeaderName::Identity);
        check("o", HeaderName::Event);
        check("u", HeaderName::AllowEvents);
        check("sip-etag", HeaderName::SipEtag);
        check("www-authenticate", HeaderName::WwwAuthenticate);
        check("P-Asserted-Identity", HeaderName::PAssertedIdentity);
        check("ms-client-diagnostics", HeaderName::Other);
        check("C%6Fntact", HeaderName::Other);
        check("q", HeaderName::Other);
        check("", HeaderName::Other);
        check(
            "a-very-long-header-name-that-is-longer-than-32-bytes",
            HeaderName::Other,
        );
    }

    #[test]
    fn every_name_round_trips_through_its_spellings() {
        for &n in HeaderName::ALL {
            assert_eq!(HeaderName::from_bytes(n.as_str().as_bytes()), n);
            assert_eq!(
                HeaderName::from_bytes(n.as_str().to_uppercase().as_bytes()),
                n
            );
            if let Some(c) = n.compact() {
                assert_eq!(HeaderName::from_bytes(c.as_bytes()), n);
            }
        }
    }

    #[test]
    fn keys_match_known_and_other() {
        let k: HeaderKey<'_> = "v".into();
        assert!(k.matches(HeaderName::Via, b"Via"));
        let k: HeaderKey<'_> = "X-Foo".into();
        assert!(k.matches(HeaderName::Other, b"x-foo"));
        assert!(!k.matches(HeaderName::Other, b"x-bar"));
    }
}
