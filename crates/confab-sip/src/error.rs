//! Typed errors: what is wrong, and whether (and how) the sender can be answered.

use std::fmt;

use crate::message::Message;
use crate::name::HeaderName;

/// What the element does with a message it cannot accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Send a response with this status code and reason phrase (build it with
    /// [`crate::ResponseBuilder::reply_to`] from the message the error carries).
    Respond {
        /// Status code, e.g. 400.
        status: u16,
        /// Reason phrase naming the problem, e.g. `"Malformed Via header"`.
        reason: &'static str,
    },
    /// Discard silently: no valid response can be built (a response, an ACK, or a request
    /// whose Via, From, To, Call-ID or CSeq does not parse), or nothing was there.
    Drop,
}

/// Why the start line is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartLineError {
    /// Not `Method SP Request-URI SP SIP-Version` with single spaces (RFC 4475 lwsstart,
    /// trws, lwsruri).
    #[error("request line is not Method SP Request-URI SP SIP-Version")]
    RequestLineShape,
    /// The method is not a token.
    #[error("method is not a token")]
    Method,
    /// The Request-URI does not start with a URI scheme (e.g. enclosed in `<>`, RFC 4475
    /// ltgtruri).
    #[error("Request-URI is not an absolute URI")]
    RequestUri,
    /// The SIP-Version is not `SIP/digits.digits`.
    #[error("malformed SIP-Version")]
    Version,
    /// The status code is not three digits (RFC 4475 bigcode).
    #[error("status code is not three digits")]
    StatusCode,
    /// The status line is not `SIP-Version SP Status-Code SP Reason-Phrase`.
    #[error("status line is not SIP-Version SP Status-Code SP Reason-Phrase")]
    StatusLineShape,
}

/// Why Content-Length is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentLengthError {
    /// Absent on a stream transport (mandatory there, RFC 3261 §18.3 / §20.14).
    #[error("Content-Length is missing (mandatory on stream transports)")]
    Missing,
    /// Not `1*DIGIT` (negative, non-numeric, or too large for this machine).
    #[error("Content-Length is not a number")]
    Invalid,
    /// Present more than once (RFC 4475 mcl01): the body's extent is unknown.
    #[error("Content-Length appears more than once")]
    Repeated,
    /// Declares more bytes than the datagram holds (RFC 3261 §18.3; RFC 4475 clerr).
    #[error("Content-Length ({declared}) is larger than the {available} body bytes received")]
    LargerThanMessage {
        /// Declared length.
        declared: usize,
        /// Bytes present after the header section.
        available: usize,
    },
}

/// What went wrong while parsing a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Nothing but CRLFs (a keep-alive on a datagram transport) or nothing at all.
    #[error("empty message (keep-alive or padding)")]
    Empty,
    /// The header section has no terminating empty line (truncated message).
    #[error("header section is not terminated by an empty line")]
    Truncated,
    /// A line ends in a bare LF; SIP requires CRLF (RFC 3261 §7). The RFC 5118 archive is
    /// written this way; see the torture tests.
    #[error("line ends in a bare LF (CRLF required)")]
    BareLineFeed,
    /// The message is larger than [`crate::Limits::max_message_size`].
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// Size seen (at least).
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// The body is larger than [`crate::Limits::max_body_size`].
    #[error("body of {len} bytes exceeds the limit of {max}")]
    BodyTooLarge {
        /// Declared or received body size.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// The Request-URI is longer than [`crate::Limits::max_request_uri_len`].
    #[error("Request-URI of {len} bytes exceeds the limit of {max}")]
    RequestUriTooLong {
        /// Request-URI length.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// More header fields than [`crate::Limits::max_headers`].
    #[error("more than {max} header fields")]
    TooManyHeaders {
        /// Configured limit.
        max: usize,
    },
    /// A header field (with its continuation lines) or the start line is longer than
    /// [`crate::Limits::max_line_length`].
    #[error("line {line} is longer than {max} bytes")]
    LineTooLong {
        /// 0 is the start line, 1 the first header line, ...
        line: usize,
        /// Configured limit.
        max: usize,
    },
    /// The start line is malformed.
    #[error("malformed start line: {0}")]
    StartLine(StartLineError),
    /// The SIP-Version is well-formed but not 2.0 (RFC 4475 badvers): answer 505.
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    /// A header line has no colon, an invalid name, or is a continuation line with no field
    /// before it.
    #[error("malformed header line {line}")]
    HeaderSyntax {
        /// 1 is the first header line.
        line: usize,
    },
    /// Content-Length is unusable.
    #[error(transparent)]
    ContentLength(ContentLengthError),
}

impl ParseErrorKind {
    /// The status code and reason phrase this error calls for, if the sender can be
    /// answered at all (see [`ParseError::disposition`] for the full rule).
    #[must_use]
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            ParseErrorKind::Empty | ParseErrorKind::Truncated => (400, "Truncated message"),
            ParseErrorKind::BareLineFeed => (400, "Bare LF line ending"),
            ParseErrorKind::MessageTooLarge { .. } => (513, "Message Too Large"),
            ParseErrorKind::BodyTooLarge { .. } => (413, "Request Entity Too Large"),
            ParseErrorKind::RequestUriTooLong { .. } => (414, "Request-URI Too Long"),
            ParseErrorKind::TooManyHeaders { .. } => (400, "Too many header fields"),
            ParseErrorKind::LineTooLong { .. } => (400, "Header line too long"),
            ParseErrorKind::StartLine(_) => (400, "Malformed Request-Line"),
            ParseErrorKind::UnsupportedVersion => (505, "Version Not Supported"),
            ParseErrorKind::HeaderSyntax { .. } => (400, "Malformed header line"),
            ParseErrorKind::ContentLength(ContentLengthError::LargerThanMessage { .. }) => {
                (400, "Content-Length larger than message")
            }
            ParseErrorKind::ContentLength(ContentLengthError::Repeated) => {
                (400, "Multiple Content-Length headers")
            }
            ParseErrorKind::ContentLength(_) => (400, "Malformed Content-Length header"),
        }
    }
}

/// A message could not be parsed.
///
/// When the header section could be read (possibly with a malformed start line or a bad
/// header line skipped), the error carries it as a [`Message`] with an empty body, so the
/// caller can build the response that [`disposition`](ParseError::disposition) calls for.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    kind: ParseErrorKind,
    head: Option<Box<Message>>,
}

impl fmt::Debug for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParseError")
            .field("kind", &self.kind)
            .field("has_head", &self.head.is_some())
            .finish()
    }
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind) -> ParseError {
        ParseError { kind, head: None }
    }

    pub(crate) fn with_head(kind: ParseErrorKind, head: Message) -> ParseError {
        ParseError {
            kind,
            head: Some(Box::new(head)),
        }
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// The header section, when it could be read (body empty). Use it to build the
    /// response [`disposition`](ParseError::disposition) asks for.
    #[must_use]
    pub fn head(&self) -> Option<&Message> {
        self.head.as_deref()
    }

    /// Whether the input was only a keep-alive (CRLFs) or empty.
    #[must_use]
    pub fn is_keepalive(&self) -> bool {
        self.kind == ParseErrorKind::Empty
    }

    /// Respond or drop. A response is possible only when the head was read, it is a
    /// request other than ACK, and its Via, From, To, Call-ID and CSeq all parse (RFC 3261
    /// §8.2.6 copies them into the response; a response must be routable back by Via).
    #[must_use]
    pub fn disposition(&self) -> Disposition {
        match &self.head {
            Some(head) if head.can_be_answered() => {
                let (status, reason) = self.kind.status();
                Disposition::Respond { status, reason }
            }
            _ => Disposition::Drop,
        }
    }
}

/// What is wrong with a header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderErrorKind {
    /// The value holds bytes that are not UTF-8 where the grammar allows only UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// The value (or one comma-separated element of it) is empty.
    #[error("empty value")]
    Empty,
    /// The grammar is violated; the text says where.
    #[error("{0}")]
    Syntax(&'static str),
    /// A number is out of its allowed range (e.g. CSeq ≥ 2^32, Max-Forwards > 255).
    #[error("{0} out of range")]
    OutOfRange(&'static str),
}

/// A header is present but malformed. Names the header and what is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed {header} header: {kind}")]
pub struct HeaderError {
    /// Which header.
    pub header: HeaderName,
    /// What is wrong.
    pub kind: HeaderErrorKind,
}

impl HeaderError {
    pub(crate) const fn new(header: HeaderName, kind: HeaderErrorKind) -> HeaderError {
        HeaderError { header, kind }
    }
}

/// A locally built message or edit was refused (it would produce an invalid or
/// ambiguous message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A header name is not a token.
    #[error("invalid header name")]
    InvalidName,
    /// A header value contains CR, LF or NUL (header injection).
    #[error("header value contains CR, LF or NUL")]
    InvalidValue,
    /// The Request-URI is empty or contains whitespace or control characters.
    #[error("invalid Request-URI")]
    InvalidRequestUri,
    /// The status code is not in 100..=699.
    #[error("status code out of range")]
    InvalidStatus,
    /// The reason phrase contains CR or LF.
    #[error("invalid reason phrase")]
    InvalidReason,
    /// The operation needs a request but the message is a response, or vice versa.
    #[error("wrong message kind for this operation")]
    WrongKind,
    /// The builder was missing something mandatory.
    #[error("missing mandatory header {0}")]
    Missing(HeaderName),
}
