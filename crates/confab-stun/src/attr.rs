//! STUN and TURN attribute types and typed value codecs (RFC 8489 §14, RFC 8656 §18).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Type                  |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Value (variable)                ....
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!                  RFC 8489 Figure 4: format of STUN attributes
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::message::{MAGIC_COOKIE, TransactionId};

/// A 16-bit attribute type. Types below 0x8000 are comprehension-required.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrType(pub u16);

macro_rules! attr_types {
    ($($name:ident = $v:expr, $text:expr;)*) => {
        impl AttrType {
            $(#[doc = concat!("`", $text, "`")] pub const $name: AttrType = AttrType($v);)*

            /// The RFC name of a known type, `None` otherwise.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($v => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

attr_types! {
    MAPPED_ADDRESS = 0x0001, "MAPPED-ADDRESS";
    USERNAME = 0x0006, "USERNAME";
    MESSAGE_INTEGRITY = 0x0008, "MESSAGE-INTEGRITY";
    ERROR_CODE = 0x0009, "ERROR-CODE";
    UNKNOWN_ATTRIBUTES = 0x000A, "UNKNOWN-ATTRIBUTES";
    CHANNEL_NUMBER = 0x000C, "CHANNEL-NUMBER";
    LIFETIME = 0x000D, "LIFETIME";
    XOR_PEER_ADDRESS = 0x0012, "XOR-PEER-ADDRESS";
    DATA = 0x0013, "DATA";
    REALM = 0x0014, "REALM";
    NONCE = 0x0015, "NONCE";
    XOR_RELAYED_ADDRESS = 0x0016, "XOR-RELAYED-ADDRESS";
    REQUESTED_ADDRESS_FAMILY = 0x0017, "REQUESTED-ADDRESS-FAMILY";
    EVEN_PORT = 0x0018, "EVEN-PORT";
    REQUESTED_TRANSPORT = 0x0019, "REQUESTED-TRANSPORT";
    DONT_FRAGMENT = 0x001A, "DONT-FRAGMENT";
    MESSAGE_INTEGRITY_SHA256 = 0x001C, "MESSAGE-INTEGRITY-SHA256";
    PASSWORD_ALGORITHM = 0x001D, "PASSWORD-ALGORITHM";
    USERHASH = 0x001E, "USERHASH";
    XOR_MAPPED_ADDRESS = 0x0020, "XOR-MAPPED-ADDRESS";
    RESERVATION_TOKEN = 0x0022, "RESERVATION-TOKEN";
    PRIORITY = 0x0024, "PRIORITY";
    USE_CANDIDATE = 0x0025, "USE-CANDIDATE";
    ADDITIONAL_ADDRESS_FAMILY = 0x8000, "ADDITIONAL-ADDRESS-FAMILY";
    ADDRESS_ERROR_CODE = 0x8001, "ADDRESS-ERROR-CODE";
    PASSWORD_ALGORITHMS = 0x8002, "PASSWORD-ALGORITHMS";
    ALTERNATE_DOMAIN = 0x8003, "ALTERNATE-DOMAIN";
    ICMP = 0x8004, "ICMP";
    SOFTWARE = 0x8022, "SOFTWARE";
    ALTERNATE_SERVER = 0x8023, "ALTERNATE-SERVER";
    FINGERPRINT = 0x8028, "FINGERPRINT";
    ICE_CONTROLLED = 0x8029, "ICE-CONTROLLED";
    ICE_CONTROLLING = 0x802A, "ICE-CONTROLLING";
}

impl AttrType {
    /// Comprehension-required range 0x0000-0x7FFF.
    pub fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }
    /// True for types this crate can decode. Whether a server *supports* one (e.g.
    /// DONT-FRAGMENT) is the server's decision, not the codec's.
    pub fn is_known(self) -> bool {
        self.name().is_some()
    }
}

impl fmt::Display for AttrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "attribute 0x{:04x}", self.0),
        }
    }
}

impl fmt::Debug for AttrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A malformed attribute value; every variant names the attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttributeError {
    /// The value has a length the attribute does not allow.
    #[error("{attr} has invalid length {len}")]
    BadLength {
        /// The attribute.
        attr: AttrType,
        /// Its length.
        len: usize,
    },
    /// The value exceeds the attribute's maximum.
    #[error("{attr} is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// The attribute.
        attr: AttrType,
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Text that is not UTF-8.
    #[error("{attr} is not valid UTF-8")]
    NotUtf8 {
        /// The attribute.
        attr: AttrType,
    },
    /// An address family other than 0x01/0x02, or one that disagrees with the length.
    #[error("{attr} has unknown address family 0x{family:02x}")]
    BadFamily {
        /// The attribute.
        attr: AttrType,
        /// The family byte.
        family: u8,
    },
    /// A value outside the range the attribute allows (e.g. a channel number).
    #[error("{attr} has invalid value {value}")]
    BadValue {
        /// The attribute.
        attr: AttrType,
        /// The value.
        value: u32,
    },
}

impl AttributeError {
    /// The attribute the error is about.
    pub fn attr(&self) -> AttrType {
        match *self {
            AttributeError::BadLength { attr, .. }
            | AttributeError::TooLong { attr, .. }
            | AttributeError::NotUtf8 { attr }
            | AttributeError::BadFamily { attr, .. }
            | AttributeError::BadValue { attr, .. } => attr,
        }
    }
}

/// Decodes a UTF-8 text attribute of at most `max` bytes.
pub fn utf8(attr: AttrType, v: &[u8], max: usize) -> Result<&str, AttributeError> {
    if v.len() > max {
        return Err(AttributeError::TooLong {
            attr,
            len: v.len(),
            max,
        });
    }
    std::str::from_utf8(v).map_err(|_| AttributeError::NotUtf8 { attr })
}

/// Decodes a 4-byte value.
pub fn decode_u32(attr: AttrType, v: &[u8]) -> Result<u32, AttributeError> {
    let b: [u8; 4] = v
        .try_into()
        .map_err(|_| AttributeError::BadLength { attr, len: v.len() })?;
    Ok(u32::from_be_bytes(b))
}

/// Address family codes used by address attributes and REQUESTED-ADDRESS-FAMILY.
pub const FAMILY_IPV4: u8 = 0x01;
/// IPv6 family code.
pub const FAMILY_IPV6: u8 = 0x02;

fn decode_address_raw(attr: AttrType, v: &[u8]) -> Result<(u16, IpAddr), AttributeError> {
    if v.len() < 4 {
        return Err(AttributeError::BadLength { attr, len: v.len() });
    }
    let port = u16::from_be_bytes([v[2], v[3]]);
    match (v[1], v.len()) {
        (FAMILY_IPV4, 8) => Ok((port, IpAddr::V4(Ipv4Addr::new(v[4], v[5], v[6], v[7])))),
        (FAMILY_IPV6, 20) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&v[4..20]);
            Ok((port, IpAddr::V6(Ipv6Addr::from(a))))
        }
        (FAMILY_IPV4 | FAMILY_IPV6, len) => Err(AttributeError::BadLength { attr, len }),
        (family, _) => Err(AttributeError::BadFamily { attr, family }),
    }
}

/// Decodes MAPPED-ADDRESS / ALTERNATE-SERVER.
pub fn decode_address(attr: AttrType, v: &[u8]) -> Result<SocketAddr, AttributeError> {
    decode_address_raw(attr, v).map(|(p, ip)| SocketAddr::new(ip, p))
}

/// Decodes an XOR-*-ADDRESS (RFC 8489 §14.2).
pub fn decode_xor_address(
    attr: AttrType,
    v: &[u8],
    txid: &TransactionId,
) -> Result<SocketAddr, AttributeError> {
    let (port, ip) = decode_address_raw(attr, v)?;
    let port = port ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match ip {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) ^ MAGIC_COOKIE)),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(xor_v6(a.octets(), txid))),
    };
    Ok(SocketAddr::new(ip, port))
}

fn xor_v6(mut o: [u8; 16], txid: &TransactionId) -> [u8; 16] {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    for (i, b) in o.iter_mut().enumerate() {
        *b ^= if i < 4 { cookie[i] } else { txid.0[i - 4] };
    }
    o
}

/// Writes a plain address value (8 or 20 bytes) into `out`.
pub fn encode_address(addr: SocketAddr, out: &mut [u8]) {
    out[0] = 0;
    out[2..4].copy_from_slice(&addr.port().to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => {
            out[1] = FAMILY_IPV4;
            out[4..8].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out[1] = FAMILY_IPV6;
            out[4..20].copy_from_slice(&a.octets());
        }
    }
}

/// Writes an XOR-encoded address value (8 or 20 bytes) into `out`.
pub fn encode_xor_address(addr: SocketAddr, txid: &TransactionId, out: &mut [u8]) {
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match addr.ip() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) ^ MAGIC_COOKIE)),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(xor_v6(a.octets(), txid))),
    };
    encode_address(SocketAddr::new(ip, port), out);
}

/// ERROR-CODE value (RFC 8489 §14.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode<'a> {
    /// 300..=699.
    pub code: u16,
    /// UTF-8 reason phrase.
    pub reason: &'a str,
}

impl<'a> ErrorCode<'a> {
    /// Decodes the value.
    pub fn decode(v: &'a [u8]) -> Result<Self, AttributeError> {
        let attr = AttrType::ERROR_CODE;
        if v.len() < 4 {
            return Err(AttributeError::BadLength { attr, len: v.len() });
        }
        let class = u16::from(v[2] & 0x07);
        let number = u16::from(v[3]);
        if !(3..=6).contains(&class) || number > 99 {
            return Err(AttributeError::BadValue {
                attr,
                value: u32::from(class) * 100 + u32::from(number),
            });
        }
        Ok(ErrorCode {
            code: class * 100 + number,
            reason: utf8(attr, &v[4..], 763)?,
        })
    }
}

/// Password algorithm numbers (RFC 8489 §18.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PasswordAlgorithm {
    /// 0x0001: key = MD5(username ":" realm ":" password).
    Md5,
    /// 0x0002: key = SHA-256(username ":" realm ":" password).
    Sha256,
}

impl PasswordAlgorithm {
    /// Wire number.
    pub fn number(self) -> u16 {
        match self {
            PasswordAlgorithm::Md5 => 1,
            PasswordAlgorithm::Sha256 => 2,
        }
    }
    /// From the wire number.
    pub fn from_number(n: u16) -> Option<Self> {
        match n {
            1 => Some(PasswordAlgorithm::Md5),
            2 => Some(PasswordAlgorithm::Sha256),
            _ => None,
        }
    }
}

/// Decodes PASSWORD-ALGORITHM (one algorithm + parameters) into its number.
pub fn decode_password_algorithm(v: &[u8]) -> Result<u16, AttributeError> {
    let attr = AttrType::PASSWORD_ALGORITHM;
    if v.len() < 4 {
        return Err(AttributeError::BadLength { attr, len: v.len() });
    }
    let plen = usize::from(u16::from_be_bytes([v[2], v[3]]));
    if 4 + plen != v.len() {
        return Err(AttributeError::BadLength { attr, len: v.len() });
    }
    Ok(u16::from_be_bytes([v[0], v[1]]))
}

/// Iterates over the algorithm numbers of a PASSWORD-ALGORITHMS value; the iterator yields an
/// error (then stops) if the list is malformed.
pub fn password_algorithms(v: &[u8]) -> impl Iterator<Item = Result<u16, AttributeError>> + '_ {
    let mut off = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || off >= v.len() {
            return None;
        }
        let bad = AttributeError::BadLength {
            attr: AttrType::PASSWORD_ALGORITHMS,
            len: v.len(),
        };
        if v.len() - off < 4 {
            failed = true;
            return Some(Err(bad));
        }
        let alg = u16::from_be_bytes([v[off], v[off + 1]]);
        let plen = usize::from(u16::from_be_bytes([v[off + 2], v[off + 3]]));
        let next = off + 4 + ((plen + 3) & !3);
        if off + 4 + plen > v.len() {
            failed = true;
            return Some(Err(bad));
        }
        off = next;
        Some(Ok(alg))
    })
}

/// Encodes a PASSWORD-ALGORITHMS value (no parameters) into `out`.
pub fn encode_password_algorithms(algs: &[PasswordAlgorithm], out: &mut [u8]) {
    for (chunk, a) in out.chunks_exact_mut(4).zip(algs) {
        chunk[0..2].copy_from_slice(&a.number().to_be_bytes());
        chunk[2..4].copy_from_slice(&[0, 0]);
    }
}

/// Decodes CHANNEL-NUMBER. RFC 8656 §12 narrows the range to 0x4000..=0x4FFF, but RFC 5766
/// clients (coturn's `turnutils_uclient` among them) pick numbers up to 0x7FFF; those are
/// accepted too, so a coturn user's clients keep working. Anything else is refused.
pub fn decode_channel_number(v: &[u8]) -> Result<u16, AttributeError> {
    let attr = AttrType::CHANNEL_NUMBER;
    let n = decode_u32(attr, v)?;
    let ch = (n >> 16) as u16;
    if !CHANNEL_RANGE.contains(&ch) {
        return Err(AttributeError::BadValue {
            attr,
            value: u32::from(ch),
        });
    }
    Ok(ch)
}

/// Channel numbers accepted: RFC 5766's 0x4000..=0x7FFF (RFC 8656 clients use 0x4000..=0x4FFF).
pub const CHANNEL_RANGE: std::ops::RangeInclusive<u16> = 0x4000..=0x7FFF;

/// Decodes REQUESTED-TRANSPORT into the IP protocol number (17 = UDP).
pub fn decode_requested_transport(v: &[u8]) -> Result<u8, AttributeError> {
    Ok((decode_u32(AttrType::REQUESTED_TRANSPORT, v)? >> 24) as u8)
}

/// Decodes REQUESTED-ADDRESS-FAMILY or ADDITIONAL-ADDRESS-FAMILY into 0x01 / 0x02.
pub fn decode_family(attr: AttrType, v: &[u8]) -> Result<u8, AttributeError> {
    let n = decode_u32(attr, v)?;
    let family = (n >> 24) as u8;
    if family != FAMILY_IPV4 && family != FAMILY_IPV6 {
        return Err(AttributeError::BadFamily { attr, family });
    }
    Ok(family)
}

/// Decodes EVEN-PORT into its R (reserve next port) bit.
pub fn decode_even_port(v: &[u8]) -> Result<bool, AttributeError> {
    match v {
        [b] => Ok(b & 0x80 != 0),
        _ => Err(AttributeError::BadLength {
            attr: AttrType::EVEN_PORT,
            len: v.len(),
        }),
    }
}

/// Decodes RESERVATION-TOKEN (8 bytes).
pub fn decode_reservation_token(v: &[u8]) -> Result<[u8; 8], AttributeError> {
    v.try_into().map_err(|_| AttributeError::BadLength {
        attr: AttrType::RESERVATION_TOKEN,
        len: v.len(),
    })
}

/// Decodes UNKNOWN-ATTRIBUTES into its types.
pub fn unknown_attributes(v: &[u8]) -> Result<impl Iterator<Item = u16> + '_, AttributeError> {
    if !v.len().is_multiple_of(2) {
        return Err(AttributeError::BadLength {
            attr: AttrType::UNKNOWN_ATTRIBUTES,
            len: v.len(),
        });
    }
    Ok(v.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_xor(addr: &str) {
        let a: SocketAddr = addr.parse().unwrap();
        let txid = TransactionId([0x5A; 12]);
        let mut out = [0u8; 20];
        let len = if a.is_ipv4() { 8 } else { 20 };
        encode_xor_address(a, &txid, &mut out[..len]);
        assert_eq!(
            decode_xor_address(AttrType::XOR_PEER_ADDRESS, &out[..len], &txid),
            Ok(a)
        );
    }

    #[test]
    fn xor_addresses_round_trip() {
        check_xor("192.0.2.1:32853");
        check_xor("0.0.0.0:0");
        check_xor("[2001:db8::1]:65535");
    }

    #[track_caller]
    fn check_addr_err(v: &[u8], e: AttributeError) {
        assert_eq!(decode_address(AttrType::ALTERNATE_SERVER, v), Err(e));
    }

    #[test]
    fn address_errors_name_the_attribute() {
        let attr = AttrType::ALTERNATE_SERVER;
        check_addr_err(&[0, 1, 0], AttributeError::BadLength { attr, len: 3 });
        check_addr_err(
            &[0, 3, 0, 0, 1, 2, 3, 4],
            AttributeError::BadFamily { attr, family: 3 },
        );
        check_addr_err(
            &[0, 2, 0, 0, 1, 2, 3, 4],
            AttributeError::BadLength { attr, len: 8 },
        );
        let e = AttributeError::BadLength { attr, len: 3 };
        assert_eq!(e.to_string(), "ALTERNATE-SERVER has invalid length 3");
    }

    #[test]
    fn turn_attribute_values() {
        assert_eq!(decode_channel_number(&[0x40, 0x00, 0, 0]), Ok(0x4000));
        assert_eq!(decode_channel_number(&[0x4F, 0xFF, 0, 0]), Ok(0x4FFF));
        assert_eq!(decode_channel_number(&[0x7F, 0xFF, 0, 0]), Ok(0x7FFF));
        assert_eq!(
            decode_channel_number(&[0x80, 0x00, 0, 0]),
            Err(AttributeError::BadValue {
                attr: AttrType::CHANNEL_NUMBER,
                value: 0x8000
            })
        );
        assert_eq!(decode_requested_transport(&[17, 0, 0, 0]), Ok(17));
        assert_eq!(
            decode_family(AttrType::REQUESTED_ADDRESS_FAMILY, &[2, 0, 0, 0]),
            Ok(2)
        );
        assert!(decode_family(AttrType::REQUESTED_ADDRESS_FAMILY, &[3, 0, 0, 0]).is_err());
        assert_eq!(decode_even_port(&[0x80]), Ok(true));
        assert_eq!(decode_even_port(&[0x00]), Ok(false));
        assert!(decode_even_port(&[0, 0]).is_err());
        let e = ErrorCode::decode(&[0, 0, 4, 38, b'S']).unwrap();
        assert_eq!((e.code, e.reason), (438, "S"));
        assert!(ErrorCode::decode(&[0, 0, 7, 0]).is_err());
        let algs: Vec<_> = password_algorithms(&[0, 2, 0, 0, 0, 1, 0, 0]).collect();
        assert_eq!(algs, vec![Ok(2), Ok(1)]);
        let algs: Vec<_> = password_algorithms(&[0, 2, 0, 9, 0]).collect();
        assert!(algs[0].is_err());
        assert_eq!(decode_password_algorithm(&[0, 2, 0, 0]), Ok(2));
        assert!(decode_password_algorithm(&[0, 2, 0, 4]).is_err());
    }
}
