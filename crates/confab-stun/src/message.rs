//! STUN message framing (RFC 8489 §5, §14): zero-copy decoding over a byte slice and an
//! encoder that appends to a caller-owned buffer.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |0 0|     STUN Message Type     |         Message Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Magic Cookie                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Transaction ID (96 bits)                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!                  RFC 8489 Figure 2: STUN message header
//! ```
//!
//! Decoding walks the attributes once, without allocating, and records where
//! MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT sit, so that the
//! integrity checks later hash the original bytes in place.

use std::fmt;
use std::net::SocketAddr;

use hmac::{Hmac, Mac};

use crate::attr::{self, AttrType, AttributeError};

/// The fixed value in bytes 4..8 of every RFC 5389/8489 message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Length of the STUN header.
pub const HEADER_LEN: usize = 20;
/// XOR applied to the CRC-32 in FINGERPRINT (RFC 8489 §14.7).
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;
/// Largest number of unknown comprehension-required attributes a decoded message remembers
/// for the 420 response; more are still detected, only the list is cut.
pub const MAX_UNKNOWN: usize = 8;

/// The 96-bit transaction ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransactionId(pub [u8; 12]);

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Message class (RFC 8489 §5, the C1/C0 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// A request, answered by a success or error response.
    Request,
    /// An indication: never answered, errors are silently dropped.
    Indication,
    /// A success response.
    Success,
    /// An error response.
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::Success => 0b10,
            Class::Error => 0b11,
        }
    }
}

/// STUN/TURN method (12 bits). Known values are associated constants; any other value is
/// carried as is so that a server can answer "400 unknown method".
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method(pub u16);

impl Method {
    /// Binding (RFC 8489).
    pub const BINDING: Method = Method(0x001);
    /// Allocate (RFC 8656 §7).
    pub const ALLOCATE: Method = Method(0x003);
    /// Refresh (RFC 8656 §7.3).
    pub const REFRESH: Method = Method(0x004);
    /// Send indication (RFC 8656 §11).
    pub const SEND: Method = Method(0x006);
    /// Data indication (RFC 8656 §11).
    pub const DATA: Method = Method(0x007);
    /// CreatePermission (RFC 8656 §9).
    pub const CREATE_PERMISSION: Method = Method(0x008);
    /// ChannelBind (RFC 8656 §12).
    pub const CHANNEL_BIND: Method = Method(0x009);

    /// The method's name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Method::BINDING => "Binding",
            Method::ALLOCATE => "Allocate",
            Method::REFRESH => "Refresh",
            Method::SEND => "Send",
            Method::DATA => "Data",
            Method::CREATE_PERMISSION => "CreatePermission",
            Method::CHANNEL_BIND => "ChannelBind",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(0x{:03x})", self.name(), self.0)
    }
}

/// Packs method and class into the 14-bit message type (RFC 8489 Figure 3).
pub fn message_type(method: Method, class: Class) -> u16 {
    let m = method.0 & 0x0FFF;
    let c = class.bits();
    ((m & 0x0F80) << 2) | ((m & 0x0070) << 1) | (m & 0x000F) | ((c & 0b10) << 7) | ((c & 0b01) << 4)
}

fn split_type(t: u16) -> (Method, Class) {
    let m = ((t & 0x3E00) >> 2) | ((t & 0x00E0) >> 1) | (t & 0x000F);
    let class = match ((t >> 7) & 0b10) | ((t >> 4) & 0b01) {
        0 => Class::Request,
        1 => Class::Indication,
        2 => Class::Success,
        _ => Class::Error,
    };
    (Method(m), class)
}

/// Why bytes are not a valid STUN message. Every variant names what is wrong; the ones that
/// carry an attribute type name that attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer than 20 bytes.
    #[error("message of {len} bytes is shorter than the 20-byte STUN header")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The two most significant bits are not zero: not STUN (maybe ChannelData, RTP ...).
    #[error("first two bits are not zero: not a STUN message")]
    NotStun,
    /// Magic cookie missing: an RFC 3489 message or not STUN at all.
    #[error("magic cookie 0x{found:08x} is not 0x2112a442")]
    BadMagicCookie {
        /// The value found.
        found: u32,
    },
    /// Message Length is not a multiple of 4.
    #[error("message length {len} is not a multiple of 4")]
    UnalignedLength {
        /// Header length field.
        len: u16,
    },
    /// Message Length disagrees with the bytes present.
    #[error("message length field says {header} bytes of attributes but {actual} are present")]
    LengthMismatch {
        /// The header's Message Length.
        header: usize,
        /// Bytes after the header.
        actual: usize,
    },
    /// An attribute runs past the end of the message.
    #[error("attribute {attr} is truncated: length {len} at offset {offset} exceeds the message")]
    TruncatedAttribute {
        /// The attribute.
        attr: AttrType,
        /// Its declared value length.
        len: u16,
        /// Offset of its header.
        offset: usize,
    },
    /// An attribute follows FINGERPRINT, which must be last.
    #[error("attribute {attr} follows FINGERPRINT, which must be the last attribute")]
    AfterFingerprint {
        /// The offending attribute.
        attr: AttrType,
    },
    /// FINGERPRINT has the wrong length.
    #[error("FINGERPRINT has length {len}, expected 4")]
    BadFingerprintLength {
        /// Its length.
        len: u16,
    },
    /// FINGERPRINT does not match the CRC of the message.
    #[error("FINGERPRINT 0x{found:08x} does not match computed 0x{computed:08x}")]
    FingerprintMismatch {
        /// Value in the message.
        found: u32,
        /// Value computed.
        computed: u32,
    },
}

/// One raw attribute: its type and value (without padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    /// Attribute type.
    pub typ: AttrType,
    /// Value bytes, unpadded.
    pub value: &'a [u8],
}

/// A decoded STUN message borrowing its bytes.
///
/// Only attributes before MESSAGE-INTEGRITY are visible through [`Message::attributes`] and
/// the typed accessors (RFC 8489 §14.5: attributes after it are ignored, other than
/// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT).
#[derive(Clone, Copy)]
pub struct Message<'a> {
    buf: &'a [u8],
    method: Method,
    class: Class,
    txid: TransactionId,
    /// End (exclusive) of the attributes that count.
    attrs_end: usize,
    mi: Option<usize>,
    mi256: Option<usize>,
    fingerprint: bool,
    unknown: [u16; MAX_UNKNOWN],
    n_unknown: u8,
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("method", &self.method)
            .field("class", &self.class)
            .field("txid", &self.txid)
            .field("len", &self.buf.len())
            .finish()
    }
}

/// Reads a big-endian u16 at `i` (caller checked bounds).
fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// Peeks at a datagram's STUN header only: method, class and transaction ID, if the first 20
/// bytes look like STUN. Used to answer 400 to a request whose body is malformed.
pub fn peek_header(buf: &[u8]) -> Option<(Method, Class, TransactionId)> {
    if buf.len() < HEADER_LEN || buf[0] & 0xC0 != 0 {
        return None;
    }
    if u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) != MAGIC_COOKIE {
        return None;
    }
    let (m, c) = split_type(be16(buf, 0));
    let mut t = [0u8; 12];
    t.copy_from_slice(&buf[8..20]);
    Some((m, c, TransactionId(t)))
}

impl<'a> Message<'a> {
    /// Decodes one message that must span all of `buf` (a datagram, or a frame cut by
    /// [`crate::framing::frame_len`]). Checks the header, walks the attributes and verifies
    /// FINGERPRINT if present. Never allocates.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::TooShort { len: buf.len() });
        }
        if buf[0] & 0xC0 != 0 {
            return Err(DecodeError::NotStun);
        }
        let cookie = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if cookie != MAGIC_COOKIE {
            return Err(DecodeError::BadMagicCookie { found: cookie });
        }
        let len = be16(buf, 2);
        if !len.is_multiple_of(4) {
            return Err(DecodeError::UnalignedLength { len });
        }
        if usize::from(len) != buf.len() - HEADER_LEN {
            return Err(DecodeError::LengthMismatch {
                header: usize::from(len),
                actual: buf.len() - HEADER_LEN,
            });
        }
        let (method, class) = split_type(be16(buf, 0));
        let mut t = [0u8; 12];
        t.copy_from_slice(&buf[8..20]);
        let mut msg = Message {
            buf,
            method,
            class,
            txid: TransactionId(t),
            attrs_end: buf.len(),
            mi: None,
            mi256: None,
            fingerprint: false,
            unknown: [0; MAX_UNKNOWN],
            n_unknown: 0,
        };
        let mut off = HEADER_LEN;
        // true once MESSAGE-INTEGRITY(-SHA256) was seen: later attributes are ignored.
        let mut sealed = false;
        while off < buf.len() {
            if buf.len() - off < 4 {
                // Cannot happen with an aligned length, kept for robustness.
                return Err(DecodeError::TruncatedAttribute {
                    attr: AttrType(0),
                    len: 0,
                    offset: off,
                });
            }
            let typ = AttrType(be16(buf, off));
            let vlen = be16(buf, off + 2);
            let padded = (usize::from(vlen) + 3) & !3;
            if off + 4 + padded > buf.len() {
                return Err(DecodeError::TruncatedAttribute {
                    attr: typ,
                    len: vlen,
                    offset: off,
                });
            }
            if msg.fingerprint {
                return Err(DecodeError::AfterFingerprint { attr: typ });
            }
            match typ {
                AttrType::FINGERPRINT => {
                    if vlen != 4 {
                        return Err(DecodeError::BadFingerprintLength { len: vlen });
                    }
                    let found = u32::from_be_bytes([
                        buf[off + 4],
                        buf[off + 5],
                        buf[off + 6],
                        buf[off + 7],
                    ]);
                    let computed = fingerprint_of(buf, off);
                    if found != computed {
                        return Err(DecodeError::FingerprintMismatch { found, computed });
                    }
                    msg.fingerprint = true;
                    if !sealed {
                        msg.attrs_end = off;
                    }
                }
                AttrType::MESSAGE_INTEGRITY if !sealed => {
                    msg.mi = Some(off);
                    msg.attrs_end = off;
                    sealed = true;
                }
                AttrType::MESSAGE_INTEGRITY_SHA256 if msg.mi256.is_none() => {
                    msg.mi256 = Some(off);
                    if !sealed {
                        msg.attrs_end = off;
                    }
                    sealed = true;
                }
                _ if sealed => {}
                _ => {
                    if typ.is_comprehension_required() && !typ.is_known() {
                        if usize::from(msg.n_unknown) < MAX_UNKNOWN {
                            msg.unknown[usize::from(msg.n_unknown)] = typ.0;
                        }
                        msg.n_unknown = msg.n_unknown.saturating_add(1);
                    }
                }
            }
            off += 4 + padded;
        }
        Ok(msg)
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }
    /// The class.
    pub fn class(&self) -> Class {
        self.class
    }
    /// The transaction ID.
    pub fn transaction_id(&self) -> TransactionId {
        self.txid
    }
    /// The whole message as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
    /// True if a valid FINGERPRINT was present.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint
    }
    /// True if MESSAGE-INTEGRITY is present.
    pub fn has_integrity(&self) -> bool {
        self.mi.is_some()
    }
    /// True if MESSAGE-INTEGRITY-SHA256 is present.
    pub fn has_integrity_sha256(&self) -> bool {
        self.mi256.is_some()
    }
    /// Unknown comprehension-required attribute types (for 420 + UNKNOWN-ATTRIBUTES); at most
    /// [`MAX_UNKNOWN`] are listed.
    pub fn unknown_comprehension_required(&self) -> &[u16] {
        &self.unknown[..usize::from(self.n_unknown).min(MAX_UNKNOWN)]
    }

    /// Iterates over the attributes that count (those before MESSAGE-INTEGRITY).
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            buf: &self.buf[..self.attrs_end],
            off: HEADER_LEN,
        }
    }

    /// The first attribute of type `typ` (RFC 8489 §14: only the first occurrence needs
    /// processing).
    pub fn get(&self, typ: AttrType) -> Option<&'a [u8]> {
        self.attributes().find(|a| a.typ == typ).map(|a| a.value)
    }

    /// Verifies MESSAGE-INTEGRITY (HMAC-SHA1) with `key`.
    pub fn verify_integrity(&self, key: &[u8]) -> Result<(), IntegrityError> {
        let off = self.mi.ok_or(IntegrityError::Missing {
            attr: AttrType::MESSAGE_INTEGRITY,
        })?;
        let vlen = be16(self.buf, off + 2);
        if vlen != 20 {
            return Err(IntegrityError::BadLength {
                attr: AttrType::MESSAGE_INTEGRITY,
                len: vlen,
            });
        }
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes any key length");
        feed_adjusted(&mut mac, self.buf, off, 24);
        mac.verify_slice(&self.buf[off + 4..off + 24])
            .map_err(|_| IntegrityError::Mismatch {
                attr: AttrType::MESSAGE_INTEGRITY,
            })
    }

    /// Verifies MESSAGE-INTEGRITY-SHA256 with `key`, accepting the truncations of §14.6
    /// (16 to 32 bytes, a multiple of 4).
    pub fn verify_integrity_sha256(&self, key: &[u8]) -> Result<(), IntegrityError> {
        let attr = AttrType::MESSAGE_INTEGRITY_SHA256;
        let off = self.mi256.ok_or(IntegrityError::Missing { attr })?;
        let vlen = be16(self.buf, off + 2);
        if !(16..=32).contains(&vlen) || !vlen.is_multiple_of(4) {
            return Err(IntegrityError::BadLength { attr, len: vlen });
        }
        let vlen = usize::from(vlen);
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        feed_adjusted(&mut mac, self.buf, off, 4 + vlen);
        mac.verify_truncated_left(&self.buf[off + 4..off + 4 + vlen])
            .map_err(|_| IntegrityError::Mismatch { attr })
    }

    /// Typed read of an attribute through a decoder from [`crate::attr`].
    pub fn read<T>(
        &self,
        typ: AttrType,
        f: impl FnOnce(&'a [u8], &TransactionId) -> Result<T, AttributeError>,
    ) -> Result<Option<T>, AttributeError> {
        match self.get(typ) {
            None => Ok(None),
            Some(v) => f(v, &self.txid).map(Some),
        }
    }

    /// USERNAME as UTF-8 (at most 513 bytes).
    pub fn username(&self) -> Result<Option<&'a str>, AttributeError> {
        self.read(AttrType::USERNAME, |v, _| {
            attr::utf8(AttrType::USERNAME, v, 513)
        })
    }
    /// REALM as UTF-8 (fewer than 763 bytes).
    pub fn realm(&self) -> Result<Option<&'a str>, AttributeError> {
        self.read(AttrType::REALM, |v, _| attr::utf8(AttrType::REALM, v, 763))
    }
    /// NONCE as bytes (fewer than 763 bytes).
    pub fn nonce(&self) -> Result<Option<&'a [u8]>, AttributeError> {
        self.read(AttrType::NONCE, |v, _| {
            if v.len() > 763 {
                Err(AttributeError::TooLong {
                    attr: AttrType::NONCE,
                    len: v.len(),
                    max: 763,
                })
            } else {
                Ok(v)
            }
        })
    }
    /// USERHASH (32 bytes).
    pub fn userhash(&self) -> Result<Option<&'a [u8; 32]>, AttributeError> {
        self.read(AttrType::USERHASH, |v, _| {
            v.try_into().map_err(|_| AttributeError::BadLength {
                attr: AttrType::USERHASH,
                len: v.len(),
            })
        })
    }
    /// An XOR-encoded address attribute (XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS,
    /// XOR-RELAYED-ADDRESS).
    pub fn xor_address(&self, typ: AttrType) -> Result<Option<SocketAddr>, AttributeError> {
        self.read(typ, |v, t| attr::decode_xor_address(typ, v, t))
    }
    /// Every XOR-PEER-ADDRESS, in order (CreatePermission may carry several).
    pub fn xor_peer_addresses(
        &self,
    ) -> impl Iterator<Item = Result<SocketAddr, AttributeError>> + 'a {
        let txid = self.txid;
        self.attributes()
            .filter(|a| a.typ == AttrType::XOR_PEER_ADDRESS)
            .map(move |a| attr::decode_xor_address(AttrType::XOR_PEER_ADDRESS, a.value, &txid))
    }
    /// A 32-bit attribute such as LIFETIME.
    pub fn u32_attr(&self, typ: AttrType) -> Result<Option<u32>, AttributeError> {
        self.read(typ, |v, _| attr::decode_u32(typ, v))
    }
    /// ERROR-CODE.
    pub fn error_code(&self) -> Result<Option<attr::ErrorCode<'a>>, AttributeError> {
        self.read(AttrType::ERROR_CODE, |v, _| attr::ErrorCode::decode(v))
    }
}

/// Iterator over raw attributes. Cannot fail: [`Message::decode`] already checked framing.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    buf: &'a [u8],
    off: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.off + 4 > self.buf.len() {
            return None;
        }
        let typ = AttrType(be16(self.buf, self.off));
        let len = usize::from(be16(self.buf, self.off + 2));
        let start = self.off + 4;
        let value = self.buf.get(start..start + len)?;
        self.off = start + ((len + 3) & !3);
        Some(RawAttribute { typ, value })
    }
}

/// Feeds `buf[..off]` to `mac` with the header length rewritten so that the message appears
/// to end `attr_total` bytes after `off` (RFC 8489 §14.5).
fn feed_adjusted<M: Mac>(mac: &mut M, buf: &[u8], off: usize, attr_total: usize) {
    let adjusted = (off - HEADER_LEN + attr_total) as u16;
    mac.update(&buf[0..2]);
    mac.update(&adjusted.to_be_bytes());
    mac.update(&buf[4..off]);
}

fn fingerprint_of(buf: &[u8], off: usize) -> u32 {
    let adjusted = (off - HEADER_LEN + 8) as u16;
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[0..2]);
    h.update(&adjusted.to_be_bytes());
    h.update(&buf[4..off]);
    h.finalize() ^ FINGERPRINT_XOR
}

/// MESSAGE-INTEGRITY(-SHA256) verification failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    /// The attribute is absent.
    #[error("{attr} is missing")]
    Missing {
        /// Which integrity attribute.
        attr: AttrType,
    },
    /// Wrong value length.
    #[error("{attr} has invalid length {len}")]
    BadLength {
        /// Which integrity attribute.
        attr: AttrType,
        /// Its length.
        len: u16,
    },
    /// HMAC does not match: wrong key or tampered message.
    #[error("{attr} does not match")]
    Mismatch {
        /// Which integrity attribute.
        attr: AttrType,
    },
}

/// Encoding failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A value longer than 65535 bytes or a message longer than 65535 + 20.
    #[error("attribute {attr} with {len} bytes does not fit a STUN message")]
    TooLong {
        /// The attribute.
        attr: AttrType,
        /// Its length.
        len: usize,
    },
}

/// Appends one STUN message to a caller buffer. Steady state does not allocate as long as
/// the caller reuses the buffer.
///
/// Order of calls: [`Encoder::new`], attributes, then optionally
/// [`Encoder::message_integrity`] / [`Encoder::message_integrity_sha256`], then optionally
/// [`Encoder::fingerprint`], then [`Encoder::finish`].
#[derive(Debug)]
pub struct Encoder<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
    txid: TransactionId,
}

impl<'b> Encoder<'b> {
    /// Starts a message at the end of `buf`.
    pub fn new(buf: &'b mut Vec<u8>, method: Method, class: Class, txid: TransactionId) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&message_type(method, class).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&txid.0);
        Encoder { buf, start, txid }
    }

    /// Continues a message whose header (and maybe some attributes) already sits at
    /// `buf[start..]`, e.g. one begun by another function.
    pub fn resume(buf: &'b mut Vec<u8>, start: usize) -> Self {
        let mut t = [0u8; 12];
        t.copy_from_slice(&buf[start + 8..start + 20]);
        Encoder {
            buf,
            start,
            txid: TransactionId(t),
        }
    }

    /// The transaction ID of the message being built.
    pub fn transaction_id(&self) -> TransactionId {
        self.txid
    }

    fn set_len(&mut self) {
        let len = (self.buf.len() - self.start - HEADER_LEN) as u16;
        self.buf[self.start + 2..self.start + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// Appends an attribute with zero padding.
    pub fn attr(&mut self, typ: AttrType, value: &[u8]) -> Result<(), EncodeError> {
        self.attr_with(typ, value.len(), |out| out.copy_from_slice(value))
    }

    /// Appends an attribute of `len` bytes whose value `fill` writes in place.
    pub fn attr_with(
        &mut self,
        typ: AttrType,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), EncodeError> {
        let padded = (len + 3) & !3;
        let body = self.buf.len() - self.start - HEADER_LEN;
        if len > usize::from(u16::MAX) || body + 4 + padded > usize::from(u16::MAX) {
            return Err(EncodeError::TooLong { attr: typ, len });
        }
        self.buf.extend_from_slice(&typ.0.to_be_bytes());
        self.buf.extend_from_slice(&(len as u16).to_be_bytes());
        let at = self.buf.len();
        self.buf.resize(at + padded, 0);
        fill(&mut self.buf[at..at + len]);
        self.set_len();
        Ok(())
    }

    /// Appends a 32-bit attribute (LIFETIME, REQUESTED-TRANSPORT ...).
    pub fn u32_attr(&mut self, typ: AttrType, v: u32) -> Result<(), EncodeError> {
        self.attr(typ, &v.to_be_bytes())
    }

    /// Appends an XOR-encoded address attribute.
    pub fn xor_address(&mut self, typ: AttrType, addr: SocketAddr) -> Result<(), EncodeError> {
        let txid = self.txid;
        let len = if addr.is_ipv4() { 8 } else { 20 };
        self.attr_with(typ, len, |out| attr::encode_xor_address(addr, &txid, out))
    }

    /// Appends a plain address attribute (MAPPED-ADDRESS, ALTERNATE-SERVER).
    pub fn address(&mut self, typ: AttrType, addr: SocketAddr) -> Result<(), EncodeError> {
        let len = if addr.is_ipv4() { 8 } else { 20 };
        self.attr_with(typ, len, |out| attr::encode_address(addr, out))
    }

    /// Appends ERROR-CODE.
    pub fn error_code(&mut self, code: u16, reason: &str) -> Result<(), EncodeError> {
        let r = reason.as_bytes();
        self.attr_with(AttrType::ERROR_CODE, 4 + r.len(), |out| {
            out[2] = (code / 100) as u8 & 0x07;
            out[3] = (code % 100) as u8;
            out[4..].copy_from_slice(r);
        })
    }

    /// Appends UNKNOWN-ATTRIBUTES.
    pub fn unknown_attributes(&mut self, types: &[u16]) -> Result<(), EncodeError> {
        self.attr_with(AttrType::UNKNOWN_ATTRIBUTES, types.len() * 2, |out| {
            for (chunk, t) in out.chunks_exact_mut(2).zip(types) {
                chunk.copy_from_slice(&t.to_be_bytes());
            }
        })
    }

    /// Appends MESSAGE-INTEGRITY (HMAC-SHA1 keyed with `key`) over everything so far.
    pub fn message_integrity(&mut self, key: &[u8]) -> Result<(), EncodeError> {
        let off = self.buf.len();
        self.attr_with(AttrType::MESSAGE_INTEGRITY, 20, |_| {})?;
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(&self.buf[self.start..off]);
        let tag = mac.finalize().into_bytes();
        self.buf[off + 4..off + 24].copy_from_slice(&tag);
        Ok(())
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 (full 32 bytes) over everything so far.
    pub fn message_integrity_sha256(&mut self, key: &[u8]) -> Result<(), EncodeError> {
        let off = self.buf.len();
        self.attr_with(AttrType::MESSAGE_INTEGRITY_SHA256, 32, |_| {})?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(&self.buf[self.start..off]);
        let tag = mac.finalize().into_bytes();
        self.buf[off + 4..off + 36].copy_from_slice(&tag);
        Ok(())
    }

    /// Appends FINGERPRINT.
    pub fn fingerprint(&mut self) -> Result<(), EncodeError> {
        let off = self.buf.len();
        self.attr_with(AttrType::FINGERPRINT, 4, |_| {})?;
        let crc = crc32fast::hash(&self.buf[self.start..off]) ^ FINGERPRINT_XOR;
        self.buf[off + 4..off + 8].copy_from_slice(&crc.to_be_bytes());
        Ok(())
    }

    /// Ends the message; returns its length in bytes.
    pub fn finish(self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_type(method: Method, class: Class, wire: u16) {
        assert_eq!(message_type(method, class), wire);
        assert_eq!(split_type(wire), (method, class));
    }

    #[test]
    fn message_types_follow_figure_3() {
        check_type(Method::BINDING, Class::Request, 0x0001);
        check_type(Method::BINDING, Class::Success, 0x0101);
        check_type(Method::BINDING, Class::Error, 0x0111);
        check_type(Method::ALLOCATE, Class::Request, 0x0003);
        check_type(Method::ALLOCATE, Class::Error, 0x0113);
        check_type(Method::SEND, Class::Indication, 0x0016);
        check_type(Method::DATA, Class::Indication, 0x0017);
        check_type(Method::CHANNEL_BIND, Class::Success, 0x0109);
        check_type(Method(0xFFF), Class::Error, 0x3FFF);
    }

    #[track_caller]
    fn check_err(bytes: &[u8], expected: DecodeError) {
        assert_eq!(Message::decode(bytes).unwrap_err(), expected);
    }

    #[test]
    fn framing_errors_name_the_problem() {
        let mut ok = vec![0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42];
        ok.extend_from_slice(&[7; 12]);
        assert!(Message::decode(&ok).is_ok());
        check_err(&ok[..19], DecodeError::TooShort { len: 19 });
        let mut b = ok.clone();
        b[0] = 0x40;
        check_err(&b, DecodeError::NotStun);
        let mut b = ok.clone();
        b[4] = 0;
        check_err(&b, DecodeError::BadMagicCookie { found: 0x0012_A442 });
        let mut b = ok.clone();
        b[3] = 2;
        check_err(&b, DecodeError::UnalignedLength { len: 2 });
        let mut b = ok.clone();
        b[3] = 4;
        check_err(
            &b,
            DecodeError::LengthMismatch {
                header: 4,
                actual: 0,
            },
        );
        let mut b = ok.clone();
        b[3] = 8;
        b.extend_from_slice(&[0x00, 0x06, 0x00, 0x09, b'a', b'b', b'c', b'd']);
        check_err(
            &b,
            DecodeError::TruncatedAttribute {
                attr: AttrType::USERNAME,
                len: 9,
                offset: 20,
            },
        );
    }

    #[test]
    fn encoder_then_decoder_with_integrity_and_fingerprint() {
        let mut buf = vec![0xAA]; // pre-existing bytes must be kept
        let txid = TransactionId([1; 12]);
        let mut e = Encoder::new(&mut buf, Method::ALLOCATE, Class::Request, txid);
        e.u32_attr(AttrType::REQUESTED_TRANSPORT, 17 << 24).unwrap();
        e.attr(AttrType::USERNAME, b"alice").unwrap();
        e.message_integrity(b"key").unwrap();
        e.message_integrity_sha256(b"key").unwrap();
        e.fingerprint().unwrap();
        let n = e.finish();
        assert_eq!(n, buf.len() - 1);
        let m = Message::decode(&buf[1..]).unwrap();
        assert_eq!(m.method(), Method::ALLOCATE);
        assert_eq!(m.username().unwrap(), Some("alice"));
        assert!(m.has_fingerprint());
        m.verify_integrity(b"key").unwrap();
        m.verify_integrity_sha256(b"key").unwrap();
        assert_eq!(
            m.verify_integrity(b"other"),
            Err(IntegrityError::Mismatch {
                attr: AttrType::MESSAGE_INTEGRITY
            })
        );
        // Attributes after MESSAGE-INTEGRITY are not visible.
        assert_eq!(m.attributes().count(), 2);
    }

    #[test]
    fn attributes_after_integrity_are_ignored_and_fingerprint_must_be_last() {
        let mut buf = Vec::new();
        let mut e = Encoder::new(
            &mut buf,
            Method::BINDING,
            Class::Request,
            TransactionId([2; 12]),
        );
        e.message_integrity(b"k").unwrap();
        e.attr(AttrType::USERNAME, b"late").unwrap();
        e.attr(AttrType(0x0031), b"x").unwrap(); // unknown but after MI: ignored
        e.finish();
        let m = Message::decode(&buf).unwrap();
        assert_eq!(m.username().unwrap(), None);
        assert!(m.unknown_comprehension_required().is_empty());

        let mut buf = Vec::new();
        let mut e = Encoder::new(
            &mut buf,
            Method::BINDING,
            Class::Request,
            TransactionId([2; 12]),
        );
        e.fingerprint().unwrap();
        e.attr(AttrType::SOFTWARE, b"x").unwrap();
        e.finish();
        check_err(
            &buf,
            DecodeError::AfterFingerprint {
                attr: AttrType::SOFTWARE,
            },
        );
    }

    #[test]
    fn unknown_comprehension_required_are_collected() {
        let mut buf = Vec::new();
        let mut e = Encoder::new(
            &mut buf,
            Method::BINDING,
            Class::Request,
            TransactionId([3; 12]),
        );
        e.attr(AttrType(0x0031), b"").unwrap();
        e.attr(AttrType(0x8031), b"").unwrap(); // optional: ignored
        e.attr(AttrType(0x0777), b"abc").unwrap();
        e.finish();
        let m = Message::decode(&buf).unwrap();
        assert_eq!(m.unknown_comprehension_required(), &[0x0031, 0x0777]);
    }
}
