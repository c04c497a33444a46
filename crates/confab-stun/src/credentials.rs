//! Long-term credential mechanics (RFC 8489 §9.2): key derivation for the MD5 and SHA-256
//! password algorithms, USERHASH, the nonce cookie carrying the STUN security feature set,
//! and the TURN REST API credential scheme (username `expiry:user`, password
//! base64(HMAC-SHA1(secret, username)), as coturn's `use-auth-secret`), plus RFC 7065 URIs.
//!
//! Inputs are used as given: OpaqueString/SASLprep preparation of usernames and passwords is
//! the caller's job (REST credentials are ASCII and unaffected).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use md5::Digest as _;

use crate::attr::PasswordAlgorithm;

/// The prefix of an RFC 8489 §9.2 nonce that carries a security feature set.
pub const NONCE_COOKIE: &str = "obMatJos2";

/// A long-term key: MD5 (16 bytes) or SHA-256 (32 bytes) of `username:realm:password`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LongTermKey {
    /// PASSWORD-ALGORITHM MD5 (also the legacy RFC 5389 key).
    Md5([u8; 16]),
    /// PASSWORD-ALGORITHM SHA-256.
    Sha256([u8; 32]),
}

impl std::fmt::Debug for LongTermKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LongTermKey::Md5(_) => "LongTermKey::Md5(..)",
            LongTermKey::Sha256(_) => "LongTermKey::Sha256(..)",
        })
    }
}

impl LongTermKey {
    /// Derives the key for `alg`.
    pub fn derive(alg: PasswordAlgorithm, username: &str, realm: &str, password: &str) -> Self {
        match alg {
            PasswordAlgorithm::Md5 => {
                let mut h = md5::Md5::new();
                for part in [username, ":", realm, ":", password] {
                    h.update(part.as_bytes());
                }
                LongTermKey::Md5(h.finalize().into())
            }
            PasswordAlgorithm::Sha256 => {
                let mut h = sha2::Sha256::new();
                for part in [username, ":", realm, ":", password] {
                    h.update(part.as_bytes());
                }
                LongTermKey::Sha256(h.finalize().into())
            }
        }
    }
    /// Key bytes, to feed MESSAGE-INTEGRITY(-SHA256).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            LongTermKey::Md5(k) => k,
            LongTermKey::Sha256(k) => k,
        }
    }
    /// Which algorithm produced the key.
    pub fn algorithm(&self) -> PasswordAlgorithm {
        match self {
            LongTermKey::Md5(_) => PasswordAlgorithm::Md5,
            LongTermKey::Sha256(_) => PasswordAlgorithm::Sha256,
        }
    }
}

/// USERHASH = SHA-256(username ":" realm) (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.finalize().into()
}

/// The STUN Security Feature set of a nonce cookie. Per RFC 8489 erratum 6290, bit 0 is the
/// rightmost (least significant) bit of the 24-bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecurityFeatures {
    /// Bit 0: the server supports PASSWORD-ALGORITHMS.
    pub password_algorithms: bool,
    /// Bit 1: the server supports USERHASH.
    pub username_anonymity: bool,
}

impl SecurityFeatures {
    /// The 24-bit value.
    pub fn bits(self) -> u32 {
        u32::from(self.password_algorithms) | (u32::from(self.username_anonymity) << 1)
    }
    /// The 13-character nonce prefix: cookie plus 4 base64 characters of the set.
    pub fn nonce_prefix(self) -> [u8; 13] {
        let mut out = [0u8; 13];
        out[..9].copy_from_slice(NONCE_COOKIE.as_bytes());
        let b = self.bits().to_be_bytes();
        B64.encode_slice(&b[1..4], &mut out[9..13])
            .expect("3 bytes encode to 4 characters");
        out
    }
    /// Reads the feature set from a nonce, `None` if it has no cookie.
    pub fn from_nonce(nonce: &[u8]) -> Option<Self> {
        let rest = nonce.strip_prefix(NONCE_COOKIE.as_bytes())?;
        let mut b = [0u8; 3];
        let n = B64.decode_slice(rest.get(..4)?, &mut b).ok()?;
        if n != 3 {
            return None;
        }
        let bits = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        Some(SecurityFeatures {
            password_algorithms: bits & 1 != 0,
            username_anonymity: bits & 2 != 0,
        })
    }
}

/// Credentials in the TURN REST API scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestCredentials {
    /// `expiry:user`, expiry in UNIX seconds.
    pub username: String,
    /// base64(HMAC-SHA1(secret, username)).
    pub password: String,
    /// UNIX time (seconds) after which the server refuses them.
    pub expires_at_unix: u64,
}

/// The password that the REST scheme assigns to `username` under `secret`.
pub fn rest_password(secret: &[u8], username: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// Mints REST credentials for `user`, valid for `ttl_s` seconds from `now_unix`. Pure: the
/// caller supplies the time. `user` may contain anything but is not checked for ':' (coturn
/// splits at the first ':' only, and so does [`parse_rest_username`]).
pub fn mint_rest_credentials(
    secret: &[u8],
    user: &str,
    now_unix: u64,
    ttl_s: u64,
) -> RestCredentials {
    let expires_at_unix = now_unix.saturating_add(ttl_s);
    let username = format!("{expires_at_unix}:{user}");
    let password = rest_password(secret, &username);
    RestCredentials {
        username,
        password,
        expires_at_unix,
    }
}

/// Splits a REST username into (expiry, user). Also accepts coturn's `user:expiry` order
/// when the first field is not a number but the last is. `None` if no field is a timestamp.
pub fn parse_rest_username(username: &str) -> Option<(u64, &str)> {
    let (a, b) = username.split_once(':')?;
    if let Ok(t) = a.parse::<u64>() {
        return Some((t, b));
    }
    let (user, t) = username.rsplit_once(':')?;
    t.parse::<u64>().ok().map(|t| (t, user))
}

/// Transport of a TURN URI (RFC 7065).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriTransport {
    /// `turn:host:port?transport=udp`
    Udp,
    /// `turn:host:port?transport=tcp`
    Tcp,
    /// `turns:host:port?transport=tcp`
    Tls,
}

/// Formats an RFC 7065 TURN URI. IPv6 literals are bracketed.
pub fn turn_uri(host: &str, port: u16, transport: UriTransport) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    match transport {
        UriTransport::Udp => format!("turn:{host}:{port}?transport=udp"),
        UriTransport::Tcp => format!("turn:{host}:{port}?transport=tcp"),
        UriTransport::Tls => format!("turns:{host}:{port}?transport=tcp"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_credentials_match_coturn_scheme() {
        // Expected password computed independently:
        // printf '1700000000:alice' | openssl dgst -sha1 -hmac secret -binary | base64
        let c = mint_rest_credentials(b"secret", "alice", 1_699_913_600, 86_400);
        assert_eq!(c.username, "1700000000:alice");
        assert_eq!(c.expires_at_unix, 1_700_000_000);
        assert_eq!(c.password, "d8soP47RbdIKLDUOpnJPVQyq5Ts=");
        assert_eq!(
            parse_rest_username(&c.username),
            Some((1_700_000_000, "alice"))
        );
        assert_eq!(
            parse_rest_username("bob:1700000000"),
            Some((1_700_000_000, "bob"))
        );
        assert_eq!(parse_rest_username("a:b:c"), None);
        assert_eq!(parse_rest_username("plain"), None);
    }

    #[test]
    fn uris() {
        assert_eq!(
            turn_uri("edge.example.com", 3478, UriTransport::Udp),
            "turn:edge.example.com:3478?transport=udp"
        );
        assert_eq!(
            turn_uri("2001:db8::1", 5349, UriTransport::Tls),
            "turns:[2001:db8::1]:5349?transport=tcp"
        );
    }

    #[test]
    fn nonce_cookie_round_trips_with_erratum_bit_order() {
        // RFC 8489 Appendix B.1 (corrected by erratum 6268) uses "obMatJos2AAAC...": only
        // username anonymity (bit 1).
        let f = SecurityFeatures::from_nonce(b"obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA").unwrap();
        assert_eq!(
            f,
            SecurityFeatures {
                password_algorithms: false,
                username_anonymity: true
            }
        );
        let all = SecurityFeatures {
            password_algorithms: true,
            username_anonymity: true,
        };
        assert_eq!(&all.nonce_prefix(), b"obMatJos2AAAD");
        assert_eq!(SecurityFeatures::from_nonce(&all.nonce_prefix()), Some(all));
        assert_eq!(
            SecurityFeatures::from_nonce(b"f//499k954d6OL34oL9FSTvy64sA"),
            None
        );
        assert_eq!(SecurityFeatures::from_nonce(b"obMatJos2A"), None);
    }

    #[test]
    fn key_derivation() {
        // printf 'user:realm:pass' | md5sum
        let k = LongTermKey::derive(PasswordAlgorithm::Md5, "user", "realm", "pass");
        assert_eq!(
            k.as_bytes(),
            &[
                0x84, 0x93, 0xfb, 0xc5, 0x3b, 0xa5, 0x82, 0xfb, 0x4c, 0x04, 0x4c, 0x45, 0x6b, 0xdc,
                0x40, 0xeb
            ]
        );
        let k = LongTermKey::derive(PasswordAlgorithm::Sha256, "user", "realm", "pass");
        assert_eq!(k.as_bytes().len(), 32);
        assert_eq!(k.algorithm(), PasswordAlgorithm::Sha256);
    }
}
