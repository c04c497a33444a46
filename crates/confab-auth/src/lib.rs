//! Digest authentication of SIP requests for the Front End (roles tier).
//!
//! **What it does:** decides, for each request of the proxy's request chain, whether it
//! needs digest authentication (RFC 3261 §22 with RFC 8760's MD5, SHA-256 and SHA-512-256,
//! `qop=auth`), challenges it (401 `WWW-Authenticate` for requests the server answers
//! itself: REGISTER and requests addressed to the server; 407 `Proxy-Authenticate` for
//! proxied requests; one header per configured algorithm, in the configured order), and
//! verifies credentials against the user's stored HA1 values:
//!
//! * nonces are stateless HMACs over expiry and node id (`confab-digest`), so any front end
//!   of a pool sharing `nonce_secret` verifies them without a lookup; an expired nonce with a
//!   correct digest gets `stale=true`;
//! * replays are refused with the bounded nonce-count window (lost on restart, which only
//!   costs clients one `stale=true` round trip);
//! * an unknown account gets exactly the challenge a known one gets, after the same digest
//!   computation against a dummy HA1 set (no account enumeration, same timing path);
//! * failed attempts are limited per (source IP, account) pair: over the limit that pair gets
//!   403 with `Retry-After`, nobody else is locked out;
//! * trusted peers (addresses, networks, TLS certificate names) skip digest and form the
//!   RFC 3325 trust domain: their P-Asserted-Identity is believed; from anyone else it is
//!   removed and, once authenticated, replaced by the authenticated identity;
//! * for requests other than REGISTER, From must name the authenticated account (403).
//!   For REGISTER the registrar checks To against the identity this step establishes.
//!
//! **Which requests need digest:** every REGISTER and every request of an untrusted sender
//! whose From is in our domains or that is addressed to a local user, whatever its From
//! says: a From of another domain is challenged in the default realm like an unknown user,
//! so no answer (404 against 480) tells which accounts exist. Requests from other domains
//! to the server itself (OPTIONS pings) or elsewhere ("Relaying denied") pass. Federation partners come in
//! as trusted peers. `allow_foreign_unauthenticated = true` lets untrusted senders of other
//! domains through unauthenticated; routing then accepts them only for local targets
//! ("Relaying denied" otherwise).
//!
//! **What it does not do:** I/O (the user store comes in as a port trait), `auth-int`
//! challenges (accepted from clients, not offered), `userhash`, `-sess` algorithms,
//! `Authentication-Info`, TLS client-certificate authentication of users (only of peers).
//!
//! Entry points: [`AuthConfig`] (`[auth]`), [`Authenticator`] (the decision logic, sans-IO:
//! clock and random bytes are arguments), [`AuthHandler`] (the chain step).

mod authenticator;
mod config;
mod handler;
mod limiter;
mod trusted;

pub use authenticator::{Authenticator, ChallengeKind, Decision, Need, node_id_of};
pub use config::{AuthConfig, AuthConfigError, Validated};
pub use handler::AuthHandler;
pub use limiter::FailureLimiter;
pub use trusted::{TrustedPeer, TrustedPeerError, TrustedPeers};
