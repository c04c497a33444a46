//! Connection transports: TCP, TLS, WS and WSS. One task per connection reads, frames,
//! delivers, writes queued messages and enforces the idle timeout; nothing is spawned per
//! message. Received bytes are framed in place and split off as `Bytes` without copying.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, sleep_until, timeout};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};

use crate::flow::FlowToken;
use crate::limits::ConnectionGuard;
use crate::listen::TransportKind;
use crate::queue::SendQueue;
use crate::sip::{self, Framed};
use crate::tls::PeerIdentity;
use crate::transport::{
    CloseReason, ConnEntry, Inbound, ListenerInfo, SendError, Shared, TransportEvent,
};
use crate::udp::answer_bad_input;

/// Binds a TCP listener (also for TLS/WS/WSS). IPv6 listeners are IPv6-only so that
/// `0.0.0.0` and `[::]` can both be bound on one port.
pub(crate) fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

/// A byte stream a connection task runs on.
pub(crate) trait StreamIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Plain TCP can wait for readability without a buffer, so an idle connection holds no
    /// receive buffer. TLS keeps plaintext inside rustls, so it always reads into a buffer.
    const LAZY_BUFFER: bool;

    /// Waits until a read would find data (only called when `LAZY_BUFFER`).
    fn ready(&self) -> impl Future<Output = ()> + Send;
}

impl StreamIo for TcpStream {
    const LAZY_BUFFER: bool = true;

    async fn ready(&self) {
        let _ = self.readable().await;
    }
}

impl StreamIo for tokio_rustls::server::TlsStream<TcpStream> {
    const LAZY_BUFFER: bool = false;

    async fn ready(&self) {}
}

impl StreamIo for tokio_rustls::client::TlsStream<TcpStream> {
    const LAZY_BUFFER: bool = false;

    async fn ready(&self) {}
}

/// What a connection task knows about its connection.
#[derive(Debug, Clone)]
struct ConnCtx {
    id: u64,
    remote: SocketAddr,
    local: SocketAddr,
    transport: TransportKind,
    listener: Option<Arc<ListenerInfo>>,
    peer_identity: Option<Arc<PeerIdentity>>,
}

/// Accepts connections on one listener until aborted.
pub(crate) async fn accept_loop(shared: Arc<Shared>, info: Arc<ListenerInfo>, l: TcpListener) {
    loop {
        let (tcp, remote) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, listener = %info.spec, "accept failed");
                sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let guard = match shared.sources.open_connection(remote.ip(), Instant::now()) {
            Ok(g) => g,
            Err(limit) => {
                shared.metrics.rejected(limit);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let sh = shared.clone();
        let info = info.clone();
        tokio::spawn(async move { serve_accepted(sh, info, tcp, remote, guard).await });
    }
}

async fn serve_accepted(
    sh: Arc<Shared>,
    info: Arc<ListenerInfo>,
    tcp: TcpStream,
    remote: SocketAddr,
    guard: ConnectionGuard,
) {
    let transport = info.transport();
    let local = tcp.local_addr().unwrap_or(info.local);
    let mut ctx = ConnCtx {
        id: sh.new_conn_id(),
        remote,
        local,
        transport,
        listener: Some(info),
        peer_identity: None,
    };
    let hs_timeout = Duration::from_secs(sh.cfg.handshake_timeout_s);
    if transport == TransportKind::Tcp {
        return start(&sh, tcp, ctx, guard, None);
    }
    let hs_guard = match sh.sources.begin_handshake(remote.ip(), Instant::now()) {
        Ok(g) => g,
        Err(limit) => {
            sh.metrics.rejected(limit);
            return;
        }
    };
    match transport {
        TransportKind::Ws => {
            let ws = timeout(hs_timeout, ws_accept(&sh, tcp)).await;
            drop(hs_guard);
            match ws {
                Ok(Ok(ws)) => start_ws(&sh, ws, ctx, guard),
                _ => sh.metrics.handshake_failed(transport),
            }
        }
        TransportKind::Tls | TransportKind::Wss => {
            let Some(tls) = &sh.tls else { return };
            let acceptor = TlsAcceptor::from(tls.server_config());
            let accepted = timeout(hs_timeout, async {
                let s = acceptor.accept(tcp).await?;
                if transport == TransportKind::Wss {
                    Ok::<_, io::Error>(Err(ws_accept(&sh, s).await?))
                } else {
                    Ok(Ok(s))
                }
            })
            .await;
            drop(hs_guard);
            match accepted {
                Ok(Ok(Ok(s))) => {
                    ctx.peer_identity = peer_identity(s.get_ref().1.peer_certificates());
                    start(&sh, s, ctx, guard, None);
                }
                Ok(Ok(Err(ws))) => {
                    ctx.peer_identity = peer_identity(ws.get_ref().get_ref().1.peer_certificates());
                    start_ws(&sh, ws, ctx, guard);
                }
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS/WS handshake failed");
                    sh.metrics.handshake_failed(transport);
                }
                Err(_) => sh.metrics.handshake_failed(transport),
            }
        }
        TransportKind::Tcp | TransportKind::Udp => {}
    }
}

fn peer_identity(
    certs: Option<&[rustls_pki_types::CertificateDer<'static>]>,
) -> Option<Arc<PeerIdentity>> {
    certs
        .and_then(|c| c.first())
        .map(|c| Arc::new(PeerIdentity::from_der(c)))
}

/// RFC 7118 §4.1: the client must offer the `sip` subprotocol; we select it.
// The callback's error type is tungstenite's HTTP response, not ours to shrink.
#[allow(clippy::result_large_err)]
async fn ws_accept<S>(sh: &Shared, s: S) -> io::Result<WebSocketStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut cfg = WebSocketConfig::default();
    cfg.max_message_size = Some(sh.cfg.max_message_bytes);
    cfg.max_frame_size = Some(sh.cfg.max_message_bytes);
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let offers_sip = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("sip"));
        if !offers_sip {
            let mut err = ErrorResponse::new(Some(
                "RFC 7118: the `sip` WebSocket subprotocol is required".into(),
            ));
            *err.status_mut() = StatusCode::BAD_REQUEST;
            return Err(err);
        }
        resp.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("sip"));
        Ok(resp)
    };
    tokio_tungstenite::accept_hdr_async_with_config(s, callback, Some(cfg))
        .await
        .map_err(io::Error::other)
}

/// Opens an outgoing TCP or TLS connection and registers it as reusable for `addr`.
pub(crate) async fn connect(
    sh: &Arc<Shared>,
    transport: TransportKind,
    addr: SocketAddr,
    server_name: Option<&str>,
) -> Result<u64, SendError> {
    let fail = |reason: String| SendError::Connect {
        addr,
        transport,
        reason,
    };
    if transport == TransportKind::Tls && sh.tls.is_none() {
        return Err(SendError::NoTls);
    }
    let guard = sh
        .sources
        .open_connection(addr.ip(), Instant::now())
        .map_err(|l| fail(l.to_string()))?;
    let limit = Duration::from_secs(sh.cfg.connect_timeout_s);
    let tcp = timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().map_err(|e| fail(e.to_string()))?;
    let mut ctx = ConnCtx {
        id: sh.new_conn_id(),
        remote: addr,
        local,
        transport,
        listener: sh.listener_for(transport, local),
        peer_identity: None,
    };
    let id = ctx.id;
    match transport {
        TransportKind::Tcp => start(sh, tcp, ctx, guard, Some(addr)),
        TransportKind::Tls => {
            let tls = sh.tls.as_ref().ok_or(SendError::NoTls)?;
            let name = match server_name {
                Some(n) => rustls_pki_types::ServerName::try_from(n.to_owned())
                    .map_err(|e| fail(format!("bad server name `{n}`: {e}")))?,
                None => rustls_pki_types::ServerName::IpAddress(addr.ip().into()),
            };
            let connector = TlsConnector::from(tls.client_config());
            let s = timeout(
                Duration::from_secs(sh.cfg.handshake_timeout_s),
                connector.connect(name, tcp),
            )
            .await
            .map_err(|_| fail("TLS handshake timed out".into()))?
            .map_err(|e| fail(format!("TLS handshake: {e}")))?;
            ctx.peer_identity = peer_identity(s.get_ref().1.peer_certificates());
            start(sh, s, ctx, guard, Some(addr));
        }
        other => return Err(SendError::CannotConnect(other)),
    }
    Ok(id)
}

/// Registers a byte-stream connection and spawns its task.
fn start<S: StreamIo>(
    sh: &Arc<Shared>,
    io: S,
    ctx: ConnCtx,
    guard: ConnectionGuard,
    reusable_as: Option<SocketAddr>,
) {
    let rx = register(sh, &ctx, reusable_as);
    let sh = sh.clone();
    tokio::spawn(async move {
        let reason = run_stream(&sh, io, &ctx, rx).await;
        finish(&sh, &ctx, reason, guard).await;
    });
}

fn start_ws<S>(sh: &Arc<Shared>, ws: WebSocketStream<S>, ctx: ConnCtx, guard: ConnectionGuard)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let rx = register(sh, &ctx, None);
    let sh = sh.clone();
    tokio::spawn(async move {
        let reason = run_ws(&sh, ws, &ctx, rx).await;
        finish(&sh, &ctx, reason, guard).await;
    });
}

fn register(sh: &Shared, ctx: &ConnCtx, reusable_as: Option<SocketAddr>) -> Arc<SendQueue> {
    let queue = Arc::new(SendQueue::new(sh.cfg.connection_send_queue));
    sh.register_conn(
        ctx.id,
        ConnEntry {
            queue: queue.clone(),
            remote: ctx.remote,
            transport: ctx.transport,
        },
        reusable_as,
    );
    sh.metrics.opened(ctx.transport);
    queue
}

async fn finish(sh: &Shared, ctx: &ConnCtx, reason: CloseReason, guard: ConnectionGuard) {
    sh.unregister_conn(ctx.id);
    sh.metrics.closed(ctx.transport);
    match reason {
        CloseReason::Peer => sh.metrics.closed_peer.increment(1),
        CloseReason::Idle => sh.metrics.closed_idle.increment(1),
        CloseReason::Error => sh.metrics.closed_error.increment(1),
        CloseReason::FramingLost => sh.metrics.closed_framing.increment(1),
        CloseReason::Limit => sh.metrics.closed_limit.increment(1),
        CloseReason::Local => {}
    }
    drop(guard);
    let _ = sh
        .events
        .send(TransportEvent::FlowClosed {
            flow: FlowToken::connection(ctx.id),
            remote: ctx.remote,
            transport: ctx.transport,
            reason,
        })
        .await;
}

/// Waits until the source may send another message (streams are paused, not dropped).
async fn pace(sh: &Shared, ctx: &ConnCtx) {
    loop {
        let d = sh.sources.message_delay(ctx.remote.ip(), Instant::now());
        if d.is_zero() {
            return;
        }
        sleep(d).await;
    }
}

/// Parses one framed message and hands it up. `Err` when the events receiver is gone.
/// Returns an error response to write, if the input was bad and may be answered.
async fn deliver(
    sh: &Shared,
    ctx: &ConnCtx,
    bytes: Bytes,
    websocket: bool,
) -> Result<Option<Bytes>, CloseReason> {
    pace(sh, ctx).await;
    let now = Instant::now();
    let parsed = if websocket {
        confab_sip::parse_websocket(bytes, &sh.sip_limits)
    } else {
        confab_sip::parse_stream(bytes, &sh.sip_limits)
    };
    let mut message = match parsed {
        Ok(m) => m,
        Err(e) => {
            let mut out = None;
            answer_bad_input(
                sh,
                &e,
                now,
                |r| out = Some(Bytes::copy_from_slice(r)),
                ctx.remote,
            );
            return Ok(out);
        }
    };
    if message.is_request() {
        sip::stamp_received(&mut message, ctx.remote);
        if sh.cfg.connection_reuse
            && (ctx.peer_identity.is_some() || (sh.cfg.alias_on_tcp && !ctx.transport.is_secure()))
            && let Some(alias) = sip::alias_target(&message, ctx.transport)
        {
            // RFC 5923: requests to the client's sent-by may reuse this connection.
            sh.add_alias(ctx.id, ctx.transport, alias);
        }
    } else if sh.cfg.check_response_sent_by && !sip::response_is_ours(&message, &sh.listeners) {
        sh.metrics.drop_foreign_response.increment(1);
        return Ok(None);
    }
    sh.metrics.received(ctx.transport).increment(1);
    let ev = TransportEvent::Message(Inbound {
        message,
        flow: FlowToken::connection(ctx.id),
        source: ctx.remote,
        listener: ctx.listener.clone(),
        local: ctx.local,
        transport: ctx.transport,
        peer_identity: ctx.peer_identity.clone(),
        received_at: now,
    });
    sh.events.send(ev).await.map_err(|_| CloseReason::Local)?;
    Ok(None)
}

/// Keeps the bytes-in-flight reservation for `ip` equal to `held`.
fn account(
    sh: &Shared,
    ctx: &ConnCtx,
    accounted: &mut usize,
    held: usize,
) -> Result<(), CloseReason> {
    let now = Instant::now();
    if held > *accounted {
        sh.sources
            .reserve_bytes(ctx.remote.ip(), held - *accounted, now)
            .map_err(|_| CloseReason::Limit)?;
    } else if held < *accounted {
        sh.sources
            .release_bytes(ctx.remote.ip(), *accounted - held, now);
    }
    *accounted = held;
    Ok(())
}

async fn run_stream<S: StreamIo>(
    sh: &Shared,
    mut io: S,
    ctx: &ConnCtx,
    rx: Arc<SendQueue>,
) -> CloseReason {
    let idle = Duration::from_secs(sh.cfg.idle_timeout_s);
    let mut deadline = tokio::time::Instant::now() + idle;
    let mut buf = if S::LAZY_BUFFER {
        BytesMut::new()
    } else {
        BytesMut::with_capacity(4096)
    };
    let mut accounted = 0usize;
    let mut readable = false;
    let reason = 'conn: loop {
        // Deliver every complete message in the buffer.
        loop {
            match sip::frame(&buf, &sh.sip_limits) {
                Framed::NeedMore => break,
                Framed::KeepAlive { len, pong } => {
                    buf.advance(len);
                    if pong {
                        sh.metrics.keepalive_crlf.increment(1);
                        if io.write_all(b"\r\n").await.is_err() || io.flush().await.is_err() {
                            break 'conn CloseReason::Error;
                        }
                    }
                }
                Framed::Message(len) => {
                    let bytes = buf.split_to(len).freeze();
                    match deliver(sh, ctx, bytes, false).await {
                        Ok(None) => {}
                        Ok(Some(resp)) => {
                            if io.write_all(&resp).await.is_err() || io.flush().await.is_err() {
                                break 'conn CloseReason::Error;
                            }
                        }
                        Err(r) => break 'conn r,
                    }
                }
                Framed::Lost => {
                    sh.metrics.drop_framing_lost.increment(1);
                    break 'conn CloseReason::FramingLost;
                }
            }
        }
        if let Err(r) = account(sh, ctx, &mut accounted, buf.len()) {
            break r;
        }
        // An idle plain-TCP connection gives its buffer back (the messages already split
        // off keep their own part of it) and waits for readability without one.
        let lazy = S::LAZY_BUFFER && buf.is_empty() && !readable;
        readable = false;
        if lazy {
            buf = BytesMut::new();
        } else if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let input = async {
            if lazy {
                io.ready().await;
                None
            } else {
                Some(io.read_buf(&mut buf).await)
            }
        };
        tokio::select! {
            r = input => match r {
                None => readable = true, // loop: reserve a buffer and read
                Some(Ok(0)) => break CloseReason::Peer,
                Some(Ok(_)) => deadline = tokio::time::Instant::now() + idle,
                Some(Err(_)) => break CloseReason::Error,
            },
            out = rx.pop() => {
                let Some(first) = out else { break CloseReason::Local };
                let mut written = first.len();
                let mut ok = io.write_all(&first).await.is_ok();
                // Write whatever else is queued before one flush.
                while ok && let Some(more) = rx.try_pop() {
                    written += more.len();
                    ok = io.write_all(&more).await.is_ok();
                }
                ok = ok && io.flush().await.is_ok();
                sh.sources.release_bytes(ctx.remote.ip(), written, Instant::now());
                if !ok {
                    break CloseReason::Error;
                }
                sh.metrics.sent(ctx.transport).increment(1);
            }
            _ = sleep_until(deadline) => break CloseReason::Idle,
        }
    };
    account(sh, ctx, &mut accounted, 0).ok();
    release_queued(sh, ctx, &rx);
    let _ = io.shutdown().await;
    reason
}

/// Gives back the bytes-in-flight of messages still queued when a connection ends.
fn release_queued(sh: &Shared, ctx: &ConnCtx, rx: &SendQueue) {
    for b in rx.drain() {
        sh.sources
            .release_bytes(ctx.remote.ip(), b.len(), Instant::now());
    }
}

fn ws_message(b: Bytes) -> WsMessage {
    // RFC 7118 §5.1: text frames for UTF-8 messages, binary otherwise.
    match Utf8Bytes::try_from(b.clone()) {
        Ok(t) => WsMessage::Text(t),
        Err(_) => WsMessage::Binary(b),
    }
}

async fn run_ws<S>(
    sh: &Shared,
    mut ws: WebSocketStream<S>,
    ctx: &ConnCtx,
    rx: Arc<SendQueue>,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let idle = Duration::from_secs(sh.cfg.idle_timeout_s);
    let mut deadline = tokio::time::Instant::now() + idle;
    let reason = loop {
        tokio::select! {
            m = ws.next() => {
                deadline = tokio::time::Instant::now() + idle;
                let bytes = match m {
                    Some(Ok(WsMessage::Text(t))) => Bytes::from(t),
                    Some(Ok(WsMessage::Binary(b))) => b,
                    Some(Ok(WsMessage::Close(_))) | None => break CloseReason::Peer,
                    Some(Ok(_)) => continue, // ping/pong: tungstenite answers pings itself
                    Some(Err(_)) => break CloseReason::Error,
                };
                if let Err(r) = account(sh, ctx, &mut 0, 0) {
                    break r;
                }
                match deliver(sh, ctx, bytes, true).await {
                    Ok(None) => {}
                    Ok(Some(resp)) => {
                        if ws.send(ws_message(resp)).await.is_err() {
                            break CloseReason::Error;
                        }
                    }
                    Err(r) => break r,
                }
            },
            out = rx.pop() => {
                let Some(first) = out else { break CloseReason::Local };
                let mut written = first.len();
                let mut ok = ws.feed(ws_message(first)).await.is_ok();
                while ok && let Some(more) = rx.try_pop() {
                    written += more.len();
                    ok = ws.feed(ws_message(more)).await.is_ok();
                }
                ok = ok && ws.flush().await.is_ok();
                sh.sources.release_bytes(ctx.remote.ip(), written, Instant::now());
                if !ok {
                    break CloseReason::Error;
                }
                sh.metrics.sent(ctx.transport).increment(1);
            }
            _ = sleep_until(deadline) => break CloseReason::Idle,
        }
    };
    release_queued(sh, ctx, &rx);
    let _ = ws.close(None).await;
    reason
}
