//! `[auth]`: the authentication settings of a front end.

use std::fmt;

use confab_digest::Algorithm;
use serde::{Deserialize, Serialize};

use crate::trusted::{TrustedPeer, TrustedPeerError};

/// The `[auth]` table.
///
/// ```toml
/// [auth]
/// nonce_ttl_s = 300
/// algorithms = ["SHA-256", "MD5"]     # challenge order; some old clients need MD5 first
/// trusted_peers = ["10.1.0.0/16", "192.0.2.7", "cert:gw.example.com"]
/// max_failures_per_minute = 10
/// lockout_s = 60
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// How long a nonce is accepted, in seconds. After that a request with it gets a
    /// `stale=true` challenge and the client retries without asking the user.
    pub nonce_ttl_s: u32,
    /// The digest algorithms offered, one challenge header each, in this order (RFC 8760
    /// §2.4: the client uses the first it supports). Names: `MD5`, `SHA-256`,
    /// `SHA-512-256`. Clients that fail on an unknown first algorithm need `MD5` first.
    pub algorithms: Vec<String>,
    /// Peers exempt from digest whose P-Asserted-Identity is believed (RFC 3325 trust
    /// domain): IP addresses (`192.0.2.7`), networks (`10.0.0.0/8`, `2001:db8::/32`), or
    /// TLS certificate names (`cert:gw.example.com`, matched against the RFC 5922
    /// identities of a verified client certificate).
    pub trusted_peers: Vec<String>,
    /// Failed digest attempts allowed per (source IP, account) pair within one minute; the
    /// next attempt of that pair is refused with 403 and `Retry-After` for `lockout_s`.
    /// Other sources (the real user) are not affected. 0 disables the limit.
    pub max_failures_per_minute: u32,
    /// How long a pair stays refused after exceeding the limit, in seconds.
    pub lockout_s: u32,
    /// How many nonces the replay window tracks (memory: about 40 bytes each).
    pub replay_window: usize,
    /// How many (source, account) pairs the failure table tracks at most.
    pub max_tracked_pairs: usize,
    /// The nonce key shared by the front ends of a pool, as hex (at least 32 hex digits).
    /// Empty: the caller's random key (`confab serve` passes the one kept in `nonce.key`
    /// beside the database, so nonces of a previous run verify and are answered stale=true,
    /// which clients handle without asking their user).
    pub nonce_secret: String,
    /// Let untrusted senders whose From is another domain reach local users without
    /// digest (inbound federation without an Access Edge). Off (the default): they are
    /// challenged like everyone else, so no answer tells which accounts exist; federation
    /// partners come in as trusted peers.
    pub allow_foreign_unauthenticated: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            nonce_ttl_s: 300,
            algorithms: vec!["SHA-256".into(), "MD5".into()],
            trusted_peers: Vec::new(),
            max_failures_per_minute: 10,
            lockout_s: 60,
            replay_window: 100_000,
            max_tracked_pairs: 100_000,
            nonce_secret: String::new(),
            allow_foreign_unauthenticated: false,
        }
    }
}

/// One problem in `[auth]`, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    /// `algorithms` is empty.
    #[error("auth.algorithms: at least one algorithm is needed")]
    NoAlgorithm,
    /// An algorithm name is unknown or not offered by this server (`-sess` variants).
    #[error("auth.algorithms[{index}]: `{name}` is not one of MD5, SHA-256, SHA-512-256")]
    UnknownAlgorithm {
        /// Position in the list.
        index: usize,
        /// The name given.
        name: String,
    },
    /// An algorithm is listed twice.
    #[error("auth.algorithms[{index}]: `{name}` is listed twice")]
    DuplicateAlgorithm {
        /// Position in the list.
        index: usize,
        /// The name given.
        name: String,
    },
    /// A trusted peer entry does not parse.
    #[error("auth.trusted_peers[{index}]: {source}")]
    TrustedPeer {
        /// Position in the list.
        index: usize,
        /// What is wrong.
        source: TrustedPeerError,
    },
    /// `nonce_ttl_s` is 0.
    #[error("auth.nonce_ttl_s: must be at least 1 second")]
    ZeroNonceTtl,
    /// `lockout_s` is 0 while the failure limit is on.
    #[error("auth.lockout_s: must be at least 1 second when max_failures_per_minute is set")]
    ZeroLockout,
    /// `replay_window` or `max_tracked_pairs` is too small.
    #[error("auth.{key}: must be at least {min}")]
    TooSmall {
        /// The key.
        key: &'static str,
        /// The smallest accepted value.
        min: usize,
    },
    /// `nonce_secret` is not hex or too short.
    #[error("auth.nonce_secret: {0}")]
    Secret(&'static str),
}

/// The validated form of [`AuthConfig`].
#[derive(Clone, PartialEq, Eq)]
pub struct Validated {
    /// Algorithms in challenge order.
    pub algorithms: Vec<Algorithm>,
    /// Parsed trusted peers.
    pub trusted: Vec<TrustedPeer>,
    /// The nonce key, if configured.
    pub secret: Option<Vec<u8>>,
}

impl fmt::Debug for Validated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validated")
            .field("algorithms", &self.algorithms)
            .field("trusted", &self.trusted)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl AuthConfig {
    /// Checks every key and returns the parsed values.
    ///
    /// # Errors
    /// The first [`AuthConfigError`] found.
    pub fn validate(&self) -> Result<Validated, AuthConfigError> {
        if self.nonce_ttl_s == 0 {
            return Err(AuthConfigError::ZeroNonceTtl);
        }
        if self.max_failures_per_minute > 0 && self.lockout_s == 0 {
            return Err(AuthConfigError::ZeroLockout);
        }
        if self.replay_window < 2 {
            return Err(AuthConfigError::TooSmall {
                key: "replay_window",
                min: 2,
            });
        }
        if self.max_tracked_pairs < 1 {
            return Err(AuthConfigError::TooSmall {
                key: "max_tracked_pairs",
                min: 1,
            });
        }
        if self.algorithms.is_empty() {
            return Err(AuthConfigError::NoAlgorithm);
        }
        let mut algorithms = Vec::with_capacity(self.algorithms.len());
        for (index, name) in self.algorithms.iter().enumerate() {
            let a = Algorithm::from_token(name)
                .filter(|a| !a.is_session())
                .ok_or_else(|| AuthConfigError::UnknownAlgorithm {
                    index,
                    name: name.clone(),
                })?;
            if algorithms.contains(&a) {
                return Err(AuthConfigError::DuplicateAlgorithm {
                    index,
                    name: name.clone(),
                });
            }
            algorithms.push(a);
        }
        let trusted = self
            .trusted_peers
            .iter()
            .enumerate()
            .map(|(index, s)| {
                TrustedPeer::parse(s)
                    .map_err(|source| AuthConfigError::TrustedPeer { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let secret = if self.nonce_secret.is_empty() {
            None
        } else {
            Some(parse_hex(&self.nonce_secret)?)
        };
        Ok(Validated {
            algorithms,
            trusted,
            secret,
        })
    }
}

fn parse_hex(s: &str) -> Result<Vec<u8>, AuthConfigError> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthConfigError::Secret(
            "expected an even number of hex digits",
        ));
    }
    if s.len() < 32 {
        return Err(AuthConfigError::Secret(
            "at least 32 hex digits (16 bytes) are needed",
        ));
    }
    Ok((0..s.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(toml_text: &str, want: Result<(), AuthConfigError>) {
        let c: AuthConfig = toml::from_str(toml_text).expect("parses");
        assert_eq!(c.validate().map(|_| ()), want, "{toml_text}");
    }

    #[test]
    fn validation_names_the_key() {
        check("", Ok(()));
        check(r#"algorithms = ["MD5", "SHA-512-256"]"#, Ok(()));
        check("algorithms = []", Err(AuthConfigError::NoAlgorithm));
        check(
            r#"algorithms = ["SHA-256", "SHA1"]"#,
            Err(AuthConfigError::UnknownAlgorithm {
                index: 1,
                name: "SHA1".into(),
            }),
        );
        check(
            r#"algorithms = ["MD5-sess"]"#,
            Err(AuthConfigError::UnknownAlgorithm {
                index: 0,
                name: "MD5-sess".into(),
            }),
        );
        check(
            r#"algorithms = ["md5", "MD5"]"#,
            Err(AuthConfigError::DuplicateAlgorithm {
                index: 1,
                name: "MD5".into(),
            }),
        );
        check("nonce_ttl_s = 0", Err(AuthConfigError::ZeroNonceTtl));
        check("lockout_s = 0", Err(AuthConfigError::ZeroLockout));
        check("lockout_s = 0\nmax_failures_per_minute = 0", Ok(()));
        check(
            "replay_window = 1",
            Err(AuthConfigError::TooSmall {
                key: "replay_window",
                min: 2,
            }),
        );
        check(
            r#"nonce_secret = "abc""#,
            Err(AuthConfigError::Secret(
                "expected an even number of hex digits",
            )),
        );
        check(
            r#"nonce_secret = "abcd""#,
            Err(AuthConfigError::Secret(
                "at least 32 hex digits (16 bytes) are needed",
            )),
        );
        check(
            r#"nonce_secret = "00112233445566778899aabbccddeeff""#,
            Ok(()),
        );
        let bad: Result<AuthConfig, _> = toml::from_str("nonce_ttl = 5");
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("unknown field `nonce_ttl`")
        );
    }

    #[test]
    fn order_is_kept() {
        let c: AuthConfig = toml::from_str(r#"algorithms = ["MD5", "SHA-256"]"#).unwrap();
        assert_eq!(
            c.validate().unwrap().algorithms,
            [Algorithm::Md5, Algorithm::Sha256]
        );
    }
}
