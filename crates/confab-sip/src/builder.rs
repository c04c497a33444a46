//! Builders for requests and responses. Tags, branches and Call-IDs come from the caller:
//! this crate has no randomness.

use bytes::Bytes;

use crate::error::{BuildError, ParseErrorKind};
use crate::limits::Limits;
use crate::message::{Message, fmt_u64};
use crate::method::Method;
use crate::name::{HeaderKey, HeaderName};
use crate::parse::parse_datagram;
use crate::scan::is_token;

fn valid_value(v: &str) -> bool {
    !v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// Shared header-section writer.
#[derive(Debug, Clone, Default)]
struct Head {
    buf: Vec<u8>,
    err: Option<BuildError>,
    body: Option<Bytes>,
}

impl Head {
    fn line(&mut self, name: &str, value: &[u8]) {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value);
        self.buf.extend_from_slice(b"\r\n");
    }

    fn header(&mut self, key: HeaderKey<'_>, value: &str) {
        if self.err.is_some() {
            return;
        }
        let name = match key {
            HeaderKey::Known(HeaderName::Other) => {
                self.err = Some(BuildError::InvalidName);
                return;
            }
            HeaderKey::Known(n) => n.as_str(),
            HeaderKey::Other(s) => {
                if s.is_empty() || !s.bytes().all(is_token) {
                    self.err = Some(BuildError::InvalidName);
                    return;
                }
                s
            }
        };
        if !valid_value(value) {
            self.err = Some(BuildError::InvalidValue);
            return;
        }
        self.line(name, value.as_bytes());
    }

    fn body(&mut self, content_type: &str, body: Bytes) {
        self.header(HeaderName::ContentType.into(), content_type);
        self.body = Some(body);
    }

    fn finish(mut self) -> Result<Message, BuildError> {
        if let Some(e) = self.err {
            return Err(e);
        }
        let body = self.body.take().unwrap_or_default();
        let mut n = [0u8; 20];
        let len = fmt_u64(body.len() as u64, &mut n).as_bytes().to_vec();
        self.line("Content-Length", &len);
        self.buf.extend_from_slice(b"\r\n");
        self.buf.extend_from_slice(&body);
        parse_datagram(Bytes::from(self.buf), &Limits::UNLIMITED).map_err(|e| match e.kind() {
            ParseErrorKind::StartLine(_) => BuildError::InvalidRequestUri,
            _ => BuildError::InvalidValue,
        })
    }
}

/// Builds a request. Header values are written as given (validated for CR/LF/NUL only);
/// Content-Length is always written (mandatory on streams). `build` re-parses the result,
/// so a built message behaves exactly like a received one.
///
/// ```
/// use confab_sip::{Method, RequestBuilder};
/// let req = RequestBuilder::new(Method::Options, "sip:bob@example.com")
///     .via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds")
///     .from("<sip:alice@example.com>;tag=1928301774")
///     .to("<sip:bob@example.com>")
///     .call_id("a84b4c76e66710@pc33.example.com")
///     .cseq(1)
///     .build()
///     .unwrap();
/// assert_eq!(req.max_forwards().unwrap().unwrap(), 70);
/// ```
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    method: Method,
    head: Head,
    max_forwards_set: bool,
}

impl RequestBuilder {
    /// Start a request line `METHOD uri SIP/2.0`.
    #[must_use]
    pub fn new(method: Method, request_uri: &str) -> RequestBuilder {
        let mut head = Head::default();
        if request_uri.is_empty() || request_uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
            head.err = Some(BuildError::InvalidRequestUri);
        }
        head.buf.reserve(512);
        head.buf.extend_from_slice(method.as_str().as_bytes());
        head.buf.push(b' ');
        head.buf.extend_from_slice(request_uri.as_bytes());
        head.buf.extend_from_slice(b" SIP/2.0\r\n");
        RequestBuilder {
            method,
            head,
            max_forwards_set: false,
        }
    }

    /// Add a header field (in call order).
    #[must_use]
    pub fn header<'k>(mut self, key: impl Into<HeaderKey<'k>>, value: &str) -> Self {
        let key = key.into();
        if key == HeaderKey::Known(HeaderName::MaxForwards) {
            self.max_forwards_set = true;
        }
        if key == HeaderKey::Known(HeaderName::ContentLength) {
            // written by build()
            return self;
        }
        self.head.header(key, value);
        self
    }

    /// Add a Via value (with the caller's branch).
    #[must_use]
    pub fn via(self, value: &str) -> Self {
        self.header(HeaderName::Via, value)
    }
    /// Set From (with the caller's tag).
    #[must_use]
    pub fn from(self, value: &str) -> Self {
        self.header(HeaderName::From, value)
    }
    /// Set To.
    #[must_use]
    pub fn to(self, value: &str) -> Self {
        self.header(HeaderName::To, value)
    }
    /// Set Call-ID.
    #[must_use]
    pub fn call_id(self, value: &str) -> Self {
        self.header(HeaderName::CallId, value)
    }
    /// Set CSeq to `seq` and this request's method.
    #[must_use]
    pub fn cseq(self, seq: u32) -> Self {
        let v = format!("{seq} {}", self.method);
        self.header(HeaderName::CSeq, &v)
    }
    /// Set Max-Forwards (70 is written when this is not called, RFC 3261 §8.1.1.6).
    #[must_use]
    pub fn max_forwards(self, n: u8) -> Self {
        let mut b = [0u8; 3];
        let v = fmt_u64(u64::from(n), &mut b).to_owned();
        self.header(HeaderName::MaxForwards, &v)
    }
    /// Add a Contact value.
    #[must_use]
    pub fn contact(self, value: &str) -> Self {
        self.header(HeaderName::Contact, value)
    }
    /// Add a Route value.
    #[must_use]
    pub fn route(self, value: &str) -> Self {
        self.header(HeaderName::Route, value)
    }
    /// Set the body and its Content-Type (Content-Length is computed).
    #[must_use]
    pub fn body(mut self, content_type: &str, body: Bytes) -> Self {
        self.head.body(content_type, body);
        self
    }

    /// Finish the request.
    ///
    /// # Errors
    /// The first invalid name/value given, [`BuildError::InvalidRequestUri`], or
    /// [`BuildError::Missing`] when Via, From, To, Call-ID or CSeq was not set.
    pub fn build(mut self) -> Result<Message, BuildError> {
        if !self.max_forwards_set {
            self.head.header(HeaderName::MaxForwards.into(), "70");
        }
        let msg = self.head.finish()?;
        for n in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            if !msg.contains(n) {
                return Err(BuildError::Missing(n));
            }
        }
        Ok(msg)
    }
}

/// Builds a response, usually from the request it answers (RFC 3261 §8.2.6).
#[derive(Debug, Clone)]
pub struct ResponseBuilder {
    status: u16,
    reason: Option<String>,
    head: Head,
    /// Where [`ResponseBuilder::reply_to`] copied the To line, so that
    /// [`ResponseBuilder::to_tag`] extends it in place instead of re-parsing the head.
    to_line: Option<ToLine>,
}

/// A copied To line in the head buffer: `start..end`, the field name's length and the
/// value's place relative to `start`.
#[derive(Debug, Clone, Copy)]
struct ToLine {
    start: usize,
    end: usize,
    name_len: usize,
    value_off: usize,
    value_len: usize,
}

impl ResponseBuilder {
    /// A response with no copied headers (for tests or stateless tools); most callers want
    /// [`ResponseBuilder::reply_to`].
    #[must_use]
    pub fn new(status: u16) -> ResponseBuilder {
        let mut head = Head::default();
        if !(100..=699).contains(&status) {
            head.err = Some(BuildError::InvalidStatus);
        }
        ResponseBuilder {
            status,
            reason: None,
            head,
            to_line: None,
        }
    }

    /// A response to `request` (RFC 3261 §8.2.6.2): copies every Via line, From, To, Call-ID
    /// and CSeq byte-exact (and Timestamp for 100 Trying, §8.2.6.1). Pass the UAS's To tag
    /// with [`ResponseBuilder::to_tag`].
    ///
    /// # Errors
    /// [`BuildError::WrongKind`] if `request` is a response; [`BuildError::InvalidStatus`]
    /// outside 100..=699.
    pub fn reply_to(request: &Message, status: u16) -> Result<ResponseBuilder, BuildError> {
        if !request.is_request() {
            return Err(BuildError::WrongKind);
        }
        let mut b = ResponseBuilder::new(status);
        if let Some(e) = b.head.err {
            return Err(e);
        }
        let copy = |n: HeaderName| {
            matches!(
                n,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            ) || (status == 100 && n == HeaderName::Timestamp)
        };
        for f in request.headers() {
            if copy(f.name()) {
                let start = b.head.buf.len();
                b.head.buf.extend_from_slice(f.raw_line());
                if f.name() == HeaderName::To && b.to_line.is_none() {
                    // The value is a slice of the line (the parser cut both from the
                    // message): its offset in the line, checked.
                    let off =
                        (f.value().as_ptr() as usize).wrapping_sub(f.raw_line().as_ptr() as usize);
                    if off
                        .checked_add(f.value().len())
                        .is_some_and(|e| e <= f.raw_line().len())
                    {
                        b.to_line = Some(ToLine {
                            start,
                            end: b.head.buf.len(),
                            name_len: f.raw_name().len(),
                            value_off: off,
                            value_len: f.value().len(),
                        });
                    }
                }
            }
        }
        Ok(b)
    }

    /// Set the reason phrase (default: [`crate::status::reason_phrase`]).
    #[must_use]
    pub fn reason(mut self, reason: &str) -> Self {
        if !valid_value(reason) {
            self.head.err = Some(BuildError::InvalidReason);
        }
        self.reason = Some(reason.to_owned());
        self
    }

    /// Add `;tag=<tag>` to the copied To header if it has no tag yet (RFC 3261 §8.2.6.2).
    #[must_use]
    pub fn to_tag(mut self, tag: &str) -> Self {
        if tag.is_empty() || !tag.bytes().all(is_token) {
            self.head.err = Some(BuildError::InvalidValue);
            return self;
        }
        if let Some(t) = self.to_line.take() {
            let value = &self.head.buf[t.start + t.value_off..t.start + t.value_off + t.value_len];
            let has_tag = std::str::from_utf8(value)
                .ok()
                .and_then(|v| crate::headers::NameAddr::parse(v).ok())
                .is_some_and(|n| n.tag().is_some());
            if has_tag {
                return self;
            }
            let mut new_line = Vec::with_capacity(t.end - t.start + tag.len() + 8);
            new_line.extend_from_slice(&self.head.buf[t.start..t.start + t.name_len]);
            new_line.extend_from_slice(b": ");
            new_line.extend_from_slice(value);
            new_line.extend_from_slice(b";tag=");
            new_line.extend_from_slice(tag.as_bytes());
            new_line.extend_from_slice(b"\r\n");
            self.head.buf.splice(t.start..t.end, new_line);
            return self;
        }
        // Not built by `reply_to`: find the To line in our buffer and extend its value.
        let Ok(tmp) = Message::parse_head_only(&self.head.buf) else {
            return self;
        };
        let Some(to) = tmp.get(HeaderName::To) else {
            return self;
        };
        let has_tag = tmp
            .to()
            .and_then(Result::ok)
            .is_some_and(|n| n.tag().is_some());
        if has_tag {
            return self;
        }
        let line = to.raw_line();
        // Rebuild: every line as is, the To line with the tag appended to its value.
        let value = to.value().to_vec();
        let raw_name = to.raw_name().to_vec();
        let line = line.to_vec();
        if let Some(pos) = self
            .head
            .buf
            .windows(line.len())
            .position(|w| w == line.as_slice())
        {
            let mut new_line = raw_name;
            new_line.extend_from_slice(b": ");
            new_line.extend_from_slice(&value);
            new_line.extend_from_slice(b";tag=");
            new_line.extend_from_slice(tag.as_bytes());
            new_line.extend_from_slice(b"\r\n");
            self.head.buf.splice(pos..pos + line.len(), new_line);
        }
        self
    }

    /// Add a header field.
    #[must_use]
    pub fn header<'k>(mut self, key: impl Into<HeaderKey<'k>>, value: &str) -> Self {
        let key = key.into();
        if key == HeaderKey::Known(HeaderName::ContentLength) {
            return self;
        }
        self.head.header(key, value);
        self
    }

    /// Set the body and its Content-Type.
    #[must_use]
    pub fn body(mut self, content_type: &str, body: Bytes) -> Self {
        self.head.body(content_type, body);
        self
    }

    /// Finish the response.
    ///
    /// # Errors
    /// The first invalid value given.
    pub fn build(self) -> Result<Message, BuildError> {
        let reason = self
            .reason
            .as_deref()
            .unwrap_or(crate::status::reason_phrase(self.status));
        let mut head = self.head;
        let mut start = format!("SIP/2.0 {} {}\r\n", self.status, reason).into_bytes();
        start.extend_from_slice(&head.buf);
        head.buf = start;
        head.finish()
    }
}

impl Message {
    /// Parse a header section without a start line (builder helper).
    fn parse_head_only(lines: &[u8]) -> Result<Message, BuildError> {
        let mut v = b"SIP/2.0 200 OK\r\n".to_vec();
        v.extend_from_slice(lines);
        v.extend_from_slice(b"\r\n");
        parse_datagram(Bytes::from(v), &Limits::UNLIMITED).map_err(|_| BuildError::InvalidValue)
    }
}
