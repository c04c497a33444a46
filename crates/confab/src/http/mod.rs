//! The two HTTP listeners (axum 0.8 on hyper, both served by [`serve_http`]).
//!
//! - **admin** (plain HTTP, default `127.0.0.1:9090`): `/healthz`, `/readyz`, `/metrics`
//!   without authentication (load balancers and Prometheus), and `/api/admin/v1/...` with a
//!   bearer token from `confab token create`. See [`admin`].
//! - **user** (HTTPS, default `127.0.0.1:9443`): `/api/user/v1/...`, a user's own data,
//!   authenticated with HTTP Digest (RFC 7616) against the same HA1 values as SIP. See
//!   [`user`].
//!
//! - The TURN endpoints of both listeners and the admin listener of an edge-only node are in
//!   [`turn`].
//!
//! Each router is built from a route table ([`admin::routes`], [`user::routes`]) so that a
//! test can compare the routes with `openapi/confab.yaml` in both directions. Every error,
//! including unknown routes (404), unsupported methods (405), bad JSON and panics, has the
//! shape of [`error::ApiError`].
//!
//! Not here yet: registrations in the admin API (they arrive with the registrar), CORS
//! (no browser client yet).

pub mod admin;
pub mod contacts;
pub mod digest;
pub mod error;
pub mod filters;
pub mod messages;
pub mod registrations;
pub mod state;
pub mod turn;
pub mod user;
pub mod views;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

pub use error::ApiError;
pub use state::AppState;

/// Largest request body accepted (bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a draining listener waits for requests in flight before it closes them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// One route: method, path (axum syntax, `{param}`), and its handler.
#[derive(Debug)]
pub struct RouteDef<S> {
    /// The HTTP method.
    pub method: Method,
    /// The path, as written in the OpenAPI file.
    pub path: &'static str,
    /// The handler, filtered to `method`.
    pub router: MethodRouter<S>,
}

/// Builds a route table; the method filter and the recorded method come from one token, so
/// they cannot disagree.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:expr),* $(,)?) => {
        vec![$($crate::http::RouteDef {
            method: ::axum::http::Method::$method,
            path: $path,
            router: ::axum::routing::on(::axum::routing::MethodFilter::$method, $handler),
        }),*]
    };
}
pub(crate) use routes;

/// Turns a route table into a router with the common error handling, limits and metrics.
pub fn build_router(
    listener: &'static str,
    table: Vec<RouteDef<AppState>>,
    state: AppState,
) -> Router {
    build_router_with(listener, table, state, |r| r)
}

/// [`build_router`] with `routes_layer` applied to the matched routes only (authentication
/// middleware), not to the 404/405 fallbacks.
pub fn build_router_with<S: Clone + Send + Sync + 'static>(
    listener: &'static str,
    table: Vec<RouteDef<S>>,
    state: S,
    routes_layer: impl FnOnce(Router<S>) -> Router<S>,
) -> Router {
    let mut router = Router::new();
    for r in table {
        router = router.route(r.path, r.router);
    }
    routes_layer(router)
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::no_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| observe(listener, req, next),
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::internal("internal error; see the server log").into_response()
            },
        ))
        .with_state(state)
}

/// Metrics and one debug line per request: method, matched route, status, duration. Never
/// headers, query strings or bodies (they can hold credentials).
async fn observe(listener: &'static str, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    metrics::counter!("confab_http_requests_total",
        "listener" => listener, "method" => method.to_string(), "route" => route.clone(),
        "status" => status.to_string())
    .increment(1);
    metrics::histogram!("confab_http_request_duration_seconds",
        "listener" => listener, "route" => route.clone())
    .record(elapsed.as_secs_f64());
    tracing::debug!(
        listener,
        %method,
        route,
        status,
        peer = ?peer,
        elapsed_us = elapsed.as_micros() as u64,
        "http request"
    );
    resp
}

/// Resolves when the stop flag turns true (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Serves `app` on `listener` (with TLS when `tls` is given) until `shutdown` turns true,
/// then stops accepting, lets requests in flight finish (at most [`DRAIN_TIMEOUT`]) and
/// returns.
pub async fn serve_http(
    name: &'static str,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .header_read_timeout(Duration::from_secs(10))
        .timer(hyper_util::rt::TokioTimer::new());
    let builder = Arc::new(builder);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => break,
        };
        let app = app.clone();
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let app = app.clone();
                async move {
                    Ok::<_, Infallible>(
                        app.oneshot(req.map(axum::body::Body::new))
                            .await
                            .into_response(),
                    )
                }
            });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await;
                    let tls_stream = match handshake {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(listener = name, peer = %peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(listener = name, peer = %peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), svc);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(listener = name, peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(listener = name, in_flight = graceful.count(), "draining");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            "drain timed out; closing the remaining connections"
        );
    }
}
