//! Parsing: datagram, stream (already framed) and WebSocket entry points.

use bytes::Bytes;

use crate::error::{ContentLengthError, ParseError, ParseErrorKind, StartLineError};
use crate::limits::Limits;
use crate::message::{Entry, Message, Start};
use crate::method::Method;
use crate::name::HeaderName;
use crate::scan::{is_token, parse_u64};

/// Which transport the bytes came from; decides the Content-Length rules (RFC 3261 §18.3,
/// RFC 7118 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Content-Length optional (absent: the body is the rest of the datagram); larger than
    /// the datagram is an error; smaller truncates.
    Datagram,
    /// Content-Length mandatory.
    Stream,
}

/// Parse one message from a UDP datagram (RFC 3261 §18.3): Content-Length is optional (if
/// absent the body is the rest of the datagram); one larger than the datagram is an error
/// (400 for a request, drop for a response); octets beyond Content-Length are discarded
/// (RFC 4475 dblreq). CRLFs before the start line are skipped (RFC 3261 §7.5); a datagram
/// of nothing but CRLFs is [`ParseErrorKind::Empty`] (a keep-alive).
///
/// # Errors
/// [`ParseError`]; its [`disposition`](ParseError::disposition) says whether to answer.
pub fn parse_datagram(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
    parse(buf, limits, Mode::Datagram)
}

/// Parse one message carried in one WebSocket message (RFC 7118 §5: Content-Length
/// optional; the same rules as a datagram).
///
/// # Errors
/// As [`parse_datagram`].
pub fn parse_websocket(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
    parse(buf, limits, Mode::Datagram)
}

/// Parse one message cut from a TCP/TLS stream by [`crate::frame_stream`]: Content-Length
/// is mandatory (RFC 3261 §18.3).
///
/// # Errors
/// As [`parse_datagram`], plus [`ContentLengthError::Missing`].
pub fn parse_stream(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
    parse(buf, limits, Mode::Stream)
}

impl Message {
    /// Parse a message from a byte slice (copied), with datagram rules and default
    /// [`Limits`]. Convenient for tests and locally built messages.
    ///
    /// # Errors
    /// As [`parse_datagram`].
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        parse(
            Bytes::copy_from_slice(bytes),
            &Limits::DEFAULT,
            Mode::Datagram,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cl {
    Absent,
    One(u64),
    Invalid,
    Repeated,
}

pub(crate) struct Head {
    pub(crate) start: Start,
    pub(crate) start_line: (u32, u32),
    pub(crate) headers: Vec<Entry>,
    /// Offset of the first body byte (after the empty line).
    pub(crate) body_start: usize,
    cl: Cl,
    /// First problem found while the head was still readable.
    deferred: Option<ParseErrorKind>,
}

fn parse(buf: Bytes, limits: &Limits, mode: Mode) -> Result<Message, ParseError> {
    let mut off = 0;
    while buf.get(off..off + 2) == Some(b"\r\n") {
        off += 2;
    }
    if off >= buf.len() {
        return Err(ParseError::new(ParseErrorKind::Empty));
    }
    if buf.len() > u32::MAX as usize {
        return Err(ParseError::new(ParseErrorKind::MessageTooLarge {
            len: buf.len(),
            max: limits.max_message_size,
        }));
    }
    let buf = if off == 0 { buf } else { buf.slice(off..) };
    let input: &[u8] = &buf;
    let mut head = parse_head(input, limits).map_err(ParseError::new)?;
    if input.len() > limits.max_message_size {
        head.deferred = Some(ParseErrorKind::MessageTooLarge {
            len: input.len(),
            max: limits.max_message_size,
        });
    }
    let available = input.len() - head.body_start;
    let body_len = match head.cl {
        Cl::Absent if mode == Mode::Stream => {
            head.defer(ParseErrorKind::ContentLength(ContentLengthError::Missing));
            0
        }
        Cl::Absent => available,
        Cl::Invalid => {
            head.defer(ParseErrorKind::ContentLength(ContentLengthError::Invalid));
            0
        }
        Cl::Repeated => {
            head.defer(ParseErrorKind::ContentLength(ContentLengthError::Repeated));
            0
        }
        Cl::One(n) if n > limits.max_body_size as u64 => {
            head.defer(ParseErrorKind::BodyTooLarge {
                len: usize::try_from(n).unwrap_or(usize::MAX),
                max: limits.max_body_size,
            });
            0
        }
        Cl::One(n) if n > available as u64 => {
            head.defer(ParseErrorKind::ContentLength(
                ContentLengthError::LargerThanMessage {
                    declared: usize::try_from(n).unwrap_or(usize::MAX),
                    available,
                },
            ));
            0
        }
        Cl::One(n) => n as usize,
    };
    if head.deferred.is_none() && body_len > limits.max_body_size {
        head.deferred = Some(ParseErrorKind::BodyTooLarge {
            len: body_len,
            max: limits.max_body_size,
        });
    }
    let end = head.body_start + body_len;
    let deferred = head.deferred.take();
    let msg_buf = if end == buf.len() {
        buf
    } else {
        buf.slice(..end)
    };
    let msg = Message {
        buf: msg_buf,
        start: head.start,
        start_extra: false,
        start_line: head.start_line,
        headers: head.headers,
        extra: Vec::new(),
        body: (head.body_start as u32, end as u32),
        body_override: None,
        edited: false,
    };
    match deferred {
        None => Ok(msg),
        Some(kind) => {
            // The error carries the head only (no body) for building a response.
            let mut head_msg = msg;
            head_msg.body = (head.body_start as u32, head.body_start as u32);
            let hb = head.body_start;
            head_msg.buf = head_msg.buf.slice(..hb.min(head_msg.buf.len()));
            Err(ParseError::with_head(kind, head_msg))
        }
    }
}

impl Head {
    fn defer(&mut self, k: ParseErrorKind) {
        if self.deferred.is_none() {
            self.deferred = Some(k);
        }
    }
}

/// Find the end of the line starting at `pos`: index just past its LF. Err when the line
/// ends in a bare LF or is unterminated.
#[inline]
fn line_end(input: &[u8], pos: usize) -> Result<usize, ParseErrorKind> {
    match memchr::memchr(b'\n', &input[pos..]) {
        None => Err(ParseErrorKind::Truncated),
        Some(i) => {
            let nl = pos + i;
            if nl == pos || input[nl - 1] != b'\r' {
                Err(ParseErrorKind::BareLineFeed)
            } else {
                Ok(nl + 1)
            }
        }
    }
}

/// Parse the start line and header section. Errors that leave no usable head are returned
/// as `Err`; others are recorded in `Head::deferred`.
pub(crate) fn parse_head(input: &[u8], limits: &Limits) -> Result<Head, ParseErrorKind> {
    let sl_end = line_end(input, 0)?;
    if sl_end - 2 > limits.max_line_length {
        return Err(ParseErrorKind::LineTooLong {
            line: 0,
            max: limits.max_line_length,
        });
    }
    let line = &input[..sl_end - 2];
    let mut deferred = None;
    let start = match parse_start_line(line) {
        Ok((start, version_ok)) => {
            if !version_ok {
                deferred = Some(ParseErrorKind::UnsupportedVersion);
            }
            start
        }
        Err(e) => {
            deferred = Some(ParseErrorKind::StartLine(e));
            lenient_request_line(line).ok_or(ParseErrorKind::StartLine(e))?
        }
    };
    if let Start::Request { uri, .. } = &start {
        let len = (uri.1 - uri.0) as usize;
        if len > limits.max_request_uri_len && deferred.is_none() {
            deferred = Some(ParseErrorKind::RequestUriTooLong {
                len,
                max: limits.max_request_uri_len,
            });
        }
    }
    let mut head = Head {
        start,
        start_line: (0, sl_end as u32),
        headers: Vec::with_capacity(24),
        body_start: 0,
        cl: Cl::Absent,
        deferred,
    };

    let mut pos = sl_end;
    // One newline iterator for the whole head: lines are consumed in order, so each call
    // yields the end of the current line (amortises memchr's setup over the message).
    let mut newlines = memchr::memchr_iter(b'\n', &input[sl_end..]);
    let mut next_line_end = |pos: usize| -> Result<usize, ParseErrorKind> {
        match newlines.next() {
            None => Err(ParseErrorKind::Truncated),
            Some(i) => {
                let nl = sl_end + i;
                if nl == pos || input[nl - 1] != b'\r' {
                    Err(ParseErrorKind::BareLineFeed)
                } else {
                    Ok(nl + 1)
                }
            }
        }
    };
    // The field being collected: (line start, name end, colon index, line end, name)
    let mut cur: Option<(usize, usize, usize, usize, HeaderName)> = None;
    // Skipping a bad line and its continuations.
    let mut skipping = false;
    let mut line_no = 0usize;
    loop {
        if input.len() < pos + 2 {
            return Err(ParseErrorKind::Truncated);
        }
        if input[pos] == b'\r' && input[pos + 1] == b'\n' {
            if let Some(c) = cur.take() {
                head.finish_field(input, c, limits, line_no);
            }
            head.body_start = pos + 2;
            break;
        }
        let end = next_line_end(pos)?;
        let first = input[pos];
        if first == b' ' || first == b'\t' {
            // continuation line (folding, RFC 3261 §7.3.1)
            match &mut cur {
                Some(c) => c.3 = end,
                None if skipping => {}
                None => {
                    head.defer(ParseErrorKind::HeaderSyntax {
                        line: line_no.max(1),
                    });
                    skipping = true;
                }
            }
            pos = end;
            continue;
        }
        if let Some(c) = cur.take() {
            head.finish_field(input, c, limits, line_no);
        }
        line_no += 1;
        skipping = false;
        // field-name = token, then optional SP/HT, then ':'
        let line_stop = end - 2;
        let mut i = pos;
        while i < line_stop && is_token(input[i]) {
            i += 1;
        }
        let name_end = i;
        while i < line_stop && matches!(input[i], b' ' | b'\t') {
            i += 1;
        }
        if name_end > pos && i < line_stop && input[i] == b':' {
            cur = Some((
                pos,
                name_end,
                i,
                end,
                HeaderName::from_bytes(&input[pos..name_end]),
            ));
        } else {
            head.defer(ParseErrorKind::HeaderSyntax { line: line_no });
            skipping = true;
        }
        pos = end;
    }
    Ok(head)
}

impl Head {
    fn finish_field(
        &mut self,
        input: &[u8],
        c: (usize, usize, usize, usize, HeaderName),
        limits: &Limits,
        line_no: usize,
    ) {
        let (ls, name_end, colon, le, name) = c;
        if le - ls - 2 > limits.max_line_length {
            self.defer(ParseErrorKind::LineTooLong {
                line: line_no,
                max: limits.max_line_length,
            });
            return;
        }
        if self.headers.len() >= limits.max_headers {
            self.defer(ParseErrorKind::TooManyHeaders {
                max: limits.max_headers,
            });
            return;
        }
        let mut vs = colon + 1;
        let mut ve = le - 2;
        while vs < ve && matches!(input[vs], b' ' | b'\t' | b'\r' | b'\n') {
            vs += 1;
        }
        while ve > vs && matches!(input[ve - 1], b' ' | b'\t' | b'\r' | b'\n') {
            ve -= 1;
        }
        if name == HeaderName::ContentLength {
            self.cl = match self.cl {
                Cl::Absent => match parse_u64(&input[vs..ve]) {
                    Some(n) => Cl::One(n),
                    None => Cl::Invalid,
                },
                Cl::Invalid => Cl::Invalid,
                _ => Cl::Repeated,
            };
        }
        self.headers.push(Entry {
            name,
            extra: false,
            line: (ls as u32, le as u32),
            name_end: name_end as u32,
            value: (vs as u32, ve as u32),
        });
    }
}

/// `SIP/1*DIGIT.1*DIGIT`; returns whether it is 2.0.
fn parse_version(v: &[u8]) -> Result<bool, StartLineError> {
    if v.len() < 7 || !v[..4].eq_ignore_ascii_case(b"SIP/") {
        return Err(StartLineError::Version);
    }
    let rest = &v[4..];
    let dot = memchr::memchr(b'.', rest).ok_or(StartLineError::Version)?;
    let (maj, min) = (&rest[..dot], &rest[dot + 1..]);
    if maj.is_empty()
        || min.is_empty()
        || !maj.iter().all(u8::is_ascii_digit)
        || !min.iter().all(u8::is_ascii_digit)
    {
        return Err(StartLineError::Version);
    }
    Ok(maj == b"2" && min == b"0")
}

fn is_scheme_start(uri: &[u8]) -> bool {
    let Some(colon) = memchr::memchr(b':', uri) else {
        return false;
    };
    let scheme = &uri[..colon];
    !scheme.is_empty()
        && scheme[0].is_ascii_alphabetic()
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Strict start line. Returns the start and whether the version is 2.0.
fn parse_start_line(line: &[u8]) -> Result<(Start, bool), StartLineError> {
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
        let sp = memchr::memchr(b' ', line).ok_or(StartLineError::StatusLineShape)?;
        let v_ok = parse_version(&line[..sp])?;
        let rest = &line[sp + 1..];
        if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
            return Err(StartLineError::StatusCode);
        }
        let code = u16::from(rest[0] - b'0') * 100
            + u16::from(rest[1] - b'0') * 10
            + u16::from(rest[2] - b'0');
        if !(100..=699).contains(&code) {
            return Err(StartLineError::StatusCode);
        }
        let reason_start = match rest.get(3) {
            None => line.len(), // liberal: "SIP/2.0 200" with no SP and no reason
            Some(b' ') => sp + 1 + 4,
            Some(_) => return Err(StartLineError::StatusCode),
        };
        if line[reason_start..]
            .iter()
            .any(|&b| b == b'\r' || b == b'\n')
        {
            return Err(StartLineError::StatusLineShape);
        }
        return Ok((
            Start::Response {
                code,
                version: (0, sp as u32),
                reason: (reason_start as u32, line.len() as u32),
            },
            v_ok,
        ));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version CRLF
    let sp1 = memchr::memchr(b' ', line).ok_or(StartLineError::RequestLineShape)?;
    let method =
        Method::from_token_bytes(&line[..sp1], None).map_err(|_| StartLineError::Method)?;
    let rest = &line[sp1 + 1..];
    let sp2 = memchr::memchr(b' ', rest).ok_or(StartLineError::RequestLineShape)? + sp1 + 1;
    let uri = &line[sp1 + 1..sp2];
    let version = &line[sp2 + 1..];
    if uri.is_empty() || version.contains(&b' ') || uri.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(StartLineError::RequestLineShape);
    }
    if !is_scheme_start(uri) {
        return Err(StartLineError::RequestUri);
    }
    let v_ok = parse_version(version)?;
    Ok((
        Start::Request {
            method,
            uri: ((sp1 + 1) as u32, sp2 as u32),
            version: ((sp2 + 1) as u32, line.len() as u32),
        },
        v_ok,
    ))
}

/// A malformed request line read leniently, only so the header section can still be
/// parsed and a 400 sent: method = first token, version = last word, URI = what is between.
fn lenient_request_line(line: &[u8]) -> Option<Start> {
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        return None;
    }
    let sp1 = memchr::memchr(b' ', line)?;
    let method = Method::from_token_bytes(&line[..sp1], None).ok()?;
    let mut end = line.len();
    while end > sp1 && line[end - 1] == b' ' {
        end -= 1;
    }
    let vsp = memchr::memrchr(b' ', &line[..end])?;
    if vsp <= sp1 {
        return None;
    }
    let mut us = sp1;
    while us < vsp && line[us] == b' ' {
        us += 1;
    }
    let mut ue = vsp;
    while ue > us && line[ue - 1] == b' ' {
        ue -= 1;
    }
    Some(Start::Request {
        method,
        uri: (us as u32, ue as u32),
        version: ((vsp + 1) as u32, end as u32),
    })
}
