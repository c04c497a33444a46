//! The [`Message`] type: one `Bytes` buffer plus ranges, lossless serialization and cheap
//! proxy edits.

use std::fmt;

use bytes::Bytes;

use crate::error::BuildError;
use crate::method::Method;
use crate::name::{HeaderKey, HeaderName};
use crate::scan::{find_top_level_comma, is_token, trim_lws_bytes};

/// One header field: where its line, name and value are, in the original buffer or in the
/// message's edit buffer. 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) name: HeaderName,
    /// Bytes live in `Message::extra` rather than `Message::buf`.
    pub(crate) extra: bool,
    /// Whole line including folded continuation lines and the final CRLF.
    pub(crate) line: (u32, u32),
    /// The name is `line.0 .. name_end`.
    pub(crate) name_end: u32,
    /// The value, LWS-trimmed at both ends (folding inside is kept).
    pub(crate) value: (u32, u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    Request {
        method: Method,
        uri: (u32, u32),
        version: (u32, u32),
    },
    Response {
        code: u16,
        version: (u32, u32),
        reason: (u32, u32),
    },
}

/// A SIP request or response.
///
/// # Representation (and why)
///
/// A message is **one [`Bytes`] buffer** holding the bytes as received, plus a `Vec` of
/// 24-byte header entries (each the ranges of the raw line including folding and CRLF, of
/// the name as written, and of the value), reserved for 24 headers so a typical message
/// costs exactly one allocation beyond the buffer it arrived in. The body is a `Bytes`
/// slice of the same buffer. Nothing is decoded eagerly apart from the start line and
/// Content-Length: typed accessors (see [`crate::headers`]) parse a value when asked and
/// borrow from the buffer.
///
/// Serializing an unmodified message returns the original buffer itself (a refcount
/// increment): compact forms, folding, case, whitespace, unknown and vendor headers and
/// non-UTF-8 bytes are all kept because nothing was ever rewritten.
///
/// # Edits
///
/// Proxies edit 2–4 headers per request. An edit appends the new line to a small per-message
/// edit buffer and rewrites the entry to point there (or inserts/removes an entry);
/// serialization then copies untouched lines from the original buffer and edited lines
/// from the edit buffer, so everything the proxy did not touch is forwarded byte-exact.
/// A replaced header keeps its name as written (`v:` stays `v:`).
#[derive(Clone)]
pub struct Message {
    pub(crate) buf: Bytes,
    pub(crate) start: Start,
    pub(crate) start_extra: bool,
    /// Start line including CRLF.
    pub(crate) start_line: (u32, u32),
    pub(crate) headers: Vec<Entry>,
    pub(crate) extra: Vec<u8>,
    /// Body range in `buf`, unless replaced by `body_override`.
    pub(crate) body: (u32, u32),
    pub(crate) body_override: Option<Bytes>,
    pub(crate) edited: bool,
}

/// The request line of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine<'m> {
    /// The method.
    pub method: &'m Method,
    /// The Request-URI as written (parse it with [`Message::request_uri`]).
    pub uri: &'m [u8],
    /// The SIP-Version as written (`SIP/2.0`).
    pub version: &'m [u8],
}

/// The status line of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusLine<'m> {
    /// The SIP-Version as written.
    pub version: &'m [u8],
    /// Status code, 100..=699.
    pub code: u16,
    /// Reason phrase as written (may be empty, may be any UTF-8, kept as bytes).
    pub reason: &'m [u8],
}

/// The start line: request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'m> {
    /// A request.
    Request(RequestLine<'m>),
    /// A response.
    Response(StatusLine<'m>),
}

/// A view of one header field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HeaderField<'m> {
    name: HeaderName,
    raw_name: &'m [u8],
    value: &'m [u8],
    line: &'m [u8],
}

impl<'m> HeaderField<'m> {
    /// The classified name ([`HeaderName::Other`] for extension headers).
    #[must_use]
    pub fn name(&self) -> HeaderName {
        self.name
    }
    /// The name exactly as written (`v`, `MaX-fOrWaRdS`, `ms-diagnostics`).
    #[must_use]
    pub fn raw_name(&self) -> &'m [u8] {
        self.raw_name
    }
    /// The value as written, without leading/trailing whitespace; folding inside is kept.
    #[must_use]
    pub fn value(&self) -> &'m [u8] {
        self.value
    }
    /// The value as `&str`, if it is UTF-8.
    #[must_use]
    pub fn value_str(&self) -> Option<&'m str> {
        std::str::from_utf8(self.value).ok()
    }
    /// The whole line as written, with continuation lines and the final CRLF.
    #[must_use]
    pub fn raw_line(&self) -> &'m [u8] {
        self.line
    }
}

impl fmt::Debug for HeaderField<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            String::from_utf8_lossy(self.raw_name),
            String::from_utf8_lossy(self.value)
        )
    }
}

impl Message {
    #[inline]
    pub(crate) fn span(&self, extra: bool, r: (u32, u32)) -> &[u8] {
        let src: &[u8] = if extra { &self.extra } else { &self.buf };
        src.get(r.0 as usize..r.1 as usize).unwrap_or(&[])
    }

    #[inline]
    pub(crate) fn field(&self, e: &Entry) -> HeaderField<'_> {
        HeaderField {
            name: e.name,
            raw_name: self.span(e.extra, (e.line.0, e.name_end)),
            value: self.span(e.extra, e.value),
            line: self.span(e.extra, e.line),
        }
    }

    #[inline]
    pub(crate) fn entry_value(&self, e: &Entry) -> &[u8] {
        self.span(e.extra, e.value)
    }

    fn start_span(&self, r: (u32, u32)) -> &[u8] {
        self.span(self.start_extra, r)
    }

    /// The start line.
    #[must_use]
    pub fn start_line(&self) -> StartLine<'_> {
        match &self.start {
            Start::Request {
                method,
                uri,
                version,
            } => StartLine::Request(RequestLine {
                method,
                uri: self.start_span(*uri),
                version: self.start_span(*version),
            }),
            Start::Response {
                code,
                version,
                reason,
            } => StartLine::Response(StatusLine {
                version: self.start_span(*version),
                code: *code,
                reason: self.start_span(*reason),
            }),
        }
    }

    /// The start line as written, without its CRLF.
    #[must_use]
    pub fn start_line_bytes(&self) -> &[u8] {
        let l = self.start_span(self.start_line);
        l.strip_suffix(b"\r\n").unwrap_or(l)
    }

    /// Whether this is a request.
    #[must_use]
    pub fn is_request(&self) -> bool {
        matches!(self.start, Start::Request { .. })
    }

    /// Whether this is a response.
    #[must_use]
    pub fn is_response(&self) -> bool {
        matches!(self.start, Start::Response { .. })
    }

    /// The method of a request.
    #[must_use]
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// The status code of a response.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self.start {
            Start::Response { code, .. } => Some(code),
            Start::Request { .. } => None,
        }
    }

    /// The reason phrase of a response, as written.
    #[must_use]
    pub fn reason(&self) -> Option<&[u8]> {
        match self.start {
            Start::Response { reason, .. } => Some(self.start_span(reason)),
            Start::Request { .. } => None,
        }
    }

    /// The Request-URI of a request, as written. See [`Message::request_uri`] for the typed
    /// form.
    #[must_use]
    pub fn request_uri_bytes(&self) -> Option<&[u8]> {
        match self.start {
            Start::Request { uri, .. } => Some(self.start_span(uri)),
            Start::Response { .. } => None,
        }
    }

    /// The SIP-Version as written.
    #[must_use]
    pub fn version(&self) -> &[u8] {
        match self.start {
            Start::Request { version, .. } | Start::Response { version, .. } => {
                self.start_span(version)
            }
        }
    }

    /// All header fields in order.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = HeaderField<'_>> + '_ {
        self.headers.iter().map(|e| self.field(e))
    }

    /// Number of header fields.
    #[must_use]
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The first header field with this name.
    pub fn get<'k>(&self, key: impl Into<HeaderKey<'k>>) -> Option<HeaderField<'_>> {
        let key = key.into();
        self.headers
            .iter()
            .find(|e| self.entry_matches(&key, e))
            .map(|e| self.field(e))
    }

    /// Every header field with this name, in order.
    pub fn get_all<'s, 'k: 's>(
        &'s self,
        key: impl Into<HeaderKey<'k>>,
    ) -> impl Iterator<Item = HeaderField<'s>> + 's {
        let key = key.into();
        self.headers
            .iter()
            .filter(move |e| self.entry_matches(&key, e))
            .map(|e| self.field(e))
    }

    /// How many header fields (lines) have this name.
    pub fn count<'k>(&self, key: impl Into<HeaderKey<'k>>) -> usize {
        let key = key.into();
        self.headers
            .iter()
            .filter(|e| self.entry_matches(&key, e))
            .count()
    }

    /// Whether a header with this name is present.
    pub fn contains<'k>(&self, key: impl Into<HeaderKey<'k>>) -> bool {
        let key = key.into();
        self.headers.iter().any(|e| self.entry_matches(&key, e))
    }

    #[inline]
    pub(crate) fn entry_matches(&self, key: &HeaderKey<'_>, e: &Entry) -> bool {
        match *key {
            HeaderKey::Known(n) => e.name == n && n != HeaderName::Other,
            HeaderKey::Other(s) => {
                e.name == HeaderName::Other
                    && self
                        .span(e.extra, (e.line.0, e.name_end))
                        .eq_ignore_ascii_case(s.as_bytes())
            }
        }
    }

    /// The comma-separated elements of every field with this name, in order (RFC 3261 §7.3.1:
    /// `Via: a, b` and two `Via:` lines are equivalent). Commas inside quoted strings and
    /// `<...>` do not split. A field whose whole value is empty yields nothing; an empty
    /// element between commas yields an empty slice (which typed parsers report).
    pub fn values(&self, name: HeaderName) -> Values<'_> {
        Values {
            msg: self,
            name,
            idx: 0,
            rest: None,
        }
    }

    /// The body (exactly Content-Length bytes when that header is present).
    #[must_use]
    pub fn body(&self) -> &[u8] {
        match &self.body_override {
            Some(b) => b,
            None => self.span(false, self.body),
        }
    }

    /// The body as a shared [`Bytes`] (a slice of the message buffer, no copy).
    #[must_use]
    pub fn body_bytes(&self) -> Bytes {
        match &self.body_override {
            Some(b) => b.clone(),
            None if self.body.0 == self.body.1 => Bytes::new(),
            None => self.buf.slice(self.body.0 as usize..self.body.1 as usize),
        }
    }

    /// Whether any edit was made since parsing.
    #[must_use]
    pub fn is_edited(&self) -> bool {
        self.edited
    }

    /// The bytes this message was parsed from (for a datagram with trailing octets, only the
    /// message itself). Unchanged by edits.
    #[must_use]
    pub fn original_bytes(&self) -> &Bytes {
        &self.buf
    }

    /// Size of the serialized message.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        if !self.edited {
            return self.buf.len();
        }
        let start = (self.start_line.1 - self.start_line.0) as usize;
        let hdrs: usize = self
            .headers
            .iter()
            .map(|e| (e.line.1 - e.line.0) as usize)
            .sum();
        start + hdrs + 2 + self.body().len()
    }

    /// Append the serialized message to `out`. Untouched lines are copied byte-exact.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if !self.edited {
            out.extend_from_slice(&self.buf);
            return;
        }
        out.reserve(self.encoded_len());
        out.extend_from_slice(self.start_span(self.start_line));
        // Coalesce runs of consecutive original lines into one copy.
        let mut run: Option<(u32, u32)> = None;
        for e in &self.headers {
            if !e.extra {
                match run {
                    Some((s, end)) if end == e.line.0 => run = Some((s, e.line.1)),
                    _ => {
                        if let Some(r) = run {
                            out.extend_from_slice(self.span(false, r));
                        }
                        run = Some(e.line);
                    }
                }
            } else {
                if let Some(r) = run.take() {
                    out.extend_from_slice(self.span(false, r));
                }
                out.extend_from_slice(self.span(true, e.line));
            }
        }
        if let Some(r) = run {
            out.extend_from_slice(self.span(false, r));
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.body());
    }

    /// The serialized message. For an unedited message this is the original buffer (no
    /// copy).
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        if !self.edited {
            return self.buf.clone();
        }
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_to(&mut out);
        Bytes::from(out)
    }
}

/// Iterator over comma-separated header values; see [`Message::values`].
#[derive(Debug, Clone)]
pub struct Values<'m> {
    msg: &'m Message,
    name: HeaderName,
    idx: usize,
    rest: Option<&'m [u8]>,
}

impl<'m> Iterator for Values<'m> {
    type Item = &'m [u8];
    fn next(&mut self) -> Option<&'m [u8]> {
        loop {
            if let Some(rest) = self.rest {
                return Some(match find_top_level_comma(rest) {
                    Some(i) => {
                        self.rest = Some(&rest[i + 1..]);
                        trim_lws_bytes(&rest[..i])
                    }
                    None => {
                        self.rest = None;
                        trim_lws_bytes(rest)
                    }
                });
            }
            let e = self.msg.headers.get(self.idx)?;
            self.idx += 1;
            if e.name == self.name && self.name != HeaderName::Other {
                let v = self.msg.entry_value(e);
                if !v.is_empty() {
                    self.rest = Some(v);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Edits
// ---------------------------------------------------------------------------------------

fn check_value(value: &str) -> Result<(), BuildError> {
    if memchr::memchr3(b'\r', b'\n', 0, value.as_bytes()).is_some() {
        return Err(BuildError::InvalidValue);
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), BuildError> {
    if name.is_empty() || !name.bytes().all(is_token) {
        return Err(BuildError::InvalidName);
    }
    Ok(())
}

impl Message {
    /// Write `name: value\r\n` into the edit buffer and return its entry.
    fn push_extra_line(&mut self, raw_name: &[u8], name: HeaderName, value: &[u8]) -> Entry {
        let start = self.extra.len() as u32;
        self.extra.extend_from_slice(raw_name);
        let name_end = self.extra.len() as u32;
        self.extra.extend_from_slice(b": ");
        let vs = self.extra.len() as u32;
        self.extra.extend_from_slice(value);
        let ve = self.extra.len() as u32;
        self.extra.extend_from_slice(b"\r\n");
        self.edited = true;
        Entry {
            name,
            extra: true,
            line: (start, self.extra.len() as u32),
            name_end,
            value: (vs, ve),
        }
    }

    fn new_entry(&mut self, key: &HeaderKey<'_>, value: &str) -> Result<Entry, BuildError> {
        check_value(value)?;
        let (raw, name) = match *key {
            HeaderKey::Known(n) if n != HeaderName::Other => (n.as_str(), n),
            HeaderKey::Known(_) => return Err(BuildError::InvalidName),
            HeaderKey::Other(s) => {
                check_name(s)?;
                (s, HeaderName::Other)
            }
        };
        Ok(self.push_extra_line(raw.as_bytes(), name, value.as_bytes()))
    }

    fn position<'k>(&self, key: &HeaderKey<'k>) -> Option<usize> {
        self.headers.iter().position(|e| self.entry_matches(key, e))
    }

    /// Append a header field at the end of the header section.
    ///
    /// # Errors
    /// [`BuildError::InvalidName`] / [`BuildError::InvalidValue`] (CR, LF or NUL).
    pub fn push_header<'k>(
        &mut self,
        key: impl Into<HeaderKey<'k>>,
        value: &str,
    ) -> Result<(), BuildError> {
        let e = self.new_entry(&key.into(), value)?;
        self.headers.push(e);
        Ok(())
    }

    /// Insert a header field above the first field of the same name, or at the top of the
    /// header section if there is none. This is how a proxy adds its Via or Record-Route
    /// (RFC 3261 §16.6 steps 4 and 8).
    ///
    /// # Errors
    /// As [`Message::push_header`].
    pub fn prepend_header<'k>(
        &mut self,
        key: impl Into<HeaderKey<'k>>,
        value: &str,
    ) -> Result<(), BuildError> {
        let key = key.into();
        let at = self.position(&key).unwrap_or(0);
        let e = self.new_entry(&key, value)?;
        self.headers.insert(at, e);
        Ok(())
    }

    /// Prepend a Via value (RFC 3261 §16.6 step 8). `value` is e.g.
    /// `SIP/2.0/UDP proxy.example.com;branch=z9hG4bK...`.
    ///
    /// # Errors
    /// As [`Message::push_header`].
    pub fn prepend_via(&mut self, value: &str) -> Result<(), BuildError> {
        self.prepend_header(HeaderName::Via, value)
    }

    /// Insert a Record-Route value on top (RFC 3261 §16.6 step 4), e.g.
    /// `<sip:proxy.example.com;lr>`.
    ///
    /// # Errors
    /// As [`Message::push_header`].
    pub fn prepend_record_route(&mut self, value: &str) -> Result<(), BuildError> {
        self.prepend_header(HeaderName::RecordRoute, value)
    }

    /// Remove the first value of the first field with this name: the whole line when it holds
    /// one value, otherwise the line is rewritten without its first element (name kept as
    /// written, the other elements byte-exact). Returns whether anything was removed. This is
    /// how a response loses the proxy's Via (§16.7 step 3) and a request its first Route
    /// (§16.4).
    pub fn remove_first_value<'k>(&mut self, key: impl Into<HeaderKey<'k>>) -> bool {
        let key = key.into();
        let Some(idx) = self.position(&key) else {
            return false;
        };
        let e = self.headers[idx];
        let value = self.entry_value(&e);
        match find_top_level_comma(value) {
            None => {
                self.headers.remove(idx);
                self.edited = true;
            }
            Some(c) => {
                let rest = trim_lws_bytes(&value[c + 1..]);
                // Copy into a scratch buffer first: `rest` borrows self.
                let name_raw: Vec<u8> = self.span(e.extra, (e.line.0, e.name_end)).to_vec();
                let rest = rest.to_vec();
                let ne = self.push_extra_line(&name_raw, e.name, &rest);
                self.headers[idx] = ne;
            }
        }
        true
    }

    /// Remove the topmost Via value (a proxy forwarding a response, RFC 3261 §16.7 step 3).
    pub fn remove_top_via(&mut self) -> bool {
        self.remove_first_value(HeaderName::Via)
    }

    /// Remove the first Route value (loose routing, RFC 3261 §16.4 / §16.12).
    pub fn remove_first_route(&mut self) -> bool {
        self.remove_first_value(HeaderName::Route)
    }

    /// Replace the first value of the first field with this name, keeping the other
    /// elements of that line and the name as written. Adds the header on top if absent.
    /// Used to add `received`/`rport` to the top Via (RFC 3261 §18.2.1, RFC 3581).
    ///
    /// # Errors
    /// As [`Message::push_header`].
    pub fn replace_first_value<'k>(
        &mut self,
        key: impl Into<HeaderKey<'k>>,
        value: &str,
    ) -> Result<(), BuildError> {
        let key = key.into();
        check_value(value)?;
        let Some(idx) = self.position(&key) else {
            return self.prepend_header(key, value);
        };
        let e = self.headers[idx];
        let old = self.entry_value(&e);
        let mut new_value = Vec::with_capacity(value.len() + old.len());
        new_value.extend_from_slice(value.as_bytes());
        if let Some(c) = find_top_level_comma(old) {
            new_value.extend_from_slice(&old[c..]);
        }
        let name_raw: Vec<u8> = self.span(e.extra, (e.line.0, e.name_end)).to_vec();
        let ne = self.push_extra_line(&name_raw, e.name, &new_value);
        self.headers[idx] = ne;
        Ok(())
    }

    /// Replace the top Via value.
    ///
    /// # Errors
    /// As [`Message::push_header`].
    pub fn replace_top_via(&mut self, value: &str) -> Result<(), BuildError> {
        self.replace_first_value(HeaderName::Via, value)
    }

    /// Set a single-valued header: the first field keeps its position and its name as
    /// written and gets the new value; any further fields of that name are removed. Appends
    /// the header when absent.
    ///
    /// # Errors
    /// As [`Message::push_header`].
    pub fn set_header<'k>(
        &mut self,
        key: impl Into<HeaderKey<'k>>,
        value: &str,
    ) -> Result<(), BuildError> {
        let key = key.into();
        check_value(value)?;
        let Some(idx) = self.position(&key) else {
            let e = self.new_entry(&key, value)?;
            self.headers.push(e);
            return Ok(());
        };
        let e = self.headers[idx];
        let name_raw: Vec<u8> = self.span(e.extra, (e.line.0, e.name_end)).to_vec();
        let ne = self.push_extra_line(&name_raw, e.name, value.as_bytes());
        self.headers[idx] = ne;
        let mut i = idx + 1;
        while i < self.headers.len() {
            if self.entry_matches(&key, &self.headers[i]) {
                self.headers.remove(i);
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// Set Max-Forwards (a proxy decrements it, RFC 3261 §16.6 step 3).
    pub fn set_max_forwards(&mut self, value: u8) {
        let mut buf = [0u8; 3];
        let s = fmt_u64(u64::from(value), &mut buf);
        // digits only: cannot fail
        let _ = self.set_header(HeaderName::MaxForwards, s);
    }

    /// Remove every field with this name; returns how many were removed.
    pub fn remove_header<'k>(&mut self, key: impl Into<HeaderKey<'k>>) -> usize {
        let key = key.into();
        let before = self.headers.len();
        let mut kept = Vec::with_capacity(0);
        std::mem::swap(&mut kept, &mut self.headers);
        kept.retain(|e| !self.entry_matches(&key, e));
        self.headers = kept;
        let n = before - self.headers.len();
        if n > 0 {
            self.edited = true;
        }
        n
    }

    /// Replace the body and set Content-Length to its length (the Content-Length field
    /// keeps its position and spelling, e.g. `l:`). Content-Type is the caller's business.
    pub fn set_body(&mut self, body: Bytes) {
        let mut buf = [0u8; 20];
        let s = fmt_u64(body.len() as u64, &mut buf);
        let _ = self.set_header(HeaderName::ContentLength, s);
        self.body_override = Some(body);
        self.edited = true;
    }

    /// Replace the Request-URI (retargeting, RFC 3261 §16.5). The method and version are
    /// kept as written.
    ///
    /// # Errors
    /// [`BuildError::WrongKind`] on a response; [`BuildError::InvalidRequestUri`] if `uri`
    /// is empty or contains whitespace or control characters.
    pub fn set_request_uri(&mut self, uri: &str) -> Result<(), BuildError> {
        let Start::Request {
            method, version, ..
        } = &self.start
        else {
            return Err(BuildError::WrongKind);
        };
        if uri.is_empty() || uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(BuildError::InvalidRequestUri);
        }
        let method = method.clone();
        let version: Vec<u8> = self.start_span(*version).to_vec();
        let s = self.extra.len() as u32;
        self.extra.extend_from_slice(method.as_str().as_bytes());
        self.extra.push(b' ');
        let us = self.extra.len() as u32;
        self.extra.extend_from_slice(uri.as_bytes());
        let ue = self.extra.len() as u32;
        self.extra.push(b' ');
        let vs = self.extra.len() as u32;
        self.extra.extend_from_slice(&version);
        let ve = self.extra.len() as u32;
        self.extra.extend_from_slice(b"\r\n");
        self.start = Start::Request {
            method,
            uri: (us, ue),
            version: (vs, ve),
        };
        self.start_extra = true;
        self.start_line = (s, self.extra.len() as u32);
        self.edited = true;
        Ok(())
    }
}

pub(crate) fn fmt_u64(mut n: u64, buf: &mut [u8]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

impl PartialEq for Message {
    /// Structural equality: same start line, same header fields (as written), same body.
    /// Independent of how the message was built or edited.
    fn eq(&self, other: &Self) -> bool {
        self.start_line_bytes() == other.start_line_bytes()
            && self.start_line() == other.start_line()
            && self.headers.len() == other.headers.len()
            && self.headers().zip(other.headers()).all(|(a, b)| a == b)
            && self.body() == other.body()
    }
}
impl Eq for Message {}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("start", &String::from_utf8_lossy(self.start_line_bytes()));
        d.field("headers", &self.headers().collect::<Vec<_>>());
        d.field("body_len", &self.body().len());
        d.field("edited", &self.edited);
        d.finish()
    }
}
