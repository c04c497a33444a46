//! Request-digest computation and verification (RFC 7616 §3.4.1-3.4.3, RFC 2617 §3.2.2,
//! RFC 2069 §2.1.2 for the no-`qop` legacy form).
//!
//! ```text
//! HA1      = H(username ":" realm ":" password)                 (stored, see Ha1Set)
//! HA1-sess = H(HA1 ":" nonce ":" cnonce)                        (-sess algorithms)
//! HA2      = H(method ":" uri)                                  (qop=auth or no qop)
//!          = H(method ":" uri ":" H(body))                      (qop=auth-int)
//! response = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2) (with qop)
//!          = H(HA1 ":" nonce ":" HA2)                           (no qop: MD5 only)
//! ```
//!
//! Every `H` output enters the next step as lowercase hex.

use std::borrow::Cow;

use crate::params::{Challenge, Credentials, Qop};
use crate::{Algorithm, Ha1Set, Hash, HashKind, HexDigest, ha1};

/// The `qop` part of a digest computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QopInput<'a> {
    /// `auth` or `auth-int`.
    pub qop: Qop,
    /// The nonce count exactly as sent (`00000001`).
    pub nc: &'a str,
    /// The client nonce.
    pub cnonce: &'a str,
}

/// Everything a request digest covers, apart from the HA1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestInput<'a> {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The server nonce.
    pub nonce: &'a str,
    /// The client nonce for `-sess` algorithms without `qop` (else `qop.cnonce` is used).
    pub qop: Option<QopInput<'a>>,
    /// The request method (`REGISTER`, `GET`).
    pub method: &'a str,
    /// The digest-URI (the `uri` parameter).
    pub uri: &'a str,
    /// The message body (used only by `auth-int`; pass `b""` when there is none).
    pub body: &'a [u8],
}

/// Why a request digest could not be computed or was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// SHA-2 algorithms require `qop` (RFC 7616 §3.4: the RFC 2069 form exists only for MD5).
    #[error("algorithm {0} requires qop")]
    QopRequired(Algorithm),
    /// A `-sess` algorithm needs a client nonce, which only comes with `qop`.
    #[error("algorithm {0} requires qop and cnonce")]
    SessionWithoutCnonce(Algorithm),
    /// The HA1 given is for another hash function than the algorithm's.
    #[error("HA1 is for {have:?}, algorithm needs {need:?}")]
    WrongHa1 {
        /// Kind of the HA1 given.
        have: HashKind,
        /// Kind the algorithm uses.
        need: HashKind,
    },
    /// The `response` does not match: wrong password, or the request was altered.
    #[error("response digest does not match")]
    Mismatch,
}

/// Computes the request digest from the stored (non-session) HA1 of the algorithm's hash.
pub fn compute_response(ha1: &Hash, input: &DigestInput<'_>) -> Result<HexDigest, DigestError> {
    let alg = input.algorithm;
    let kind = alg.hash_kind();
    if ha1.kind() != kind {
        return Err(DigestError::WrongHa1 {
            have: ha1.kind(),
            need: kind,
        });
    }
    if input.qop.is_none() && kind != HashKind::Md5 {
        return Err(DigestError::QopRequired(alg));
    }
    let mut ha1_hex = ha1.to_hex();
    if alg.is_session() {
        let Some(q) = input.qop else {
            return Err(DigestError::SessionWithoutCnonce(alg));
        };
        ha1_hex = kind
            .hash_parts(&[
                ha1_hex.as_str().as_bytes(),
                b":",
                input.nonce.as_bytes(),
                b":",
                q.cnonce.as_bytes(),
            ])
            .to_hex();
    }
    let ha2 = match input.qop {
        Some(QopInput {
            qop: Qop::AuthInt, ..
        }) => {
            let body = kind.hash_parts(&[input.body]).to_hex();
            kind.hash_parts(&[
                input.method.as_bytes(),
                b":",
                input.uri.as_bytes(),
                b":",
                body.as_str().as_bytes(),
            ])
        }
        _ => kind.hash_parts(&[input.method.as_bytes(), b":", input.uri.as_bytes()]),
    }
    .to_hex();
    let out = match input.qop {
        Some(q) => kind.hash_parts(&[
            ha1_hex.as_str().as_bytes(),
            b":",
            input.nonce.as_bytes(),
            b":",
            q.nc.as_bytes(),
            b":",
            q.cnonce.as_bytes(),
            b":",
            q.qop.as_str().as_bytes(),
            b":",
            ha2.as_str().as_bytes(),
        ]),
        None => kind.hash_parts(&[
            ha1_hex.as_str().as_bytes(),
            b":",
            input.nonce.as_bytes(),
            b":",
            ha2.as_str().as_bytes(),
        ]),
    };
    Ok(out.to_hex())
}

/// `H(username ":" realm)` in hex: the `username` a client sends with `userhash=true`
/// (RFC 7616 §3.4.4).
pub fn userhash(kind: HashKind, username: &str, realm: &str) -> HexDigest {
    kind.hash_parts(&[username.as_bytes(), b":", realm.as_bytes()])
        .to_hex()
}

impl Credentials<'_> {
    /// The [`DigestInput`] these credentials describe for a request with `method` and `body`.
    pub fn digest_input<'s>(&'s self, method: &'s str, body: &'s [u8]) -> DigestInput<'s> {
        let qop = match (self.qop, self.nc.as_deref(), self.cnonce.as_deref()) {
            (Some(qop), Some(nc), Some(cnonce)) => Some(QopInput { qop, nc, cnonce }),
            _ => None,
        };
        DigestInput {
            algorithm: self.effective_algorithm(),
            nonce: &self.nonce,
            qop,
            method,
            uri: &self.uri,
            body,
        }
    }

    /// Verifies the `response` against the account's HA1 set, in constant time.
    ///
    /// This checks the digest only. The caller must also check the nonce
    /// ([`crate::NonceSecret::verify`]), the nonce count ([`crate::NonceCountWindow`]), that
    /// `realm` is the realm it challenged with, and that `uri` matches the request.
    pub fn verify(&self, ha1s: &Ha1Set, method: &str, body: &[u8]) -> Result<(), DigestError> {
        let alg = self.effective_algorithm();
        let expected =
            compute_response(ha1s.get(alg.hash_kind()), &self.digest_input(method, body))?;
        if expected.ct_eq_ignore_case(&self.response) {
            Ok(())
        } else {
            Err(DigestError::Mismatch)
        }
    }
}

/// What a client needs to answer a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer<'a> {
    /// The username (sent hashed if the challenge asks for `userhash`).
    pub username: &'a str,
    /// The clear password.
    pub password: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The digest-URI.
    pub uri: &'a str,
    /// A fresh client nonce (from the caller's RNG).
    pub cnonce: &'a str,
    /// The nonce count for this nonce (1 for the first request).
    pub nc: u32,
    /// The body (for `auth-int`).
    pub body: &'a [u8],
}

/// Builds the credentials a client sends in answer to `challenge` (client side; used by
/// tests and by Confab's own user agents). Picks `qop=auth` when offered, else `auth-int`,
/// else the legacy no-qop form (MD5 only).
pub fn answer_challenge(
    challenge: &Challenge<'_>,
    answer: &Answer<'_>,
) -> Result<Credentials<'static>, DigestError> {
    let alg = challenge.effective_algorithm();
    let kind = alg.hash_kind();
    let qop = if challenge.qop.auth {
        Some(Qop::Auth)
    } else if challenge.qop.auth_int {
        Some(Qop::AuthInt)
    } else {
        None
    };
    let nc = format!("{:08x}", answer.nc);
    let base = ha1(kind, answer.username, &challenge.realm, answer.password);
    let input = DigestInput {
        algorithm: alg,
        nonce: &challenge.nonce,
        qop: qop.map(|qop| QopInput {
            qop,
            nc: &nc,
            cnonce: answer.cnonce,
        }),
        method: answer.method,
        uri: answer.uri,
        body: answer.body,
    };
    let response = compute_response(&base, &input)?;
    let username = if challenge.userhash {
        userhash(kind, answer.username, &challenge.realm).to_string()
    } else {
        answer.username.to_owned()
    };
    Ok(Credentials {
        username: Cow::Owned(username),
        realm: Cow::Owned(challenge.realm.to_string()),
        nonce: Cow::Owned(challenge.nonce.to_string()),
        uri: Cow::Owned(answer.uri.to_owned()),
        response: Cow::Owned(response.to_string()),
        algorithm: challenge.algorithm,
        cnonce: qop.map(|_| Cow::Owned(answer.cnonce.to_owned())),
        opaque: challenge.opaque.as_ref().map(|o| Cow::Owned(o.to_string())),
        qop,
        nc: qop.map(|_| Cow::Owned(nc.clone())),
        userhash: challenge.userhash,
    })
}
