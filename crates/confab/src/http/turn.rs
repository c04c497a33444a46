//! The A/V Edge's HTTP surface: TURN credentials in the user API, usage records in the
//! admin API, and the small admin listener of an edge-only node.
//!
//! - `GET /api/user/v1/turn-credentials` (user listener, HTTP Digest): the authenticated
//!   user's own time-limited TURN REST API credentials and the RFC 7065 URIs
//!   ([`crate::turn_credentials::TurnIssuer`]), with `Cache-Control: no-store`. 404 when
//!   this node has no secret to mint with.
//! - `GET /api/admin/v1/turn/usage?offset=&max=` (admin listener, bearer token): usage
//!   records from the spool of the relay running **in this process** (`turn.usage_spool`),
//!   from byte `offset` (0 = the oldest kept), at most `max` (1 to 1000, default 100), with
//!   `next_offset`. 404 when no relay with a spool runs here.
//! - `POST /api/admin/v1/turn/usage/compact` with `{"upto": N}`: drops the records before
//!   byte `N` (a `next_offset` the collector has stored); offsets then restart at 0.
//!
//! Collection protocol (one collector per edge): read from 0 until `records` is empty,
//! store the records, compact up to the last `next_offset`, repeat. Delivery is
//! at-least-once (a collector that dies between storing and compacting reads the records
//! again): deduplicate on (`username`, `client`, `started_unix`). The Front End collects
//! from a **separate A/V Edge node** over that node's admin listener ([`edge_router`]),
//! which an edge-only node (`confab serve --role av-edge`) runs without a database: it
//! serves `/healthz`, `/readyz`, `/metrics` and the two usage operations only, and accepts
//! the bearer tokens whose SHA-256 is listed in `http.admin.tokens_sha256` (create the token
//! on the Front End with `confab token create`, then `printf %s TOKEN | sha256sum`).
//!
//! The relay's counters ([`confab_turn::TurnStats`]) are published to `/metrics` once a
//! second by [`publish_stats_while`]: `confab_turn_allocations` (gauge),
//! `confab_turn_relayed_packets_total{direction="to_peers"|"from_peers"}`,
//! `confab_turn_dropped_packets_total`, `confab_turn_send_errors_total`,
//! `confab_turn_error_responses_total` and `confab_turn_rate_limited_total`.
//!
//! Not here yet: the collector itself (a Front End task storing the records as CDRs
//! arrives with the CDR store).

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use confab_core::{ApiTokenSecret, TokenHash};
use confab_turn::{SpoolError, UsageLine, UsageSpool};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::http::admin::AdminToken;
use crate::http::error::{ApiError, ApiJson};
use crate::http::user::DigestUser;
use crate::http::{AppState, RouteDef, routes};
use crate::turn_credentials::{TurnIssuer, unix_now};

/// Largest `max` of a usage page.
pub const MAX_PAGE: usize = 1000;
/// Default `max` of a usage page.
pub const DEFAULT_PAGE: usize = 100;

/// What the TURN endpoints need: the issuer (user API) and the spool (admin API). Both are
/// optional: a node without a secret issues nothing, a node without a relay keeps no spool.
#[derive(Clone, Default)]
pub struct TurnApi {
    issuer: Option<Arc<TurnIssuer>>,
    spool: Option<SpoolAccess>,
}

#[derive(Clone)]
struct SpoolAccess {
    spool: Arc<UsageSpool>,
    path: PathBuf,
    /// Reads and compactions take turns, so an offset checked against the file is still
    /// valid when it is used.
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for TurnApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnApi")
            .field("issuer", &self.issuer)
            .field("spool", &self.spool.as_ref().map(|s| &s.path))
            .finish()
    }
}

impl TurnApi {
    /// From an issuer (if this node has a secret) and the spool of the relay running in this
    /// process with its path (`turn.usage_spool`).
    pub fn new(issuer: Option<TurnIssuer>, spool: Option<(Arc<UsageSpool>, PathBuf)>) -> Self {
        Self {
            issuer: issuer.map(Arc::new),
            spool: spool.map(|(spool, path)| SpoolAccess {
                spool,
                path,
                lock: Arc::default(),
            }),
        }
    }

    /// The TURN endpoints of a node: issuer from the configuration, spool from the relay
    /// handle when one runs here.
    pub fn for_node(
        config: &crate::config::Config,
        relay: Option<&confab_turn::TurnHandle>,
    ) -> Self {
        let spool = relay.and_then(|h| h.spool().cloned()).and_then(|s| {
            let path = config.turn.as_ref()?.usage_spool.clone()?;
            Some((s, path))
        });
        Self::new(TurnIssuer::from_config(config).ok(), spool)
    }
}

/// Parses one `http.admin.tokens_sha256` entry (64 hexadecimal digits).
pub fn parse_token_hash(hex: &str) -> Result<TokenHash, String> {
    let bad = || {
        format!(
            "`{hex}` is not a SHA-256 in hex (64 characters 0-9, a-f); compute it with `printf %s TOKEN | sha256sum`"
        )
    };
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => out[i] = (h * 16 + l) as u8,
            _ => return Err(bad()),
        }
    }
    Ok(TokenHash(out))
}

// ---------------------------------------------------------------------------------------
// User API

/// `GET /api/user/v1/turn-credentials`.
pub async fn user_turn_credentials(
    user: DigestUser,
    State(s): State<AppState>,
) -> Result<Response, ApiError> {
    let Some(issuer) = &s.turn.issuer else {
        return Err(ApiError::not_found(
            "this server issues no TURN credentials (no TURN shared secret is configured)",
        ));
    };
    let creds = issuer.issue(
        &user.address.to_string(),
        unix_now(),
        issuer.default_ttl_s(),
    );
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(creds),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------
// Usage records (admin API of a front end, and of an edge-only node)

/// `GET .../turn/usage` query (text, so bad values get our error shape).
#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    offset: Option<String>,
    max: Option<String>,
}

/// A page of usage records.
#[derive(Debug, Serialize, Deserialize)]
pub struct UsagePage {
    /// Records in the order the relay wrote them (when each allocation ended).
    pub records: Vec<UsageLine>,
    /// Byte offset to read on from, and to compact up to once the records are stored.
    pub next_offset: u64,
}

/// Largest offset the API takes: 2^53 - 1, the largest integer every JSON parser keeps
/// exact (the OpenAPI file says the same).
pub const MAX_OFFSET: u64 = (1 << 53) - 1;

/// `POST .../turn/usage/compact` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactUsage {
    /// Drop the records before this byte offset (a `next_offset` of a page). A JSON number
    /// (`12` or `12.0`: JSON Schema calls both integers), checked by [`CompactUsage::upto`].
    upto: serde_json::Number,
}

impl CompactUsage {
    /// The offset, or a 400 naming `upto`.
    pub fn upto(&self) -> Result<u64, ApiError> {
        let n = &self.upto;
        let v = n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=MAX_OFFSET as f64).contains(f))
                .map(|f| f as u64)
        });
        match v {
            Some(v) if v <= MAX_OFFSET => Ok(v),
            _ => Err(ApiError::invalid(
                "upto",
                format!("upto must be an integer from 0 to {MAX_OFFSET}"),
            )),
        }
    }
}

fn no_spool() -> ApiError {
    ApiError::not_found(
        "this node keeps no TURN usage records: no A/V Edge relay with `turn.usage_spool` runs in this process",
    )
}

fn spool_error(e: SpoolError) -> ApiError {
    tracing::error!(error = %e, "usage spool");
    ApiError::internal(e.to_string())
}

/// Checks that `offset` starts a record of the spool file at `path`: 0, or just after a
/// newline and not past the end.
fn check_boundary(path: &std::path::Path, offset: u64, field: &str) -> Result<(), ApiError> {
    if offset == 0 {
        return Ok(());
    }
    let io = |e: std::io::Error| ApiError::internal(format!("usage spool {}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if offset > len {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} {offset} is past the end of the spool ({len} bytes); offsets restart at 0 after a compaction"
            ),
        ));
    }
    f.seek(SeekFrom::Start(offset - 1)).map_err(io)?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b).map_err(io)?;
    if b[0] != b'\n' {
        return Err(ApiError::invalid(
            field,
            format!("{field} {offset} is not the start of a record; use a next_offset"),
        ));
    }
    Ok(())
}

async fn read_usage(
    turn: &TurnApi,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UsagePage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let offset: u64 = match q.offset.as_deref() {
        None => 0,
        Some(t) => match t.parse::<u64>() {
            Ok(n) if n <= MAX_OFFSET => n,
            _ => {
                return Err(ApiError::invalid(
                    "offset",
                    format!(
                        "offset must be a byte offset from 0 to {MAX_OFFSET} (0 or a next_offset)"
                    ),
                ));
            }
        },
    };
    let max = match q.max.as_deref() {
        None => DEFAULT_PAGE,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(
                    "max",
                    format!("max must be an integer from 1 to {MAX_PAGE}"),
                ));
            }
        },
    };
    let access = turn.spool.clone().ok_or_else(no_spool)?;
    let _turn = access.lock.clone().lock_owned().await;
    let (records, next_offset) = tokio::task::spawn_blocking(move || {
        check_boundary(&access.path, offset, "offset")?;
        access.spool.read_from(offset, max).map_err(spool_error)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(UsagePage {
        records,
        next_offset,
    }))
}

async fn compact_usage(turn: &TurnApi, upto: u64) -> Result<StatusCode, ApiError> {
    let access = turn.spool.clone().ok_or_else(no_spool)?;
    let _turn = access.lock.clone().lock_owned().await;
    tokio::task::spawn_blocking(move || {
        check_boundary(&access.path, upto, "upto")?;
        if upto > 0 {
            access.spool.compact(upto).map_err(spool_error)?;
        }
        Ok::<_, ApiError>(())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/admin/v1/turn/usage` on a front end.
pub async fn admin_usage(
    _auth: AdminToken,
    State(s): State<AppState>,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UsagePage>, ApiError> {
    read_usage(&s.turn, query).await
}

/// `POST /api/admin/v1/turn/usage/compact` on a front end.
pub async fn admin_compact_usage(
    auth: AdminToken,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<CompactUsage>,
) -> Result<StatusCode, ApiError> {
    let upto = body.upto()?;
    let r = compact_usage(&s.turn, upto).await?;
    tracing::info!(token = %auth.name, upto, "TURN usage spool compacted");
    Ok(r)
}

// ---------------------------------------------------------------------------------------
// The admin listener of an edge-only node

/// State of an edge-only node's admin listener (no database).
#[derive(Clone)]
pub struct EdgeState {
    node_id: String,
    metrics: Option<PrometheusHandle>,
    draining: Arc<AtomicBool>,
    tokens: Arc<[TokenHash]>,
    turn: TurnApi,
}

impl std::fmt::Debug for EdgeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeState")
            .field("node_id", &self.node_id)
            .field("tokens", &self.tokens.len())
            .field("turn", &self.turn)
            .finish_non_exhaustive()
    }
}

impl EdgeState {
    /// The state of an edge node: accepted token hashes (`http.admin.tokens_sha256`,
    /// already validated) and the relay's spool.
    pub fn new(
        node_id: String,
        metrics: Option<PrometheusHandle>,
        tokens: Vec<TokenHash>,
        turn: TurnApi,
    ) -> Self {
        Self {
            node_id,
            metrics,
            draining: Arc::default(),
            tokens: tokens.into(),
            turn,
        }
    }

    /// Marks the node as draining (`/readyz` turns 503).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

/// A request to an edge node carrying one of the configured tokens.
#[derive(Debug)]
pub struct EdgeToken;

impl FromRequestParts<EdgeState> for EdgeToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &EdgeState) -> Result<Self, ApiError> {
        let challenge = |e: ApiError, error: bool| {
            let v = if error {
                "Bearer realm=\"confab-admin\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"confab-admin\""
            };
            e.with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static(v))
        };
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(challenge(
                ApiError::unauthorized(
                    "an admin bearer token is required (one whose SHA-256 is in http.admin.tokens_sha256)",
                ),
                false,
            ));
        };
        let hash = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .and_then(ApiTokenSecret::parse)
            .map(|t| t.hash());
        match hash {
            Some(h) if s.tokens.contains(&h) => Ok(EdgeToken),
            _ => Err(challenge(
                ApiError::unauthorized("the bearer token is not valid"),
                true,
            )),
        }
    }
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
    node_id: String,
}

async fn edge_healthz(State(s): State<EdgeState>) -> Json<Status> {
    Json(Status {
        status: "ok",
        node_id: s.node_id.clone(),
    })
}

async fn edge_readyz(State(s): State<EdgeState>) -> Result<Json<Status>, ApiError> {
    if s.draining.load(Ordering::SeqCst) {
        return Err(ApiError::unavailable("the server is shutting down", 30));
    }
    Ok(Json(Status {
        status: "ready",
        node_id: s.node_id.clone(),
    }))
}

async fn edge_metrics(State(s): State<EdgeState>) -> Response {
    match &s.metrics {
        Some(h) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            h.render(),
        )
            .into_response(),
        None => ApiError::not_found("metrics are not enabled in this process").into_response(),
    }
}

async fn edge_usage(
    _auth: EdgeToken,
    State(s): State<EdgeState>,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UsagePage>, ApiError> {
    read_usage(&s.turn, query).await
}

async fn edge_compact_usage(
    _auth: EdgeToken,
    State(s): State<EdgeState>,
    ApiJson(body): ApiJson<CompactUsage>,
) -> Result<StatusCode, ApiError> {
    let upto = body.upto()?;
    let r = compact_usage(&s.turn, upto).await?;
    tracing::info!(upto, "TURN usage spool compacted");
    Ok(r)
}

/// The routes of an edge-only node's admin listener: a subset of the admin routes (same
/// paths and meaning; the OpenAPI file documents them once).
pub fn edge_routes() -> Vec<RouteDef<EdgeState>> {
    routes![
        GET "/healthz" => edge_healthz,
        GET "/readyz" => edge_readyz,
        GET "/metrics" => edge_metrics,
        GET "/api/admin/v1/turn/usage" => edge_usage,
        POST "/api/admin/v1/turn/usage/compact" => edge_compact_usage,
    ]
}

/// The admin router of an edge-only node.
pub fn edge_router(state: EdgeState) -> axum::Router {
    crate::http::build_router_with("admin", edge_routes(), state, |r| r)
}

/// Binds `http.admin.listen` of an edge-only node and serves [`edge_router`] on it until
/// `stop` turns true. Returns the state, whose [`EdgeState::start_draining`] turns
/// `/readyz` to 503.
pub async fn start_edge_admin(
    config: &crate::config::Config,
    metrics: PrometheusHandle,
    turn: TurnApi,
    stop: &tokio::sync::watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<EdgeState> {
    use anyhow::Context as _;
    let admin = &config.http.admin;
    let tokens = admin
        .tokens_sha256
        .iter()
        .map(|t| parse_token_hash(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("http.admin.tokens_sha256: {e}"))?;
    if tokens.is_empty() {
        tracing::warn!(
            "http.admin.tokens_sha256 is empty: the TURN usage endpoints of this edge refuse every request"
        );
    }
    let listener = tokio::net::TcpListener::bind(admin.listen)
        .await
        .with_context(|| format!("http.admin.listen = \"{}\": cannot listen", admin.listen))?;
    let local = listener.local_addr()?;
    tracing::info!(listener = "http.admin.listen", addr = %local, "listening");
    let state = EdgeState::new(config.node_id.clone(), Some(metrics), tokens, turn);
    tasks.spawn(crate::http::serve_http(
        "admin",
        listener,
        None,
        edge_router(state.clone()),
        stop.clone(),
    ));
    Ok(state)
}

/// Runs `fut` to completion, publishing the counters of `relay` (if any) to the metrics
/// recorder once a second meanwhile.
pub async fn publish_stats_while<F: std::future::Future>(
    relay: Option<&confab_turn::TurnHandle>,
    fut: F,
) -> F::Output {
    let Some(relay) = relay else {
        return fut.await;
    };
    let mut fut = std::pin::pin!(fut);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            _ = tick.tick() => publish_stats(relay.stats()),
        }
    }
}

fn publish_stats(s: confab_turn::TurnStats) {
    metrics::gauge!("confab_turn_allocations").set(s.allocations as f64);
    metrics::counter!("confab_turn_relayed_packets_total", "direction" => "to_peers")
        .absolute(s.relayed_to_peers);
    metrics::counter!("confab_turn_relayed_packets_total", "direction" => "from_peers")
        .absolute(s.relayed_from_peers);
    metrics::counter!("confab_turn_dropped_packets_total").absolute(s.dropped);
    metrics::counter!("confab_turn_send_errors_total").absolute(s.send_errors);
    metrics::counter!("confab_turn_error_responses_total").absolute(s.errors);
    metrics::counter!("confab_turn_rate_limited_total").absolute(s.rate_limited);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_routes_are_admin_routes() {
        let admin: Vec<(String, String)> = crate::http::admin::routes()
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        for r in edge_routes() {
            let key = (r.method.to_string(), r.path.to_string());
            assert!(admin.contains(&key), "{key:?} is not an admin route");
        }
    }

    #[track_caller]
    fn check_hash(text: &str, ok: bool) {
        assert_eq!(parse_token_hash(text).is_ok(), ok, "{text}");
    }

    #[test]
    fn token_hashes() {
        let secret = ApiTokenSecret::parse(&format!("confab_{}", "A".repeat(43))).unwrap();
        let hex: String = secret.hash().0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_token_hash(&hex).unwrap(), secret.hash());
        assert_eq!(
            parse_token_hash(&hex.to_ascii_uppercase()).unwrap(),
            secret.hash()
        );
        check_hash(&hex[..63], false);
        check_hash(&format!("{}g", &hex[..63]), false);
        check_hash(&format!("{hex}0"), false);
        check_hash("", false);
        // Multi-byte characters never panic the pairwise reader.
        check_hash(&"é".repeat(32), false);
    }

    #[test]
    fn record_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n").unwrap();
        let field = |o| check_boundary(&path, o, "offset").map_err(|e| e.message);
        assert_eq!(field(0), Ok(()));
        assert_eq!(field(8), Ok(()));
        assert_eq!(field(16), Ok(()));
        assert_eq!(
            field(3),
            Err("offset 3 is not the start of a record; use a next_offset".into())
        );
        assert_eq!(
            field(17),
            Err("offset 17 is past the end of the spool (16 bytes); offsets restart at 0 after a compaction".into())
        );
    }
}
