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
//! and in which order, nonce lifetime, rate limiting, which realm and URI are acceptable):
//! the authentication role does.
//!
//! # Server flow (issue 6)
//!
//! 1. No credentials: mint a nonce ([`NonceSecret::mint`]) and send one [`Challenge`] per
//!    offered algorithm.
//! 2. Credentials: [`Credentials::parse`]; check `realm` and `uri`; [`NonceSecret::verify`]
//!    (`Stale` → challenge with `stale=true`, `Invalid` → plain challenge); look the user up
//!    and [`Credentials::verify`] against its [`Ha1Set`]; then
//!    [`NonceCountWindow::check`] with the nonce id and `nc` (`Replay` → challenge,
//!    `Unknown` → challenge with `stale=true`).
//!
//! An unknown user must get the same treatment as a wrong password (verify against a dummy
//! `Ha1Set`), so accounts cannot be enumerated.

pub mod algorithm;
pub mod nonce;
pub mod params;
pub mod replay;
pub mod response;

pub use algorithm::{Algorithm, Ha1Set, Hash, HashKind, HexDigest, ha1};
pub use nonce::{Nonce, NonceId, NonceInfo, NonceSecret, NonceStatus, SecretTooShort};
pub use params::{AuthParams, Challenge, Credentials, ParamError, Qop, QopOptions, split_scheme};
pub use replay::{NcVerdict, NonceCountWindow};
pub use response::{
    Answer, DigestError, DigestInput, QopInput, answer_challenge, compute_response, userhash,
};
