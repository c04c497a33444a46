//! The running transport: [`Transport::bind`], [`TransportHandle`] and the events it emits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{TlsConfig, TransportConfig};
use crate::flow::FlowToken;
use crate::limits::SourceTable;
use crate::listen::{ListenSpec, TransportKind};
use crate::metrics::Metrics;
use crate::tls::{PeerIdentity, TlsError, TlsState};
use crate::{stream, udp};

/// One bound listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    /// Index in the configured `listen` list (also the listener part of UDP flow tokens).
    pub id: u16,
    /// The configured specification.
    pub spec: ListenSpec,
    /// The address actually bound (differs from `spec.addr` when port 0 was asked).
    pub local: SocketAddr,
}

impl ListenerInfo {
    /// The transport.
    pub fn transport(&self) -> TransportKind {
        self.spec.transport
    }

    /// `host:port` for Via sent-by and Record-Route: the `advertise` value if configured,
    /// else the bound address (IPv6 in brackets).
    pub fn sent_by(&self) -> String {
        match &self.spec.advertise {
            Some(a) => a.clone(),
            None => self.local.to_string(),
        }
    }
}

/// A SIP message received from the network.
#[derive(Debug)]
pub struct Inbound {
    /// The message. For requests the top Via already carries `received`/`rport` as RFC 3581
    /// and RFC 3261 §18.2.1 require.
    pub message: confab_sip::Message,
    /// The flow it arrived on; pass it to [`TransportHandle::send`] to answer over it.
    pub flow: FlowToken,
    /// The peer's address and port as seen by us (after NAT).
    pub source: SocketAddr,
    /// The listener it arrived on (outgoing connections report the listener of their
    /// transport and family, if any).
    pub listener: Option<Arc<ListenerInfo>>,
    /// Our local address of the socket or connection.
    pub local: SocketAddr,
    /// The transport.
    pub transport: TransportKind,
    /// For TLS/WSS with a verified client certificate: the peer's RFC 5922 identities.
    pub peer_identity: Option<Arc<PeerIdentity>>,
    /// When the message arrived: for UDP the kernel's receive time (SO_TIMESTAMPNS, so
    /// time spent in the socket buffer counts), for streams when the bytes were read.
    pub received_at: Instant,
}

/// Why a connection flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed it.
    Peer,
    /// No bytes for `idle_timeout_s`.
    Idle,
    /// A read or write failed.
    Error,
    /// The stream could not be framed any more (a message too large, a bad Content-Length);
    /// RFC 3261 §18.3 leaves closing as the only option.
    FramingLost,
    /// A per-source limit (bytes in flight) was exceeded.
    Limit,
    /// [`TransportHandle::close_flow`] or shutdown.
    Local,
}

/// What the transport reports upward.
///
/// `Message` is by far the most frequent variant, so it is not boxed: boxing would cost an
/// allocation per received message to save stack space on the rare `FlowClosed`.
#[derive(Debug)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)]
pub enum TransportEvent {
    /// A SIP message arrived.
    Message(Inbound),
    /// A connection flow ended: its token is dead. RFC 5626 §5.3: a registrar/edge proxy
    /// treats this as a flow failure for registrations bound to the flow.
    FlowClosed {
        /// The dead flow.
        flow: FlowToken,
        /// The peer.
        remote: SocketAddr,
        /// The transport.
        transport: TransportKind,
        /// Why.
        reason: CloseReason,
    },
}

/// Where to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Over an existing flow (a UDP 5-tuple or a connection).
    Flow(FlowToken),
    /// To an address: UDP from a listener of the same family; TCP/TLS over an existing
    /// connection to that address (ours, or one whose client asked for reuse with `alias`),
    /// else a new connection. WS/WSS only over connections clients opened.
    Addr {
        /// The transport.
        transport: TransportKind,
        /// The peer.
        addr: SocketAddr,
        /// For TLS: the name to send in SNI and to verify the certificate against (RFC 5922
        /// §7.3: the SIP domain). `None` verifies against the IP address.
        server_name: Option<String>,
    },
}

/// Why a send failed. [`SendError::is_flow_failure`] tells the cases the caller should
/// treat as a failed flow (RFC 5626) or a transport error (RFC 3261 §8.1.3.1, §17.1.4).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The flow's connection is closed (or the token is from another process lifetime).
    #[error("flow {0} is gone")]
    FlowGone(FlowToken),
    /// No listener can send this transport/family.
    #[error("no {transport} listener for an {family} destination")]
    NoListener {
        /// The transport.
        transport: TransportKind,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// The transport cannot open connections outward (WS/WSS).
    #[error("cannot open an outgoing {0} connection")]
    CannotConnect(TransportKind),
    /// Connecting or the TLS handshake failed.
    #[error("connecting to {addr} over {transport} failed: {reason}")]
    Connect {
        /// The peer.
        addr: SocketAddr,
        /// The transport.
        transport: TransportKind,
        /// Why.
        reason: String,
    },
    /// TLS was asked but no `[tls]` configuration was given.
    #[error("TLS is not configured")]
    NoTls,
    /// The connection's send queue is full or the source's bytes-in-flight limit is hit.
    #[error("flow {0} is busy (send queue full)")]
    Busy(FlowToken),
    /// The message is larger than a UDP datagram can carry.
    #[error("{len} bytes do not fit in a UDP datagram")]
    TooLarge {
        /// Message length.
        len: usize,
    },
    /// The socket refused the datagram.
    #[error("UDP send to {addr} failed: {source}")]
    Io {
        /// The peer.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The response cannot be routed (RFC 3261 §18.2.2).
    #[error("cannot route response: {0}")]
    Route(crate::rules::RouteError),
    /// The destination is a host name; resolve it (RFC 3263 §5) and send to the address.
    #[error("{host}:{port} over {transport} needs DNS resolution")]
    NeedsResolution {
        /// The transport.
        transport: TransportKind,
        /// The host name.
        host: String,
        /// The port.
        port: u16,
    },
}

impl SendError {
    /// True when the destination/flow is unusable (as opposed to a full queue or a local
    /// configuration problem): report a flow failure / transport error upward.
    pub fn is_flow_failure(&self) -> bool {
        matches!(
            self,
            SendError::FlowGone(_) | SendError::Connect { .. } | SendError::Io { .. }
        )
    }
}

/// Why [`Transport::bind`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// TLS material could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A socket could not be bound.
    #[error("cannot bind {spec}: {source}")]
    Bind {
        /// The listener.
        spec: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A destination of connection-oriented sends.
pub(crate) type DestKey = (TransportKind, SocketAddr);

#[derive(Debug)]
pub(crate) struct ConnEntry {
    pub(crate) queue: Arc<crate::queue::SendQueue>,
    pub(crate) remote: SocketAddr,
    pub(crate) transport: TransportKind,
}

#[derive(Debug)]
pub(crate) struct UdpListener {
    pub(crate) info: Arc<ListenerInfo>,
    pub(crate) sockets: Vec<Arc<UdpSocket>>,
}

/// State shared by the handle and every task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: TransportConfig,
    pub(crate) sip_limits: confab_sip::Limits,
    pub(crate) listeners: Vec<Arc<ListenerInfo>>,
    pub(crate) udp: Vec<UdpListener>,
    pub(crate) conns: RwLock<HashMap<u64, ConnEntry>>,
    /// Reusable connections by (transport, address): the ones we opened, and the ones whose
    /// client sent Via `alias` (RFC 5923).
    pub(crate) by_addr: Mutex<HashMap<DestKey, u64>>,
    /// Per-destination gates so that concurrent sends open one connection, not several.
    pub(crate) connecting: Mutex<HashMap<DestKey, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) next_conn: AtomicU64,
    pub(crate) events: mpsc::Sender<TransportEvent>,
    pub(crate) sources: Arc<SourceTable>,
    pub(crate) tls: Option<Arc<TlsState>>,
    pub(crate) metrics: Metrics,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    pub(crate) fn new_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(f);
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(h);
    }

    /// The listener a connection of `transport` from our `local` address belongs to.
    pub(crate) fn listener_for(
        &self,
        transport: TransportKind,
        local: SocketAddr,
    ) -> Option<Arc<ListenerInfo>> {
        self.listeners
            .iter()
            .find(|l| l.transport() == transport && l.local.is_ipv4() == local.is_ipv4())
            .cloned()
    }

    pub(crate) fn register_conn(&self, id: u64, entry: ConnEntry, reusable_as: Option<SocketAddr>) {
        let key = reusable_as.map(|a| (entry.transport, a));
        self.conns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, entry);
        if let Some(key) = key {
            self.by_addr
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, id);
        }
    }

    /// Records an RFC 5923 alias: requests to `sent_by` may reuse connection `id`.
    pub(crate) fn add_alias(&self, id: u64, transport: TransportKind, sent_by: SocketAddr) {
        self.by_addr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((transport, sent_by), id);
    }

    pub(crate) fn unregister_conn(&self, id: u64) -> Option<ConnEntry> {
        let e = self
            .conns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(e) = &e {
            // ends the connection task if it is still running (close_flow, shutdown)
            e.queue.close();
        }
        self.by_addr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, v| *v != id);
        e
    }

    fn conn_sender(
        &self,
        id: u64,
    ) -> Option<(Arc<crate::queue::SendQueue>, SocketAddr, TransportKind)> {
        self.conns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|c| (c.queue.clone(), c.remote, c.transport))
    }

    /// Queues bytes on connection `id`. The connection task releases the bytes-in-flight
    /// reservation once written.
    fn queue_on_conn(&self, id: u64, bytes: Bytes) -> Result<FlowToken, SendError> {
        let flow = FlowToken::connection(id);
        let (tx, remote, _) = self.conn_sender(id).ok_or(SendError::FlowGone(flow))?;
        let now = Instant::now();
        self.sources
            .reserve_bytes(remote.ip(), bytes.len(), now)
            .map_err(|_| SendError::Busy(flow))?;
        let len = bytes.len();
        match tx.push(bytes) {
            Ok(()) => Ok(flow),
            Err(e) => {
                self.sources.release_bytes(remote.ip(), len, now);
                Err(match e {
                    crate::queue::PushError::Full => SendError::Busy(flow),
                    crate::queue::PushError::Closed => SendError::FlowGone(flow),
                })
            }
        }
    }

    fn udp_socket(&self, listener: u16, remote: SocketAddr) -> Result<&Arc<UdpSocket>, SendError> {
        let l = self
            .udp
            .iter()
            .find(|u| u.info.id == listener)
            .ok_or(SendError::FlowGone(FlowToken::datagram(listener, remote)))?;
        // Same socket for the same peer keeps packets of one peer in order.
        Ok(&l.sockets[port_hash(remote) % l.sockets.len()])
    }

    /// Sends a datagram without waiting (receive loops: STUN answers, error responses).
    /// A full socket buffer drops the datagram, as the kernel would.
    pub(crate) fn udp_send(
        &self,
        listener: u16,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), SendError> {
        if bytes.len() > 65_507 {
            return Err(SendError::TooLarge { len: bytes.len() });
        }
        match self
            .udp_socket(listener, remote)?
            .try_send_to(bytes, remote)
        {
            Ok(_) => {
                self.metrics.sent(TransportKind::Udp).increment(1);
                Ok(())
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    self.metrics.drop_queue_full.increment(1);
                }
                Err(SendError::Io {
                    addr: remote,
                    source: e,
                })
            }
        }
    }

    /// Sends a datagram, waiting for socket buffer space if the kernel has none.
    pub(crate) async fn udp_send_wait(
        &self,
        listener: u16,
        remote: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), SendError> {
        if bytes.len() > 65_507 {
            return Err(SendError::TooLarge { len: bytes.len() });
        }
        let sock = self.udp_socket(listener, remote)?;
        let r = match sock.try_send_to(bytes, remote) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                sock.send_to(bytes, remote).await
            }
            other => other,
        };
        match r {
            Ok(_) => {
                self.metrics.sent(TransportKind::Udp).increment(1);
                Ok(())
            }
            Err(e) => Err(SendError::Io {
                addr: remote,
                source: e,
            }),
        }
    }

    /// An open reusable connection to `key`, if there is one.
    fn existing_conn(&self, key: DestKey) -> Option<u64> {
        let id = self
            .by_addr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied()?;
        self.conns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
            .then_some(id)
    }

    fn udp_listener_for(&self, addr: SocketAddr) -> Option<u16> {
        let want_v4 = addr.is_ipv4() || is_v4_mapped(addr.ip());
        self.udp
            .iter()
            .find(|u| u.info.local.is_ipv4() == want_v4)
            .map(|u| u.info.id)
    }
}

fn is_v4_mapped(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

fn port_hash(a: SocketAddr) -> usize {
    let ip = match a.ip() {
        IpAddr::V4(v4) => u32::from(v4) as usize,
        IpAddr::V6(v6) => u128::from(v6) as usize,
    };
    ip.wrapping_mul(31).wrapping_add(usize::from(a.port()))
}

/// Entry point: binds the configured listeners and starts their tasks on the current tokio
/// runtime.
#[derive(Debug)]
pub struct Transport;

impl Transport {
    /// Validates `config`, loads `tls`, binds every listener, and starts receiving.
    ///
    /// Returns the handle to send with and the receiver of [`TransportEvent`]s. Dropping
    /// the receiver stops delivery (datagrams are then dropped); call
    /// [`TransportHandle::shutdown`] to close sockets.
    pub async fn bind(
        config: TransportConfig,
        tls: Option<TlsConfig>,
    ) -> Result<(TransportHandle, mpsc::Receiver<TransportEvent>), BindError> {
        config.validate(tls.as_ref())?;
        let tls = match tls {
            Some(t) if !t.certificates.is_empty() => Some(TlsState::load(t)?),
            _ => None,
        };
        let workers = match config.udp_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut listeners = Vec::new();
        let mut udp_listeners = Vec::new();
        let mut tcp_listeners = Vec::new();
        for (i, spec) in config.listen.iter().enumerate() {
            let bind_err = |source| BindError::Bind {
                spec: spec.to_string(),
                source,
            };
            let id = i as u16;
            if spec.transport == TransportKind::Udp {
                let sockets = udp::bind_reuseport(spec.addr, workers, &config).map_err(bind_err)?;
                let local = sockets[0].local_addr().map_err(bind_err)?;
                let info = Arc::new(ListenerInfo {
                    id,
                    spec: spec.clone(),
                    local,
                });
                listeners.push(info.clone());
                udp_listeners.push(UdpListener { info, sockets });
            } else {
                let l = stream::bind_tcp(spec.addr).map_err(bind_err)?;
                let local = l.local_addr().map_err(bind_err)?;
                let info = Arc::new(ListenerInfo {
                    id,
                    spec: spec.clone(),
                    local,
                });
                listeners.push(info.clone());
                tcp_listeners.push((info, l));
            }
        }
        let (tx, rx) = mpsc::channel(config.event_queue);
        let shared = Arc::new(Shared {
            sip_limits: confab_sip::Limits {
                max_message_size: config.max_message_bytes,
                max_body_size: config.max_message_bytes,
                ..confab_sip::Limits::DEFAULT
            },
            sources: SourceTable::new(config.limits.clone()),
            cfg: config,
            listeners,
            udp: udp_listeners,
            conns: RwLock::new(HashMap::new()),
            by_addr: Mutex::new(HashMap::new()),
            connecting: Mutex::new(HashMap::new()),
            // Connection ids start at the wall-clock time in nanoseconds, so a token from before a
            // restart never names a connection of this process (RFC 5626 §5.2: a flow token
            // must fail once its flow is gone).
            next_conn: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64),
            ),
            events: tx,
            tls,
            metrics: Metrics::new(),
            tasks: Mutex::new(Vec::new()),
        });
        for (li, u) in shared.udp.iter().enumerate() {
            for s in 0..u.sockets.len() {
                let sh = shared.clone();
                shared.spawn(udp::receive_loop(sh, li, s));
            }
        }
        for (info, l) in tcp_listeners {
            let sh = shared.clone();
            shared.spawn(stream::accept_loop(sh, info, l));
        }
        let sh = Arc::downgrade(&shared);
        shared.spawn(housekeeping(sh));
        Ok((TransportHandle { shared }, rx))
    }
}

/// Sweeps the per-source table and reloads TLS files when they change.
async fn housekeeping(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_tls_check = Instant::now();
    loop {
        tick.tick().await;
        let Some(sh) = shared.upgrade() else { return };
        let now = Instant::now();
        sh.sources.sweep(now);
        if let Some(tls) = &sh.tls {
            let every = tls.reload_interval_s();
            if every > 0 && now.duration_since(last_tls_check) >= Duration::from_secs(every) {
                last_tls_check = now;
                match tls.reload_if_changed() {
                    Ok(true) => {
                        tracing::info!("TLS certificates reloaded");
                        sh.metrics.tls_reload_ok.increment(1);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "TLS reload failed; keeping the old certificates");
                        sh.metrics.tls_reload_failed.increment(1);
                    }
                }
            }
        }
    }
}

/// Sends messages and controls the transport. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TransportHandle {
    pub(crate) shared: Arc<Shared>,
}

impl TransportHandle {
    /// The bound listeners, in configuration order.
    pub fn listeners(&self) -> &[Arc<ListenerInfo>] {
        &self.shared.listeners
    }

    /// The first listener of `transport` (tests and simple setups).
    pub fn listener(&self, transport: TransportKind) -> Option<&Arc<ListenerInfo>> {
        self.shared
            .listeners
            .iter()
            .find(|l| l.transport() == transport)
    }

    /// Sends `bytes` (one complete SIP message) to `target`. Returns the flow used, which
    /// for [`Target::Addr`] may be a new connection.
    ///
    /// UDP waits only for kernel socket buffer space. Connection sends are queued without
    /// waiting; the queue is bounded (`connection_send_queue`) and a full one is
    /// [`SendError::Busy`].
    pub async fn send(&self, target: &Target, bytes: Bytes) -> Result<FlowToken, SendError> {
        let sh = &self.shared;
        let flow = self.flow_to(target).await?;
        let r = match (flow.as_datagram(), flow.connection_id()) {
            (Some((listener, remote)), _) => sh
                .udp_send_wait(listener, remote, &bytes)
                .await
                .map(|()| flow),
            (None, Some(id)) => sh.queue_on_conn(id, bytes.clone()),
            (None, None) => Err(SendError::FlowGone(flow)),
        };
        match (r, target) {
            // A reused connection closed between the lookup and the send: once more, which
            // opens a new one.
            (Err(SendError::FlowGone(_)), Target::Addr { .. }) => {
                let flow = self.flow_to(target).await?;
                match flow.connection_id() {
                    Some(id) => sh.queue_on_conn(id, bytes),
                    None => Err(SendError::FlowGone(flow)),
                }
            }
            (r, _) => r,
        }
    }

    /// The flow `target` would use, without sending: a UDP address gets the datagram flow
    /// of a listener of its family; a TCP/TLS address gets an open reusable connection to it
    /// (ours, or a client's that asked for reuse with `alias`) or a new one. Use it to give
    /// a new client transaction its flow (`FlowToken` implements the transaction layer's
    /// [`confab_sip::transaction::Flow`]).
    pub async fn flow_to(&self, target: &Target) -> Result<FlowToken, SendError> {
        let sh = &self.shared;
        let (transport, addr, server_name) = match target {
            Target::Flow(flow) => return Ok(*flow),
            Target::Addr {
                transport,
                addr,
                server_name,
            } => (*transport, *addr, server_name),
        };
        if transport == TransportKind::Udp {
            let listener = sh.udp_listener_for(addr).ok_or(SendError::NoListener {
                transport,
                family: if addr.is_ipv4() { "IPv4" } else { "IPv6" },
            })?;
            return Ok(FlowToken::datagram(listener, addr));
        }
        let key = (transport, addr);
        if let Some(id) = sh.existing_conn(key) {
            return Ok(FlowToken::connection(id));
        }
        if transport.is_websocket() {
            return Err(SendError::CannotConnect(transport));
        }
        // One connection attempt per destination at a time: concurrent senders wait for it
        // and then reuse the connection instead of opening their own.
        let gate = sh
            .connecting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let result = {
            let _turn = gate.lock().await;
            match sh.existing_conn(key) {
                Some(id) => Ok(id),
                None => stream::connect(sh, transport, addr, server_name.as_deref()).await,
            }
        };
        let mut connecting = sh.connecting.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&gate) <= 2 {
            connecting.remove(&key);
        }
        result.map(FlowToken::connection)
    }

    /// Whether a flow is still usable (a connection still open; UDP flows always are).
    pub fn flow_is_open(&self, flow: FlowToken) -> bool {
        match flow.connection_id() {
            Some(id) => self.shared.conn_sender(id).is_some(),
            None => true,
        }
    }

    /// The remote address and transport of a flow, if it is known.
    pub fn flow_peer(&self, flow: FlowToken) -> Option<(TransportKind, SocketAddr)> {
        match (flow.as_datagram(), flow.connection_id()) {
            (Some((_, remote)), _) => Some((TransportKind::Udp, remote)),
            (None, Some(id)) => self.shared.conn_sender(id).map(|(_, r, t)| (t, r)),
            _ => None,
        }
    }

    /// Closes a connection flow (a [`TransportEvent::FlowClosed`] with
    /// [`CloseReason::Local`] follows). No effect on UDP flows.
    pub fn close_flow(&self, flow: FlowToken) {
        if let Some(id) = flow.connection_id() {
            // Closing the queue ends the connection task; it then closes the socket.
            self.shared.unregister_conn(id);
        }
    }

    /// Reloads the TLS certificates and CA files now (e.g. on SIGHUP). On error the old
    /// configuration stays in force.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        match &self.shared.tls {
            Some(t) => {
                let r = t.reload();
                match &r {
                    Ok(()) => self.shared.metrics.tls_reload_ok.increment(1),
                    Err(_) => self.shared.metrics.tls_reload_failed.increment(1),
                }
                r
            }
            None => Err(TlsError::Empty),
        }
    }

    /// Whether `inbound` is a stale new request for a later stage: a UDP request other
    /// than ACK, CANCEL, BYE or PRACK that arrived (kernel receive time) more than *twice*
    /// `transport.max_datagram_age_ms` ago. Callers with their own queue in front of the
    /// real work check it when they take a message off that queue, and drop it: its client
    /// has retransmitted, and serving it late only lengthens the queue. Twice, because the
    /// entrance already admitted it at up to the limit and a short in-process queue must
    /// not make everything it admitted stale after its parse. Stream transports are never
    /// stale: their clients do not retransmit.
    pub fn is_stale(&self, inbound: &Inbound) -> bool {
        inbound.transport == TransportKind::Udp
            && crate::stale::is_stale(
                inbound.received_at.elapsed(),
                self.shared.cfg.max_datagram_age_ms.saturating_mul(2),
            )
            && crate::stale::message_is_droppable(&inbound.message)
    }

    /// Counts a message the caller dropped by [`Self::is_stale`]
    /// (`confab_transport_dropped_total{reason="stale"}`).
    pub fn count_stale_drop(&self) {
        self.shared.metrics.drop_stale.increment(1);
    }

    /// Open connections right now.
    pub fn connection_count(&self) -> usize {
        self.shared
            .conns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Stops every task and closes every socket. Pending events stay in the receiver.
    pub fn shutdown(&self) {
        let tasks: Vec<_> =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            t.abort();
        }
        let conns: Vec<ConnEntry> = self
            .shared
            .conns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, c)| c)
            .collect();
        for c in conns {
            c.queue.close();
        }
    }
}
