//! Size limits, checked before anything is allocated for the message.

/// Configurable limits on an incoming message, each with the outcome it produces when
/// exceeded (see [`crate::ParseErrorKind::status`]):
///
/// | limit | exceeded → |
/// |---|---|
/// | [`max_message_size`](Limits::max_message_size) | 513 Message Too Large |
/// | [`max_body_size`](Limits::max_body_size) | 413 Request Entity Too Large |
/// | [`max_request_uri_len`](Limits::max_request_uri_len) | 414 Request-URI Too Long |
/// | [`max_headers`](Limits::max_headers) | 400 "Too many header fields" |
/// | [`max_line_length`](Limits::max_line_length) | 400 "Header line too long" |
///
/// Responses are only possible when the head could be read (see
/// [`crate::ParseError::disposition`]); on a stream the framer reports
/// [`crate::Frame::Lost`] instead and the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (start line, headers and body), in bytes.
    pub max_message_size: usize,
    /// Largest body, in bytes (the declared Content-Length, or the rest of a datagram).
    pub max_body_size: usize,
    /// Longest Request-URI, in bytes.
    pub max_request_uri_len: usize,
    /// Most header fields (lines, counting continuation lines as part of their field).
    pub max_headers: usize,
    /// Longest header field (including its folded continuation lines) or start line.
    pub max_line_length: usize,
}

impl Limits {
    /// Defaults sized for a front-end proxy: 64 KiB messages and bodies (the UDP maximum;
    /// large NOTIFY/PIDF bodies fit), 4 KiB Request-URIs, 256 header fields, 8 KiB lines.
    pub const DEFAULT: Limits = Limits {
        max_message_size: 65_535,
        max_body_size: 65_535,
        max_request_uri_len: 4096,
        max_headers: 256,
        max_line_length: 8192,
    };

    /// Effectively no limits (`u32::MAX` bytes), for messages this process built itself.
    pub const UNLIMITED: Limits = Limits {
        max_message_size: u32::MAX as usize,
        max_body_size: u32::MAX as usize,
        max_request_uri_len: u32::MAX as usize,
        max_headers: u16::MAX as usize,
        max_line_length: u32::MAX as usize,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
