//! The decision logic, free of I/O: what a request needs ([`Authenticator::assess`]) and,
//! given the account the store returned, what to answer ([`Authenticator::decide`]).

use std::net::IpAddr;
use std::sync::Mutex;

use confab_core::chain::{Addressed, Identity, IdentityProof, Reply, RequestContext};
use confab_core::{Address, User};
use confab_digest::{
    Algorithm, Credentials, Ha1Set, NcVerdict, NonceCountWindow, NonceSecret, NonceStatus, Qop,
};
use confab_sip::{HeaderName, Message, Method, Uri};

use crate::config::{AuthConfig, AuthConfigError};
use crate::limiter::FailureLimiter;
use crate::trusted::TrustedPeers;

/// Which challenge a request gets (RFC 3261 §22.1, §22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// 401 with `WWW-Authenticate`: the server answers the request itself (REGISTER,
    /// requests addressed to the server).
    Www,
    /// 407 with `Proxy-Authenticate`: the request is proxied.
    Proxy,
}

impl ChallengeKind {
    /// 401 or 407.
    pub const fn status(self) -> u16 {
        match self {
            ChallengeKind::Www => 401,
            ChallengeKind::Proxy => 407,
        }
    }

    /// The challenge header name.
    pub const fn header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "WWW-Authenticate",
            ChallengeKind::Proxy => "Proxy-Authenticate",
        }
    }
}

/// What a request needs before the chain may go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// The sender is a trusted peer: no digest; its P-Asserted-Identity is believed.
    Trusted,
    /// No authentication applies: the request is not from one of our domains and is not a
    /// REGISTER (an inbound request from elsewhere, which routing accepts only for local
    /// targets).
    NotRequired,
    /// Digest is required in `realm`. `account` is the account the request's credentials
    /// name (to be fetched from the store), `None` when there are no credentials for the
    /// realm (answer with a challenge).
    Required {
        /// 401 or 407.
        kind: ChallengeKind,
        /// The realm (one of our domains).
        realm: String,
        /// The account named by the credentials.
        account: Option<Address>,
    },
}

/// The final answer of [`Authenticator::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The credentials are good: this is the sender.
    Authenticated(Identity),
    /// Answer with this response (a challenge, 403, 400).
    Respond(Reply),
}

/// SIP digest authentication for one front end (shared by its workers).
///
/// * Nonces are stateless (HMAC over expiry and node id, `confab-digest`): any front end
///   with the same `nonce_secret` verifies them. An expired nonce with a correct digest gets
///   `stale=true`.
/// * Replays: the bounded nonce-count window rejects an `nc` already used with a nonce.
/// * Enumeration: an unknown account is verified against a dummy HA1 set, gets the same
///   challenge, and counts as a failure like a wrong password.
/// * Guessing: failures are counted per (source IP, account); a pair over the limit gets 403
///   with `Retry-After`, other sources are unaffected.
#[derive(Debug)]
pub struct Authenticator {
    algorithms: Vec<Algorithm>,
    trusted: TrustedPeers,
    domains: Vec<String>,
    nonce_ttl_s: u64,
    secret: NonceSecret,
    node_id: u32,
    dummy: Ha1Set,
    window: Mutex<NonceCountWindow>,
    /// The earliest expiry this run mints (one second past the window's floor).
    min_expiry: u64,
    failures: Mutex<FailureLimiter>,
    /// `allow_foreign_unauthenticated`.
    allow_foreign: bool,
}

/// A stable 32-bit id of a node name (FNV-1a), carried in nonces.
pub fn node_id_of(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

impl Authenticator {
    /// Builds the authenticator.
    ///
    /// * `domains`: the served domains (realms), any case;
    /// * `node`: this node's name (its id goes into nonces);
    /// * `random_secret`: the nonce key when the configuration has none (32 random bytes);
    /// * `random_dummy`: random bytes for the dummy account's password;
    /// * `now_s`: start time (Unix seconds): nonces minted before it (by a previous run with
    ///   the same key) are not trusted for replay tracking (they get `stale=true`).
    ///
    /// # Errors
    /// The configuration's [`AuthConfigError`].
    pub fn new(
        config: &AuthConfig,
        domains: &[String],
        node: &str,
        random_secret: [u8; 32],
        random_dummy: [u8; 16],
        now_s: u64,
    ) -> Result<Authenticator, AuthConfigError> {
        let v = config.validate()?;
        let key = v.secret.clone().unwrap_or_else(|| random_secret.to_vec());
        let secret =
            NonceSecret::new(&key).map_err(|_| AuthConfigError::Secret("the key is too short"))?;
        let dummy_pw: String = random_dummy.iter().map(|b| format!("{b:02x}")).collect();
        let nonce_ttl_s = u64::from(config.nonce_ttl_s);
        Ok(Authenticator {
            algorithms: v.algorithms,
            trusted: TrustedPeers::new(v.trusted),
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            nonce_ttl_s,
            secret,
            node_id: node_id_of(node),
            dummy: Ha1Set::compute("unknown", "invalid", &dummy_pw),
            // Nonces of a previous run (same key, no nonce-count record here) expire at or
            // before `now_s + ttl`: the floor makes them `Unknown` (stale=true), so a
            // captured request cannot be replayed after a restart. Ours expire after it
            // (see `min_expiry`). The binary starts on a fresh second, so a previous run
            // started in an earlier second than `now_s`.
            window: Mutex::new(NonceCountWindow::new(
                config.replay_window,
                now_s + nonce_ttl_s,
            )),
            min_expiry: now_s + nonce_ttl_s + 1,
            allow_foreign: config.allow_foreign_unauthenticated,
            failures: Mutex::new(FailureLimiter::new(
                config.max_failures_per_minute,
                config.lockout_s,
                config.max_tracked_pairs,
            )),
        })
    }

    /// The trusted peers.
    pub fn trusted_peers(&self) -> &TrustedPeers {
        &self.trusted
    }

    /// Whether `domain` is one of ours.
    pub fn is_our_domain(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    fn default_realm(&self) -> &str {
        self.domains.first().map_or("localhost", String::as_str)
    }

    /// What `ctx`'s request needs. Reads only the request and its source.
    pub fn assess(&self, ctx: &RequestContext) -> Need {
        if self.trusted.is_trusted_source(&ctx.source) {
            return Need::Trusted;
        }
        let req = &ctx.request;
        let is_register = ctx.method() == Some(&Method::Register);
        let from_host = sip_host(req, HeaderName::From);
        let from_ours = from_host.as_deref().is_some_and(|h| self.is_our_domain(h));
        let realm = if is_register {
            match sip_host(req, HeaderName::To) {
                Some(h) if self.is_our_domain(&h) => h.to_ascii_lowercase(),
                _ => self.default_realm().to_owned(),
            }
        } else if from_ours {
            from_host.unwrap_or_default().to_ascii_lowercase()
        } else if self.allow_foreign
            || !matches!(
                ctx.addressed,
                Addressed::LocalUser(_) | Addressed::LocalInvalid
            )
        {
            // The server itself (OPTIONS pings) and other domains ("Relaying denied") tell
            // nothing about our users.
            return Need::NotRequired;
        } else {
            // A From of another domain proves nothing: without a federation peer (trusted)
            // in between, a sender reaching our users must be one of them, and answering it
            // differently (404 against 480) would tell which accounts exist.
            self.default_realm().to_owned()
        };
        let kind = if is_register || ctx.addressed == Addressed::Server {
            ChallengeKind::Www
        } else {
            ChallengeKind::Proxy
        };
        let account = find_credentials(req, &realm)
            .and_then(Result::ok)
            .and_then(|c| account_of(&c.username, &realm));
        Need::Required {
            kind,
            realm,
            account,
        }
    }

    /// The challenge response (one header per configured algorithm, same nonce).
    pub fn challenge(
        &self,
        kind: ChallengeKind,
        realm: &str,
        stale: bool,
        now_s: u64,
        random: [u8; 8],
    ) -> Reply {
        let nonce = self.secret.mint(
            (now_s + self.nonce_ttl_s).max(self.min_expiry),
            self.node_id,
            random,
        );
        let mut reply = Reply::new(kind.status());
        for &alg in &self.algorithms {
            let mut c = confab_digest::Challenge::new(realm, nonce.as_str(), alg);
            c.stale = stale;
            let mut v = String::with_capacity(160);
            c.write_to(&mut v);
            reply.headers.push((kind.header().to_owned(), v));
        }
        reply
    }

    /// Decides a request that [`Authenticator::assess`] found [`Need::Required`], given
    /// the account the store returned for its credentials (`None`: unknown, or no
    /// credentials). `now_ms` is wall-clock milliseconds; `random` seeds a new nonce.
    pub fn decide(
        &self,
        ctx: &RequestContext,
        kind: ChallengeKind,
        realm: &str,
        user: Option<&User>,
        now_ms: u64,
        random: [u8; 8],
    ) -> Decision {
        let now_s = now_ms / 1000;
        let challenge =
            |stale| Decision::Respond(self.challenge(kind, realm, stale, now_s, random));
        let req = &ctx.request;
        let creds = match find_credentials(req, realm) {
            None => return challenge(false),
            Some(Err(e)) => {
                return Decision::Respond(Reply::with_reason(
                    400,
                    format!("Malformed credentials: {e}"),
                ));
            }
            Some(Ok(c)) => c,
        };
        let Some(account) = account_of(&creds.username, realm) else {
            return challenge(false);
        };
        let ip = ctx.source.hop.remote.ip();
        if let Some(retry) = self.locked(ip, account.as_str(), now_ms) {
            return Decision::Respond(locked_reply(retry));
        }
        let alg = creds.effective_algorithm();
        if !self.algorithms.contains(&alg) {
            return challenge(false);
        }
        if !matches!(creds.qop, Some(Qop::Auth | Qop::AuthInt)) {
            return Decision::Respond(Reply::with_reason(
                403,
                "Digest without qop=auth is not accepted",
            ));
        }
        if !uri_matches(req, &creds.uri) {
            return Decision::Respond(Reply::with_reason(
                400,
                "Digest uri does not match the Request-URI",
            ));
        }
        let info = match self.secret.verify(&creds.nonce, now_s) {
            NonceStatus::Invalid => return challenge(false),
            NonceStatus::Valid(i) => Ok(i),
            NonceStatus::Stale(i) => Err(i),
        };
        // Same work for known and unknown accounts: a digest against the user's HA1 or a
        // dummy one, so neither the answer nor its timing tells whether the account exists.
        let (ha1s, known) = match user.and_then(|u| u.credentials.as_ref().map(|c| (u, c))) {
            Some((u, c)) if u.address == account => (c, true),
            _ => (&self.dummy, false),
        };
        let method = req.method().map_or("", Method::as_str);
        let ok = creds.verify(ha1s, method, req.body()).is_ok() && known;
        if !ok {
            if let Some(retry) = self.record_failure(ip, account.as_str(), now_ms) {
                tracing::info!(%ip, account = %account, "digest failures over the limit; pair locked");
                return Decision::Respond(locked_reply(retry));
            }
            return challenge(false);
        }
        let info = match info {
            Ok(i) => i,
            Err(_) => return challenge(true),
        };
        let Some(nc) = creds.nonce_count() else {
            return challenge(false);
        };
        let verdict = self.window.lock().unwrap_or_else(|e| e.into_inner()).check(
            info.id,
            info.expires_at,
            nc,
        );
        match verdict {
            NcVerdict::Fresh => {}
            NcVerdict::Replay => return challenge(false),
            NcVerdict::Unknown => return challenge(true),
        }
        if ctx.method() != Some(&Method::Register) && !from_matches(req, &account) {
            return Decision::Respond(Reply::with_reason(
                403,
                "From does not match the authenticated identity",
            ));
        }
        Decision::Authenticated(Identity {
            address: account,
            proof: IdentityProof::Digest,
        })
    }

    fn locked(&self, ip: IpAddr, account: &str, now_ms: u64) -> Option<u32> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .locked(ip, account, now_ms)
    }

    fn record_failure(&self, ip: IpAddr, account: &str, now_ms: u64) -> Option<u32> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record_failure(ip, account, now_ms)
    }
}

fn locked_reply(retry: u32) -> Reply {
    Reply::with_reason(403, "Too many failed authentication attempts")
        .header("Retry-After", retry.to_string())
}

/// The host of the SIP URI in From or To.
fn sip_host(req: &Message, which: HeaderName) -> Option<String> {
    let na = match which {
        HeaderName::To => req.to(),
        _ => req.from(),
    }?
    .ok()?;
    match na.uri {
        Uri::Sip(u) => Some(u.host.to_string()),
        _ => None,
    }
}

/// The credentials for `realm` from Authorization or Proxy-Authorization (the first whose
/// realm matches; a header that does not parse is reported only if none matches).
fn find_credentials<'m>(
    req: &'m Message,
    realm: &str,
) -> Option<Result<Credentials<'m>, confab_digest::ParamError>> {
    let mut first_err = None;
    for name in [HeaderName::Authorization, HeaderName::ProxyAuthorization] {
        for f in req.get_all(name) {
            let Some(v) = f.value_str() else { continue };
            // Credentials of another scheme (Basic, Bearer, or one nobody knows, RFC 4475
            // §3.3.7) are not ours to judge: as if absent, so the sender gets a challenge.
            let scheme = v.trim_start().split([' ', '\t']).next().unwrap_or("");
            if !scheme.eq_ignore_ascii_case("Digest") {
                continue;
            }
            match Credentials::parse(v) {
                Ok(c) if c.realm.eq_ignore_ascii_case(realm) => return Some(Ok(c)),
                Ok(_) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    first_err.map(Err)
}

/// The account a digest username names in `realm`: `alice` or `alice@realm`.
fn account_of(username: &str, realm: &str) -> Option<Address> {
    match username.split_once('@') {
        None => Address::new(username, realm).ok(),
        Some(_) => Address::parse(username)
            .ok()
            .filter(|a| a.domain().eq_ignore_ascii_case(realm)),
    }
}

/// The digest `uri` names the Request-URI (RFC 3261 §22.4 leaves the comparison to the
/// server; equivalence per §19.1.4, or identical text).
fn uri_matches(req: &Message, digest_uri: &str) -> bool {
    let Some(raw) = req.request_uri_bytes() else {
        return false;
    };
    if raw == digest_uri.as_bytes() {
        return true;
    }
    match (
        req.request_uri().and_then(Result::ok),
        Uri::parse(digest_uri),
    ) {
        (Some(Uri::Sip(a)), Ok(Uri::Sip(b))) => a.equivalent(&b),
        _ => false,
    }
}

/// From names the authenticated account (user part exact, domain case-insensitive).
fn from_matches(req: &Message, account: &Address) -> bool {
    let Some(Ok(from)) = req.from() else {
        return false;
    };
    match from.uri {
        Uri::Sip(u) => {
            u.user == Some(account.user())
                && u.host.to_string().eq_ignore_ascii_case(account.domain())
        }
        _ => false,
    }
}
