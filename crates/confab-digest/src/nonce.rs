//! Stateless server nonces: an HMAC over expiry and node id.
//!
//! ```text
//! nonce = base64url( expiry(8, BE) | node_id(4, BE) | random(8) | tag(16) )   48 characters
//! tag   = HMAC-SHA-256(secret, "confab-nonce-v1" | expiry | node_id | random)[..16]
//! ```
//!
//! Any front end holding the same secret verifies a nonce without a lookup (a pool shares
//! the secret through its configuration). An expired but authentic nonce is
//! [`NonceStatus::Stale`], so the server answers with `stale=true` and the client retries
//! without asking the user for the password again (RFC 7616 §3.3). The random bytes come
//! from the caller, keeping this module deterministic.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const LABEL: &[u8] = b"confab-nonce-v1";
const RAW_LEN: usize = 36;
/// Length of a minted nonce in characters.
pub const NONCE_LEN: usize = 48;
/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// The server secret nonces are keyed with. Never logged.
#[derive(Clone)]
pub struct NonceSecret {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceSecret(<redacted>)")
    }
}

/// The secret is too short to be a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nonce secret is {0} bytes long; at least 16 are required")]
pub struct SecretTooShort(pub usize);

/// An identifier unique to one minted nonce (its tag), the key of the nonce-count window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NonceId(pub [u8; 16]);

/// What an authentic nonce says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceInfo {
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// The node that minted it.
    pub node_id: u32,
    /// Its identity for replay tracking.
    pub id: NonceId,
}

/// The outcome of [`NonceSecret::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Authentic and not expired.
    Valid(NonceInfo),
    /// Authentic but expired: challenge again with `stale=true`.
    Stale(NonceInfo),
    /// Not minted with this secret (or mangled): challenge again without `stale`.
    Invalid,
}

/// A minted nonce: 48 base64url characters on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Nonce([u8; NONCE_LEN]);

impl Nonce {
    /// The nonce text.
    pub fn as_str(&self) -> &str {
        // Only base64url characters are written.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Display for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonce(..)")
    }
}

impl NonceSecret {
    /// Keys nonces with `secret` (at least [`MIN_SECRET_LEN`] bytes, ideally 32 random bytes).
    pub fn new(secret: &[u8]) -> Result<NonceSecret, SecretTooShort> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretTooShort(secret.len()));
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .map_err(|_| SecretTooShort(secret.len()))?;
        Ok(NonceSecret { mac })
    }

    fn tag(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(LABEL);
        mac.update(body);
        mac
    }

    /// Mints a nonce that expires at `expires_at` (Unix seconds), naming `node_id`, made
    /// unique by `random` (8 bytes from the caller's CSPRNG).
    pub fn mint(&self, expires_at: u64, node_id: u32, random: [u8; 8]) -> Nonce {
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&expires_at.to_be_bytes());
        raw[8..12].copy_from_slice(&node_id.to_be_bytes());
        raw[12..20].copy_from_slice(&random);
        let tag = self.tag(&raw[..20]).finalize().into_bytes();
        raw[20..].copy_from_slice(&tag[..16]);
        let mut out = [0u8; NONCE_LEN];
        // 36 bytes encode to exactly 48 characters without padding.
        let n = URL_SAFE_NO_PAD.encode_slice(raw, &mut out).unwrap_or(0);
        debug_assert_eq!(n, NONCE_LEN);
        Nonce(out)
    }

    /// Checks a nonce a client echoed, at time `now` (Unix seconds). The tag comparison is
    /// constant time. A nonce is valid up to and including its expiry second.
    pub fn verify(&self, nonce: &str, now: u64) -> NonceStatus {
        if nonce.len() != NONCE_LEN {
            return NonceStatus::Invalid;
        }
        let mut raw = [0u8; RAW_LEN];
        match URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) {
            Ok(RAW_LEN) => {}
            _ => return NonceStatus::Invalid,
        }
        if self
            .tag(&raw[..20])
            .verify_truncated_left(&raw[20..])
            .is_err()
        {
            return NonceStatus::Invalid;
        }
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&raw[..8]);
        let mut node = [0u8; 4];
        node.copy_from_slice(&raw[8..12]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&raw[20..]);
        let info = NonceInfo {
            expires_at: u64::from_be_bytes(exp),
            node_id: u32::from_be_bytes(node),
            id: NonceId(id),
        };
        if now > info.expires_at {
            NonceStatus::Stale(info)
        } else {
            NonceStatus::Valid(info)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(b: u8) -> NonceSecret {
        NonceSecret::new(&[b; 32]).unwrap()
    }

    #[test]
    fn mint_verify_stale_invalid() {
        let s = secret(7);
        let n = s.mint(1_000, 42, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(n.as_str().len(), NONCE_LEN);
        let NonceStatus::Valid(info) = s.verify(n.as_str(), 999) else {
            panic!("fresh nonce not valid");
        };
        assert_eq!((info.expires_at, info.node_id), (1_000, 42));
        assert_eq!(s.verify(n.as_str(), 1_000), NonceStatus::Valid(info));
        assert_eq!(s.verify(n.as_str(), 1_001), NonceStatus::Stale(info));
        // Another front end with the same secret accepts it; another secret does not.
        assert_eq!(secret(7).verify(n.as_str(), 10), NonceStatus::Valid(info));
        assert_eq!(secret(8).verify(n.as_str(), 10), NonceStatus::Invalid);
    }

    #[test]
    fn tampering_is_detected() {
        let s = secret(1);
        let n = s.mint(5_000, 1, [9; 8]);
        let text = n.as_str();
        // Changing any single character (expiry, node, random or tag) invalidates it.
        for i in 0..text.len() {
            let mut bytes = text.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(bytes).unwrap();
            assert_eq!(s.verify(&t, 0), NonceStatus::Invalid, "position {i}");
        }
        assert_eq!(s.verify("", 0), NonceStatus::Invalid);
        assert_eq!(s.verify(&text[1..], 0), NonceStatus::Invalid);
        assert_eq!(s.verify(&"!".repeat(NONCE_LEN), 0), NonceStatus::Invalid);
    }

    #[test]
    fn distinct_random_gives_distinct_ids() {
        let s = secret(3);
        let a = s.mint(100, 1, [0; 8]);
        let b = s.mint(100, 1, [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_ne!(a, b);
        let (NonceStatus::Valid(ia), NonceStatus::Valid(ib)) =
            (s.verify(a.as_str(), 0), s.verify(b.as_str(), 0))
        else {
            panic!("not valid");
        };
        assert_ne!(ia.id, ib.id);
    }

    #[test]
    fn short_secret_rejected() {
        assert_eq!(NonceSecret::new(&[0; 15]).unwrap_err(), SecretTooShort(15));
    }
}
