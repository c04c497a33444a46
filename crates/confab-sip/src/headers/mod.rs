//! Typed header accessors on [`Message`].
//!
//! Every accessor parses on demand and borrows from the message (no allocation on the
//! paths a proxy uses). The return types tell absent from malformed:
//!
//! * single-valued headers: `Option<Result<T, HeaderError>>` — `None` when absent,
//!   `Some(Err(_))` when present but malformed (only the first field is read; a repeated
//!   single-value header is reported by [`Message::check`]);
//! * list headers: an iterator of `Result<T, HeaderError>` over every comma-separated value
//!   of every field, in order (empty when absent).
//!
//! A [`HeaderError`] names the header and what is wrong.

mod addr;
mod auth;
mod misc;
mod via;

pub use addr::{Contact, ContactAddr, NameAddr};
pub use auth::{Auth, AuthParam, AuthParams};
pub use misc::{CSeq, Event, MediaType, SipDate, SubscriptionState};
pub use via::Via;

use bytes::Bytes;

use crate::error::{HeaderError, HeaderErrorKind};
use crate::message::{Message, Values};
use crate::name::HeaderName;

/// Iterator of typed values of a list header; see the [module docs](self).
pub struct TypedValues<'m, T> {
    values: Values<'m>,
    name: HeaderName,
    parse: fn(&'m str) -> Result<T, HeaderErrorKind>,
}

impl<T> std::fmt::Debug for TypedValues<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedValues")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'m, T> Iterator for TypedValues<'m, T> {
    type Item = Result<T, HeaderError>;
    fn next(&mut self) -> Option<Self::Item> {
        let raw = self.values.next()?;
        Some(match std::str::from_utf8(raw) {
            Err(_) => Err(HeaderError::new(self.name, HeaderErrorKind::NotUtf8)),
            Ok("") => Err(HeaderError::new(self.name, HeaderErrorKind::Empty)),
            Ok(s) => (self.parse)(s).map_err(|k| HeaderError::new(self.name, k)),
        })
    }
}

fn token_elem(s: &str) -> Result<&str, HeaderErrorKind> {
    misc::parse_single_token(s)
}

impl Message {
    fn typed<'m, T>(
        &'m self,
        name: HeaderName,
        parse: fn(&'m str) -> Result<T, HeaderErrorKind>,
    ) -> TypedValues<'m, T> {
        TypedValues {
            values: self.values(name),
            name,
            parse,
        }
    }

    /// The first field's value as UTF-8 (trimmed), or the error.
    fn first_str(&self, name: HeaderName) -> Option<Result<&str, HeaderError>> {
        let e = self.headers.iter().find(|e| e.name == name)?;
        let v = self.entry_value(e);
        Some(match std::str::from_utf8(v) {
            Err(_) => Err(HeaderError::new(name, HeaderErrorKind::NotUtf8)),
            Ok("") => Err(HeaderError::new(name, HeaderErrorKind::Empty)),
            Ok(s) => Ok(s),
        })
    }

    fn single<'m, T>(
        &'m self,
        name: HeaderName,
        parse: impl FnOnce(&'m str) -> Result<T, HeaderErrorKind>,
    ) -> Option<Result<T, HeaderError>> {
        Some(
            self.first_str(name)?
                .and_then(|s| parse(s).map_err(|k| HeaderError::new(name, k))),
        )
    }

    /// A `Bytes` sharing `s` if it lies in the message buffer (zero-copy), else a copy.
    pub(crate) fn share(&self, s: &str) -> Bytes {
        let base = self.buf.as_ptr() as usize;
        let p = s.as_ptr() as usize;
        if p >= base && p + s.len() <= base + self.buf.len() {
            self.buf.slice(p - base..p - base + s.len())
        } else {
            Bytes::copy_from_slice(s.as_bytes())
        }
    }

    // ---- Via ------------------------------------------------------------------------

    /// Every Via value, top first (all comma-separated values of all Via fields).
    pub fn vias(&self) -> TypedValues<'_, Via<'_>> {
        self.typed(HeaderName::Via, Via::parse)
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Option<Result<Via<'_>, HeaderError>> {
        self.vias().next()
    }

    // ---- name-addr headers ----------------------------------------------------------

    /// From.
    pub fn from(&self) -> Option<Result<NameAddr<'_>, HeaderError>> {
        self.single(HeaderName::From, NameAddr::parse)
    }

    /// To.
    pub fn to(&self) -> Option<Result<NameAddr<'_>, HeaderError>> {
        self.single(HeaderName::To, NameAddr::parse)
    }

    /// Every Contact value (`*` included as [`Contact::Star`]).
    pub fn contacts(&self) -> TypedValues<'_, Contact<'_>> {
        self.typed(HeaderName::Contact, Contact::parse)
    }

    /// Every Route value, in order (name-addr form required).
    pub fn routes(&self) -> TypedValues<'_, NameAddr<'_>> {
        self.typed(HeaderName::Route, NameAddr::parse_bracketed)
    }

    /// Every Record-Route value, in order.
    pub fn record_routes(&self) -> TypedValues<'_, NameAddr<'_>> {
        self.typed(HeaderName::RecordRoute, NameAddr::parse_bracketed)
    }

    /// Every Path value (RFC 3327).
    pub fn paths(&self) -> TypedValues<'_, NameAddr<'_>> {
        self.typed(HeaderName::Path, NameAddr::parse_bracketed)
    }

    /// Every Service-Route value (RFC 3608).
    pub fn service_routes(&self) -> TypedValues<'_, NameAddr<'_>> {
        self.typed(HeaderName::ServiceRoute, NameAddr::parse_bracketed)
    }

    /// Every P-Asserted-Identity value (RFC 3325).
    pub fn p_asserted_identities(&self) -> TypedValues<'_, NameAddr<'_>> {
        self.typed(HeaderName::PAssertedIdentity, NameAddr::parse)
    }

    // ---- scalars ----------------------------------------------------------------------

    /// Call-ID (`word [@ word]`, no whitespace).
    pub fn call_id(&self) -> Option<Result<&str, HeaderError>> {
        self.single(HeaderName::CallId, |s| {
            if s.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(s)
            } else {
                Err(HeaderErrorKind::Syntax(
                    "whitespace or non-ASCII in Call-ID",
                ))
            }
        })
    }

    /// CSeq.
    pub fn cseq(&self) -> Option<Result<CSeq, HeaderError>> {
        let s = match self.first_str(HeaderName::CSeq)? {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        Some(
            misc::parse_cseq(s, |m| Some(self.share(m)))
                .map_err(|k| HeaderError::new(HeaderName::CSeq, k)),
        )
    }

    /// Max-Forwards (0..=255).
    pub fn max_forwards(&self) -> Option<Result<u8, HeaderError>> {
        self.single(HeaderName::MaxForwards, |s| {
            if !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HeaderErrorKind::Syntax("not a number"));
            }
            crate::scan::parse_u64(s.as_bytes())
                .and_then(|n| u8::try_from(n).ok())
                .ok_or(HeaderErrorKind::OutOfRange("Max-Forwards"))
        })
    }

    /// Content-Length.
    pub fn content_length(&self) -> Option<Result<usize, HeaderError>> {
        self.single(HeaderName::ContentLength, |s| {
            crate::scan::parse_u64(s.as_bytes())
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(HeaderErrorKind::Syntax("not a number"))
        })
    }

    /// Content-Type.
    pub fn content_type(&self) -> Option<Result<MediaType<'_>, HeaderError>> {
        self.single(HeaderName::ContentType, misc::parse_media_type)
    }

    /// Expires (delta-seconds, 0..=2^32-1).
    pub fn expires(&self) -> Option<Result<u32, HeaderError>> {
        self.single(HeaderName::Expires, |s| addr::parse_delta(s, "Expires"))
    }

    /// Min-Expires.
    pub fn min_expires(&self) -> Option<Result<u32, HeaderError>> {
        self.single(HeaderName::MinExpires, |s| {
            addr::parse_delta(s, "Min-Expires")
        })
    }

    /// Date (RFC 1123, GMT).
    pub fn date(&self) -> Option<Result<SipDate, HeaderError>> {
        self.single(HeaderName::Date, misc::parse_date)
    }

    // ---- auth ------------------------------------------------------------------------

    /// Every Authorization field (one credentials value per field).
    pub fn authorizations(&self) -> impl Iterator<Item = Result<Auth<'_>, HeaderError>> + '_ {
        self.auth_fields(HeaderName::Authorization)
    }

    /// Every Proxy-Authorization field.
    pub fn proxy_authorizations(&self) -> impl Iterator<Item = Result<Auth<'_>, HeaderError>> + '_ {
        self.auth_fields(HeaderName::ProxyAuthorization)
    }

    /// Every WWW-Authenticate field (one challenge per field).
    pub fn www_authenticates(&self) -> impl Iterator<Item = Result<Auth<'_>, HeaderError>> + '_ {
        self.auth_fields(HeaderName::WwwAuthenticate)
    }

    /// Every Proxy-Authenticate field.
    pub fn proxy_authenticates(&self) -> impl Iterator<Item = Result<Auth<'_>, HeaderError>> + '_ {
        self.auth_fields(HeaderName::ProxyAuthenticate)
    }

    fn auth_fields(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<Auth<'_>, HeaderError>> + '_ {
        // Commas separate auth-params here, not values: one value per field.
        self.headers
            .iter()
            .filter(move |e| e.name == name)
            .map(move |e| match std::str::from_utf8(self.entry_value(e)) {
                Err(_) => Err(HeaderError::new(name, HeaderErrorKind::NotUtf8)),
                Ok(s) => Auth::parse(s).map_err(|k| HeaderError::new(name, k)),
            })
    }

    // ---- token lists ------------------------------------------------------------------

    /// Supported option-tags.
    pub fn supported(&self) -> TypedValues<'_, &str> {
        self.typed(HeaderName::Supported, token_elem)
    }
    /// Require option-tags.
    pub fn require(&self) -> TypedValues<'_, &str> {
        self.typed(HeaderName::Require, token_elem)
    }
    /// Proxy-Require option-tags.
    pub fn proxy_require(&self) -> TypedValues<'_, &str> {
        self.typed(HeaderName::ProxyRequire, token_elem)
    }
    /// Unsupported option-tags.
    pub fn unsupported(&self) -> TypedValues<'_, &str> {
        self.typed(HeaderName::Unsupported, token_elem)
    }
    /// Allow: methods as tokens.
    pub fn allow(&self) -> TypedValues<'_, &str> {
        self.typed(HeaderName::Allow, token_elem)
    }
    /// Allow-Events: event packages.
    pub fn allow_events(&self) -> TypedValues<'_, &str> {
        self.typed(HeaderName::AllowEvents, token_elem)
    }

    // ---- events / publication -----------------------------------------------------------

    /// Event (RFC 6665).
    pub fn event(&self) -> Option<Result<Event<'_>, HeaderError>> {
        self.single(HeaderName::Event, misc::parse_event)
    }

    /// Subscription-State (RFC 6665).
    pub fn subscription_state(&self) -> Option<Result<SubscriptionState<'_>, HeaderError>> {
        self.single(
            HeaderName::SubscriptionState,
            misc::parse_subscription_state,
        )
    }

    /// SIP-ETag (RFC 3903).
    pub fn sip_etag(&self) -> Option<Result<&str, HeaderError>> {
        self.single(HeaderName::SipEtag, misc::parse_single_token)
    }

    /// SIP-If-Match (RFC 3903).
    pub fn sip_if_match(&self) -> Option<Result<&str, HeaderError>> {
        self.single(HeaderName::SipIfMatch, misc::parse_single_token)
    }

    // ---- free text --------------------------------------------------------------------

    /// User-Agent, as written.
    pub fn user_agent(&self) -> Option<Result<&str, HeaderError>> {
        self.first_str(HeaderName::UserAgent)
    }

    /// Server, as written.
    pub fn server(&self) -> Option<Result<&str, HeaderError>> {
        self.first_str(HeaderName::Server)
    }

    /// Read every typed header this crate knows and collect the errors (diagnostics,
    /// fuzzing and tests; allocates). An empty result means every typed header that is
    /// present parses.
    #[must_use]
    pub fn typed_header_errors(&self) -> Vec<HeaderError> {
        fn e<T>(r: Option<Result<T, HeaderError>>) -> Option<HeaderError> {
            r.and_then(Result::err)
        }
        let mut out: Vec<HeaderError> = Vec::new();
        out.extend(self.vias().filter_map(Result::err));
        out.extend(e(self.from()));
        out.extend(e(self.to()));
        out.extend(e(self.call_id()));
        out.extend(e(self.cseq()));
        out.extend(e(self.max_forwards()));
        out.extend(self.contacts().filter_map(Result::err));
        out.extend(self.routes().filter_map(Result::err));
        out.extend(self.record_routes().filter_map(Result::err));
        out.extend(self.paths().filter_map(Result::err));
        out.extend(self.service_routes().filter_map(Result::err));
        out.extend(self.p_asserted_identities().filter_map(Result::err));
        out.extend(e(self.content_length()));
        out.extend(e(self.content_type()));
        out.extend(e(self.expires()));
        out.extend(e(self.min_expires()));
        out.extend(e(self.date()));
        out.extend(self.authorizations().filter_map(Result::err));
        out.extend(self.proxy_authorizations().filter_map(Result::err));
        out.extend(self.www_authenticates().filter_map(Result::err));
        out.extend(self.proxy_authenticates().filter_map(Result::err));
        for it in [
            self.supported(),
            self.require(),
            self.proxy_require(),
            self.unsupported(),
            self.allow(),
            self.allow_events(),
        ] {
            out.extend(it.filter_map(Result::err));
        }
        out.extend(e(self.event()));
        out.extend(e(self.subscription_state()));
        out.extend(e(self.sip_etag()));
        out.extend(e(self.sip_if_match()));
        out.extend(e(self.user_agent()));
        out.extend(e(self.server()));
        out
    }
}
