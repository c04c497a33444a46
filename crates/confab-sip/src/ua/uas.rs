//! The UAS core's request validation (RFC 3261 §8.2).

use std::collections::HashMap;

use crate::ResponseBuilder;
use crate::message::Message;
use crate::method::Method;
use crate::name::HeaderName;
use crate::transaction::TxId;
use crate::uri::Uri;

use super::Entropy;

/// What the UAS accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UasConfig {
    /// Methods the application handles (405 for others, with this list in Allow).
    pub allow: Vec<Method>,
    /// Option-tags the application supports (420 for a Require outside this list).
    pub supported: Vec<String>,
    /// Body media types it understands, `type/subtype` (415 with Accept otherwise).
    pub accept: Vec<String>,
    /// Content codings it understands (`identity` always is; 415 with Accept-Encoding
    /// otherwise).
    pub accept_encoding: Vec<String>,
}

impl Default for UasConfig {
    fn default() -> Self {
        UasConfig {
            allow: vec![
                Method::Invite,
                Method::Ack,
                Method::Cancel,
                Method::Bye,
                Method::Options,
            ],
            supported: Vec::new(),
            accept: vec!["application/sdp".to_owned()],
            accept_encoding: vec!["identity".to_owned()],
        }
    }
}

/// A request the UAS core refuses, with the response to send on its server transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UasRejection {
    /// 405, 416, 482, 420 or 415.
    pub status: u16,
    /// The complete response (with To tag and the header the status calls for); boxed to
    /// keep the `Result` small.
    pub response: Box<Message>,
}

/// Validates requests in the order of §8.2 before the application sees them, and tracks
/// the requests in progress to detect merged requests (§8.2.2.2).
#[derive(Debug, Clone, Default)]
pub struct UasCore {
    config: UasConfig,
    in_progress: HashMap<Box<str>, TxId>,
    keys: HashMap<TxId, Box<str>>,
}

fn merge_key(req: &Message) -> Option<Box<str>> {
    let from = req.from()?.ok()?;
    let cseq = req.cseq()?.ok()?;
    let cid = req.call_id()?.ok()?;
    Some(
        format!(
            "{}\n{cid}\n{} {}",
            from.tag().unwrap_or(""),
            cseq.seq,
            cseq.method
        )
        .into(),
    )
}

impl UasCore {
    /// A UAS core.
    #[must_use]
    pub fn new(config: UasConfig) -> UasCore {
        UasCore {
            config,
            in_progress: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &UasConfig {
        &self.config
    }

    /// Requests being tracked for merge detection (a leak check).
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.keys.len()
    }

    /// Check a request that created server transaction `tx`, in the order of §8.2:
    ///
    /// 1. method allowed, else **405** with `Allow` (§8.2.1);
    /// 2. Request-URI scheme `sip`, `sips` or `tel`, else **416** (§8.2.2.1);
    /// 3. no To tag and the same From tag, Call-ID and CSeq as a request still in
    ///    progress on another transaction, else **482** (§8.2.2.2, merged request);
    /// 4. every `Require` option-tag supported, else **420** with `Unsupported` (§8.2.2.3;
    ///    not checked for CANCEL);
    /// 5. a body's Content-Type and Content-Encoding understood, else **415** with `Accept`
    ///    or `Accept-Encoding` (§8.2.3).
    ///
    /// An accepted request without To tag is remembered until
    /// [`UasCore::transaction_ended`]. `rand` gives the To tag of a rejection.
    ///
    /// # Errors
    /// A [`UasRejection`] carrying the response to send.
    pub fn check(
        &mut self,
        tx: TxId,
        request: &Message,
        rand: &Entropy,
    ) -> Result<(), UasRejection> {
        let Some(method) = request.method() else {
            return Ok(());
        };
        if !self.config.allow.contains(method) {
            let allow: Vec<&str> = self.config.allow.iter().map(Method::as_str).collect();
            return Err(self.reject(request, 405, HeaderName::Allow, &allow.join(", "), rand));
        }
        if let Some(Ok(Uri::Other(_))) | Some(Err(_)) = request.request_uri() {
            return Err(self.reject_plain(request, 416, rand));
        }
        let no_to_tag = request
            .to()
            .and_then(Result::ok)
            .is_some_and(|t| t.tag().is_none());
        if no_to_tag && let Some(key) = merge_key(request) {
            match self.in_progress.get(&key) {
                Some(&other) if other != tx => return Err(self.reject_plain(request, 482, rand)),
                _ => {}
            }
            if *method != Method::Cancel {
                self.in_progress.insert(key.clone(), tx);
                self.keys.insert(tx, key);
            }
        }
        if *method != Method::Cancel {
            let unsupported: Vec<&str> = request
                .require()
                .filter_map(Result::ok)
                .filter(|t| {
                    !self
                        .config
                        .supported
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(t))
                })
                .collect();
            if !unsupported.is_empty() {
                let v = unsupported.join(", ");
                self.transaction_ended(tx);
                return Err(self.reject(request, 420, HeaderName::Unsupported, &v, rand));
            }
        }
        if !request.body().is_empty() {
            let ok_type = match request.content_type() {
                Some(Ok(t)) => self
                    .config
                    .accept
                    .iter()
                    .any(|a| a.split_once('/').is_some_and(|(ty, sub)| t.is(ty, sub))),
                // A body without Content-Type cannot be interpreted.
                _ => false,
            };
            if !ok_type {
                let v = self.config.accept.join(", ");
                self.transaction_ended(tx);
                return Err(self.reject(request, 415, HeaderName::Accept, &v, rand));
            }
            let bad_coding = request.values(HeaderName::ContentEncoding).any(|c| {
                let c = String::from_utf8_lossy(c);
                !c.eq_ignore_ascii_case("identity")
                    && !self
                        .config
                        .accept_encoding
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(&c))
            });
            if bad_coding {
                let v = self.config.accept_encoding.join(", ");
                self.transaction_ended(tx);
                return Err(self.reject(request, 415, HeaderName::AcceptEncoding, &v, rand));
            }
        }
        Ok(())
    }

    /// Forget server transaction `tx` (call on [`crate::transaction::Event::Terminated`]
    /// or when its final response is sent).
    pub fn transaction_ended(&mut self, tx: TxId) {
        if let Some(k) = self.keys.remove(&tx)
            && self.in_progress.get(&k) == Some(&tx)
        {
            self.in_progress.remove(&k);
        }
    }

    fn reject_plain(&self, request: &Message, status: u16, rand: &Entropy) -> UasRejection {
        self.build(request, status, None, rand)
    }

    fn reject(
        &self,
        request: &Message,
        status: u16,
        h: HeaderName,
        v: &str,
        rand: &Entropy,
    ) -> UasRejection {
        self.build(request, status, Some((h, v)), rand)
    }

    fn build(
        &self,
        request: &Message,
        status: u16,
        extra: Option<(HeaderName, &str)>,
        rand: &Entropy,
    ) -> UasRejection {
        let mut b = match ResponseBuilder::reply_to(request, status) {
            Ok(b) => b.to_tag(&rand.tag()),
            // `request` is a request (checked above); unreachable in practice.
            Err(_) => ResponseBuilder::new(status),
        };
        if let Some((h, v)) = extra {
            b = b.header(h, v);
        }
        let response = match b.build() {
            Ok(r) => r,
            // Values above are tokens we produced or the request's own; fall back to a
            // bare response rather than panic.
            Err(_) => ResponseBuilder::reply_to(request, status)
                .and_then(ResponseBuilder::build)
                .unwrap_or_else(|_| unreachable_response(status)),
        };
        UasRejection {
            status,
            response: Box::new(response),
        }
    }
}

fn unreachable_response(status: u16) -> Message {
    // Only reached if the request's own Via/From/To/Call-ID/CSeq lines cannot be copied,
    // which `Message::check` rules out before a request reaches the UAS core.
    ResponseBuilder::new(status)
        .header(HeaderName::Via, "SIP/2.0/UDP invalid;branch=z9hG4bKinvalid")
        .header(HeaderName::From, "<sip:invalid>;tag=x")
        .header(HeaderName::To, "<sip:invalid>")
        .header(HeaderName::CallId, "invalid")
        .header(HeaderName::CSeq, "1 INVALID")
        .build()
        .unwrap_or_else(|_| unreachable!("static response parses"))
}
