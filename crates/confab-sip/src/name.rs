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

        }
    };
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

/// Generated from the table above (see `every_name_round_trips_through_its_spellings`):
/// dispatch on (length, first letter), then one case-insensitive compare per candidate.
#[inline]
fn lookup(name: &[u8]) -> HeaderName {
    let Some(&first) = name.first() else {
        return HeaderName::Other;
    };
    let eq = |canon: &[u8]| name.eq_ignore_ascii_case(canon);
    match (name.len(), first | 0x20) {
        (1, b'a') => HeaderName::AcceptContact,
        (1, b'b') => HeaderName::ReferredBy,
        (1, b'c') => HeaderName::ContentType,
        (1, b'd') => HeaderName::RequestDisposition,
        (1, b'e') => HeaderName::ContentEncoding,
        (1, b'f') => HeaderName::From,
        (1, b'i') => HeaderName::CallId,
        (1, b'j') => HeaderName::RejectContact,
        (1, b'k') => HeaderName::Supported,
        (1, b'l') => HeaderName::ContentLength,
        (1, b'm') => HeaderName::Contact,
        (1, b'o') => HeaderName::Event,
        (1, b'r') => HeaderName::ReferTo,
        (1, b's') => HeaderName::Subject,
        (1, b't') => HeaderName::To,
        (1, b'u') => HeaderName::AllowEvents,
        (1, b'v') => HeaderName::Via,
        (1, b'x') => HeaderName::SessionExpires,
        (1, b'y') => HeaderName::Identity,
        (2, b't') => {
            if eq(b"to") {
                HeaderName::To
            } else {
                HeaderName::Other
            }
        }
        (3, b'v') => {
            if eq(b"via") {
                HeaderName::Via
            } else {
                HeaderName::Other
            }
        }
        (4, b'c') => {
            if eq(b"cseq") {
                HeaderName::CSeq
            } else {
                HeaderName::Other
            }
        }
        (4, b'd') => {
            if eq(b"date") {
                HeaderName::Date
            } else {
                HeaderName::Other
            }
        }
        (4, b'f') => {
            if eq(b"from") {
                HeaderName::From
            } else {
                HeaderName::Other
            }
        }
        (4, b'p') => {
            if eq(b"path") {
                HeaderName::Path
            } else {
                HeaderName::Other
            }
        }
        (4, b'r') => {
            if eq(b"rack") {
                return HeaderName::RAck;
            }
            if eq(b"rseq") {
                return HeaderName::RSeq;
            }
            HeaderName::Other
        }
        (5, b'a') => {
            if eq(b"allow") {
                HeaderName::Allow
            } else {
                HeaderName::Other
            }
        }
        (5, b'e') => {
            if eq(b"event") {
                HeaderName::Event
            } else {
                HeaderName::Other
            }
        }
        (5, b'r') => {
            if eq(b"route") {
                HeaderName::Route
            } else {
                HeaderName::Other
            }
        }
        (6, b'a') => {
            if eq(b"accept") {
                HeaderName::Accept
            } else {
                HeaderName::Other
            }
        }
        (6, b'm') => {
            if eq(b"min-se") {
                HeaderName::MinSe
            } else {
                HeaderName::Other
            }
        }
        (6, b'r') => {
            if eq(b"reason") {
                HeaderName::Reason
            } else {
                HeaderName::Other
            }
        }
        (6, b's') => {
            if eq(b"server") {
                HeaderName::Server
            } else {
                HeaderName::Other
            }
        }
        (7, b'c') => {
            if eq(b"call-id") {
                return HeaderName::CallId;
            }
            if eq(b"contact") {
                return HeaderName::Contact;
            }
            HeaderName::Other
        }
        (7, b'e') => {
            if eq(b"expires") {
                HeaderName::Expires
            } else {
                HeaderName::Other
            }
        }
        (7, b'p') => {
            if eq(b"privacy") {
                HeaderName::Privacy
            } else {
                HeaderName::Other
            }
        }
        (7, b'r') => {
            if eq(b"require") {
                HeaderName::Require
            } else {
                HeaderName::Other
            }
        }
        (7, b's') => {
            if eq(b"subject") {
                HeaderName::Subject
            } else {
                HeaderName::Other
            }
        }
        (7, b'w') => {
            if eq(b"warning") {
                HeaderName::Warning
            } else {
                HeaderName::Other
            }
        }
        (8, b'i') => {
            if eq(b"identity") {
                HeaderName::Identity
            } else {
                HeaderName::Other
            }
        }
        (8, b'p') => {
            if eq(b"priority") {
                HeaderName::Priority
            } else {
                HeaderName::Other
            }
        }
        (8, b'r') => {
            if eq(b"refer-to") {
                return HeaderName::ReferTo;
            }
            if eq(b"replaces") {
                return HeaderName::Replaces;
            }
            if eq(b"reply-to") {
                return HeaderName::ReplyTo;
            }
            HeaderName::Other
        }
        (8, b's') => {
            if eq(b"sip-etag") {
                HeaderName::SipEtag
            } else {
                HeaderName::Other
            }
        }
        (9, b'c') => {
            if eq(b"call-info") {
                HeaderName::CallInfo
            } else {
                HeaderName::Other
            }
        }
        (9, b's') => {
            if eq(b"supported") {
                HeaderName::Supported
            } else {
                HeaderName::Other
            }
        }
        (9, b't') => {
            if eq(b"timestamp") {
                HeaderName::Timestamp
            } else {
                HeaderName::Other
            }
        }
        (10, b'a') => {
            if eq(b"alert-info") {
                HeaderName::AlertInfo
            } else {
                HeaderName::Other
            }
        }
        (10, b'e') => {
            if eq(b"error-info") {
                HeaderName::ErrorInfo
            } else {
                HeaderName::Other
            }
        }
        (10, b'f') => {
            if eq(b"flow-timer") {
                HeaderName::FlowTimer
            } else {
                HeaderName::Other
            }
        }
        (10, b'u') => {
            if eq(b"user-agent") {
                HeaderName::UserAgent
            } else {
                HeaderName::Other
            }
        }
        (11, b'i') => {
            if eq(b"in-reply-to") {
                HeaderName::InReplyTo
            } else {
                HeaderName::Other
            }
        }
        (11, b'm') => {
            if eq(b"min-expires") {
                HeaderName::MinExpires
            } else {
                HeaderName::Other
            }
        }
        (11, b'r') => {
            if eq(b"referred-by") {
                return HeaderName::ReferredBy;
            }
            if eq(b"retry-after") {
                return HeaderName::RetryAfter;
            }
            HeaderName::Other
        }
        (11, b'u') => {
            if eq(b"unsupported") {
                HeaderName::Unsupported
            } else {
                HeaderName::Other
            }
        }
        (12, b'a') => {
            if eq(b"allow-events") {
                HeaderName::AllowEvents
            } else {
                HeaderName::Other
            }
        }
        (12, b'c') => {
            if eq(b"content-type") {
                HeaderName::ContentType
            } else {
                HeaderName::Other
            }
        }
        (12, b'm') => {
            if eq(b"max-forwards") {
                return HeaderName::MaxForwards;
            }
            if eq(b"mime-version") {
                return HeaderName::MimeVersion;
            }
            HeaderName::Other
        }
        (12, b'o') => {
            if eq(b"organization") {
                HeaderName::Organization
            } else {
                HeaderName::Other
            }
        }
        (12, b'r') => {
            if eq(b"record-route") {
                HeaderName::RecordRoute
            } else {
                HeaderName::Other
            }
        }
        (12, b's') => {
            if eq(b"sip-if-match") {
                HeaderName::SipIfMatch
            } else {
                HeaderName::Other
            }
        }
        (13, b'a') => {
            if eq(b"authorization") {
                HeaderName::Authorization
            } else {
                HeaderName::Other
            }
        }
        (13, b'p') => {
            if eq(b"proxy-require") {
                HeaderName::ProxyRequire
            } else {
                HeaderName::Other
            }
        }
        (13, b's') => {
            if eq(b"service-route") {
                HeaderName::ServiceRoute
            } else {
                HeaderName::Other
            }
        }
        (14, b'a') => {
            if eq(b"accept-contact") {
                HeaderName::AcceptContact
            } else {
                HeaderName::Other
            }
        }
        (14, b'c') => {
            if eq(b"content-length") {
                HeaderName::ContentLength
            } else {
                HeaderName::Other
            }
        }
        (14, b'r') => {
            if eq(b"reject-contact") {
                HeaderName::RejectContact
            } else {
                HeaderName::Other
            }
        }
        (15, b'a') => {
            if eq(b"accept-encoding") {
                return HeaderName::AcceptEncoding;
            }
            if eq(b"accept-language") {
                return HeaderName::AcceptLanguage;
            }
            HeaderName::Other
        }
        (15, b's') => {
            if eq(b"session-expires") {
                HeaderName::SessionExpires
            } else {
                HeaderName::Other
            }
        }
        (16, b'c') => {
            if eq(b"content-encoding") {
                return HeaderName::ContentEncoding;
            }
            if eq(b"content-language") {
                return HeaderName::ContentLanguage;
            }
            HeaderName::Other
        }
        (16, b'w') => {
            if eq(b"www-authenticate") {
                HeaderName::WwwAuthenticate
            } else {
                HeaderName::Other
            }
        }
        (18, b'p') => {
            if eq(b"proxy-authenticate") {
                HeaderName::ProxyAuthenticate
            } else {
                HeaderName::Other
            }
        }
        (18, b's') => {
            if eq(b"subscription-state") {
                HeaderName::SubscriptionState
            } else {
                HeaderName::Other
            }
        }
        (19, b'a') => {
            if eq(b"authentication-info") {
                HeaderName::AuthenticationInfo
            } else {
                HeaderName::Other
            }
        }
        (19, b'c') => {
            if eq(b"content-disposition") {
                HeaderName::ContentDisposition
            } else {
                HeaderName::Other
            }
        }
        (19, b'p') => {
            if eq(b"p-asserted-identity") {
                return HeaderName::PAssertedIdentity;
            }
            if eq(b"proxy-authorization") {
                return HeaderName::ProxyAuthorization;
            }
            HeaderName::Other
        }
        (19, b'r') => {
            if eq(b"request-disposition") {
                HeaderName::RequestDisposition
            } else {
                HeaderName::Other
            }
        }
        (20, b'p') => {
            if eq(b"p-preferred-identity") {
                HeaderName::PPreferredIdentity
            } else {
                HeaderName::Other
            }
        }
        _ => HeaderName::Other,
    }
}

impl HeaderName {
    /// Classify a header name as written on the wire (case-insensitive, compact forms
    /// included). Returns [`HeaderName::Other`] for anything unknown, including names longer
    /// than 32 bytes.
    #[must_use]
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        lookup(name)
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
