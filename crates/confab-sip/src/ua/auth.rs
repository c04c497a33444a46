//! Client digest for the UAC core (RFC 3261 §22.2, RFC 7616, RFC 8760).

use std::collections::HashMap;

use confab_digest::{Algorithm, Answer, Challenge, Credentials, DigestError, answer_challenge};

use crate::BuildError;
use crate::message::Message;
use crate::name::HeaderName;

use super::Entropy;

/// A username and password, for one realm or (realm `None`) for any.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The realm these credentials are for; `None` = any realm.
    pub realm: Option<String>,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("realm", &self.realm)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Why a challenge could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The response is not a 401 or 407.
    #[error("status {0} is not a challenge")]
    NotAChallenge(u16),
    /// No Digest challenge with an algorithm this core supports could be parsed.
    #[error("no usable Digest challenge")]
    NoUsableChallenge,
    /// No credentials for this realm.
    #[error("no credentials for realm {0:?}")]
    NoCredentials(String),
    /// The request already answered this nonce (not stale): the credentials are wrong.
    #[error("credentials for realm {0:?} were rejected")]
    Rejected(String),
    /// The digest could not be computed.
    #[error("digest: {0}")]
    Digest(#[from] DigestError),
    /// Editing the request failed.
    #[error("building the request: {0}")]
    Build(BuildError),
}

/// Nonce counts per server nonce (RFC 7616 §3.4: nc counts requests with one nonce).
/// Bounded: the oldest counts are forgotten past 64 nonces (a server that reissues a
/// forgotten nonce just sees nc restart, which it answers with a stale challenge).
#[derive(Debug, Clone, Default)]
pub(super) struct NonceCounts {
    counts: HashMap<String, u32>,
}

impl NonceCounts {
    fn next(&mut self, nonce: &str) -> u32 {
        if self.counts.len() >= 64 && !self.counts.contains_key(nonce) {
            self.counts.clear();
        }
        let n = self.counts.entry(nonce.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }
}

fn rank(a: Algorithm) -> usize {
    Algorithm::ALL
        .iter()
        .position(|&x| x == a)
        .unwrap_or(usize::MAX)
}

/// The credentials values (one per challenged realm) answering `challenge`.
pub(super) fn answer(
    request: &Message,
    challenge: &Message,
    challenge_header: HeaderName,
    answer_header: HeaderName,
    creds: &[Credential],
    counts: &mut NonceCounts,
    rand: &Entropy,
) -> Result<Vec<String>, AuthError> {
    // Strongest supported challenge per realm, realms in order of appearance.
    let mut best: Vec<Challenge<'_>> = Vec::new();
    for f in challenge.get_all(challenge_header) {
        let Some(v) = f.value_str() else { continue };
        let Ok(c) = Challenge::parse(v) else { continue };
        // SHA-2 without qop cannot be answered (RFC 7616 §3.4); skip such challenges.
        if c.qop == confab_digest::QopOptions::default()
            && c.effective_algorithm() != Algorithm::Md5
        {
            continue;
        }
        match best.iter_mut().find(|b| b.realm == c.realm) {
            Some(b) if rank(c.effective_algorithm()) < rank(b.effective_algorithm()) => *b = c,
            Some(_) => {}
            None => best.push(c),
        }
    }
    if best.is_empty() {
        return Err(AuthError::NoUsableChallenge);
    }
    let method = request.method().map(|m| m.as_str()).unwrap_or("");
    let uri = request
        .request_uri_bytes()
        .and_then(|u| std::str::from_utf8(u).ok())
        .unwrap_or("");
    let mut out = Vec::with_capacity(best.len());
    for c in &best {
        let realm: &str = &c.realm;
        let cred = creds
            .iter()
            .find(|k| k.realm.as_deref() == Some(realm))
            .or_else(|| creds.iter().find(|k| k.realm.is_none()))
            .ok_or_else(|| AuthError::NoCredentials(realm.to_owned()))?;
        let already = request.get_all(answer_header).any(|f| {
            f.value_str()
                .and_then(|v| Credentials::parse(v).ok())
                .is_some_and(|p| p.realm == c.realm && p.nonce == c.nonce)
        });
        if already && !c.stale {
            return Err(AuthError::Rejected(realm.to_owned()));
        }
        let cnonce = rand.cnonce();
        let ans = Answer {
            username: &cred.username,
            password: &cred.password,
            method,
            uri,
            cnonce: &cnonce,
            nc: counts.next(&c.nonce),
            body: request.body(),
        };
        let credentials = answer_challenge(c, &ans)?;
        out.push(credentials.to_string());
    }
    Ok(out)
}
