//! Sans-IO SIP message layer for Confab.
//!
//! **What it does:** parses and serializes SIP messages losslessly (RFC 3261 grammar with
//! RFC 5954 IPv6 references, RFC 3966 tel URIs), gives typed, lazily parsed access to the
//! headers a server needs, builds requests and responses, enforces size limits before
//! allocating, validates messages with the response each fault calls for, and frames
//! messages on streams (RFC 3261 §18.3, RFC 5626 keep-alives).
//!
//! **What it does not do:** sockets, clocks or randomness (tags, branches and Call-IDs are
//! passed in by the caller), SDP or any body beyond keeping its bytes, digest computation.
//! Transactions and dialogs live in their own modules (issue 3).
//!
//! # Map
//!
//! | you have | call | you get |
//! |---|---|---|
//! | a UDP datagram | [`parse_datagram`] | [`Message`] or [`ParseError`] |
//! | a WebSocket message | [`parse_websocket`] | same (RFC 7118: Content-Length optional) |
//! | bytes from TCP/TLS | [`frame_stream`] then [`parse_stream`] | [`Frame`]; then a message |
//! | a message | [`Message::check`] | `Ok` or a [`Rejection`] (400/416/...) |
//! | an error | [`ParseError::disposition`] / [`Rejection::disposition`] | [`Disposition`]: respond with (code, reason) or drop |
//! | a request to answer | [`ResponseBuilder::reply_to`] | a response copying Via/From/To/Call-ID/CSeq |
//! | something to send | [`RequestBuilder`] | a request |
//! | a proxy hop | [`Message::prepend_via`], [`Message::remove_first_route`], [`Message::set_max_forwards`], [`Message::prepend_record_route`], [`Message::set_request_uri`] | the same message, everything else byte-exact |
//! | bytes to send | [`Message::to_bytes`] / [`Message::write_to`] | |
//!
//! # Design
//!
//! A [`Message`] is one [`bytes::Bytes`] buffer plus 24-byte header entries (ranges of
//! the raw line incl. folding, of the name as written and of the trimmed value) in one
//! `Vec` reserved for 24 headers. Only the start line and Content-Length are decoded while
//! parsing; [`headers`] parse values on demand and borrow from the buffer, returning
//! `Option<Result<T, HeaderError>>` (single-valued) or iterators of `Result` (lists), so
//! "absent" and "malformed" are different answers and a [`HeaderError`] names the header.
//! We chose lazy ranges over eager typed parsing because a proxy reads 6–8 headers of
//! 15–25 and forwards the rest untouched; parsing what nobody reads costs time and risks
//! rejecting messages over headers nobody cares about.
//!
//! Serializing an unedited message returns its original buffer. Edits append new lines
//! to a per-message edit buffer and repoint entries, so untouched lines (compact forms,
//! folding, case, vendor `ms-*`/`X-*` headers, non-UTF-8 bytes) go out byte-exact.
//!
//! # Outcomes for bad input
//!
//! Parsing never panics. A [`ParseError`] says what is wrong; when the header section was
//! readable it carries it ([`ParseError::head`]) so a response can be built. The rule for
//! answering (in [`Message::can_be_answered`]): only a request other than ACK whose topmost
//! Via, From, To, Call-ID and CSeq parse can be answered; everything else is dropped.
//!
//! | fault | outcome |
//! |---|---|
//! | message > [`Limits::max_message_size`] | 513 |
//! | body > [`Limits::max_body_size`] | 413 |
//! | Request-URI > [`Limits::max_request_uri_len`] | 414 |
//! | too many headers / line too long | 400 "Too many header fields" / "Header line too long" |
//! | SIP version other than 2.0 | 505 |
//! | malformed request line | 400 "Malformed Request-Line" |
//! | Content-Length invalid, repeated, or larger than the datagram | 400 |
//! | Via/From/To/Call-ID/CSeq malformed or missing | drop ([`Message::check`] names it) |
//! | unknown Request-URI scheme | 416 (from [`Message::check`]) |
//! | bare-LF line endings, unterminated header section | drop |
//!
//! # Liberal and strict choices
//!
//! * **Strict:** CRLF line endings are required (a bare LF is [`ParseErrorKind::BareLineFeed`]:
//!   accepting it would make framing ambiguous); the request line must be
//!   `Method SP Request-URI SP SIP-Version` with single spaces (RFC 4475 §3.1.2.7-10); the
//!   status code is exactly three digits; Content-Length repeated or non-numeric is a
//!   framing error; an addr-spec containing `?` must be in `<>` (RFC 4475 regbadct).
//! * **Liberal:** CRLFs before the start line are skipped (RFC 3261 §7.5); whitespace
//!   before the header colon, folding anywhere LWS is allowed, leading zeros in numbers;
//!   `received` with or without `[ ]` (RFC 5118 §4.5); the RFC 3261 ABNF's three-colon IPv6
//!   form (RFC 5118 §4.10, kept as written on the wire); `_` in host names; unknown URI
//!   schemes kept as [`Uri::Other`] in every header; a status line without reason phrase.
//! * The torture table in `tests/torture.rs` lists, per RFC 4475/5118 message, which of
//!   these decides its outcome.
//!
//! # Checking everything
//!
//! [`Message::typed_header_errors`] reads every typed header and lists what is malformed
//! (for diagnostics and fuzzing; a proxy reads only what it needs).

pub mod headers;

mod builder;
mod check;
pub mod dialog;
mod error;
mod framing;
mod limits;
mod message;
mod method;
mod name;
mod parse;
mod scan;
pub mod status;
pub mod timer;
pub mod transaction;
pub mod ua;
mod uri;

pub use builder::{RequestBuilder, ResponseBuilder};
pub use check::Rejection;
pub use error::{
    BuildError, ContentLengthError, Disposition, HeaderError, HeaderErrorKind, ParseError,
    ParseErrorKind, StartLineError,
};
pub use framing::{Frame, FramingError, frame_stream};
pub use limits::Limits;
pub use message::{HeaderField, Message, RequestLine, StartLine, StatusLine, Values};
pub use method::{ExtensionMethod, InvalidMethod, Method};
pub use name::{HeaderKey, HeaderName};
pub use parse::{parse_datagram, parse_stream, parse_websocket};
pub use uri::{AbsoluteUri, Host, Param, ParamIter, Params, SipUri, TelUri, Uri, UriError};
