//! One worker: a proxy core (with its transaction layer), the requests it has in the chain
//! or the registrar, its timers, and the sends it makes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use confab_core::chain::{Hop, Outcome, Reply, RequestContext};
use confab_proxy::{Proxy, ProxyEvent};
use confab_sip::timer::Time;
use confab_sip::transaction::TxId;
use confab_transport::{Inbound, SendError};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;

use crate::Shared;
use crate::convert::{flow_info, source_of, target_of, token_of};

/// What the dispatcher hands a worker.
#[derive(Debug)]
pub(crate) enum WorkerMsg {
    /// A message from the network.
    Inbound(Inbound),
    /// A request this node sends (offline delivery); the final status goes to `reply`.
    Originate {
        request: confab_sip::Message,
        target: confab_core::chain::Target,
        reply: tokio::sync::oneshot::Sender<u16>,
    },
}

/// A chain or registrar run that finished; `started` is when the request entered the chain.
enum Done {
    Chain {
        tx: TxId,
        ctx: Box<RequestContext>,
        outcome: Outcome,
        started: std::time::Instant,
    },
    Register {
        tx: TxId,
        response: confab_sip::Message,
        started: std::time::Instant,
    },
}

/// Delay-based overload detection: a moving average of how long requests spent in the
/// chain and the registrar (queueing for the CPU, the user store, the group commit). Past
/// `frontend.max_queue_delay_ms` new dialog-creating and out-of-dialog requests get 503 with
/// `Retry-After` at once: an answer later than SIP's 500 ms retransmission timer only brings
/// retransmissions, which cost CPU and make the queue longer still (the collapse the
/// overload benchmark shows without it). In-dialog requests (BYE, re-INVITE, ACK) are never
/// shed this way, so calls in progress complete.
#[derive(Debug, Default)]
pub(crate) struct QueueDelay {
    /// Exponentially weighted average (weight 1/8) of the latest requests' time in the chain,
    /// in microseconds.
    avg_us: u64,
}

impl QueueDelay {
    fn sample(&mut self, started: std::time::Instant) {
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.avg_us = self.avg_us - self.avg_us / 8 + us / 8;
    }

    /// Whether a new request should be shed; `pending` is the number of requests in the
    /// chain (with none, there is no queue, whatever the average says).
    fn overloaded(&mut self, pending: usize, limit_ms: u32) -> bool {
        if pending == 0 {
            self.avg_us = 0;
            return false;
        }
        limit_ms > 0 && self.avg_us > u64::from(limit_ms) * 1000
    }
}

type DoneFuture = Pin<Box<dyn Future<Output = Done> + Send>>;

pub(crate) struct Worker {
    pub(crate) index: usize,
    pub(crate) proxy: Proxy,
    pub(crate) shared: Arc<Shared>,
    pub(crate) inbox: mpsc::Receiver<WorkerMsg>,
    /// Requests sent with `Proxy::originate`, by key, waiting for their final status.
    pub(crate) originated: std::collections::HashMap<u64, tokio::sync::oneshot::Sender<u16>>,
    pub(crate) next_key: u64,
    pub(crate) delay: QueueDelay,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Worker {
    fn now(&self) -> Time {
        Time::from_duration(self.shared.start.elapsed())
    }

    pub(crate) async fn run(mut self) {
        let mut pending: FuturesUnordered<DoneFuture> = FuturesUnordered::new();
        let (err_tx, mut err_rx) = mpsc::unbounded_channel::<TxId>();
        let mut open = true;
        loop {
            let deadline = self
                .proxy
                .poll_timeout()
                .map(|t| tokio::time::Instant::from_std(self.shared.start + t.as_duration()));
            tokio::select! {
                biased;
                Some(done) = pending.next(), if !pending.is_empty() => {
                    self.on_done(done, &mut pending);
                }
                Some(tx) = err_rx.recv() => {
                    let now = self.now();
                    self.proxy.handle_transport_error(now, tx);
                }
                msg = self.inbox.recv(), if open => match msg {
                    Some(WorkerMsg::Inbound(inb)) => self.on_inbound(inb, &mut pending),
                    Some(WorkerMsg::Originate { request, target, reply }) => {
                        let key = self.next_key;
                        self.next_key += 1;
                        self.originated.insert(key, reply);
                        let now = self.now();
                        self.proxy.originate(now, request, &target, key);
                    }
                    None => open = false,
                },
                () = sleep_until(deadline) => {
                    let now = self.now();
                    self.proxy.handle_timeout(now);
                }
            }
            self.poll_events(&mut pending);
            self.flush(&err_tx).await;
            // What a drain waits for: requests without a final response yet (in the chain or
            // being proxied), not transactions that only linger to absorb retransmissions.
            let live = self.proxy.pending() + pending.len();
            self.shared.live[self.index].store(live, Ordering::Relaxed);
            if !open && live == 0 {
                break;
            }
            if self.shared.stopped.load(Ordering::Relaxed) {
                break;
            }
        }
        self.shared.live[self.index].store(0, Ordering::Relaxed);
    }

    fn on_inbound(&mut self, inb: Inbound, pending: &mut FuturesUnordered<DoneFuture>) {
        // A new request that waited (kernel buffer, event channel, inbox) far past
        // `transport.max_datagram_age_ms` is dropped before it costs a transaction: its
        // client has retransmitted, and a late answer only lengthens the queue. Cheaper
        // than a 503, which costs about what serving it would.
        if self.shared.transport.is_stale(&inb) {
            self.shared.transport.count_stale_drop();
            return;
        }
        let now = self.now();
        let source = source_of(&inb);
        if let Err(e) = self
            .proxy
            .handle_message(now, wall_ms(), inb.message, source)
        {
            tracing::debug!(error = %e, from = %inb.source, "unmatchable message dropped");
        }
        self.poll_events(pending);
    }

    fn poll_events(&mut self, pending: &mut FuturesUnordered<DoneFuture>) {
        let now = self.now();
        while let Some(ev) = self.proxy.poll_event() {
            match ev {
                ProxyEvent::Originated { key, status } => {
                    if let Some(reply) = self.originated.remove(&key) {
                        let _ = reply.send(status);
                    }
                }
                ProxyEvent::Request { tx, ctx } => {
                    crate::txlog::request(&ctx);
                    if self.shared.draining.load(Ordering::Relaxed) {
                        metrics::counter!("confab_sip_requests_refused_total", "reason" => "draining")
                            .increment(1);
                        let r = self.busy("Server shutting down");
                        self.proxy
                            .handle_outcome(now, tx, *ctx, Outcome::Respond(r));
                    } else if pending.len() >= self.shared.config.max_pending_per_worker
                        || (sheddable(&ctx)
                            && self
                                .delay
                                .overloaded(pending.len(), self.shared.config.max_queue_delay_ms))
                    {
                        metrics::counter!("confab_sip_requests_refused_total", "reason" => "overload")
                            .increment(1);
                        let r = self.busy("Server overloaded");
                        self.proxy
                            .handle_outcome(now, tx, *ctx, Outcome::Respond(r));
                    } else {
                        let chain = self.shared.chain.clone();
                        let started = std::time::Instant::now();
                        pending.push(Box::pin(async move {
                            let mut ctx = ctx;
                            let outcome = chain.run(&mut ctx).await;
                            Done::Chain {
                                tx,
                                ctx,
                                outcome,
                                started,
                            }
                        }));
                    }
                }
                other => tracing::debug!(?other, "proxy event ignored"),
            }
        }
    }

    fn busy(&self, reason: &str) -> Reply {
        Reply::with_reason(503, reason).header(
            "Retry-After",
            self.shared.config.overload_retry_after_s.to_string(),
        )
    }

    fn on_done(&mut self, done: Done, pending: &mut FuturesUnordered<DoneFuture>) {
        let now = self.now();
        match done {
            Done::Chain {
                tx,
                ctx,
                outcome: Outcome::Register,
                started,
            } => {
                crate::txlog::outcome(&ctx, &Outcome::Register);
                let registrar = self.shared.registrar.clone();
                let flow = flow_info(&ctx.source, &self.shared.node_id);
                let delivery = self.shared.delivery.clone();
                let observer = self.shared.observer.clone();
                pending.push(Box::pin(async move {
                    let response = crate::registrar::register(&registrar, &ctx, flow).await;
                    // Registration event package and presence follow binding changes.
                    if let Some(o) = observer
                        && response.status().is_some_and(|s| (200..300).contains(&s))
                        && let Some(aor) = crate::registrar::aor_of(&ctx.request)
                    {
                        o.bindings_changed(&aor);
                    }
                    // A user came online: queued messages go out once the 200 is on its way.
                    if let Some(d) = delivery
                        && response.status().is_some_and(|s| (200..300).contains(&s))
                        && response.contains(confab_sip::HeaderName::Contact)
                        && let Some(aor) = crate::registrar::aor_of(&ctx.request)
                        && d.may_have_work(&aor)
                    {
                        tokio::spawn(async move {
                            match d.deliver_to(&aor).await {
                                Ok(r) if r.delivered + r.refused + r.deferred > 0 => {
                                    tracing::info!(%aor, delivered = r.delivered, refused = r.refused, deferred = r.deferred, "offline messages delivered");
                                }
                                Ok(_) => {}
                                Err(e) => tracing::warn!(error = %e, %aor, "offline delivery failed"),
                            }
                        });
                    }
                    Done::Register {
                        tx,
                        response,
                        started,
                    }
                }));
            }
            Done::Chain {
                tx,
                ctx,
                outcome,
                started,
            } => {
                crate::txlog::outcome(&ctx, &outcome);
                self.delay.sample(started);
                self.proxy.handle_outcome(now, tx, *ctx, outcome);
            }
            Done::Register {
                tx,
                response,
                started,
            } => {
                self.delay.sample(started);
                self.proxy.send_response(now, tx, response);
            }
        }
    }

    /// Sends what the proxy produced. Sends over existing flows and UDP are awaited here
    /// (they only wait for socket buffer space); a send that may open a connection runs in
    /// its own task and reports failure back.
    async fn flush(&mut self, err_tx: &mpsc::UnboundedSender<TxId>) {
        while let Some(t) = self.proxy.poll_transmit() {
            crate::txlog::sent(&t.data, &t.flow);
            let is_response = t.data.starts_with(b"SIP/2.0 ");
            let transport = &self.shared.transport;
            match (&t.flow.flow, t.flow.transport.is_connection()) {
                (Some(_), _) | (None, false) => {
                    let target = target_of(&t.flow);
                    match transport.send(&target, t.data.clone()).await {
                        Ok(_) => {}
                        Err(SendError::FlowGone(_)) if is_response => {
                            // §18.2.2: the connection is gone; the Via says where to go.
                            let transport = transport.clone();
                            let data = t.data;
                            let flow = t.flow.flow.map(token_of);
                            tokio::spawn(async move {
                                send_response_by_via(&transport, data, flow).await;
                            });
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, hop = ?t.flow, "send failed");
                            if let Some(tx) = t.tx {
                                let now = self.now();
                                self.proxy.handle_transport_error(now, tx);
                            }
                        }
                    }
                }
                (None, true) => {
                    let transport = transport.clone();
                    let err_tx = err_tx.clone();
                    let hop: Hop = t.flow;
                    let data = t.data;
                    let tx = t.tx;
                    tokio::spawn(async move {
                        if let Err(e) = transport.send(&target_of(&hop), data).await {
                            tracing::debug!(error = %e, ?hop, "send failed");
                            if let Some(tx) = tx {
                                let _ = err_tx.send(tx);
                            }
                        }
                    });
                }
            }
        }
    }
}

async fn send_response_by_via(
    transport: &confab_transport::TransportHandle,
    data: Bytes,
    flow: Option<confab_transport::FlowToken>,
) {
    let Ok(msg) = confab_sip::parse_datagram(data, &confab_sip::Limits::UNLIMITED) else {
        return;
    };
    let r = match flow {
        Some(f) => transport.send_response(&msg, f).await,
        None => match confab_proxy::response_hop(&msg) {
            Some(h) => transport.send(&target_of(&h), msg.to_bytes()).await,
            None => return,
        },
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "response could not be delivered");
    }
}

/// Requests the delay-based shedding may refuse: out-of-dialog requests (no To tag) other
/// than ACK and CANCEL, which belong to transactions already accepted.
fn sheddable(ctx: &RequestContext) -> bool {
    let req = &ctx.request;
    if matches!(
        req.method(),
        Some(confab_sip::Method::Ack | confab_sip::Method::Cancel)
    ) {
        return false;
    }
    req.to()
        .and_then(Result::ok)
        .is_none_or(|t| t.tag().is_none())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod delay_tests {
    use std::time::{Duration, Instant};

    use super::QueueDelay;

    fn ago(ms: u64) -> Instant {
        Instant::now()
            .checked_sub(Duration::from_millis(ms))
            .unwrap_or_else(Instant::now)
    }

    #[test]
    fn sheds_only_while_recent_requests_waited_too_long() {
        let mut d = QueueDelay::default();
        // Fast requests: never overloaded.
        for _ in 0..50 {
            d.sample(ago(1));
        }
        assert!(!d.overloaded(10, 200));
        // Requests that waited 600 ms: the average crosses 200 ms within a few samples.
        for _ in 0..8 {
            d.sample(ago(600));
        }
        assert!(d.overloaded(10, 200));
        assert!(!d.overloaded(10, 0), "0 turns it off");
        // Fast completions bring it back down.
        for _ in 0..40 {
            d.sample(ago(1));
        }
        assert!(!d.overloaded(10, 200));
    }

    #[test]
    fn an_empty_queue_is_never_overloaded_and_resets_the_average() {
        let mut d = QueueDelay::default();
        for _ in 0..20 {
            d.sample(ago(900));
        }
        assert!(d.overloaded(1, 200));
        assert!(!d.overloaded(0, 200));
        // The stale average was dropped: one fresh request is not refused.
        assert!(!d.overloaded(1, 200));
    }
}
