//! HTTP Digest authentication (RFC 7616) for the user API, following the server flow of
//! `confab-digest`: stateless HMAC nonces, constant-time response check against the stored
//! HA1 set (realm = the user's domain, username = the user part), a nonce-count window
//! against replays, and the same answer for an unknown user as for a wrong password.
//!
//! Challenges offer `qop="auth"` with SHA-256 first, then MD5 (curl, browsers and SIP
//! phones that lack SHA-256 still work). The realm is the `Host` of the request when it is
//! a served domain; otherwise one challenge pair per served domain is sent.
//!
//! The nonce key is derived from `auth.nonce_secret` or from the `nonce.key` file beside the
//! database (see `serve`), so it is the same across restarts and, with a configured secret,
//! on every front end of a pool. The nonce-count window is in memory: a nonce minted before
//! this process started verifies but is answered `stale=true`, so the client retries at
//! once with a fresh nonce instead of asking its user for the password again.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;

use confab_core::Address;
use confab_digest::{
    Algorithm, Challenge, Credentials, Ha1Set, NcVerdict, NonceCountWindow, NonceSecret,
    NonceStatus, Qop,
};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::user::DigestUser;

/// Algorithms offered, in order of preference.
pub const OFFERED: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

/// Nonces tracked by the replay window.
const WINDOW_CAPACITY: usize = 100_000;

/// The user API's digest state: nonce key, lifetime, replay window.
pub struct DigestAuth {
    secret: NonceSecret,
    lifetime_s: u64,
    node: u32,
    window: Mutex<NonceCountWindow>,
    /// The earliest expiry this process mints (one second past the window's floor).
    min_expiry: u64,
    /// Verified against for unknown users, so they take the same time and path.
    dummy: Ha1Set,
}

impl std::fmt::Debug for DigestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestAuth")
            .field("lifetime_s", &self.lifetime_s)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// FNV-1a of the node name: the node number carried in nonces.
fn node_number(node_id: &str) -> u32 {
    node_id.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

impl DigestAuth {
    /// A fresh state with the nonce key `key` (32 bytes; persistent, see the module docs).
    pub fn new(key: [u8; 32], dummy_password: [u8; 16], lifetime_s: u32, node_id: &str) -> Self {
        let secret = NonceSecret::new(&key).expect("32 bytes is long enough");
        let dummy_pw: String = dummy_password.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            secret,
            lifetime_s: u64::from(lifetime_s),
            node: node_number(node_id),
            // Nonces minted before this process have no nonce-count record here, so they
            // must never count as fresh (that would let a captured request be replayed
            // after a restart). They expire at or before `now + lifetime` (the binary starts
            // on a fresh second), ours after it (`min_expiry`): with the floor there, theirs
            // are `Unknown` (answered stale=true).
            window: Mutex::new(NonceCountWindow::new(
                WINDOW_CAPACITY,
                now_s() + u64::from(lifetime_s),
            )),
            min_expiry: now_s() + u64::from(lifetime_s) + 1,
            dummy: Ha1Set::compute("unknown", "invalid", &dummy_pw),
        }
    }

    fn challenge(&self, realms: &[&str], stale: bool, message: &str) -> ApiError {
        let mut random = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut random);
        let nonce = self.secret.mint(
            (now_s() + self.lifetime_s).max(self.min_expiry),
            self.node,
            random,
        );
        let mut err = ApiError::unauthorized(message);
        for realm in realms {
            for alg in OFFERED {
                let mut c = Challenge::new(realm, nonce.as_str(), alg);
                c.stale = stale;
                if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
                    err.headers.push((header::WWW_AUTHENTICATE, v));
                }
            }
        }
        err
    }
}

/// The realms to challenge with: the request's host if it is served, else every domain.
fn realms<'a>(parts: &Parts, domains: &'a [String]) -> Vec<&'a str> {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.host())
        .map(|h| {
            // Strip the port (and IPv6 brackets).
            let h = match h.rfind(':') {
                Some(i) if !h[i..].contains(']') => &h[..i],
                _ => h,
            };
            h.trim_start_matches('[').trim_end_matches(']')
        });
    match host.and_then(|h| domains.iter().find(|d| d.eq_ignore_ascii_case(h))) {
        Some(d) => vec![d.as_str()],
        None => domains.iter().map(String::as_str).collect(),
    }
}

fn outcome(result: &'static str) {
    metrics::counter!("confab_http_digest_auth_total", "result" => result).increment(1);
}

/// Middleware of the user routes: authenticates the request and stores the [`DigestUser`]
/// in its extensions. On failure the request body is read (up to the body limit) and
/// dropped before the 401 goes out, so HTTP/2 clients that sent a body with their first,
/// unauthenticated try (curl `--digest` does) get a clean answer rather than a reset stream.
pub async fn require_digest(
    axum::extract::State(s): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (mut parts, body) = req.into_parts();
    match authenticate(&parts, &s).await {
        Ok(user) => {
            parts.extensions.insert(user);
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Err(e) => {
            let _ = axum::body::to_bytes(body, crate::http::MAX_BODY_BYTES).await;
            axum::response::IntoResponse::into_response(e)
        }
    }
}

/// Authenticates a user API request or returns the 401 (with challenges) / 400 to send.
pub async fn authenticate(parts: &Parts, s: &AppState) -> Result<DigestUser, ApiError> {
    let auth = &s.digest;
    let realms = realms(parts, &s.domains);
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        outcome("challenged");
        return Err(auth.challenge(&realms, false, "authentication required (HTTP Digest)"));
    };
    let Ok(value) = value.to_str() else {
        outcome("malformed");
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_authorization",
            "the Authorization header is not ASCII",
        ));
    };
    let is_digest = value
        .split_once(' ')
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("digest"));
    if !is_digest {
        outcome("challenged");
        return Err(auth.challenge(&realms, false, "use HTTP Digest authentication"));
    }
    let creds = match Credentials::parse(value) {
        Ok(c) => c,
        Err(e) => {
            outcome("malformed");
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_authorization",
                format!("malformed Digest credentials: {e}"),
            ));
        }
    };
    // RFC 7616 §3.4.6: the digest-uri must name the requested resource.
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    if creds.uri != target && creds.uri != parts.uri.to_string() {
        outcome("malformed");
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_authorization",
            "the digest uri does not match the request target",
        ));
    }
    let fail = |stale: bool| {
        outcome(if stale { "stale" } else { "failed" });
        Err(auth.challenge(&realms, stale, "authentication failed"))
    };
    if creds.userhash || creds.qop != Some(Qop::Auth) {
        // Neither was offered.
        return fail(false);
    }
    let Some(realm) = s
        .domains
        .iter()
        .find(|d| d.eq_ignore_ascii_case(&creds.realm))
    else {
        return fail(false);
    };
    let now = now_s();
    let info = match auth.secret.verify(&creds.nonce, now) {
        NonceStatus::Valid(info) => info,
        NonceStatus::Stale(_) => return fail(true),
        NonceStatus::Invalid => return fail(false),
    };
    let user = match Address::new(&creds.username, realm) {
        Ok(address) => s.users.get_user(&address).await?,
        Err(_) => None,
    };
    let ha1s = user
        .as_ref()
        .and_then(|u| u.credentials.as_ref())
        .unwrap_or(&auth.dummy);
    let verified = creds.verify(ha1s, parts.method.as_str(), b"").is_ok();
    let Some(user) = user.filter(|u| verified && u.credentials.is_some()) else {
        tracing::debug!(username = %creds.username, realm = %realm, "digest authentication failed");
        return fail(false);
    };
    let nc = creds.nonce_count().unwrap_or(0);
    let verdict =
        auth.window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(info.id, info.expires_at, nc);
    match verdict {
        NcVerdict::Fresh => {}
        NcVerdict::Replay => {
            tracing::debug!(address = %user.address, "digest nonce count replayed");
            return fail(false);
        }
        NcVerdict::Unknown => return fail(true),
    }
    outcome("ok");
    Ok(DigestUser {
        address: user.address,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(host: Option<&str>) -> Parts {
        let mut b = Request::builder().uri("/api/user/v1/me");
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn realm_follows_the_host_when_served() {
        let domains = vec!["a.example".to_string(), "b.example".to_string()];
        assert_eq!(
            realms(&parts(Some("b.example:9443")), &domains),
            ["b.example"]
        );
        assert_eq!(realms(&parts(Some("B.EXAMPLE")), &domains), ["b.example"]);
        assert_eq!(
            realms(&parts(Some("127.0.0.1:9443")), &domains),
            ["a.example", "b.example"]
        );
        assert_eq!(realms(&parts(None), &domains), ["a.example", "b.example"]);
        let v6 = vec!["::1".to_string()];
        assert_eq!(realms(&parts(Some("[::1]:9443")), &v6), ["::1"]);
    }

    #[test]
    fn challenges_offer_sha256_then_md5_per_realm() {
        let a = DigestAuth::new([7; 32], [1; 16], 300, "node-1");
        let e = a.challenge(&["a.example"], true, "x");
        let values: Vec<_> = e
            .headers
            .iter()
            .filter(|(n, _)| n == header::WWW_AUTHENTICATE)
            .map(|(_, v)| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(values.len(), 2);
        let c0 = Challenge::parse(&values[0]).unwrap();
        let c1 = Challenge::parse(&values[1]).unwrap();
        assert_eq!(c0.algorithm, Some(Algorithm::Sha256));
        assert_eq!(c1.algorithm, Some(Algorithm::Md5));
        assert_eq!(c0.realm, "a.example");
        assert!(c0.stale && c0.qop.auth);
        assert!(matches!(
            a.secret.verify(&c0.nonce, now_s()),
            NonceStatus::Valid(_)
        ));
    }

    #[test]
    fn node_numbers_differ() {
        assert_ne!(node_number("node-1"), node_number("node-2"));
    }
}
