//! Long-term credential checks for the TURN server (RFC 8489 §9.2.4): stateless nonces,
//! REST API secrets (two at once for rotation), static users, PASSWORD-ALGORITHMS, USERHASH,
//! and a per-source rate limit on failed attempts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, Mac};

use crate::attr::{self, AttrType, PasswordAlgorithm};
use crate::credentials::{self, LongTermKey, SecurityFeatures};
use crate::message::Message;

/// What the credential check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Valid: the request is from `user` and responses are signed with `key`.
    Ok(Authenticated),
    /// 401: no credentials yet, or wrong ones (send a fresh nonce).
    Unauthenticated {
        /// True if this counts as a failed attempt for rate limiting.
        failure: bool,
    },
    /// 438: the nonce expired or is not ours (send a fresh nonce).
    StaleNonce,
    /// 400: credentials attributes malformed (reason for the response).
    BadRequest(&'static str),
}

/// The identity behind a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The USERNAME (for REST: `expiry:user`).
    pub username: Box<str>,
    /// The account: the REST user part, or the static username.
    pub user: Box<str>,
    /// The key that verified the request; responses are signed with it.
    pub key: LongTermKey,
    /// True if the request used MESSAGE-INTEGRITY-SHA256 (answer in kind).
    pub sha256_integrity: bool,
}

/// Static configuration of the authenticator.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// REALM.
    pub realm: String,
    /// TURN REST API shared secrets, all accepted (current and previous, for rotation).
    pub rest_secrets: Vec<Vec<u8>>,
    /// Static long-term users: (username, password).
    pub static_users: Vec<(String, String)>,
    /// Algorithms advertised in PASSWORD-ALGORITHMS, preferred first. Empty: no
    /// PASSWORD-ALGORITHMS, MD5 only (RFC 5389 behaviour).
    pub password_algorithms: Vec<PasswordAlgorithm>,
    /// Advertise username anonymity (USERHASH); only static users can be found by hash.
    pub username_anonymity: bool,
    /// How long a nonce stays valid.
    pub nonce_lifetime: Duration,
    /// Failed attempts allowed in a burst per source IP.
    pub failure_burst: u32,
    /// One more failed attempt is allowed per this interval.
    pub failure_refill: Duration,
}

struct StaticUser {
    user: Box<str>,
    md5: LongTermKey,
    sha256: LongTermKey,
}

struct Bucket {
    tokens: u32,
    last: Instant,
}

fn refill(cfg: &AuthConfig, b: &mut Bucket, now: Instant) {
    let every = cfg.failure_refill.max(Duration::from_millis(1));
    let elapsed = now.saturating_duration_since(b.last);
    let n = (elapsed.as_nanos() / every.as_nanos()).min(u128::from(u32::MAX)) as u32;
    if n > 0 {
        b.tokens = b.tokens.saturating_add(n).min(cfg.failure_burst);
        b.last += every * n;
    }
}

/// Most source addresses tracked by the failure limiter before old full buckets are dropped.
const MAX_TRACKED_SOURCES: usize = 65_536;

/// The credential checker. Pure: time and the nonce key are inputs.
pub struct Authenticator {
    cfg: AuthConfig,
    users: HashMap<Box<str>, StaticUser>,
    by_hash: HashMap<[u8; 32], Box<str>>,
    nonce_key: [u8; 32],
    features: SecurityFeatures,
    algorithms_value: Vec<u8>,
    failures: HashMap<IpAddr, Bucket>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("realm", &self.cfg.realm)
            .field("rest_secrets", &self.cfg.rest_secrets.len())
            .field("static_users", &self.users.len())
            .finish()
    }
}

type HmacSha256 = Hmac<sha2::Sha256>;

impl Authenticator {
    /// Builds the checker; `nonce_key` must be random (it authenticates nonces).
    pub fn new(cfg: AuthConfig, nonce_key: [u8; 32]) -> Self {
        let mut users = HashMap::new();
        let mut by_hash = HashMap::new();
        for (name, password) in &cfg.static_users {
            let u = StaticUser {
                user: name.as_str().into(),
                md5: LongTermKey::derive(PasswordAlgorithm::Md5, name, &cfg.realm, password),
                sha256: LongTermKey::derive(PasswordAlgorithm::Sha256, name, &cfg.realm, password),
            };
            by_hash.insert(
                credentials::userhash(name, &cfg.realm),
                name.as_str().into(),
            );
            users.insert(name.as_str().into(), u);
        }
        let features = SecurityFeatures {
            password_algorithms: !cfg.password_algorithms.is_empty(),
            username_anonymity: cfg.username_anonymity,
        };
        let mut algorithms_value = vec![0u8; cfg.password_algorithms.len() * 4];
        attr::encode_password_algorithms(&cfg.password_algorithms, &mut algorithms_value);
        Authenticator {
            cfg,
            users,
            by_hash,
            nonce_key,
            features,
            algorithms_value,
            failures: HashMap::new(),
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.cfg.realm
    }

    /// The PASSWORD-ALGORITHMS value to put in 401/438 responses, if any.
    pub fn password_algorithms_value(&self) -> Option<&[u8]> {
        (!self.algorithms_value.is_empty()).then_some(&self.algorithms_value[..])
    }

    /// A fresh nonce for `client`, valid until `now_unix + nonce_lifetime`. Written into
    /// `out` (cleared first): optional cookie, then base64url(expiry || HMAC tag).
    pub fn nonce(&self, client: IpAddr, now_unix: u64, out: &mut Vec<u8>) {
        out.clear();
        if self.features != SecurityFeatures::default() {
            out.extend_from_slice(&self.features.nonce_prefix());
        }
        let expiry = now_unix + self.cfg.nonce_lifetime.as_secs();
        let mut raw = [0u8; 20];
        raw[..8].copy_from_slice(&expiry.to_be_bytes());
        raw[8..].copy_from_slice(&self.nonce_tag(expiry, client));
        let at = out.len();
        out.resize(at + 27, 0);
        B64URL
            .encode_slice(raw, &mut out[at..])
            .expect("20 bytes encode to 27 characters");
    }

    fn nonce_tag(&self, expiry: u64, client: IpAddr) -> [u8; 12] {
        let mut mac = HmacSha256::new_from_slice(&self.nonce_key).expect("any key length");
        mac.update(&expiry.to_be_bytes());
        match client {
            IpAddr::V4(a) => mac.update(&a.octets()),
            IpAddr::V6(a) => mac.update(&a.octets()),
        }
        let mut tag = [0u8; 12];
        tag.copy_from_slice(&mac.finalize().into_bytes()[..12]);
        tag
    }

    /// True if `nonce` is one of ours for `client` and not expired.
    pub fn nonce_valid(&self, nonce: &[u8], client: IpAddr, now_unix: u64) -> bool {
        let body = if self.features != SecurityFeatures::default() {
            match nonce.strip_prefix(&self.features.nonce_prefix()[..]) {
                Some(b) => b,
                None => return false,
            }
        } else {
            nonce
        };
        let mut raw = [0u8; 20];
        if body.len() != 27 || B64URL.decode_slice(body, &mut raw) != Ok(20) {
            return false;
        }
        let expiry = u64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
        if expiry < now_unix {
            return false;
        }
        // Constant-time comparison through the MAC API.
        let mut mac = HmacSha256::new_from_slice(&self.nonce_key).expect("any key length");
        mac.update(&expiry.to_be_bytes());
        match client {
            IpAddr::V4(a) => mac.update(&a.octets()),
            IpAddr::V6(a) => mac.update(&a.octets()),
        }
        mac.verify_truncated_left(&raw[8..]).is_ok()
    }

    /// True if `source` has used up its failed attempts: drop its requests silently.
    pub fn is_rate_limited(&mut self, source: IpAddr, now: Instant) -> bool {
        match self.failures.get_mut(&source) {
            None => false,
            Some(b) => {
                refill(&self.cfg, b, now);
                b.tokens == 0
            }
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        refill(&self.cfg, b, now);
    }

    fn record_failure(&mut self, source: IpAddr, now: Instant) {
        if self.failures.len() >= MAX_TRACKED_SOURCES && !self.failures.contains_key(&source) {
            let burst = self.cfg.failure_burst;
            let refill = self.cfg.failure_refill;
            // Forget sources whose bucket has refilled completely.
            self.failures
                .retain(|_, b| now.saturating_duration_since(b.last) < refill * burst.max(1));
            if self.failures.len() >= MAX_TRACKED_SOURCES {
                return;
            }
        }
        let burst = self.cfg.failure_burst;
        let mut b = self.failures.remove(&source).unwrap_or(Bucket {
            tokens: burst,
            last: now,
        });
        self.refill(&mut b, now);
        b.tokens = b.tokens.saturating_sub(1);
        self.failures.insert(source, b);
    }

    /// Checks the long-term credentials of a request from `source` (RFC 8489 §9.2.4).
    /// `bound` is the identity of an existing allocation: a request for it must use the same
    /// username (RFC 8656 §5), whose key is reused without a lookup.
    pub fn check(
        &mut self,
        msg: &Message<'_>,
        source: IpAddr,
        now: Instant,
        now_unix: u64,
        bound: Option<&Authenticated>,
    ) -> AuthOutcome {
        let (has_mi, has_mi256) = (msg.has_integrity(), msg.has_integrity_sha256());
        if !has_mi && !has_mi256 {
            return AuthOutcome::Unauthenticated { failure: false };
        }
        let username = match msg.username() {
            Ok(u) => u,
            Err(_) => return AuthOutcome::BadRequest("malformed USERNAME"),
        };
        let userhash = match msg.userhash() {
            Ok(h) => h,
            Err(_) => return AuthOutcome::BadRequest("malformed USERHASH"),
        };
        let (Ok(Some(realm)), Ok(Some(nonce))) = (msg.realm(), msg.nonce()) else {
            return AuthOutcome::BadRequest("missing REALM or NONCE");
        };
        if username.is_none() && userhash.is_none() {
            return AuthOutcome::BadRequest("missing USERNAME or USERHASH");
        }
        if !self.nonce_valid(nonce, source, now_unix) {
            return AuthOutcome::StaleNonce;
        }
        // Password algorithm negotiation, only when our nonce advertised it.
        let mut alg = PasswordAlgorithm::Md5;
        if self.features.password_algorithms {
            let algs = msg.get(AttrType::PASSWORD_ALGORITHMS);
            let chosen = msg.get(AttrType::PASSWORD_ALGORITHM);
            match (algs, chosen) {
                (None, None) => {}
                (Some(list), Some(one)) => {
                    if list != &self.algorithms_value[..] {
                        return AuthOutcome::BadRequest("PASSWORD-ALGORITHMS does not match");
                    }
                    let Ok(n) = attr::decode_password_algorithm(one) else {
                        return AuthOutcome::BadRequest("malformed PASSWORD-ALGORITHM");
                    };
                    match PasswordAlgorithm::from_number(n) {
                        Some(a) if self.cfg.password_algorithms.contains(&a) => alg = a,
                        _ => return AuthOutcome::BadRequest("unsupported PASSWORD-ALGORITHM"),
                    }
                }
                _ => {
                    return AuthOutcome::BadRequest(
                        "PASSWORD-ALGORITHMS and PASSWORD-ALGORITHM must come together",
                    );
                }
            }
        }
        if realm != self.cfg.realm {
            self.record_failure(source, now);
            return AuthOutcome::Unauthenticated { failure: true };
        }
        let username: &str = match (username, userhash) {
            (Some(u), _) => u,
            (None, Some(h)) => match self.by_hash.get(h) {
                Some(u) => {
                    // Borrow dance: clone the small name.
                    let u: Box<str> = u.clone();
                    return self.finish(msg, source, (now, now_unix), &u, alg, bound);
                }
                None => {
                    self.record_failure(source, now);
                    return AuthOutcome::Unauthenticated { failure: true };
                }
            },
            (None, None) => unreachable!("checked above"),
        };
        let username: Box<str> = username.into();
        self.finish(msg, source, (now, now_unix), &username, alg, bound)
    }

    fn finish(
        &mut self,
        msg: &Message<'_>,
        source: IpAddr,
        (now, now_unix): (Instant, u64),
        username: &str,
        alg: PasswordAlgorithm,
        bound: Option<&Authenticated>,
    ) -> AuthOutcome {
        let sha = msg.has_integrity_sha256();
        let verify = |key: &LongTermKey| {
            if sha {
                msg.verify_integrity_sha256(key.as_bytes()).is_ok()
            } else {
                msg.verify_integrity(key.as_bytes()).is_ok()
            }
        };
        let ok = |user: &str, key: LongTermKey| {
            AuthOutcome::Ok(Authenticated {
                username: username.into(),
                user: user.into(),
                key,
                sha256_integrity: sha,
            })
        };
        if let Some(b) = bound
            && &*b.username == username
            && b.key.algorithm() == alg
            && verify(&b.key)
        {
            return ok(&b.user, b.key);
        }
        if let Some(u) = self.users.get(username) {
            let key = match alg {
                PasswordAlgorithm::Md5 => u.md5,
                PasswordAlgorithm::Sha256 => u.sha256,
            };
            if verify(&key) {
                return ok(&u.user.clone(), key);
            }
        } else if let Some((expiry, user)) = credentials::parse_rest_username(username)
            && expiry >= now_unix
        {
            for secret in &self.cfg.rest_secrets {
                let password = credentials::rest_password(secret, username);
                let key = LongTermKey::derive(alg, username, &self.cfg.realm, &password);
                if verify(&key) {
                    return ok(user, key);
                }
            }
        }
        self.record_failure(source, now);
        AuthOutcome::Unauthenticated { failure: true }
    }
}
