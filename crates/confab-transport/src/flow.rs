//! Flow tokens (RFC 5626 §5).
//!
//! A *flow* is the path a client opened to us: a connection (TCP, TLS, WS, WSS), or for UDP
//! the 5-tuple (our listener, the client's address and port). Every received message carries
//! the token of its flow; handing that token back to [`crate::TransportHandle::send`] sends
//! over the same flow, which is what a client behind NAT needs for responses and for later
//! requests to its registered contact (RFC 5626 §5.3).
//!
//! Datagram tokens are self-describing (listener index + remote address), so UDP needs no
//! per-source state. Connection tokens name a connection id that is never reused within a
//! process: once the connection closes, the token is dead and sending on it fails with
//! [`crate::SendError::FlowGone`].
//!
//! To put a token into a Path or Record-Route URI (RFC 5626 §5.2), use
//! [`FlowToken::encode_signed`]: the text is base64url and carries an HMAC-SHA256 tag, so a
//! client cannot forge a token that makes the proxy send to an address of its choosing.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Identifies one flow. Cheap to copy, hash and compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowToken(Repr);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Repr {
    Datagram { listener: u16, remote: SocketAddr },
    Connection { id: u64 },
}

/// Bytes of HMAC-SHA256 kept in a signed token (80 bits, as RFC 5626 §5.2's example).
const TAG_LEN: usize = 10;

/// Why a token text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowTokenError {
    /// Not base64url.
    #[error("flow token is not base64url")]
    NotBase64,
    /// Wrong length or unknown kind byte.
    #[error("flow token has a bad layout ({len} bytes)")]
    BadLayout {
        /// Decoded length.
        len: usize,
    },
    /// The HMAC tag does not match: forged, corrupted, or signed with another key.
    #[error("flow token signature does not match")]
    BadSignature,
}

impl FlowToken {
    /// The token of a UDP 5-tuple: datagrams from `remote` received on listener `listener`.
    pub fn datagram(listener: u16, remote: SocketAddr) -> Self {
        FlowToken(Repr::Datagram { listener, remote })
    }

    /// The token of connection `id`.
    pub fn connection(id: u64) -> Self {
        FlowToken(Repr::Connection { id })
    }

    /// True for a connection flow (TCP, TLS, WS, WSS).
    pub fn is_connection(&self) -> bool {
        matches!(self.0, Repr::Connection { .. })
    }

    /// For a datagram flow: the listener index and remote address.
    pub fn as_datagram(&self) -> Option<(u16, SocketAddr)> {
        match self.0 {
            Repr::Datagram { listener, remote } => Some((listener, remote)),
            Repr::Connection { .. } => None,
        }
    }

    /// For a connection flow: the connection id.
    pub fn connection_id(&self) -> Option<u64> {
        match self.0 {
            Repr::Connection { id } => Some(id),
            Repr::Datagram { .. } => None,
        }
    }

    fn to_bytes(self, out: &mut Vec<u8>) {
        match self.0 {
            Repr::Connection { id } => {
                out.push(b'c');
                out.extend_from_slice(&id.to_be_bytes());
            }
            Repr::Datagram { listener, remote } => {
                match remote.ip() {
                    IpAddr::V4(ip) => {
                        out.push(b'4');
                        out.extend_from_slice(&ip.octets());
                    }
                    IpAddr::V6(ip) => {
                        out.push(b'6');
                        out.extend_from_slice(&ip.octets());
                    }
                }
                out.extend_from_slice(&remote.port().to_be_bytes());
                out.extend_from_slice(&listener.to_be_bytes());
            }
        }
    }

    fn from_bytes(b: &[u8]) -> Result<Self, FlowTokenError> {
        let bad = FlowTokenError::BadLayout { len: b.len() };
        let tail = |rest: &[u8]| -> (u16, u16) {
            (
                u16::from_be_bytes([rest[0], rest[1]]),
                u16::from_be_bytes([rest[2], rest[3]]),
            )
        };
        match (b.first(), b.len()) {
            (Some(b'c'), 9) => {
                let mut id = [0u8; 8];
                id.copy_from_slice(&b[1..9]);
                Ok(Self::connection(u64::from_be_bytes(id)))
            }
            (Some(b'4'), 9) => {
                let ip = Ipv4Addr::new(b[1], b[2], b[3], b[4]);
                let (port, listener) = tail(&b[5..9]);
                Ok(Self::datagram(listener, SocketAddr::new(ip.into(), port)))
            }
            (Some(b'6'), 21) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[1..17]);
                let (port, listener) = tail(&b[17..21]);
                let ip = Ipv6Addr::from(o);
                Ok(Self::datagram(listener, SocketAddr::new(ip.into(), port)))
            }
            _ => Err(bad),
        }
    }

    /// Unsigned base64url text. Use only where the text never comes back from the network;
    /// otherwise use [`Self::encode_signed`].
    pub fn encode(&self) -> String {
        let mut b = Vec::with_capacity(24);
        self.to_bytes(&mut b);
        URL_SAFE_NO_PAD.encode(b)
    }

    /// Parses the text of [`Self::encode`].
    pub fn decode(text: &str) -> Result<Self, FlowTokenError> {
        let b = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| FlowTokenError::NotBase64)?;
        Self::from_bytes(&b)
    }

    /// base64url text with an HMAC-SHA256 tag over the token (RFC 5626 §5.2), safe to put
    /// in the user part of a Path or Record-Route URI.
    pub fn encode_signed(&self, key: &[u8]) -> String {
        let mut b = Vec::with_capacity(32);
        self.to_bytes(&mut b);
        let tag = Self::tag(key, &b);
        b.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(b)
    }

    /// Checks the tag and parses the text of [`Self::encode_signed`].
    pub fn decode_signed(text: &str, key: &[u8]) -> Result<Self, FlowTokenError> {
        let b = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| FlowTokenError::NotBase64)?;
        if b.len() <= TAG_LEN {
            return Err(FlowTokenError::BadLayout { len: b.len() });
        }
        let (body, tag) = b.split_at(b.len() - TAG_LEN);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(body);
        mac.verify_truncated_left(tag)
            .map_err(|_| FlowTokenError::BadSignature)?;
        Self::from_bytes(body)
    }

    fn tag(key: &[u8], body: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

/// The transaction layer retransmits on unreliable flows only (RFC 3261 §17.1.1.2).
impl confab_sip::transaction::Flow for FlowToken {
    fn is_reliable(&self) -> bool {
        self.is_connection()
    }
}

impl fmt::Display for FlowToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Repr::Datagram { listener, remote } => write!(f, "udp#{listener}/{remote}"),
            Repr::Connection { id } => write!(f, "conn#{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let tokens = [
            FlowToken::connection(0),
            FlowToken::connection(u64::MAX),
            FlowToken::datagram(3, "192.0.2.7:5060".parse().unwrap()),
            FlowToken::datagram(65535, "[2001:db8::1]:1".parse().unwrap()),
        ];
        for t in tokens {
            assert_eq!(FlowToken::decode(&t.encode()), Ok(t));
            let s = t.encode_signed(b"key one");
            assert!(
                s.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            );
            assert_eq!(FlowToken::decode_signed(&s, b"key one"), Ok(t));
            assert_eq!(
                FlowToken::decode_signed(&s, b"key two"),
                Err(FlowTokenError::BadSignature)
            );
        }
    }

    #[track_caller]
    fn check_bad(text: &str, want: FlowTokenError) {
        assert_eq!(FlowToken::decode(text), Err(want));
    }

    #[test]
    fn rejects_bad_text() {
        check_bad("!!", FlowTokenError::NotBase64);
        check_bad("", FlowTokenError::BadLayout { len: 0 });
        // kind 'c' with 3 bytes of id
        check_bad(
            &URL_SAFE_NO_PAD.encode(b"cabc"),
            FlowTokenError::BadLayout { len: 4 },
        );
        check_bad(
            &URL_SAFE_NO_PAD.encode([b'x'; 9]),
            FlowTokenError::BadLayout { len: 9 },
        );
        // a forged datagram token: flip one address byte of a signed token
        let t = FlowToken::datagram(1, "192.0.2.7:5060".parse().unwrap());
        let mut raw = URL_SAFE_NO_PAD.decode(t.encode_signed(b"k")).unwrap();
        raw[4] ^= 1;
        assert_eq!(
            FlowToken::decode_signed(&URL_SAFE_NO_PAD.encode(raw), b"k"),
            Err(FlowTokenError::BadSignature)
        );
        assert_eq!(
            FlowToken::decode_signed("YWJj", b"k"),
            Err(FlowTokenError::BadLayout { len: 3 })
        );
    }
}
