//! Stream framing for TCP/TLS (RFC 3261 §18.3) with RFC 5626 keep-alives, as a pure
//! function over the bytes received so far.

use crate::limits::Limits;
use crate::name::HeaderName;
use crate::scan::{is_token, parse_u64};

/// What [`frame_stream`] found at the start of the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet; read more and call again with the whole buffer.
    NeedMore,
    /// A keep-alive (RFC 5626 §3.5.1): consume `len` bytes. `pong_due` is true for a
    /// double-CRLF "ping", which the receiver answers with a single CRLF "pong"; a single
    /// CRLF is a pong (or a stray CRLF before a message, RFC 3261 §7.5) and needs nothing.
    ///
    /// A buffer holding exactly `\r\n` (or `\r\n\r`) is reported as [`Frame::NeedMore`]: it
    /// may be the first half of a ping. A client waiting for a pong can test for
    /// `buf == b"\r\n"` itself.
    KeepAlive {
        /// Bytes to consume.
        len: usize,
        /// Whether a single CRLF must be sent back.
        pong_due: bool,
    },
    /// A complete message occupies the first `len` bytes; hand them to
    /// [`crate::parse_stream`].
    Message {
        /// Length of the message including its body.
        len: usize,
    },
    /// Framing is lost: the connection must be closed (there is no way to find the next
    /// message boundary).
    Lost(FramingError),
}

/// Why framing was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The bytes do not begin with something that can be a SIP start line.
    #[error("garbage where a start line was expected")]
    Garbage,
    /// A line ends in a bare LF.
    #[error("line ends in a bare LF")]
    BareLineFeed,
    /// No empty line within the size limit.
    #[error("header section exceeds the message size limit")]
    HeadTooLarge,
    /// No Content-Length (mandatory on streams, RFC 3261 §18.3).
    #[error("Content-Length missing (mandatory on stream transports)")]
    MissingContentLength,
    /// Content-Length is not a number, or appears more than once.
    #[error("Content-Length invalid or repeated")]
    InvalidContentLength,
    /// Content-Length exceeds the body limit.
    #[error("body exceeds the limit")]
    BodyTooLarge,
    /// Head plus body exceed the message limit.
    #[error("message exceeds the size limit")]
    MessageTooLarge,
}

/// Look at the start of a stream receive buffer and say what is there. Pure: no state is
/// kept between calls; the caller consumes `len` bytes after `KeepAlive`/`Message`.
///
/// Only framing is checked here (start line shape, header section end, Content-Length); the
/// message is parsed by [`crate::parse_stream`], whose errors do not lose framing (the
/// caller may answer 400 and keep the connection).
#[must_use]
pub fn frame_stream(buf: &[u8], limits: &Limits) -> Frame {
    if buf.is_empty() {
        return Frame::NeedMore;
    }
    if buf[0] == b'\r' {
        return match buf {
            [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => Frame::NeedMore,
            [b'\r', b'\n', b'\r', b'\n', ..] => Frame::KeepAlive {
                len: 4,
                pong_due: true,
            },
            [b'\r', b'\n', b'\r', ..] => Frame::Lost(FramingError::BareLineFeed),
            [b'\r', b'\n', ..] => Frame::KeepAlive {
                len: 2,
                pong_due: false,
            },
            _ => Frame::Lost(FramingError::Garbage),
        };
    }
    // The start line must begin with a token character (a method or "SIP/").
    if !is_token(buf[0]) {
        return Frame::Lost(FramingError::Garbage);
    }
    let max_head = limits.max_message_size.min(buf.len());
    let window = &buf[..max_head];
    // First line: check its shape as soon as it is complete.
    match memchr::memchr(b'\n', window) {
        None => {
            if buf.len() >= limits.max_message_size || window.len() > limits.max_line_length {
                return Frame::Lost(FramingError::HeadTooLarge);
            }
            if window.iter().any(|&b| b < b' ' && b != b'\t' && b != b'\r') {
                return Frame::Lost(FramingError::Garbage);
            }
            return Frame::NeedMore;
        }
        Some(nl) => {
            if nl == 0 || window[nl - 1] != b'\r' {
                return Frame::Lost(FramingError::BareLineFeed);
            }
            let line = &window[..nl - 1];
            let is_status = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/");
            let is_request = !is_status
                && memchr::memrchr(b' ', line).is_some_and(|sp| {
                    line.get(sp + 1..sp + 5)
                        .is_some_and(|v| v.eq_ignore_ascii_case(b"SIP/"))
                });
            if !is_status && !is_request {
                return Frame::Lost(FramingError::Garbage);
            }
        }
    }
    let Some(head_end) = memchr::memmem::find(window, b"\r\n\r\n").map(|i| i + 4) else {
        if buf.len() >= limits.max_message_size {
            return Frame::Lost(FramingError::HeadTooLarge);
        }
        return Frame::NeedMore;
    };
    // Find Content-Length among the header lines (continuations belong to their field).
    let head = &buf[..head_end];
    let mut pos = match memchr::memchr(b'\n', head) {
        Some(i) => i + 1,
        None => return Frame::Lost(FramingError::Garbage),
    };
    let mut cl: Option<u64> = None;
    let mut cur_is_cl = false;
    // Content-Length value range; continuation lines are contiguous so a range suffices.
    let mut cl_value = (0usize, 0usize);
    while pos < head_end - 2 {
        let end = match memchr::memchr(b'\n', &head[pos..]) {
            Some(i) => pos + i + 1,
            None => return Frame::Lost(FramingError::Garbage),
        };
        if head[end - 2] != b'\r' {
            return Frame::Lost(FramingError::BareLineFeed);
        }
        let line = &head[pos..end - 2];
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            if cur_is_cl {
                cl_value.1 = end - 2;
            }
        } else {
            if cur_is_cl {
                match finish_cl(&head[cl_value.0..cl_value.1], cl) {
                    Ok(v) => cl = Some(v),
                    Err(e) => return Frame::Lost(e),
                }
                cur_is_cl = false;
            }
            if let Some(colon) = memchr::memchr(b':', line) {
                let mut ne = colon;
                while ne > 0 && matches!(line[ne - 1], b' ' | b'\t') {
                    ne -= 1;
                }
                if HeaderName::from_bytes(&line[..ne]) == HeaderName::ContentLength {
                    cur_is_cl = true;
                    cl_value = (pos + colon + 1, end - 2);
                }
            }
        }
        pos = end;
    }
    if cur_is_cl {
        match finish_cl(&head[cl_value.0..cl_value.1], cl) {
            Ok(v) => cl = Some(v),
            Err(e) => return Frame::Lost(e),
        }
    }
    let Some(cl) = cl else {
        return Frame::Lost(FramingError::MissingContentLength);
    };
    if cl > limits.max_body_size as u64 {
        return Frame::Lost(FramingError::BodyTooLarge);
    }
    let total = head_end as u64 + cl;
    if total > limits.max_message_size as u64 {
        return Frame::Lost(FramingError::MessageTooLarge);
    }
    let total = total as usize;
    if buf.len() >= total {
        Frame::Message { len: total }
    } else {
        Frame::NeedMore
    }
}

fn finish_cl(value: &[u8], prev: Option<u64>) -> Result<u64, FramingError> {
    if prev.is_some() {
        return Err(FramingError::InvalidContentLength);
    }
    let v = crate::scan::trim_lws_bytes(value);
    parse_u64(v).ok_or(FramingError::InvalidContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &[u8], expected: Frame) {
        assert_eq!(
            frame_stream(input, &Limits::DEFAULT),
            expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }

    const OPT: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";

    #[test]
    fn keepalives() {
        check(b"", Frame::NeedMore);
        check(b"\r", Frame::NeedMore);
        check(b"\r\n", Frame::NeedMore);
        check(b"\r\n\r", Frame::NeedMore);
        check(
            b"\r\n\r\n",
            Frame::KeepAlive {
                len: 4,
                pong_due: true,
            },
        );
        check(
            b"\r\n\r\nINVITE",
            Frame::KeepAlive {
                len: 4,
                pong_due: true,
            },
        );
        check(
            b"\r\nSIP/2.0 200 OK\r\n",
            Frame::KeepAlive {
                len: 2,
                pong_due: false,
            },
        );
        check(b"\r\r", Frame::Lost(FramingError::Garbage));
    }

    #[test]
    fn messages_and_partial_messages() {
        check(OPT, Frame::Message { len: OPT.len() });
        let mut two = OPT.to_vec();
        two.extend_from_slice(OPT);
        check(&two, Frame::Message { len: OPT.len() });
        for cut in 1..OPT.len() {
            check(&OPT[..cut], Frame::NeedMore);
        }
    }

    #[test]
    fn folded_content_length() {
        let m = b"SIP/2.0 200 OK\r\nContent-Length:\r\n  3\r\n\r\nabc";
        check(m, Frame::Message { len: m.len() });
    }

    #[test]
    fn lost_framing() {
        check(b"\x16\x03\x01\x02\x00", Frame::Lost(FramingError::Garbage));
        check(
            b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n",
            Frame::Lost(FramingError::MissingContentLength),
        );
        check(
            b"INVITE sip:a@b SIP/2.0\r\nl: -1\r\n\r\n",
            Frame::Lost(FramingError::InvalidContentLength),
        );
        check(
            b"INVITE sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\nx",
            Frame::Lost(FramingError::InvalidContentLength),
        );
        check(
            b"INVITE sip:a@b SIP/2.0\nl: 1\r\n\r\nx",
            Frame::Lost(FramingError::BareLineFeed),
        );
        check(b"hello world\r\n", Frame::Lost(FramingError::Garbage));
        check(
            b"INVITE sip:a@b SIP/2.0\r\nl: 99999999\r\n\r\n",
            Frame::Lost(FramingError::BodyTooLarge),
        );
        let small = Limits {
            max_message_size: 40,
            ..Limits::DEFAULT
        };
        assert_eq!(
            frame_stream(
                b"INVITE sip:a@b SIP/2.0\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                &small
            ),
            Frame::Lost(FramingError::HeadTooLarge)
        );
        assert_eq!(
            frame_stream(b"INVITE sip:a@b SIP/2.0\r\nl: 30\r\n\r\n", &small),
            Frame::Lost(FramingError::MessageTooLarge)
        );
    }
}
