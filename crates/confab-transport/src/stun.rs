//! Minimal STUN for SIP keep-alives (RFC 5626 §8 with RFC 8489 §6).
//!
//! A client behind NAT sends STUN Binding requests to the SIP UDP port to keep its NAT
//! binding open and to learn whether its mapped address changed. This module recognises a
//! Binding request and builds the success response with XOR-MAPPED-ADDRESS. It checks the
//! header (two zero bits, the magic cookie, a length that matches the datagram and is a
//! multiple of 4) and ignores attributes: RFC 5626 keep-alives carry no authentication.
//! Everything else STUN/TURN does lives in `confab-stun`.

use std::net::{IpAddr, SocketAddr};

/// The RFC 8489 magic cookie.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// True when the datagram looks like STUN rather than SIP: first two bits zero and the
/// magic cookie at bytes 4..8. SIP messages start with an ASCII letter, so they never pass.
pub fn looks_like_stun(d: &[u8]) -> bool {
    d.len() >= 20 && d[0] & 0xC0 == 0 && d[4..8] == MAGIC_COOKIE.to_be_bytes()
}

/// Why a STUN-looking datagram is not a Binding request we answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StunError {
    /// Shorter than the 20-byte header, or not STUN at all.
    #[error("not a STUN message")]
    NotStun,
    /// The length field does not match the datagram or is not a multiple of 4.
    #[error("STUN length field {declared} does not match the {actual} bytes after the header")]
    BadLength {
        /// Length in the header.
        declared: usize,
        /// Bytes actually present after the header.
        actual: usize,
    },
    /// A STUN message that is not a Binding request (indications and responses get no answer).
    #[error("STUN message type {0:#06x} is not a Binding request")]
    NotBindingRequest(u16),
}

/// Checks a Binding request and writes the success response for a client seen at `mapped`
/// into `out` (cleared first). Returns the response length.
pub fn answer_binding(
    request: &[u8],
    mapped: SocketAddr,
    out: &mut Vec<u8>,
) -> Result<usize, StunError> {
    if !looks_like_stun(request) {
        return Err(StunError::NotStun);
    }
    let declared = usize::from(u16::from_be_bytes([request[2], request[3]]));
    let actual = request.len() - 20;
    if declared != actual || declared % 4 != 0 {
        return Err(StunError::BadLength { declared, actual });
    }
    let ty = u16::from_be_bytes([request[0], request[1]]);
    if ty != BINDING_REQUEST {
        return Err(StunError::NotBindingRequest(ty));
    }
    let txid = &request[8..20];
    out.clear();
    let (family, addr_len) = match mapped.ip() {
        IpAddr::V4(_) => (1u8, 4usize),
        IpAddr::V6(_) => (2u8, 16usize),
    };
    let attr_len = 4 + addr_len;
    out.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    out.extend_from_slice(&(4 + attr_len as u16).to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(txid);
    out.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    out.extend_from_slice(&(attr_len as u16).to_be_bytes());
    out.push(0);
    out.push(family);
    out.extend_from_slice(&(mapped.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    key[4..].copy_from_slice(txid);
    match mapped.ip() {
        IpAddr::V4(ip) => out.extend(ip.octets().iter().zip(key).map(|(a, k)| a ^ k)),
        IpAddr::V6(ip) => out.extend(ip.octets().iter().zip(key).map(|(a, k)| a ^ k)),
    }
    Ok(out.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(ty: u16, attrs: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&ty.to_be_bytes());
        r.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        r.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        r.extend_from_slice(b"0123456789ab");
        r.extend_from_slice(attrs);
        r
    }

    /// RFC 5769 §2.2 (IPv4) and §2.3 (IPv6) give the XOR-MAPPED-ADDRESS bytes for
    /// 192.0.2.1:32853 and 2001:db8:1234:5678:11:2233:4455:6677 port 32853 with transaction
    /// id b7 e7 a7 01 bc 34 d6 86 fa 87 df ae.
    #[test]
    fn rfc5769_vectors() {
        let txid = [
            0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        ];
        let mut req = request(BINDING_REQUEST, &[]);
        req[8..20].copy_from_slice(&txid);
        let mut out = Vec::new();
        answer_binding(&req, "192.0.2.1:32853".parse().unwrap(), &mut out).unwrap();
        assert_eq!(
            &out[20..],
            &[
                0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43
            ]
        );
        assert_eq!(&out[0..4], &[0x01, 0x01, 0x00, 0x0c]);
        assert_eq!(&out[8..20], &txid);
        let v6: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap();
        answer_binding(&req, v6, &mut out).unwrap();
        assert_eq!(
            &out[20..],
            &[
                0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3,
                0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9
            ]
        );
    }

    #[track_caller]
    fn check(input: &[u8], want: Result<(), StunError>) {
        let mut out = Vec::new();
        let got = answer_binding(input, "192.0.2.1:1".parse().unwrap(), &mut out).map(|_| ());
        assert_eq!(got, want);
    }

    #[test]
    fn rejects() {
        check(&request(BINDING_REQUEST, &[]), Ok(()));
        // attributes are ignored (e.g. SOFTWARE)
        check(
            &request(BINDING_REQUEST, &[0x80, 0x22, 0, 1, b'x', 0, 0, 0]),
            Ok(()),
        );
        check(b"OPTIONS sip:a SIP/2.0\r\n\r\n", Err(StunError::NotStun));
        check(
            &request(BINDING_REQUEST, &[])[..19],
            Err(StunError::NotStun),
        );
        check(
            &request(0x0111, &[]),
            Err(StunError::NotBindingRequest(0x0111)),
        );
        check(
            &request(0x0011, &[]),
            Err(StunError::NotBindingRequest(0x0011)),
        );
        let mut r = request(BINDING_REQUEST, &[1, 2, 3, 4]);
        r[3] = 8;
        check(
            &r,
            Err(StunError::BadLength {
                declared: 8,
                actual: 4,
            }),
        );
        check(
            &request(BINDING_REQUEST, &[1, 2]),
            Err(StunError::BadLength {
                declared: 2,
                actual: 2,
            }),
        );
        assert!(!looks_like_stun(b"\r\n\r\n"));
    }
}
