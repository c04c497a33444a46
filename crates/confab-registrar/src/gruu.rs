//! GRUUs (RFC 5627): the public GRUU text and the temporary-GRUU codec.
//!
//! **Public GRUU** (§3.1): the AOR with a `gr` parameter carrying the instance ID,
//! `sip:alice@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6`. It needs no
//! state: resolving it is a lookup of the AOR and a match on the instance.
//!
//! **Temporary GRUU** (§3.2): `sip:tgruu.<token>@<domain>;gr`. Every REGISTER refresh
//! issues a new one, all issued under one Call-ID stay valid while the binding lives, and
//! a third party must not be able to link two of them to each other or to the AOR. The
//! token is
//!
//! ```text
//!   token = base64url( salt(8) || (id(8) || n(4)) XOR K || tag(8) )     (28 bytes, 38 chars)
//!   K     = HMAC-SHA256(key, "k" || salt)[..12]
//!   tag   = HMAC-SHA256(key, "t" || salt || id || n)[..8]
//! ```
//!
//! where `id` is the binding's random temp-GRUU id ([`confab_core::TempGruuState`]), `n`
//! the issue number, `salt` fresh caller randomness and `key` the registrar's GRUU key. The
//! salt makes every token look random; the tag stops forgeries. The store keeps only
//! (`id`, count issued) per binding, so tokens take no space and a restart keeps them
//! valid, provided the key is the same: the key must be persistent and shared by every
//! front end of a pool.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// User-part prefix of temporary GRUUs.
pub const TEMP_GRUU_PREFIX: &str = "tgruu.";

const SALT: usize = 8;
const BODY: usize = 12;
const TAG: usize = 8;
const RAW: usize = SALT + BODY + TAG;

fn mac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// The token of temporary GRUU number `n` of temp-GRUU id `id`.
pub fn encode_temp(key: &[u8; 32], salt: [u8; SALT], id: u64, n: u32) -> String {
    let mut plain = [0u8; BODY];
    plain[..8].copy_from_slice(&id.to_be_bytes());
    plain[8..].copy_from_slice(&n.to_be_bytes());
    let tag = mac(key, &[b"t", &salt, &plain]);
    let stream = mac(key, &[b"k", &salt]);
    let mut raw = [0u8; RAW];
    raw[..SALT].copy_from_slice(&salt);
    for i in 0..BODY {
        raw[SALT + i] = plain[i] ^ stream[i];
    }
    raw[SALT + BODY..].copy_from_slice(&tag[..TAG]);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes a token made by [`encode_temp`] with the same key: `(id, n)`, or `None` for
/// anything else (wrong length, not base64url, forged or made with another key).
pub fn decode_temp(key: &[u8; 32], token: &str) -> Option<(u64, u32)> {
    let mut raw = [0u8; RAW];
    let len = URL_SAFE_NO_PAD.decode_slice(token, &mut raw).ok()?;
    if len != RAW {
        return None;
    }
    let salt = &raw[..SALT];
    let stream = mac(key, &[b"k", salt]);
    let mut plain = [0u8; BODY];
    for i in 0..BODY {
        plain[i] = raw[SALT + i] ^ stream[i];
    }
    let tag = mac(key, &[b"t", salt, &plain]);
    // Constant-time comparison of the tag.
    let diff = tag[..TAG]
        .iter()
        .zip(&raw[SALT + BODY..])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return None;
    }
    let id = u64::from_be_bytes(plain[..8].try_into().ok()?);
    let n = u32::from_be_bytes(plain[8..].try_into().ok()?);
    Some((id, n))
}

/// `sip:tgruu.<token>@<domain>;gr`.
pub fn temp_gruu_uri(domain: &str, token: &str) -> String {
    format!("sip:{TEMP_GRUU_PREFIX}{token}@{domain};gr")
}

/// The instance ID inside a `+sip.instance` value: `<urn:uuid:...>` gives `urn:uuid:...`.
pub fn instance_urn(instance: &str) -> &str {
    instance
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(instance)
}

/// The public GRUU of `aor` (`user@domain`) for `instance` (a `+sip.instance` value), or
/// `None` when the instance ID cannot be a URI parameter value as it stands (then no
/// public GRUU is offered rather than an escaped one clients might mangle).
pub fn public_gruu_uri(aor: &str, instance: &str) -> Option<String> {
    let urn = instance_urn(instance);
    let ok = !urn.is_empty()
        && urn.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_'
                        | b'.'
                        | b'!'
                        | b'~'
                        | b'*'
                        | b'\''
                        | b'('
                        | b')'
                        | b'['
                        | b']'
                        | b'/'
                        | b':'
                        | b'&'
                        | b'+'
                        | b'$'
                        | b'%'
                )
        });
    ok.then(|| format!("sip:{aor};gr={urn}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn temp_tokens_round_trip_and_look_unrelated() {
        let cases = [
            (0u64, 0u32),
            (1, 1),
            (u64::MAX, u32::MAX),
            (0x0123_4567_89ab_cdef, 42),
        ];
        for (i, (id, n)) in cases.into_iter().enumerate() {
            let salt = [i as u8; 8];
            let t = encode_temp(&KEY, salt, id, n);
            assert_eq!(t.len(), 38);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(decode_temp(&KEY, &t), Some((id, n)), "{t}");
            assert_eq!(decode_temp(&[8; 32], &t), None, "another key");
        }
        // Same binding, consecutive issue numbers, different salts: no shared substring
        // of the encrypted part.
        let a = encode_temp(&KEY, [1; 8], 99, 1);
        let b = encode_temp(&KEY, [2; 8], 99, 2);
        assert_ne!(a[11..27], b[11..27]);
    }

    #[test]
    fn tampered_or_malformed_tokens_are_refused() {
        let t = encode_temp(&KEY, [3; 8], 5, 6);
        for i in 0..t.len() {
            let mut bytes = t.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(bytes).unwrap();
            if forged != t {
                assert_eq!(decode_temp(&KEY, &forged), None, "position {i}");
            }
        }
        for bad in ["", "x", "!!!!", &t[..37], &format!("{t}A")] {
            assert_eq!(decode_temp(&KEY, bad), None, "{bad}");
        }
    }

    #[test]
    fn public_gruus() {
        assert_eq!(
            public_gruu_uri(
                "alice@example.com",
                "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"
            )
            .as_deref(),
            Some("sip:alice@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
        );
        assert_eq!(public_gruu_uri("a@b", "<urn:x;y>"), None);
        assert_eq!(public_gruu_uri("a@b", "<>"), None);
        assert_eq!(
            temp_gruu_uri("example.com", "abc"),
            "sip:tgruu.abc@example.com;gr"
        );
    }
}
