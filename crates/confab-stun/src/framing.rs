//! ChannelData framing (RFC 8656 §12.4), demultiplexing STUN / ChannelData / other traffic
//! on a shared port (RFC 7983 §7), and cutting messages out of a byte stream (TCP/TLS).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Channel Number        |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! /                       Application Data                        /
//! /                                                               /
//! |                                                               |
//! |                               +-------------------------------+
//! |                               |
//! +-------------------------------+
//!                RFC 8656 Figure 6: the ChannelData message
//! ```

use crate::message::{HEADER_LEN, MAGIC_COOKIE};

/// Size of the ChannelData header.
pub const CHANNEL_HEADER_LEN: usize = 4;

/// What a packet on a shared port is, by its first byte (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// First byte 0..=3: STUN.
    Stun,
    /// First byte 64..=127: TURN ChannelData (RFC 7983 assigns 64..=79 to RFC 8656
    /// channels; 80..=127, unassigned there, carries RFC 5766 channels up to 0x7FFF).
    ChannelData,
    /// Anything else (DTLS, RTP, ZRTP, garbage): not for the TURN server.
    Other,
}

/// Classifies a packet by its first byte.
pub fn classify(buf: &[u8]) -> PacketKind {
    match buf.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(64..=127) => PacketKind::ChannelData,
        _ => PacketKind::Other,
    }
}

/// ChannelData decoding failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelDataError {
    /// Fewer than 4 bytes.
    #[error("ChannelData of {len} bytes is shorter than its 4-byte header")]
    TooShort {
        /// Bytes present.
        len: usize,
    },
    /// Channel number outside [`crate::attr::CHANNEL_RANGE`].
    #[error("channel number 0x{channel:04x} is outside 0x4000-0x7fff")]
    BadChannel {
        /// The number found.
        channel: u16,
    },
    /// Length field larger than the bytes present.
    #[error("ChannelData length {len} exceeds the {available} bytes present")]
    Truncated {
        /// Length field.
        len: usize,
        /// Payload bytes present.
        available: usize,
    },
}

/// Splits a ChannelData message into channel number and application data. Trailing bytes
/// (padding) after the declared length are allowed, as on streams.
pub fn decode_channel_data(buf: &[u8]) -> Result<(u16, &[u8]), ChannelDataError> {
    if buf.len() < CHANNEL_HEADER_LEN {
        return Err(ChannelDataError::TooShort { len: buf.len() });
    }
    let channel = u16::from_be_bytes([buf[0], buf[1]]);
    if !crate::attr::CHANNEL_RANGE.contains(&channel) {
        return Err(ChannelDataError::BadChannel { channel });
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let available = buf.len() - CHANNEL_HEADER_LEN;
    if len > available {
        return Err(ChannelDataError::Truncated { len, available });
    }
    Ok((channel, &buf[CHANNEL_HEADER_LEN..CHANNEL_HEADER_LEN + len]))
}

/// Writes a ChannelData header for `len` bytes of data into `out[..4]`.
pub fn encode_channel_header(channel: u16, len: u16, out: &mut [u8]) {
    out[0..2].copy_from_slice(&channel.to_be_bytes());
    out[2..4].copy_from_slice(&len.to_be_bytes());
}

/// Padding to add after a ChannelData payload of `len` bytes on a stream transport
/// (RFC 8656 §12.5: padded to a multiple of 4 over TCP and TLS; not over UDP).
pub fn stream_padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Result of looking for one message at the start of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A complete message of this many bytes (ChannelData including padding) is at the start.
    Complete {
        /// What it is.
        kind: PacketKind,
        /// Bytes to consume.
        len: usize,
    },
    /// More bytes are needed; at least this many in total.
    Incomplete {
        /// Total bytes needed to decide or complete.
        needed: usize,
    },
    /// The stream does not carry STUN or ChannelData here: the connection must be closed.
    Invalid,
}

/// Cuts the next STUN message or ChannelData message from a TCP/TLS byte stream.
pub fn frame_len(buf: &[u8]) -> Frame {
    match classify(buf) {
        _ if buf.len() < 4 => Frame::Incomplete { needed: 4 },
        PacketKind::Stun => {
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            if len % 4 != 0 {
                return Frame::Invalid;
            }
            if buf.len() >= 8
                && u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) != MAGIC_COOKIE
            {
                return Frame::Invalid;
            }
            let total = HEADER_LEN + len;
            if buf.len() < total {
                Frame::Incomplete { needed: total }
            } else {
                Frame::Complete {
                    kind: PacketKind::Stun,
                    len: total,
                }
            }
        }
        PacketKind::ChannelData => {
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            let total = CHANNEL_HEADER_LEN + len + stream_padding(len);
            if buf.len() < total {
                Frame::Incomplete { needed: total }
            } else {
                Frame::Complete {
                    kind: PacketKind::ChannelData,
                    len: total,
                }
            }
        }
        PacketKind::Other => Frame::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_frame(buf: &[u8], expected: Frame) {
        assert_eq!(frame_len(buf), expected);
    }

    #[test]
    fn stream_framing() {
        check_frame(&[], Frame::Incomplete { needed: 4 });
        check_frame(&[0x40, 0x00, 0x00], Frame::Incomplete { needed: 4 });
        // ChannelData with 5 bytes of data is padded to 8 on a stream.
        check_frame(
            &[0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5],
            Frame::Incomplete { needed: 12 },
        );
        check_frame(
            &[0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0, 0x40],
            Frame::Complete {
                kind: PacketKind::ChannelData,
                len: 12,
            },
        );
        let mut stun = vec![0, 1, 0, 4, 0x21, 0x12, 0xA4, 0x42];
        stun.extend_from_slice(&[0; 16]);
        check_frame(&stun[..10], Frame::Incomplete { needed: 24 });
        check_frame(
            &stun,
            Frame::Complete {
                kind: PacketKind::Stun,
                len: 24,
            },
        );
        check_frame(&[0, 1, 0, 3], Frame::Invalid);
        check_frame(&[0, 1, 0, 4, 1, 2, 3, 4], Frame::Invalid);
        check_frame(&[0x16, 3, 1, 0], Frame::Invalid);
    }

    #[test]
    fn channel_data_decoding() {
        assert_eq!(
            decode_channel_data(&[0x40, 0x01, 0, 2, 9, 8]),
            Ok((0x4001, &[9u8, 8][..]))
        );
        assert_eq!(
            decode_channel_data(&[0x40, 0x01, 0, 2, 9, 8, 0, 0]),
            Ok((0x4001, &[9u8, 8][..]))
        );
        assert_eq!(
            decode_channel_data(&[0x40, 0x01, 0, 3, 9, 8]),
            Err(ChannelDataError::Truncated {
                len: 3,
                available: 2
            })
        );
        assert_eq!(
            decode_channel_data(&[0x80, 0x01, 0, 0]),
            Err(ChannelDataError::BadChannel { channel: 0x8001 })
        );
        assert_eq!(
            decode_channel_data(&[0x40]),
            Err(ChannelDataError::TooShort { len: 1 })
        );
        assert_eq!(classify(&[0x00]), PacketKind::Stun);
        assert_eq!(classify(&[0x4F]), PacketKind::ChannelData);
        assert_eq!(classify(&[0x80]), PacketKind::Other);
        assert_eq!(classify(&[0x16]), PacketKind::Other);
        assert_eq!(classify(&[]), PacketKind::Other);
        assert_eq!(
            (stream_padding(0), stream_padding(1), stream_padding(4)),
            (0, 3, 0)
        );
    }
}
