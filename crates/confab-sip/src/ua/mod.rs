//! User-agent cores (RFC 3261 §8), sans-IO.
//!
//! **What it does:** the [`UacCore`] builds requests (§8.1.1: Via with a branch from the
//! caller's randomness, Max-Forwards, From tag, Call-ID, CSeq, Contact, the pre-existing
//! route set with loose routing and the §12.2.1.1 strict-route fallback), builds in-dialog
//! requests and the ACK for a 2xx, and answers 401/407 challenges with client digest
//! (`confab-digest`: MD5, SHA-256, SHA-512-256 per RFC 8760, `qop=auth`, nonce count and
//! cnonce, picking the strongest offered algorithm it supports). The [`UasCore`] validates
//! a new request before the application sees it (§8.2: 405 with Allow, 416, 482 for
//! merged requests, 420 with Unsupported, 415 with Accept / Accept-Encoding).
//!
//! **What it does not do:** run transactions or dialogs (it gives their inputs: see
//! [`crate::transaction`] and [`crate::dialog`]), resolve next hops (RFC 3263 is the
//! transport's), choose what to answer (the application does), keep registrations.
//!
//! Randomness comes from the caller as [`Entropy`]: 32 bytes from a CSPRNG per call that
//! needs fresh identifiers.

mod auth;
mod uac;
mod uas;

pub use auth::{AuthError, Credential};
pub use uac::{UacConfig, UacCore};
pub use uas::{UasConfig, UasCore, UasRejection};

/// 32 random bytes supplied by the caller (the crate has no RNG). Branches, tags, Call-IDs
/// and cnonces are derived from disjoint parts of it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Entropy(pub [u8; 32]);

impl std::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Entropy(..)")
    }
}

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn token(bytes: &[u8], out: &mut String) {
    // 5 bits per character (base32, lower case): tokens, valid in every header.
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
}

impl Entropy {
    /// A Via branch: `z9hG4bK` + 80 random bits.
    #[must_use]
    pub fn branch(&self) -> String {
        let mut s = String::with_capacity(24);
        s.push_str("z9hG4bK");
        token(&self.0[0..10], &mut s);
        s
    }

    /// A From/To tag: 60 random bits (RFC 3261 §19.3 asks for at least 32).
    #[must_use]
    pub fn tag(&self) -> String {
        let mut s = String::with_capacity(12);
        token(&self.0[10..18], &mut s);
        s
    }

    /// A Call-ID local part: 110 random bits.
    #[must_use]
    pub fn call_id(&self) -> String {
        let mut s = String::with_capacity(24);
        token(&self.0[18..32], &mut s);
        s
    }

    /// A digest cnonce: 128 random bits as hex.
    #[must_use]
    pub fn cnonce(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(32);
        for b in &self.0[16..32] {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

/// Apply a route set to a Request-URI (§12.2.1.1, also used for a pre-existing route set,
/// §8.1.1.1): loose routing keeps the Request-URI and sends the route set as Route; if the
/// first route lacks `lr` it becomes the Request-URI and the original target goes last in
/// Route. Returns (Request-URI, Route values).
#[must_use]
pub fn apply_route_set(target: &str, route_set: &[String]) -> (String, Vec<String>) {
    let strict = route_set.first().is_some_and(|r| !route_is_loose(r));
    if strict {
        let mut routes: Vec<String> = route_set[1..].to_vec();
        routes.push(format!("<{target}>"));
        let first = strip_brackets(&route_set[0]);
        let first = first.split('?').next().unwrap_or(first);
        (first.to_owned(), routes)
    } else {
        (target.to_owned(), route_set.to_vec())
    }
}

fn strip_brackets(route: &str) -> &str {
    match (route.find('<'), route.rfind('>')) {
        (Some(a), Some(b)) if a < b => &route[a + 1..b],
        _ => route,
    }
}

fn route_is_loose(route: &str) -> bool {
    crate::uri::SipUri::parse(strip_brackets(route)).map_or(true, |u| u.lr())
}

/// The URI a request goes to next (§8.1.2): the first Route if any, else the
/// Request-URI. The transport resolves it (RFC 3263).
#[must_use]
pub fn next_hop(request: &crate::Message) -> Option<String> {
    if let Some(Ok(r)) = request.routes().next() {
        return Some(r.uri_str.to_owned());
    }
    request
        .request_uri_bytes()
        .and_then(|u| std::str::from_utf8(u).ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests;
