//! HTTP and SIP Digest authentication for Confab (RFC 7616, RFC 8760, RFC 2617, RFC 3261 §22).
//!
//! What it does: names the digest algorithms (MD5, SHA-256, SHA-512/256 and their `-sess`
//! variants), computes HA1 values and request digests and verifies them in constant time,
//! parses and builds the `Digest` challenge and credentials auth-param syntax shared by the
//! HTTP `WWW-Authenticate`/`Authorization` headers and the SIP `WWW-Authenticate`,
//! `Proxy-Authenticate`, `Authorization` and `Proxy-Authorization` headers, mints and checks
//! stateless nonces (an HMAC over expiry and node id, so any front end holding the secret can
//! check them without a lookup), and keeps a bounded nonce-count replay window.
//!
//! What it does not do: I/O, clocks or randomness. The caller passes `now` (Unix seconds),
//! random bytes and the server secret. It does not decide policy (which algorithms to offer
//! and in which order, nonce lifetime, rate limiting): the registrar/authentication role does.

pub mod algorithm;

pub use algorithm::{Algorithm, Ha1Set, Hash, HashKind, HexDigest, ha1};
