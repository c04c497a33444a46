//! Message-level validation: what a proxy or UAS checks after parsing and before acting
//! (RFC 3261 §8.2, §16.3), with the response each failure calls for.

use crate::error::Disposition;
use crate::message::Message;
use crate::method::Method;
use crate::name::HeaderName;
use crate::uri::Uri;

/// A parsed message that must not be processed: the response it calls for and whether it
/// can be sent at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// Status code (400, 416, ...).
    pub status: u16,
    /// Reason phrase naming the problem.
    pub reason: &'static str,
    /// The header at fault, if one is.
    pub header: Option<HeaderName>,
    answerable: bool,
}

impl Rejection {
    /// Respond or drop (a response needs a request other than ACK whose Via, From, To,
    /// Call-ID and CSeq parse; responses are always dropped).
    #[must_use]
    pub fn disposition(&self) -> Disposition {
        if self.answerable {
            Disposition::Respond {
                status: self.status,
                reason: self.reason,
            }
        } else {
            Disposition::Drop
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for Rejection {}

const SINGLE_VALUED: [HeaderName; 7] = [
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::MaxForwards,
    HeaderName::ContentType,
    HeaderName::Expires,
];

impl Message {
    /// Whether a response can be built for this message: a request other than ACK whose
    /// topmost Via, From, To, Call-ID and CSeq parse (RFC 3261 §8.2.6 copies them).
    #[must_use]
    pub fn can_be_answered(&self) -> bool {
        match self.method() {
            None | Some(Method::Ack) => false,
            Some(_) => {
                matches!(self.top_via(), Some(Ok(_)))
                    && matches!(self.from(), Some(Ok(_)))
                    && matches!(self.to(), Some(Ok(_)))
                    && matches!(self.call_id(), Some(Ok(_)))
                    && matches!(self.cseq(), Some(Ok(_)))
            }
        }
    }

    /// Check what every element must check before acting on a message:
    ///
    /// 1. Via (every value), From, To, Call-ID and CSeq are present and parse → else 400
    ///    `Missing X header` / `Malformed X header` (these can never be answered: drop).
    /// 2. From, To, Call-ID, CSeq, Max-Forwards, Content-Type and Expires appear once →
    ///    else 400 `Multiple X headers` (RFC 4475 §3.3.8).
    /// 3. Requests: the CSeq method equals the request method (RFC 4475 §3.1.2.17/18);
    ///    Max-Forwards, Contact and Content-Type parse when present; the Request-URI parses
    ///    (400 `Malformed Request-URI`, e.g. RFC 5118 §4.2), is `sip`, `sips` or `tel`
    ///    (else **416**: this crate takes the UAS/proxy position that it cannot route an
    ///    unknown scheme, RFC 3261 §8.2.2.1 / §16.3), and a SIP Request-URI carries no
    ///    headers (RFC 3261 §19.1.1 table, RFC 4475 §3.1.2.11: 400).
    ///
    /// Not checked here (the caller's policy): Max-Forwards reaching 0 (483, only when
    /// forwarding), Require/Proxy-Require (420), Date, body content.
    ///
    /// # Errors
    /// The first [`Rejection`] found, in the order above.
    pub fn check(&self) -> Result<(), Rejection> {
        let answerable = self.can_be_answered();
        let reject = |status, reason, header| {
            Err(Rejection {
                status,
                reason,
                header: Some(header),
                answerable,
            })
        };
        // 1. mandatory headers
        if !self.contains(HeaderName::Via) {
            return reject(400, HeaderName::Via.missing_reason(), HeaderName::Via);
        }
        if self.vias().any(|v| v.is_err()) {
            return reject(400, HeaderName::Via.malformed_reason(), HeaderName::Via);
        }
        for (name, ok) in [
            (HeaderName::From, self.from().map(|r| r.is_ok())),
            (HeaderName::To, self.to().map(|r| r.is_ok())),
            (HeaderName::CallId, self.call_id().map(|r| r.is_ok())),
            (HeaderName::CSeq, self.cseq().map(|r| r.is_ok())),
        ] {
            match ok {
                None => return reject(400, name.missing_reason(), name),
                Some(false) => return reject(400, name.malformed_reason(), name),
                Some(true) => {}
            }
        }
        // 2. single-valued headers
        for name in SINGLE_VALUED {
            if self.count(name) > 1 {
                return reject(400, name.repeated_reason(), name);
            }
        }
        // 3. requests
        let Some(method) = self.method() else {
            return Ok(());
        };
        if let Some(Ok(cseq)) = self.cseq()
            && &cseq.method != method
        {
            return reject(
                400,
                "CSeq method does not match the Request-Line",
                HeaderName::CSeq,
            );
        }
        if let Some(Err(_)) = self.max_forwards() {
            return reject(
                400,
                HeaderName::MaxForwards.malformed_reason(),
                HeaderName::MaxForwards,
            );
        }
        if self.contacts().any(|c| c.is_err()) {
            return reject(
                400,
                HeaderName::Contact.malformed_reason(),
                HeaderName::Contact,
            );
        }
        if let Some(Err(_)) = self.content_type() {
            return reject(
                400,
                HeaderName::ContentType.malformed_reason(),
                HeaderName::ContentType,
            );
        }
        let uri_reject = |status, reason| {
            Err(Rejection {
                status,
                reason,
                header: None,
                answerable,
            })
        };
        match self.request_uri() {
            Some(Err(_)) => uri_reject(400, "Malformed Request-URI"),
            Some(Ok(Uri::Other(_))) => uri_reject(416, "Unsupported URI Scheme"),
            Some(Ok(Uri::Sip(u))) if u.headers.is_some() => {
                uri_reject(400, "Request-URI must not contain headers")
            }
            _ => Ok(()),
        }
    }
}
