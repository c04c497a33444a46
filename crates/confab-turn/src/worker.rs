//! One relay worker: an OS thread with a current-thread tokio runtime that owns a
//! [`Server`] shard, its share of the listener sockets (SO_REUSEPORT), its slice of the
//! relay port range and the relay sockets in it. Tasks of one worker share the shard through
//! `Rc<RefCell<_>>` without locks; no borrow is held across an `.await`.
//!
//! Per packet: UDP listener sockets and relay sockets are drained with `try_recv_from` loops
//! after each readiness wake, and answered with a direct `sendto` (see `send_now`; a full
//! socket buffer drops the datagram, as UDP would). Not done (yet): recvmmsg/sendmmsg and
//! GSO, which need `unsafe` FFI the workspace forbids or a new dependency.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use confab_stun::framing::{self, Frame};
use confab_stun::turn::{
    Event, Family, FastBuild, FiveTuple, PEER_HEADROOM, PEER_TAILROOM, Parity, PortPool,
    QuotaLedger, RelayError, RelayPorts, Server, ServerConfig, Transport,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::config::RelayIps;
use crate::spool::UsageSpool;

const MAX_DATAGRAM: usize = 65_536;
/// Queued messages per TCP/TLS client before further ones are dropped.
const CONN_QUEUE: usize = 1024;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters a worker publishes for [`crate::TurnHandle::stats`].
#[derive(Debug, Default)]
pub(crate) struct SharedStats {
    pub allocations: AtomicU64,
    pub relayed_to_peers: AtomicU64,
    pub relayed_from_peers: AtomicU64,
    pub dropped: AtomicU64,
    pub send_errors: AtomicU64,
    pub errors: AtomicU64,
    pub rate_limited: AtomicU64,
}

/// Everything a worker thread starts from; sockets are bound by the caller so errors surface
/// before `serve` returns.
pub(crate) struct WorkerInit {
    pub index: usize,
    pub server_config: ServerConfig,
    pub udp: Vec<std::net::UdpSocket>,
    pub tcp: Vec<std::net::TcpListener>,
    pub tls: Vec<std::net::TcpListener>,
    pub tls_acceptor: Option<TlsAcceptor>,
    pub relay_ips: RelayIps,
    pub ports: (u16, u16),
    pub ledger: Arc<QuotaLedger>,
    pub spool: Option<Arc<UsageSpool>>,
    pub stats: Arc<SharedStats>,
    pub control: watch::Receiver<Control>,
    /// Close TCP/TLS connections without an allocation after this long without input.
    pub idle: Duration,
}

/// Commands from the handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Control {
    pub alternate: Option<SocketAddr>,
    pub shutdown: bool,
}

struct RelaySocket {
    sock: Rc<UdpSocket>,
    task: tokio::task::JoinHandle<()>,
}

/// The relay ports of one worker; implements [`RelayPorts`] for the sans-IO server.
struct Relays {
    ips: RelayIps,
    pools: [Option<PortPool>; 2],
    sockets: HashMap<SocketAddr, RelaySocket, FastBuild>,
    /// Set right after the worker cell exists.
    worker: Weak<RefCell<Worker>>,
}

impl Relays {
    fn family_ips(&self, family: Family) -> Option<(IpAddr, IpAddr)> {
        match family {
            Family::V4 => self.ips.v4,
            Family::V6 => self.ips.v6,
        }
    }

    fn bind(&mut self, bind_ip: IpAddr, public_ip: IpAddr, port: u16) -> io::Result<SocketAddr> {
        let domain = if bind_ip.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        if bind_ip.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.set_nonblocking(true)?;
        s.bind(&SocketAddr::new(bind_ip, port).into())?;
        let sock = Rc::new(UdpSocket::from_std(s.into())?);
        let announced = SocketAddr::new(public_ip, port);
        let task = tokio::task::spawn_local(relay_reader(
            Rc::clone(&sock),
            announced,
            self.worker.clone(),
        ));
        self.sockets.insert(announced, RelaySocket { sock, task });
        Ok(announced)
    }
}

impl RelayPorts for Relays {
    fn open(&mut self, family: Family, parity: Parity) -> Result<SocketAddr, RelayError> {
        let (bind_ip, public_ip) = self
            .family_ips(family)
            .ok_or(RelayError::FamilyNotSupported)?;
        let idx = usize::from(family == Family::V6);
        for _ in 0..32 {
            let pool = self.pools[idx]
                .as_mut()
                .ok_or(RelayError::FamilyNotSupported)?;
            let port = pool.take(parity).ok_or(RelayError::Exhausted)?;
            match self.bind(bind_ip, public_ip, port) {
                Ok(a) => return Ok(a),
                // Port used by another process: leave it marked used and try another.
                Err(e) => tracing::debug!(port, error = %e, "relay port unavailable"),
            }
        }
        Err(RelayError::Exhausted)
    }

    fn open_at(&mut self, addr: SocketAddr) -> Result<(), RelayError> {
        let family = if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        let (bind_ip, public_ip) = self
            .family_ips(family)
            .ok_or(RelayError::FamilyNotSupported)?;
        let idx = usize::from(family == Family::V6);
        let pool = self.pools[idx]
            .as_mut()
            .ok_or(RelayError::FamilyNotSupported)?;
        if addr.ip() != public_ip || !pool.take_specific(addr.port()) {
            return Err(RelayError::Exhausted);
        }
        match self.bind(bind_ip, public_ip, addr.port()) {
            Ok(_) => Ok(()),
            Err(_) => {
                self.pools[idx]
                    .as_mut()
                    .expect("checked")
                    .release(addr.port());
                Err(RelayError::Exhausted)
            }
        }
    }

    fn close(&mut self, addr: SocketAddr) {
        if let Some(r) = self.sockets.remove(&addr) {
            r.task.abort();
            let idx = usize::from(addr.is_ipv6());
            if let Some(p) = self.pools[idx].as_mut() {
                p.release(addr.port());
            }
        }
    }
}

struct Worker {
    server: Server,
    relays: Relays,
    udp: Vec<(SocketAddr, Rc<UdpSocket>)>,
    conns: HashMap<FiveTuple, mpsc::Sender<Vec<u8>>, FastBuild>,
    spool: Option<Arc<UsageSpool>>,
    stats: Arc<SharedStats>,
    idle: Duration,
}

impl Worker {
    /// Sends every queued response and records every event.
    fn flush(&mut self) {
        while let Some(t) = self.server.poll_transmit() {
            self.send_to_client(t.five, &t.data);
        }
        while let Some(ev) = self.server.poll_event() {
            match ev {
                Event::AllocationCreated { .. } => {}
                Event::AllocationEnded(u) => {
                    if let Some(s) = &self.spool
                        && let Err(e) = s.append(&u)
                    {
                        tracing::warn!(error = %e, "usage record lost");
                    }
                }
            }
        }
    }

    fn send_to_client(&self, five: FiveTuple, data: &[u8]) {
        let ok = match five.transport {
            Transport::Udp => match self.udp.iter().find(|(a, _)| *a == five.server) {
                Some((_, s)) => send_now(s, data, five.client).is_ok(),
                None => false,
            },
            Transport::Tcp | Transport::Tls => match self.conns.get(&five) {
                Some(tx) => tx.try_send(data.to_vec()).is_ok(),
                None => false,
            },
        };
        if !ok {
            self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Handles one client message; relays its payload if it carries one.
    fn client_input(&mut self, five: FiveTuple, data: &[u8]) {
        let now = Instant::now();
        if let Some(send) = self.server.handle_client(now, five, data, &mut self.relays) {
            match self.relays.sockets.get(&send.relay) {
                Some(r) => {
                    if send_now(&r.sock, &data[send.payload], send.peer).is_err() {
                        self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None => {
                    self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.flush();
    }

    fn publish_stats(&self) {
        let s = self.server.stats();
        let st = &self.stats;
        st.allocations
            .store(self.server.allocations() as u64, Ordering::Relaxed);
        st.relayed_to_peers
            .store(s.relayed_to_peers, Ordering::Relaxed);
        st.relayed_from_peers
            .store(s.relayed_from_peers, Ordering::Relaxed);
        st.dropped.store(s.dropped, Ordering::Relaxed);
        st.errors.store(s.errors, Ordering::Relaxed);
        st.rate_limited.store(s.rate_limited, Ordering::Relaxed);
    }
}

/// Sends a datagram right away. Unlike `UdpSocket::try_send_to`, this does not consult
/// tokio's cached write readiness, which is unknown for a relay socket opened a moment ago
/// and would turn its first datagrams into `WouldBlock`. A full socket buffer drops the
/// datagram, as UDP may.
fn send_now(sock: &UdpSocket, data: &[u8], to: SocketAddr) -> io::Result<usize> {
    socket2::SockRef::from(sock).send_to(data, &to.into())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs a worker until shutdown; called on its own thread.
pub(crate) fn run(init: WorkerInit) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "turn worker runtime failed to start");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, worker_main(init));
}

async fn worker_main(init: WorkerInit) {
    let WorkerInit {
        index,
        server_config,
        udp,
        tcp,
        tls,
        tls_acceptor,
        relay_ips,
        ports,
        ledger,
        spool,
        stats,
        mut control,
        idle,
    } = init;
    let seed: [u8; 32] = rand::random();
    let server =
        Server::new(server_config, seed, Instant::now(), unix_now()).with_quota_ledger(ledger);
    let pool_seed: u64 = rand::random();
    let pools = [
        relay_ips
            .v4
            .map(|_| PortPool::new(ports.0, ports.1, pool_seed)),
        relay_ips
            .v6
            .map(|_| PortPool::new(ports.0, ports.1, pool_seed ^ 0x5555)),
    ];
    let mut udp_socks = Vec::new();
    for s in udp {
        match s
            .local_addr()
            .and_then(|a| UdpSocket::from_std(s).map(|u| (a, Rc::new(u))))
        {
            Ok(x) => udp_socks.push(x),
            Err(e) => tracing::error!(error = %e, "turn UDP listener unusable"),
        }
    }
    let worker = Rc::new(RefCell::new(Worker {
        server,
        relays: Relays {
            ips: relay_ips,
            pools,
            sockets: HashMap::default(),
            worker: Weak::new(),
        },
        udp: udp_socks.clone(),
        conns: HashMap::default(),
        spool,
        stats,
        idle,
    }));
    worker.borrow_mut().relays.worker = Rc::downgrade(&worker);
    {
        let alt = control.borrow().alternate;
        worker.borrow_mut().server.set_alternate_server(alt);
    }
    let mut tasks = Vec::new();
    for (addr, sock) in udp_socks {
        tasks.push(tokio::task::spawn_local(udp_listener(
            sock,
            addr,
            Rc::downgrade(&worker),
        )));
    }
    for l in tcp {
        match TcpListener::from_std(l) {
            Ok(l) => tasks.push(tokio::task::spawn_local(stream_listener(
                l,
                None,
                Rc::downgrade(&worker),
            ))),
            Err(e) => tracing::error!(error = %e, "turn TCP listener unusable"),
        }
    }
    for l in tls {
        match TcpListener::from_std(l) {
            Ok(l) => tasks.push(tokio::task::spawn_local(stream_listener(
                l,
                tls_acceptor.clone(),
                Rc::downgrade(&worker),
            ))),
            Err(e) => tracing::error!(error = %e, "turn TLS listener unusable"),
        }
    }
    tracing::debug!(worker = index, "turn worker running");
    // Timers and control: wake at the next deadline, at least once a second.
    loop {
        let deadline = {
            let w = worker.borrow();
            let tick = Instant::now() + Duration::from_secs(1);
            w.server.poll_timeout().map_or(tick, |t| t.min(tick))
        };
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => {}
            changed = control.changed() => {
                let c = *control.borrow();
                if changed.is_err() || c.shutdown {
                    break;
                }
                worker.borrow_mut().server.set_alternate_server(c.alternate);
            }
        }
        let mut w = worker.borrow_mut();
        let w = &mut *w;
        w.server.handle_timeout(Instant::now(), &mut w.relays);
        w.flush();
        w.publish_stats();
    }
    for t in tasks {
        t.abort();
    }
    let mut w = worker.borrow_mut();
    let w = &mut *w;
    w.server.shutdown(Instant::now(), &mut w.relays);
    w.flush();
    w.publish_stats();
    w.conns.clear();
}

async fn udp_listener(sock: Rc<UdpSocket>, local: SocketAddr, worker: Weak<RefCell<Worker>>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        if sock.readable().await.is_err() {
            return;
        }
        {
            let Some(cell) = worker.upgrade() else { return };
            let mut w = cell.borrow_mut();
            // Drain what is queued, bounded so one busy socket cannot starve the others.
            for _ in 0..256 {
                match sock.try_recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let five = FiveTuple {
                            transport: Transport::Udp,
                            client: from,
                            server: local,
                        };
                        w.client_input(five, &buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::trace!(error = %e, "udp recv error");
                        break;
                    }
                }
            }
        }
    }
}

async fn relay_reader(sock: Rc<UdpSocket>, relay: SocketAddr, worker: Weak<RefCell<Worker>>) {
    let mut buf = vec![0u8; PEER_HEADROOM + MAX_DATAGRAM + PEER_TAILROOM];
    loop {
        if sock.readable().await.is_err() {
            return;
        }
        {
            let Some(cell) = worker.upgrade() else { return };
            let mut w = cell.borrow_mut();
            for _ in 0..64 {
                match sock.try_recv_from(&mut buf[PEER_HEADROOM..PEER_HEADROOM + MAX_DATAGRAM]) {
                    Ok((n, peer)) => {
                        let now = Instant::now();
                        if let Some(s) = w.server.handle_peer(now, relay, peer, &mut buf, n) {
                            w.send_to_client(s.five, &buf[s.range]);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
        }
    }
}

async fn stream_listener(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    worker: Weak<RefCell<Worker>>,
) {
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let worker = worker.clone();
        match &tls {
            None => {
                let five = FiveTuple {
                    transport: Transport::Tcp,
                    client,
                    server: local,
                };
                tokio::task::spawn_local(connection(stream, five, worker));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::task::spawn_local(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(s)) => {
                            let five = FiveTuple {
                                transport: Transport::Tls,
                                client,
                                server: local,
                            };
                            connection(s, five, worker).await;
                        }
                        _ => tracing::debug!(%client, "TLS handshake failed"),
                    }
                });
            }
        }
    }
}

/// One TCP/TLS client: frames STUN and ChannelData messages from the stream; a writer task
/// sends what the worker queues for it. The allocation ends when the connection does.
async fn connection<S>(stream: S, five: FiveTuple, worker: Weak<RefCell<Worker>>)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(CONN_QUEUE);
    match worker.upgrade() {
        Some(cell) => cell.borrow_mut().conns.insert(five, tx),
        None => return,
    };
    let writer = tokio::task::spawn_local(async move {
        while let Some(buf) = rx.recv().await {
            if wr.write_all(&buf).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    'read: loop {
        let idle = match worker.upgrade() {
            Some(c) => {
                let w = c.borrow();
                (!w.server.has_allocation(&five)).then_some(w.idle)
            }
            None => break,
        };
        let read = rd.read(&mut chunk);
        let n = match idle {
            None => read.await,
            Some(idle) => match tokio::time::timeout(idle, read).await {
                Ok(r) => r,
                Err(_) => break,
            },
        };
        let n = match n {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let Some(cell) = worker.upgrade() else { break };
        let mut w = cell.borrow_mut();
        let mut start = 0;
        loop {
            match framing::frame_len(&buf[start..]) {
                Frame::Complete { len, .. } => {
                    w.client_input(five, &buf[start..start + len]);
                    start += len;
                }
                Frame::Incomplete { needed } => {
                    if needed > MAX_DATAGRAM + 64 {
                        break 'read;
                    }
                    break;
                }
                Frame::Invalid => break 'read,
            }
        }
        buf.drain(..start);
    }
    if let Some(cell) = worker.upgrade() {
        let mut w = cell.borrow_mut();
        let w = &mut *w;
        w.conns.remove(&five);
        w.server
            .handle_connection_closed(Instant::now(), five, &mut w.relays);
        w.flush();
    }
    writer.abort();
}
