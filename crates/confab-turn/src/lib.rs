//! The A/V Edge relay: STUN/TURN over UDP, TCP and TLS, relaying over UDP.
//!
//! What it does: binds the client listeners and relay sockets, runs one worker thread per
//! CPU (each with its own `SO_REUSEPORT` listener sockets, relay port slice and sans-IO
//! [`confab_stun::turn::Server`] shard; the per-user allocation quota is shared), and spools
//! usage records to a JSON-lines file ([`UsageSpool`]). The `confab` binary calls
//! [`serve`] with the `[turn]` table ([`TurnConfig`]) for `confab serve --role av-edge`, and
//! [`mint_credentials`] / [`turn_uris`] for `confab turn-credentials` and the user API.
//!
//! What it does not do: parse STUN or decide anything about TURN (that is `confab-stun`),
//! read configuration files or the command line (the binary's job), TCP relay allocations
//! (RFC 6062), DTLS, batched `recvmmsg`/`sendmmsg`/GSO socket calls (not yet; see
//! `worker.rs`).

mod config;
mod spool;
mod worker;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use confab_stun::credentials::{RestCredentials, UriTransport, mint_rest_credentials, turn_uri};
use confab_stun::turn::QuotaLedger;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

pub use config::{ConfigError, StaticUser, TurnConfig};
pub use spool::{SpoolError, UsageLine, UsageSpool};

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TurnError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {transport} {addr}: {source}")]
    Bind {
        /// `udp`, `tcp` or `tls`.
        transport: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// The usage spool could not be opened.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// A worker thread could not be started.
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
}

/// Counters summed over the workers (refreshed about once a second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Live allocations.
    pub allocations: u64,
    /// Packets relayed client -> peer.
    pub relayed_to_peers: u64,
    /// Packets relayed peer -> client.
    pub relayed_from_peers: u64,
    /// Packets dropped by the TURN logic.
    pub dropped: u64,
    /// Sends that failed (socket buffer full, client gone).
    pub send_errors: u64,
    /// Requests answered with an error response (401 challenges included).
    pub errors: u64,
    /// Requests dropped because their source failed authentication too often.
    pub rate_limited: u64,
}

/// A running relay. Dropping it without [`TurnHandle::shutdown`] stops the workers too,
/// without waiting for them.
#[derive(Debug)]
pub struct TurnHandle {
    control: watch::Sender<worker::Control>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stats: Vec<Arc<worker::SharedStats>>,
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    tls: Vec<SocketAddr>,
    spool: Option<Arc<UsageSpool>>,
}

impl TurnHandle {
    /// Bound UDP listener addresses (useful with port 0).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }
    /// Bound TCP listener addresses.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }
    /// Bound TLS listener addresses.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls
    }
    /// The usage spool, for the admin API to read and compact.
    pub fn spool(&self) -> Option<&Arc<UsageSpool>> {
        self.spool.as_ref()
    }
    /// Starts (`Some`) or stops (`None`) draining: new allocations get 300 Try Alternate.
    pub fn set_alternate_server(&self, alt: Option<SocketAddr>) {
        self.control.send_modify(|c| c.alternate = alt);
    }
    /// Counters.
    pub fn stats(&self) -> TurnStats {
        let mut t = TurnStats::default();
        for s in &self.stats {
            t.allocations += s.allocations.load(Ordering::Relaxed);
            t.relayed_to_peers += s.relayed_to_peers.load(Ordering::Relaxed);
            t.relayed_from_peers += s.relayed_from_peers.load(Ordering::Relaxed);
            t.dropped += s.dropped.load(Ordering::Relaxed);
            t.send_errors += s.send_errors.load(Ordering::Relaxed);
            t.errors += s.errors.load(Ordering::Relaxed);
            t.rate_limited += s.rate_limited.load(Ordering::Relaxed);
        }
        t
    }
    /// Stops the workers: every allocation ends (usage records with `end = "shutdown"` are
    /// spooled) and every socket closes. Waits for the worker threads without blocking the
    /// async runtime.
    pub async fn shutdown(mut self) {
        self.control.send_modify(|c| c.shutdown = true);
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

impl Drop for TurnHandle {
    fn drop(&mut self) {
        self.control.send_modify(|c| c.shutdown = true);
    }
}

fn bind_udp(addr: SocketAddr, reuse: bool) -> std::io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_port(reuse)?;
    s.set_nonblocking(true)?;
    // Larger buffers absorb bursts from many clients.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn bind_tcp(addr: SocketAddr, reuse: bool) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(reuse)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

fn load_tls(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, TurnError> {
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| TurnError::Tls(format!("{}: {e}", p.display())));
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| TurnError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(TurnError::Tls(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| TurnError::Tls(format!("{}: {e}", key.display())))?
        .ok_or_else(|| TurnError::Tls(format!("{}: no private key", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TurnError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TurnError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Starts the relay described by `config`. Listeners are bound (port 0 is resolved, see
/// [`TurnHandle::udp_addrs`]) before this returns, so address conflicts are reported here.
/// Must be called within a tokio runtime only for [`TurnHandle::shutdown`]; the workers run
/// on their own threads.
pub fn serve(config: TurnConfig) -> Result<TurnHandle, TurnError> {
    config.validate()?;
    let mut server_config = config.to_server_config()?;
    let relay_ips = config.relay_ips()?;
    let n = config.worker_count();
    let reuse = n > 1;
    // Each worker enforces its share of the edge-wide allocation limit.
    server_config.max_allocations = config.max_allocations.div_ceil(n);
    let tls_acceptor = match (
        &config.tls_cert_file,
        &config.tls_key_file,
        config.listen_tls.is_empty(),
    ) {
        (Some(c), Some(k), false) => Some(load_tls(c, k)?),
        _ => None,
    };
    // Bind every listener once per worker; port 0 is resolved by the first bind.
    let mut per_worker: Vec<(Vec<_>, Vec<_>, Vec<_>)> =
        (0..n).map(|_| Default::default()).collect();
    let (mut udp_addrs, mut tcp_addrs, mut tls_addrs) = (Vec::new(), Vec::new(), Vec::new());
    for &addr in &config.listen_udp {
        let mut bound = addr;
        for w in per_worker.iter_mut() {
            let s = bind_udp(bound, reuse).map_err(|source| TurnError::Bind {
                transport: "udp",
                addr,
                source,
            })?;
            bound = s.local_addr().map_err(|source| TurnError::Bind {
                transport: "udp",
                addr,
                source,
            })?;
            w.0.push(s);
        }
        udp_addrs.push(bound);
    }
    for (list, out, transport, idx) in [
        (&config.listen_tcp, &mut tcp_addrs, "tcp", 1),
        (&config.listen_tls, &mut tls_addrs, "tls", 2),
    ] {
        for &addr in list {
            let mut bound = addr;
            for w in per_worker.iter_mut() {
                let s = bind_tcp(bound, reuse).map_err(|source| TurnError::Bind {
                    transport,
                    addr,
                    source,
                })?;
                bound = s.local_addr().map_err(|source| TurnError::Bind {
                    transport,
                    addr,
                    source,
                })?;
                if idx == 1 { w.1.push(s) } else { w.2.push(s) }
            }
            out.push(bound);
        }
    }
    // The edge's own addresses are never valid peers.
    let own = &mut server_config.peer_policy.own_addresses;
    own.extend(
        udp_addrs
            .iter()
            .chain(&tcp_addrs)
            .chain(&tls_addrs)
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified()),
    );
    for (b, p) in [relay_ips.v4, relay_ips.v6].into_iter().flatten() {
        own.push(b);
        own.push(p);
    }
    let spool = match &config.usage_spool {
        Some(p) => Some(Arc::new(UsageSpool::open(p)?)),
        None => None,
    };
    let ledger = Arc::new(QuotaLedger::default());
    let (control, control_rx) = watch::channel(worker::Control {
        alternate: config.alternate_server,
        shutdown: false,
    });
    // Split the relay port range into one slice per worker.
    let span = u32::from(config.max_port - config.min_port) + 1;
    let mut threads = Vec::new();
    let mut stats = Vec::new();
    for (i, (udp, tcp, tls)) in per_worker.into_iter().enumerate() {
        let lo = u32::from(config.min_port) + span * i as u32 / n as u32;
        let hi = u32::from(config.min_port) + span * (i as u32 + 1) / n as u32 - 1;
        let s = Arc::new(worker::SharedStats::default());
        stats.push(Arc::clone(&s));
        let init = worker::WorkerInit {
            index: i,
            server_config: server_config.clone(),
            udp,
            tcp,
            tls,
            tls_acceptor: tls_acceptor.clone(),
            relay_ips,
            ports: (lo as u16, hi as u16),
            ledger: Arc::clone(&ledger),
            spool: spool.clone(),
            stats: s,
            control: control_rx.clone(),
            idle: std::time::Duration::from_secs(config.idle_connection_s),
        };
        let t = std::thread::Builder::new()
            .name(format!("turn-worker-{i}"))
            .spawn(move || worker::run(init))
            .map_err(TurnError::Thread)?;
        threads.push(t);
    }
    tracing::info!(udp = ?udp_addrs, tcp = ?tcp_addrs, tls = ?tls_addrs, workers = n, "TURN relay listening");
    Ok(TurnHandle {
        control,
        threads,
        stats,
        udp: udp_addrs,
        tcp: tcp_addrs,
        tls: tls_addrs,
        spool,
    })
}

/// Mints TURN REST API credentials for `user` with the first configured secret, valid
/// `ttl_s` seconds from `now_unix` (pure; the caller reads the clock). `None` if the
/// configuration has no secret.
pub fn mint_credentials(
    config: &TurnConfig,
    user: &str,
    now_unix: u64,
    ttl_s: u64,
) -> Option<RestCredentials> {
    let secret = config.secrets.first()?;
    Some(mint_rest_credentials(
        secret.as_bytes(),
        user,
        now_unix,
        ttl_s,
    ))
}

/// The JSON answer of the TURN REST API draft (draft-uberti-behave-turn-rest §2.2):
/// `{"username", "password", "ttl", "uris"}`, plus the absolute expiry. What the user HTTPS
/// API and `confab turn-credentials --json` print.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TurnCredentials {
    /// `expiry:user`.
    pub username: String,
    /// base64(HMAC-SHA1(secret, username)).
    pub password: String,
    /// Validity in seconds.
    pub ttl: u64,
    /// When they stop working, UNIX seconds.
    pub expires_at_unix: u64,
    /// RFC 7065 URIs of this edge.
    pub uris: Vec<String>,
}

/// Credentials and URIs for `user` in one value: [`mint_credentials`] + [`turn_uris`].
/// `None` if the configuration has no REST secret.
pub fn credentials_for(
    config: &TurnConfig,
    user: &str,
    host: &str,
    now_unix: u64,
    ttl_s: u64,
) -> Option<TurnCredentials> {
    let c = mint_credentials(config, user, now_unix, ttl_s)?;
    Some(TurnCredentials {
        username: c.username,
        password: c.password,
        ttl: ttl_s,
        expires_at_unix: c.expires_at_unix,
        uris: turn_uris(config, host),
    })
}

/// RFC 7065 URIs clients should use to reach this edge at `host` (its public name): one per
/// configured transport, with the port of the first listener of each.
pub fn turn_uris(config: &TurnConfig, host: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(a) = config.listen_udp.first() {
        out.push(turn_uri(host, a.port(), UriTransport::Udp));
    }
    if let Some(a) = config.listen_tcp.first() {
        out.push(turn_uri(host, a.port(), UriTransport::Tcp));
    }
    if let Some(a) = config.listen_tls.first() {
        out.push(turn_uri(host, a.port(), UriTransport::Tls));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_json_has_the_rest_api_shape() {
        let cfg = TurnConfig {
            realm: "r".into(),
            secrets: vec!["secret".into(), "old".into()],
            listen_tls: vec!["0.0.0.0:5349".parse().unwrap()],
            ..TurnConfig::default()
        };
        let c = credentials_for(&cfg, "alice", "edge.example.com", 1_699_913_600, 86_400).unwrap();
        // Same scheme as coturn use-auth-secret; value checked with openssl in confab-stun.
        assert_eq!(c.username, "1700000000:alice");
        assert_eq!(c.password, "d8soP47RbdIKLDUOpnJPVQyq5Ts=");
        assert_eq!(
            c.uris,
            [
                "turn:edge.example.com:3478?transport=udp",
                "turn:edge.example.com:3478?transport=tcp",
                "turns:edge.example.com:5349?transport=tcp",
            ]
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["ttl"], 86_400);
        assert_eq!(json["expires_at_unix"], 1_700_000_000u64);
        let no_secret = TurnConfig {
            secrets: vec![],
            ..cfg
        };
        assert_eq!(credentials_for(&no_secret, "alice", "h", 0, 1), None);
    }
}
