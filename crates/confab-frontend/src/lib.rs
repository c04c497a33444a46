//! The Front End runtime (surfaces tier): what turns the SIP roles into a running server.
//!
//! **What it does:** takes the [`TransportEvent`]s of `confab-transport`, spreads the
//! messages over worker tasks by a hash of their Call-ID (every transaction of a call, its
//! CANCEL, ACK and responses land on the same worker), and in each worker drives one
//! [`confab_proxy::Proxy`] (one transaction layer, no locks on the message path). New
//! requests run through the request chain (see `ARCHITECTURE.md`, "The request chain"):
//! `dialog` → `auth` → `router`, with REGISTER handed to the [`RegisterService`]; the
//! outcome goes back to the proxy core, whose transmits are sent over the transport. Timers
//! come from the proxy's `poll_timeout`. It also handles
//!
//! * **flow failure**: a closed connection removes the outbound (RFC 5626) bindings
//!   registered over it;
//! * **overload**: a worker with too many requests in the chain answers new ones 503 with
//!   `Retry-After` at once (their retransmissions are absorbed by the server transaction,
//!   so a retransmission never costs a second chain run); a full worker inbox makes the
//!   dispatcher wait (backpressure down to the kernel's UDP buffer, where the transport
//!   drops stale new requests unparsed), and a worker drops a new UDP request that waited
//!   far too long before it costs a transaction (`TransportHandle::is_stale`);
//! * **drain** ([`FrontendHandle::drain`], on SIGTERM): new requests get 503 with
//!   `Retry-After`, transactions in progress finish, then the workers stop.
//!
//! * **offline messages** ([`FrontendBuilder::offline_messages`], `confab-im`): the
//!   `im-offline` chain step, delivery of a user's queue after each successful REGISTER
//!   (the MESSAGEs go out as client transactions of a worker's proxy core,
//!   `Proxy::originate`), and the expiry sweep.
//!
//! **What it does not do:** bind sockets (the caller passes a bound transport), parse the
//! configuration file (the binary does), DNS, or the work of the roles themselves
//! (presence, IM storage and filters slot into the chain with
//! [`FrontendBuilder::handler_before`]).
//!
//! **Threads:** `workers` tasks (default: one per core) on the caller's multi-threaded tokio
//! runtime. One transaction layer per worker rather than one behind a lock: the layer is
//! `&mut` on every message, so a shared one would serialise both cores on its lock.

mod config;
mod convert;
mod originate;
mod registrar;
#[cfg(feature = "testing")]
pub mod testing;
mod txlog;
mod worker;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use confab_auth::{AuthConfig, AuthConfigError, AuthHandler, Authenticator};
use confab_core::chain::{Chain, Hop, RequestHandler};
use confab_core::message_queue::MessageQueueStore;
use confab_core::{FlowInfo, RegistrationStore, UserStore};
use confab_im::ImConfig;
use confab_proxy::{
    DialogRouter, FlowResolver, Listener, LocalNode, Proxy, ProxyConfig, ProxyError, Router,
};
use confab_registrar::Registrar;
use confab_transport::{FlowToken, TransportEvent, TransportHandle};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use crate::config::{FrontendConfig, FrontendConfigError};
pub use crate::convert::{flow_id, flow_info, kind_of, source_of, token_of, transport_of};
pub use crate::txlog::{set_transaction_log, transaction_log};

/// The whole SIP side of a front end node: the bound transport and the running Front End.
/// What the binary's `serve` starts.
#[derive(Debug)]
pub struct SipServer {
    frontend: FrontendHandle,
    transport: TransportHandle,
}

/// Why [`SipServer::start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A listener could not be bound, or the transport/TLS configuration is invalid.
    #[error("SIP transport: {0}")]
    Transport(#[from] confab_transport::BindError),
    /// `[registrar]` is invalid.
    #[error("{0}")]
    Registrar(#[from] confab_registrar::ConfigError),
    /// `[auth]`, `[proxy]` or `[frontend]` is invalid.
    #[error(transparent)]
    Frontend(#[from] FrontendError),
}

impl SipServer {
    /// Binds the SIP listeners of `transport` (TLS/WSS with `tls`), builds the registrar
    /// over `stores.registrations` with `gruu_key` (persistent, the same on every front end
    /// of a pool) and starts the Front End.
    ///
    /// # Errors
    /// [`StartError`] naming what could not start.
    pub async fn start(
        settings: FrontendSettings,
        transport: confab_transport::TransportConfig,
        tls: Option<confab_transport::TlsConfig>,
        stores: Stores,
        registrar: confab_registrar::RegistrarConfig,
        gruu_key: [u8; 32],
    ) -> Result<SipServer, StartError> {
        SipServer::start_with(settings, transport, tls, stores, registrar, gruu_key, |b| b).await
    }

    /// [`SipServer::start`] with later roles added to the builder by `extend` (chain steps
    /// with [`FrontendBuilder::handler_before`], offline messaging with
    /// [`FrontendBuilder::offline_messages`]).
    ///
    /// # Errors
    /// [`StartError`] naming what could not start.
    pub async fn start_with(
        settings: FrontendSettings,
        transport: confab_transport::TransportConfig,
        tls: Option<confab_transport::TlsConfig>,
        stores: Stores,
        registrar: confab_registrar::RegistrarConfig,
        gruu_key: [u8; 32],
        extend: impl FnOnce(FrontendBuilder) -> FrontendBuilder,
    ) -> Result<SipServer, StartError> {
        let registrar = Registrar::new(registrar, stores.registrations.clone(), gruu_key)?;
        let (handle, events) = confab_transport::Transport::bind(transport, tls).await?;
        for l in handle.listeners() {
            let key = format!("transport.listen[{}]", l.id);
            tracing::info!(listener = %key, addr = %l.local, sent_by = %l.sent_by(), "listening");
        }
        let frontend = match extend(FrontendBuilder::new(settings, stores, registrar))
            .start(handle.clone(), events)
        {
            Ok(f) => f,
            Err(e) => {
                handle.shutdown();
                return Err(e.into());
            }
        };
        Ok(SipServer {
            frontend,
            transport: handle,
        })
    }

    /// The transport (listeners, TLS reload).
    pub fn transport(&self) -> &TransportHandle {
        &self.transport
    }

    /// The Front End.
    pub fn frontend(&self) -> &FrontendHandle {
        &self.frontend
    }

    /// Graceful stop (SIGTERM): 503 + Retry-After to new requests, open transactions
    /// finish (up to `frontend.drain_timeout_s`), then the sockets close.
    pub async fn drain(self) {
        self.frontend.drain().await;
        self.transport.shutdown();
    }
}

/// Reads the 32-byte key in `path`, or creates it (mode 0600) with random bytes. For the
/// registrar's GRUU key, which must survive restarts.
///
/// # Errors
/// The I/O error, or `InvalidData` when the file is not 32 bytes.
pub fn load_or_create_key(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    match std::fs::read(path) {
        Ok(b) => b.try_into().map_err(|b: Vec<u8>| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds {} bytes; a key is 32", path.display(), b.len()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let key: [u8; 32] = rand::random();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            f.write_all(&key)?;
            f.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

/// Everything [`FrontendBuilder`] needs besides the stores and the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendSettings {
    /// This node's name (in nonces, in bindings' flow records).
    pub node_id: String,
    /// Served SIP domains; the first is the default.
    pub domains: Vec<String>,
    /// `[frontend]`.
    pub frontend: FrontendConfig,
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[proxy]`.
    pub proxy: ProxyConfig,
    /// Transaction timers (T1, T2, T4).
    pub timers: confab_sip::transaction::Config,
}

impl FrontendSettings {
    /// Settings with defaults for everything but the node and domains.
    pub fn new(node_id: &str, domains: &[String]) -> FrontendSettings {
        FrontendSettings {
            node_id: node_id.to_owned(),
            domains: domains.to_vec(),
            frontend: FrontendConfig::default(),
            auth: AuthConfig::default(),
            proxy: ProxyConfig::default(),
            timers: confab_sip::transaction::Config::default(),
        }
    }
}

/// The storage ports the Front End uses (the registrar holds its own handle to the
/// registration store).
#[derive(Clone)]
pub struct Stores {
    /// Accounts (digest HA1, existence for 404 vs 480).
    pub users: Arc<dyn UserStore>,
    /// Bindings (routing to local users, flow failure).
    pub registrations: Arc<dyn RegistrationStore>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores { .. }")
    }
}

/// Why the Front End could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrontendError {
    /// `[auth]` is invalid.
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    /// `[proxy]` or the timers are invalid.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// `[frontend]` is invalid.
    #[error(transparent)]
    Config(#[from] FrontendConfigError),
    /// `[im]` is invalid.
    #[error(transparent)]
    Im(#[from] confab_im::ImConfigError),
}

/// Shared by the dispatcher and the workers.
pub(crate) struct Shared {
    pub(crate) node_id: String,
    pub(crate) config: FrontendConfig,
    pub(crate) transport: TransportHandle,
    pub(crate) chain: Arc<Chain>,
    pub(crate) registrar: Registrar,
    pub(crate) start: Instant,
    pub(crate) draining: AtomicBool,
    pub(crate) stopped: AtomicBool,
    /// Requests without a final response (in the chain or being proxied), per worker.
    pub(crate) live: Vec<AtomicUsize>,
    /// Told when bindings change (registration event package, presence).
    pub(crate) observer: Option<Arc<dyn confab_core::RegistrationObserver>>,
    /// Offline store-and-forward, when enabled.
    pub(crate) delivery: Option<Arc<confab_im::Delivery>>,
}

/// How the routing steps reach flows on this node and tell trusted next hops.
#[derive(Debug)]
struct NodeFlows {
    node: String,
    transport: TransportHandle,
    auth: Arc<Authenticator>,
}

impl FlowResolver for NodeFlows {
    fn hop_for(&self, flow: &FlowInfo) -> Option<Hop> {
        if flow.node != self.node {
            return None;
        }
        let token = FlowToken::decode(&flow.token).ok()?;
        if !self.transport.flow_is_open(token) {
            return None;
        }
        Some(Hop::over_flow(flow.transport, flow.source, flow_id(token)))
    }

    fn is_trusted(&self, hop: &Hop) -> bool {
        self.auth.trusted_peers().is_trusted(hop.remote.ip(), None)
    }
}

/// Builds and starts the Front End.
///
/// ```ignore
/// let fe = FrontendBuilder::new(settings, stores, registrar)
///     .build(&transport)?             // the default chain: dialog, auth, router
///     .start(transport, events);
/// ```
pub struct FrontendBuilder {
    settings: FrontendSettings,
    stores: Stores,
    registrar: Registrar,
    extra: Vec<(String, Arc<dyn RequestHandler>)>,
    observer: Option<Arc<dyn confab_core::RegistrationObserver>>,
    originate: (
        mpsc::Sender<originate::Originate>,
        mpsc::Receiver<originate::Originate>,
    ),
    transport_cell: Arc<std::sync::OnceLock<TransportHandle>>,
    offline: Option<(Arc<dyn MessageQueueStore>, ImConfig)>,
}

impl std::fmt::Debug for FrontendBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontendBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl FrontendBuilder {
    /// A builder with the default chain.
    pub fn new(
        settings: FrontendSettings,
        stores: Stores,
        registrar: Registrar,
    ) -> FrontendBuilder {
        FrontendBuilder {
            settings,
            stores,
            registrar,
            extra: Vec::new(),
            observer: None,
            originate: mpsc::channel(4096),
            transport_cell: Arc::new(std::sync::OnceLock::new()),
            offline: None,
        }
    }

    /// The sender through which roles originate requests (the notifier's NOTIFYs) as
    /// client transactions of this Front End. Requests wait until [`Self::start`].
    pub fn request_sender(&self) -> Arc<dyn confab_core::RequestSender> {
        Arc::new(originate::FrontendSender {
            tx: self.originate.0.clone(),
            node: self.settings.node_id.clone(),
            transport: self.transport_cell.clone(),
        })
    }

    /// Who to tell when bindings change (a REGISTER committed, a flow failed, bindings
    /// expired).
    #[must_use]
    pub fn registration_observer(
        mut self,
        observer: Arc<dyn confab_core::RegistrationObserver>,
    ) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Offline store-and-forward of MESSAGEs (`confab-im`): the `im-offline` step before
    /// `router`, delivery after each successful REGISTER, and the expiry sweep.
    #[must_use]
    pub fn offline_messages(mut self, queue: Arc<dyn MessageQueueStore>, config: ImConfig) -> Self {
        self.offline = Some((queue, config));
        self
    }

    /// Inserts a later role's step before the step named `before` (`auth`, `router`...).
    #[must_use]
    pub fn handler_before(mut self, before: &str, handler: Arc<dyn RequestHandler>) -> Self {
        self.extra.push((before.to_owned(), handler));
        self
    }

    /// Validates the configuration, builds the chain and the workers' proxies, spawns the
    /// dispatcher and the workers on the current tokio runtime, and returns the handle.
    ///
    /// # Errors
    /// [`FrontendError`] naming the invalid setting.
    pub fn start(
        self,
        transport: TransportHandle,
        events: mpsc::Receiver<TransportEvent>,
    ) -> Result<FrontendHandle, FrontendError> {
        let FrontendBuilder {
            settings,
            stores,
            registrar,
            extra,
            observer,
            originate,
            transport_cell,
            offline,
        } = self;
        settings.frontend.validate()?;
        if let Some((_, c)) = &offline {
            c.validate()?;
        }
        let n = settings.frontend.worker_count();
        let mut inboxes = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = mpsc::channel(settings.frontend.inbox);
            inboxes.push(tx);
            receivers.push(rx);
        }
        let _ = transport_cell.set(transport.clone());
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let auth = Arc::new(Authenticator::new(
            &settings.auth,
            &settings.domains,
            &settings.node_id,
            rand::random(),
            rand::random(),
            now_s,
        )?);
        let flows: Arc<dyn FlowResolver> = Arc::new(NodeFlows {
            node: settings.node_id.clone(),
            transport: transport.clone(),
            auth: auth.clone(),
        });
        let router = Router::new(
            stores.registrations.clone(),
            stores.users.clone(),
            flows.clone(),
        )
        .with_gruu(Arc::new(crate::registrar::RegistrarGruu(registrar.clone())));
        let mut chain = Chain::new()
            .then(Arc::new(DialogRouter::new(flows.clone())))
            .then(Arc::new(AuthHandler::new(auth, stores.users.clone())))
            .then(Arc::new(router.clone()));
        for (before, h) in extra {
            chain.insert_before(&before, h);
        }
        let delivery = offline.map(|(queue, config)| {
            let rules = confab_im::Offline::new(config, &settings.domains);
            chain.insert_before(
                "router",
                Arc::new(confab_im::OfflineHandler::new(
                    rules.clone(),
                    queue.clone(),
                    stores.registrations.clone(),
                    stores.users.clone(),
                )),
            );
            Arc::new(confab_im::Delivery::new(
                rules,
                queue,
                stores.registrations.clone(),
                Arc::new(crate::originate::WorkerOriginator::new(
                    router,
                    inboxes.clone(),
                )),
            ))
        });
        tracing::info!(chain = ?chain.names(), "request chain");
        let listeners: Vec<Listener> = transport
            .listeners()
            .iter()
            .map(|l| Listener {
                transport: transport_of(l.transport()),
                local: l.local,
                sent_by: l.sent_by(),
            })
            .collect();
        let local = LocalNode::new(&settings.domains, listeners);
        let flow_key: [u8; 32] = rand::random();
        let mut proxies = Vec::with_capacity(n);
        for _ in 0..n {
            proxies.push(Proxy::new(
                settings.proxy.clone(),
                settings.timers.clone(),
                local.clone(),
                rand::random(),
                &flow_key,
            )?);
        }
        let shared = Arc::new(Shared {
            node_id: settings.node_id.clone(),
            config: settings.frontend.clone(),
            transport,
            chain: Arc::new(chain),
            registrar,
            start: Instant::now(),
            draining: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            live: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            observer,
            delivery: delivery.clone(),
        });
        let mut tasks = Vec::with_capacity(n + 2);
        for ((index, proxy), rx) in proxies.into_iter().enumerate().zip(receivers) {
            let w = worker::Worker {
                index,
                proxy,
                shared: shared.clone(),
                inbox: rx,
                originated: std::collections::HashMap::new(),
                next_key: 0,
                delay: worker::QueueDelay::default(),
            };
            tasks.push(tokio::spawn(w.run()));
        }
        if let Some(d) = delivery {
            tasks.push(tokio::spawn(d.run()));
        }
        tasks.push(tokio::spawn(originate::dispatch(
            originate.1,
            inboxes.clone(),
        )));
        let dispatcher = tokio::spawn(dispatch(shared.clone(), events, inboxes));
        tasks.push(tokio::spawn(sweep(shared.clone())));
        Ok(FrontendHandle {
            shared,
            dispatcher: Some(dispatcher),
            workers: tasks,
        })
    }
}

fn worker_for(msg: &confab_sip::Message, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let Some(Ok(call_id)) = msg.call_id() else {
        return 0;
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    call_id.hash(&mut h);
    (h.finish() % n as u64) as usize
}

async fn dispatch(
    shared: Arc<Shared>,
    mut events: mpsc::Receiver<TransportEvent>,
    inboxes: Vec<mpsc::Sender<worker::WorkerMsg>>,
) {
    while let Some(ev) = events.recv().await {
        match ev {
            TransportEvent::Message(inb) => {
                let i = worker_for(&inb.message, inboxes.len());
                // A full inbox is waited for, not answered: backpressure runs through the
                // transport's event channel to the kernel's socket buffer, where stale new
                // requests are dropped before parsing (`transport.max_datagram_age_ms`). A
                // 503 here would cost about what serving the request does, for a request
                // that has usually waited past its client's retransmission already.
                match inboxes[i].try_send(worker::WorkerMsg::Inbound(inb)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(msg)) => {
                        if inboxes[i].send(msg).await.is_err() {
                            break;
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
            TransportEvent::FlowClosed { flow, .. } => {
                // RFC 5626 §5.3: the flow failed; its (outbound) bindings go.
                let registrar = shared.registrar.clone();
                let node = shared.node_id.clone();
                let shared = shared.clone();
                tokio::spawn(async move {
                    match registrar.handle_flow_failure(&node, &flow.encode()).await {
                        Ok(removed) if !removed.is_empty() => {
                            tracing::info!(%flow, removed = removed.len(), "flow closed; outbound bindings removed");
                            notify_observer(shared.observer.as_ref(), &removed);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, %flow, "cannot remove the bindings of a closed flow")
                        }
                    }
                });
            }
            _ => {}
        }
        if shared.stopped.load(Ordering::Relaxed) {
            break;
        }
    }
}

/// Tells the registration observer which AORs lost bindings.
fn notify_observer(
    observer: Option<&Arc<dyn confab_core::RegistrationObserver>>,
    removed: &[confab_core::Binding],
) {
    let Some(obs) = observer else {
        return;
    };
    let mut aors: Vec<&confab_core::Address> = removed.iter().map(|b| &b.aor).collect();
    aors.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    aors.dedup();
    for a in aors {
        obs.bindings_changed(a);
    }
}

/// Removes expired bindings every few seconds (lookups never return them meanwhile).
async fn sweep(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if shared.stopped.load(Ordering::Relaxed) {
            return;
        }
        let now = confab_core::Timestamp::from_system(SystemTime::now());
        match shared.registrar.sweep_expired(now, 10_000).await {
            Ok(gone) if !gone.is_empty() => {
                tracing::debug!(removed = gone.len(), "expired bindings removed");
                notify_observer(shared.observer.as_ref(), &gone);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "expired-binding sweep failed"),
        }
    }
}

/// The running Front End.
#[derive(Debug)]
pub struct FrontendHandle {
    shared: Arc<Shared>,
    dispatcher: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("node_id", &self.node_id)
            .field("draining", &self.draining)
            .finish_non_exhaustive()
    }
}

impl FrontendHandle {
    /// Requests without a final response yet (in the chain, with the registrar, or being
    /// proxied), over all workers.
    pub fn in_progress(&self) -> usize {
        self.shared
            .live
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .sum()
    }

    /// Whether a drain was started.
    pub fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Relaxed)
    }

    /// Graceful stop: new requests get 503 with `Retry-After`, requests in progress get
    /// their final response (up to `drain_timeout_s`), then the workers stop (transactions
    /// that only wait to absorb retransmissions are not waited for). The transport is not
    /// touched (the caller shuts it down afterwards).
    pub async fn drain(mut self) {
        self.shared.draining.store(true, Ordering::Relaxed);
        let limit = Duration::from_secs(u64::from(self.shared.config.drain_timeout_s));
        let start = Instant::now();
        while self.in_progress() > 0 && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.in_progress();
        if left > 0 {
            tracing::warn!(
                left,
                "drain timeout; stopping with transactions in progress"
            );
        }
        self.stop().await;
    }

    /// Stops at once.
    pub async fn stop(&mut self) {
        self.shared.stopped.store(true, Ordering::Relaxed);
        if let Some(d) = self.dispatcher.take() {
            d.abort();
            let _ = d.await;
        }
        for w in self.workers.drain(..) {
            w.abort();
            let _ = w.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gruu.key");
        let k1 = load_or_create_key(&p).unwrap();
        let k2 = load_or_create_key(&p).unwrap();
        assert_eq!(k1, k2);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::write(&p, b"short").unwrap();
        let e = load_or_create_key(&p).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }
}
