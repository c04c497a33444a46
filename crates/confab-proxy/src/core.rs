//! The proxy core: a transaction user over the transaction layer (RFC 3261 §16), sans-IO.

use std::cmp::Reverse;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use confab_core::chain::{Addressed, FlowId, Hop, Outcome, Reply, RequestContext, Source, Target};
use confab_core::{DialogObserver, SipTransport};
use confab_sip::timer::Time;
use confab_sip::transaction::{self, Event, InboundError, TransactionLayer, Transmit, TxId};
use confab_sip::{HeaderName, Message, Method, ResponseBuilder};

use crate::config::{ProxyConfig, ProxyConfigError};
use crate::local::LocalNode;
use crate::route::{self, FlowSigner, NextHop, RoutedFlow};

/// Branch prefix of our Vias: RFC 3261 magic cookie + `cfx` (ours) + 8 hex digits of the
/// loop-detection hash + `.` + 16 hex digits unique per branch.
const BRANCH_PREFIX: &str = "z9hG4bKcfx";

/// Methods this server knows (for `Allow` in 405 and OPTIONS answers).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE, PRACK, REFER, SUBSCRIBE, NOTIFY, PUBLISH";

/// What the proxy asks of its caller.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProxyEvent {
    /// A new request passed validation (§16.3) and Route pre-processing (§16.4): run the
    /// request chain and hand the outcome to [`Proxy::handle_outcome`] (or answer it with
    /// [`Proxy::send_response`], e.g. after the registrar ran).
    Request {
        /// Its server transaction.
        tx: TxId,
        /// The context for the chain.
        ctx: Box<RequestContext>,
    },
    /// A request this node sent with [`Proxy::originate`] got its final response (or
    /// failed: 408 on timeout, 503 on a transport error or when it could not be sent).
    Originated {
        /// The caller's key given to [`Proxy::originate`].
        key: u64,
        /// The final status.
        status: u16,
    },
}

/// Why [`Proxy::new`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// `[proxy]` is invalid.
    #[error(transparent)]
    Config(#[from] ProxyConfigError),
    /// The transaction timers are invalid.
    #[error("transaction timers: {0}")]
    Timers(#[from] transaction::ConfigError),
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Requests handed to the chain.
    pub requests: u64,
    /// Branches created (client transactions for forwarded requests).
    pub branches: u64,
    /// Final responses sent upstream by the proxy core (built or forwarded).
    pub finals: u64,
    /// ACKs and stray 2xx forwarded statelessly.
    pub stateless: u64,
    /// Requests refused by validation (400, 416, 483, 482, 420) or dropped by it (requests
    /// no response can be built for).
    pub refused: u64,
}

#[derive(Debug)]
struct Branch {
    tx: Option<TxId>,
    uri: String,
    provisional: bool,
    done: bool,
    terminated: bool,
    timer_c: Option<Time>,
}

#[derive(Debug)]
struct Best {
    status: u16,
    response: Option<Message>,
}

#[derive(Debug)]
struct Fork {
    request: Message,
    source: Source,
    asserted_identity: Option<String>,
    invite: bool,
    record_route: bool,
    loop_hash: u32,
    groups: VecDeque<Vec<Target>>,
    branches: Vec<Branch>,
    best: Option<Best>,
    challenges: Vec<(HeaderName, String)>,
    final_sent: bool,
    got_2xx: bool,
    got_6xx: bool,
    cancelled: bool,
    server_gone: bool,
    /// The chain's [`RequestContext::response_headers`], added to final responses sent
    /// upstream.
    response_headers: Vec<(String, String)>,
    /// Told about the dialogs of an initial INVITE ([`RequestContext::dialog_observer`]).
    dialog_observer: Option<Arc<dyn DialogObserver>>,
}

#[derive(Debug)]
enum Pending {
    /// In the request chain (or with the registrar). For INVITE the request is kept to
    /// answer 487 if a CANCEL arrives meanwhile.
    Chain {
        request: Option<Message>,
        loop_hash: u32,
    },
    /// Answered (487 after CANCEL) while the chain was still running: its outcome is
    /// dropped when it comes.
    Cancelled,
    /// Being proxied.
    Fork(Box<Fork>),
}

/// The stateful proxy of one worker.
///
/// # Calling contract
///
/// | input | when |
/// |---|---|
/// | [`Proxy::handle_message`] | a message arrived from the network |
/// | [`Proxy::handle_outcome`] | the chain decided a [`ProxyEvent::Request`] |
/// | [`Proxy::send_response`] | someone else answered it (the registrar) |
/// | [`Proxy::handle_transport_error`] | sending a [`Transmit`] with a `tx` failed |
/// | [`Proxy::handle_timeout`] | the deadline of [`Proxy::poll_timeout`] passed |
///
/// After any input drain [`Proxy::poll_event`] and [`Proxy::poll_transmit`], then ask
/// [`Proxy::poll_timeout`]. Time is the caller's monotonic [`Time`]; randomness comes in
/// once as the seed of [`Proxy::new`]; wall-clock milliseconds (for the chain) come with
/// each message.
///
/// # What it does (RFC 3261 §16)
///
/// Validation (§16.3: the message layer's checks of [`Message::check`] first — a request
/// whose Via, From, To, Call-ID or CSeq cannot be read is dropped, other faults get their
/// 400 or 416 before anything else, authentication included —, Max-Forwards 0 → 483 except OPTIONS to us, loop detection through the
/// loop hash in our Via branches → 482, Proxy-Require → 420 with Unsupported; Require is not
/// looked at), Route pre-processing (§16.4: strict-route fix-up, removal of our Route
/// entries, flow tokens), forking (§16.6: parallel within a q-value group, groups in
/// descending q in series; Request-URI, Path as Route, Max-Forwards, Record-Route, Via with
/// a fresh branch per target; P-Asserted-Identity kept or set toward trusted next hops,
/// removed toward others), response processing (§16.7: 1xx and 2xx forwarded at once, 100
/// absorbed, best final response with 6xx preferred, 401/407 challenges merged, 503 → 500,
/// 3xx recursion when configured, CANCEL of the other branches on 2xx or 6xx), Timer C
/// (§16.8), CANCEL (§16.10), ACK for 2xx and stray 2xx forwarded statelessly (§16.11).
pub struct Proxy {
    config: ProxyConfig,
    local: LocalNode,
    signer: FlowSigner,
    tl: TransactionLayer<Hop>,
    pending: HashMap<TxId, Pending>,
    by_client: HashMap<TxId, (TxId, u32)>,
    /// Client transactions of requests this node originated, with the caller's key.
    originated: HashMap<TxId, u64>,
    timer_c: BinaryHeap<Reverse<(Time, TxId)>>,
    events: VecDeque<ProxyEvent>,
    rng: u64,
    counter: u64,
    stats: ProxyStats,
    /// The source and wall clock of the message being handled (the transaction layer's
    /// flow type is the hop; the chain also needs the local address and TLS names).
    current: Option<(Source, u64)>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("pending", &self.pending.len())
            .field("transactions", &self.tl.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn loop_hash(req: &Message) -> u32 {
    let mut h = DefaultHasher::new();
    req.request_uri_bytes().hash(&mut h);
    if let Some(Ok(f)) = req.from() {
        f.tag().hash(&mut h);
    }
    if let Some(Ok(t)) = req.to() {
        t.tag().hash(&mut h);
    }
    if let Some(Ok(c)) = req.call_id() {
        c.hash(&mut h);
    }
    if let Some(Ok(c)) = req.cseq() {
        c.seq.hash(&mut h);
    }
    for name in [HeaderName::ProxyRequire, HeaderName::ProxyAuthorization] {
        for f in req.get_all(name) {
            f.value().hash(&mut h);
        }
    }
    let v = h.finish();
    (v ^ (v >> 32)) as u32
}

fn status_rank(code: u16) -> u32 {
    // Lower is better (§16.7 step 6): 6xx first, then the lowest class; within 4xx the
    // challenge responses are kept so they can be merged.
    match code {
        600..=699 => 0,
        _ => u32::from(code / 100) * 1000 + u32::from(code % 100),
    }
}

impl Proxy {
    /// A proxy for this node. `seed` is random bytes for branches and tags; `flow_key`
    /// keys the flow tokens in Record-Route (share it between restarts only if flows
    /// survive them, which they do not).
    ///
    /// # Errors
    /// [`ProxyError`] when the configuration is invalid.
    pub fn new(
        config: ProxyConfig,
        timers: transaction::Config,
        local: LocalNode,
        seed: u64,
        flow_key: &[u8],
    ) -> Result<Proxy, ProxyError> {
        config.validate()?;
        Ok(Proxy {
            config,
            local,
            signer: FlowSigner::new(flow_key),
            tl: TransactionLayer::new(timers)?,
            pending: HashMap::new(),
            by_client: HashMap::new(),
            originated: HashMap::new(),
            timer_c: BinaryHeap::new(),
            events: VecDeque::new(),
            rng: seed | 1,
            counter: 0,
            stats: ProxyStats::default(),
            current: None,
        })
    }

    /// The node identity.
    pub fn local(&self) -> &LocalNode {
        &self.local
    }

    /// Counters.
    pub fn stats(&self) -> ProxyStats {
        self.stats
    }

    /// Live transactions (server and client).
    pub fn transactions(&self) -> usize {
        self.tl.len()
    }

    /// Requests in the chain or being proxied.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64 over the caller's seed.
        self.counter = self.counter.wrapping_add(1);
        let mut z = self
            .rng
            .wrapping_add(self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    // ---- outputs ----------------------------------------------------------------------

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit<Hop>> {
        self.tl.poll_transmit()
    }

    /// The next event for the caller.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ProxyEvent> {
        self.events.pop_front()
    }

    /// The earliest deadline (transaction timers and Timer C).
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Time> {
        let c = self.timer_c.peek().map(|Reverse((t, _))| *t);
        match (self.tl.poll_timeout(), c) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- inputs -----------------------------------------------------------------------

    /// A message arrived from `source` (the transport has already added `received` and
    /// `rport` to a request's top Via). `wall_ms` is the wall clock (Unix milliseconds)
    /// for the chain.
    ///
    /// # Errors
    /// [`InboundError`] when the message cannot be matched (drop it).
    pub fn handle_message(
        &mut self,
        now: Time,
        wall_ms: u64,
        msg: Message,
        source: Source,
    ) -> Result<(), InboundError> {
        // §16.3 step 1 (reasonable syntax): a request no response can be built for never
        // reaches the transaction layer (the answerable faults are refused in on_request).
        if msg.is_request()
            && let Err(r) = msg.check()
            && r.disposition() == confab_sip::Disposition::Drop
        {
            tracing::debug!(fault = %r, "request dropped by validation");
            self.stats.refused += 1;
            return Ok(());
        }
        let hop = source.hop.clone();
        self.current = Some((source, wall_ms));
        let r = self.tl.handle_message(now, msg, hop);
        self.drain(now);
        self.current = None;
        r
    }

    /// Fire due timers.
    pub fn handle_timeout(&mut self, now: Time) {
        self.tl.handle_timeout(now);
        self.drain(now);
        while let Some(Reverse((at, tx))) = self.timer_c.peek().copied() {
            if at > now {
                break;
            }
            self.timer_c.pop();
            self.fire_timer_c(now, tx, at);
            self.drain(now);
        }
    }

    /// Sending a message of transaction `tx` failed.
    pub fn handle_transport_error(&mut self, now: Time, tx: TxId) {
        let _ = self.tl.handle_transport_error(now, tx);
        self.drain(now);
    }

    /// Answers server transaction `tx` with a response built elsewhere (the registrar).
    /// Returns false when the transaction is gone or already answered.
    pub fn send_response(&mut self, now: Time, tx: TxId, response: Message) -> bool {
        let ok = self.tl.send_response(now, tx, response).is_ok();
        if ok {
            self.stats.finals += 1;
            self.pending.remove(&tx);
        }
        self.drain(now);
        ok
    }

    /// Applies the chain's outcome for server transaction `tx`. `ctx` is the context the
    /// chain saw (its request, edited, is what gets forwarded).
    /// [`Outcome::Register`] must be handled by the caller (it is answered 500 here).
    pub fn handle_outcome(&mut self, now: Time, tx: TxId, ctx: RequestContext, outcome: Outcome) {
        let Some(p) = self.pending.get(&tx) else {
            return;
        };
        let loop_hash = match p {
            Pending::Chain { loop_hash, .. } => *loop_hash,
            Pending::Cancelled => {
                self.pending.remove(&tx);
                return;
            }
            Pending::Fork(_) => return,
        };
        match outcome {
            Outcome::Continue => self.reply(now, tx, &ctx.request, &Reply::new(404)),
            Outcome::Respond(mut r) => {
                r.headers.extend(ctx.response_headers.iter().cloned());
                self.reply(now, tx, &ctx.request, &r);
            }
            Outcome::Register => {
                tracing::error!(
                    "REGISTER outcome reached the proxy core; the caller must run the registrar"
                );
                self.reply(now, tx, &ctx.request, &Reply::new(500));
            }
            Outcome::Forward(targets) if targets.is_empty() => {
                self.reply(now, tx, &ctx.request, &Reply::new(480));
            }
            Outcome::Forward(targets) => self.start_fork(now, tx, ctx, targets, loop_hash),
        }
        self.drain(now);
    }

    /// Sends a request this node originates (offline message delivery) to `target` in a
    /// client transaction of its own: the target's Path entries become Route headers, our
    /// Via is added, the next hop is the target's flow (or its URI/Route). The final
    /// response, a timeout (408) or a failure to send (503) comes back as
    /// [`ProxyEvent::Originated`] with `key`; the caller builds the rest of the request
    /// (From with a tag, To, Call-ID, CSeq, Max-Forwards).
    pub fn originate(&mut self, now: Time, mut request: Message, target: &Target, key: u64) {
        let fail = |p: &mut Proxy, why: &str| {
            tracing::debug!(why, "originated request not sent");
            p.events
                .push_back(ProxyEvent::Originated { key, status: 503 });
        };
        if request.request_uri_bytes() != Some(target.uri.as_bytes())
            && request.set_request_uri(&target.uri).is_err()
        {
            return fail(self, "invalid target URI");
        }
        for r in target.route.iter().rev() {
            if request.prepend_header(HeaderName::Route, r).is_err() {
                return fail(self, "invalid Path");
            }
        }
        let hop = match route::next_hop(&request, target) {
            NextHop::Hop(h) => h,
            NextHop::Resolve { .. } => return fail(self, "next hop needs DNS"),
            NextHop::Invalid(why) => return fail(self, why),
        };
        let Some(out) = self.local.listener_for(&hop).cloned() else {
            return fail(self, "no listener for the next hop");
        };
        if !target.trusted {
            request.remove_header(HeaderName::PAssertedIdentity);
        }
        let unique = self.next_random();
        let via = format!(
            "SIP/2.0/{} {};branch={BRANCH_PREFIX}00000000.{unique:016x}",
            hop.transport.via_name(),
            LocalNode::sent_by(&out, None),
        );
        if request.prepend_via(&via).is_err() {
            return fail(self, "cannot add Via");
        }
        match self.tl.send_request(now, request, hop) {
            Ok(client) => {
                self.originated.insert(client, key);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a client transaction");
                fail(self, "transaction layer refused");
            }
        }
        self.drain(now);
    }

    /// Requests sent with [`Proxy::originate`] still waiting for their final response.
    pub fn originated_pending(&self) -> usize {
        self.originated.len()
    }

    /// The final outcome of an originated request, once.
    fn originated_done(&mut self, client: TxId, status: u16) -> bool {
        match self.originated.remove(&client) {
            Some(key) => {
                self.events
                    .push_back(ProxyEvent::Originated { key, status });
                true
            }
            None => false,
        }
    }

    // ---- request handling ---------------------------------------------------------------

    fn drain(&mut self, now: Time) {
        while let Some(ev) = self.tl.poll_event() {
            match ev {
                Event::Request {
                    tx,
                    request,
                    flow: _,
                } => self.on_request(now, tx, request),
                Event::Cancel {
                    tx,
                    request,
                    flow: _,
                    invite,
                } => self.on_cancel(now, tx, &request, invite),
                Event::Ack { request, flow, .. } => self.on_ack(request, &flow),
                Event::Response { tx, response } => self.on_response(now, tx, response),
                Event::StrayResponse { response, .. } => self.on_stray(response),
                Event::CancelSent { .. } | Event::AckTimeout { .. } => {}
                Event::Timeout { tx, .. } => self.on_branch_failure(now, tx, 408),
                Event::TransportError { tx } => self.on_branch_failure(now, tx, 503),
                Event::Terminated { tx, .. } => self.on_terminated(now, tx),
            }
        }
    }

    fn reply(&mut self, now: Time, tx: TxId, request: &Message, reply: &Reply) {
        if let Some(resp) = self.build_reply(request, reply)
            && self.tl.send_response(now, tx, resp).is_ok()
            && reply.status >= 200
        {
            self.stats.finals += 1;
        }
        if reply.status >= 200 {
            self.pending.remove(&tx);
        }
    }

    fn build_reply(&mut self, request: &Message, reply: &Reply) -> Option<Message> {
        let mut b = ResponseBuilder::reply_to(request, reply.status).ok()?;
        if let Some(r) = &reply.reason {
            b = b.reason(r);
        }
        let has_tag = request
            .to()
            .and_then(Result::ok)
            .is_some_and(|t| t.tag().is_some());
        if !has_tag && reply.status > 100 {
            let tag = match &reply.to_tag {
                Some(t) => t.to_string(),
                None => format!("{:016x}", self.next_random()),
            };
            b = b.to_tag(&tag);
        }
        for (n, v) in &reply.headers {
            b = b.header(n.as_str(), v);
        }
        if let Some((ct, body)) = &reply.body {
            b = b.body(ct, body.clone().into());
        }
        b.build().ok()
    }

    fn refuse(&mut self, now: Time, tx: TxId, request: &Message, reply: Reply) {
        self.stats.refused += 1;
        self.reply(now, tx, request, &reply);
    }

    fn on_request(&mut self, now: Time, tx: TxId, mut request: Message) {
        let Some((source, wall_ms)) = self.current.clone() else {
            return;
        };
        // §16.3 steps 1 and 2: syntax the message layer refuses (400: CSeq method mismatch,
        // repeated single-valued headers, headers in the Request-URI, malformed Contact...)
        // and Request-URI schemes we cannot route (416), before the chain can challenge.
        if let Err(r) = request.check() {
            return self.refuse(now, tx, &request, Reply::with_reason(r.status, r.reason));
        }
        let addressed = self
            .local
            .classify(request.request_uri().and_then(Result::ok).as_ref());
        // §16.3 step 3: Max-Forwards.
        match request.max_forwards() {
            Some(Ok(0)) => {
                let to_us_options =
                    request.method() == Some(&Method::Options) && addressed == Addressed::Server;
                if !to_us_options {
                    return self.refuse(now, tx, &request, Reply::new(483));
                }
            }
            Some(Err(_)) => {
                return self.refuse(
                    now,
                    tx,
                    &request,
                    Reply::with_reason(400, "Malformed Max-Forwards"),
                );
            }
            _ => {}
        }
        // §16.3 step 4: loop detection.
        let hash = loop_hash(&request);
        if self.is_loop(&request, hash) {
            return self.refuse(now, tx, &request, Reply::new(482));
        }
        // §16.3 step 5: Proxy-Require.
        let unsupported: Vec<String> = request
            .proxy_require()
            .filter_map(Result::ok)
            .filter(|t| {
                !self
                    .config
                    .supported_proxy_require
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(t))
            })
            .map(str::to_owned)
            .collect();
        if !unsupported.is_empty() {
            let r = Reply::new(420).header("Unsupported", unsupported.join(", "));
            return self.refuse(now, tx, &request, r);
        }
        // §16.4: Route information pre-processing.
        let info = route::preprocess_routes(&mut request, &self.local, &self.signer);
        let addressed = if info.own_route {
            // The fix-up may have changed the Request-URI.
            self.local
                .classify(request.request_uri().and_then(Result::ok).as_ref())
        } else {
            addressed
        };
        let incoming = source.hop.flow;
        let route_flow = info
            .flows
            .iter()
            .find(|f| Some(f.flow) != incoming)
            .map(|f| self.hop_of(*f));
        let invite = request.method() == Some(&Method::Invite);
        self.pending.insert(
            tx,
            Pending::Chain {
                request: invite.then(|| request.clone()),
                loop_hash: hash,
            },
        );
        let mut ctx = RequestContext::new(request, source, addressed, wall_ms);
        ctx.own_route = info.own_route;
        ctx.routed = info.remaining;
        ctx.route_flow = route_flow;
        self.stats.requests += 1;
        self.events.push_back(ProxyEvent::Request {
            tx,
            ctx: Box::new(ctx),
        });
    }

    fn hop_of(&self, f: RoutedFlow) -> Hop {
        let remote = match f.flow {
            FlowId::Datagram { remote, .. } => remote,
            // The remote of a connection is not in the token; the transport sends by flow.
            FlowId::Connection { .. } => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        Hop::over_flow(f.transport, remote, f.flow)
    }

    /// §16.3 step 4: a Via of ours whose branch carries the same loop hash means the
    /// request came back unchanged: a loop (a spiral changes the Request-URI).
    fn is_loop(&self, request: &Message, hash: u32) -> bool {
        let mut want = [0u8; 8];
        hex8(hash, &mut want);
        request.vias().filter_map(Result::ok).any(|v| {
            v.branch.is_some_and(|b| {
                b.strip_prefix(BRANCH_PREFIX)
                    .is_some_and(|rest| rest.as_bytes().get(..8) == Some(&want[..]))
            }) && self.local.is_listener(&v.host, v.port)
        })
    }

    fn on_cancel(&mut self, now: Time, tx: TxId, request: &Message, invite: Option<TxId>) {
        let target = invite.filter(|i| self.pending.contains_key(i));
        let status = if target.is_some() { 200 } else { 481 };
        if let Some(r) = self.build_reply(request, &Reply::new(status)) {
            let _ = self.tl.send_response(now, tx, r);
        }
        let Some(inv) = target else {
            return;
        };
        match self.pending.get_mut(&inv) {
            Some(Pending::Chain { request, .. }) => {
                // Still in the chain: answer 487 now and drop the outcome later.
                let req = request.take();
                self.pending.insert(inv, Pending::Cancelled);
                if let Some(req) = req
                    && let Some(r) = self.build_reply(&req, &Reply::new(487))
                {
                    let _ = self.tl.send_response(now, inv, r);
                    self.stats.finals += 1;
                }
            }
            Some(Pending::Fork(f)) => {
                f.cancelled = true;
                f.groups.clear();
                let txs: Vec<TxId> = f
                    .branches
                    .iter()
                    .filter(|b| !b.done)
                    .filter_map(|b| b.tx)
                    .collect();
                for b in txs {
                    let _ = self.tl.cancel(now, b);
                }
                self.check_complete(now, inv);
            }
            _ => {}
        }
    }

    fn on_ack(&mut self, mut request: Message, flow: &Hop) {
        // §16.11 / §16.4: an ACK for a 2xx follows the dialog's route, statelessly.
        let info = route::preprocess_routes(&mut request, &self.local, &self.signer);
        let incoming = flow.flow;
        let hop = match info.flows.iter().find(|f| Some(f.flow) != incoming) {
            Some(f) => self.hop_of(*f),
            None => {
                let t = Target::new(
                    std::str::from_utf8(request.request_uri_bytes().unwrap_or_default())
                        .unwrap_or_default(),
                );
                match route::next_hop(&request, &t) {
                    NextHop::Hop(h) => h,
                    other => {
                        tracing::debug!(?other, "ACK without a resolvable next hop dropped");
                        return;
                    }
                }
            }
        };
        if self.is_to_us(&hop) {
            return;
        }
        let mf = match request.max_forwards() {
            Some(Ok(0)) => return,
            Some(Ok(n)) => n - 1,
            _ => self.config.default_max_forwards,
        };
        request.set_max_forwards(mf);
        // A deterministic branch: the same for every retransmission of this ACK.
        let mut h = DefaultHasher::new();
        request
            .top_via()
            .and_then(Result::ok)
            .and_then(|v| v.branch)
            .hash(&mut h);
        let Some(listener) = self.local.listener_for(&hop) else {
            return;
        };
        let via = format!(
            "SIP/2.0/{} {};branch={BRANCH_PREFIX}00000000.{:016x}",
            hop.transport.via_name(),
            LocalNode::sent_by(listener, None),
            h.finish()
        );
        if request.prepend_via(&via).is_ok() {
            self.stats.stateless += 1;
            self.tl.send_stateless(&request, hop);
        }
    }

    /// A hop that is one of our own listeners (a request routed to ourselves).
    fn is_to_us(&self, hop: &Hop) -> bool {
        hop.flow.is_none()
            && self
                .local
                .listeners()
                .iter()
                .any(|l| l.local == hop.remote && l.transport == hop.transport)
    }

    fn on_stray(&mut self, mut response: Message) {
        // §16.7: a 2xx to INVITE without a transaction (a retransmission after the client
        // transaction ended, or from a forked branch) is forwarded upstream statelessly.
        let is_invite_2xx = matches!(response.status(), Some(200..=299))
            && response
                .cseq()
                .and_then(Result::ok)
                .is_some_and(|c| c.method == Method::Invite);
        if !is_invite_2xx {
            return;
        }
        let ours = response
            .top_via()
            .and_then(Result::ok)
            .is_some_and(|v| v.branch.is_some_and(|b| b.starts_with(BRANCH_PREFIX)));
        if !ours || !response.remove_top_via() {
            return;
        }
        if let Some(hop) = response_hop(&response) {
            self.stats.stateless += 1;
            self.tl.send_stateless(&response, hop);
        }
    }

    // ---- forking ----------------------------------------------------------------------

    fn start_fork(
        &mut self,
        now: Time,
        tx: TxId,
        ctx: RequestContext,
        targets: Vec<Target>,
        loop_hash: u32,
    ) {
        let RequestContext {
            mut request,
            source,
            asserted_identity,
            in_dialog,
            response_headers,
            dialog_observer,
            ..
        } = ctx;
        // §16.6 step 3: Max-Forwards.
        let mf = match request.max_forwards() {
            Some(Ok(0)) => {
                return self.reply(now, tx, &request, &Reply::new(483));
            }
            Some(Ok(n)) => n - 1,
            _ => self.config.default_max_forwards,
        };
        request.set_max_forwards(mf);
        let method = request.method().cloned();
        let invite = method == Some(Method::Invite);
        // The dialog observer hears of initial INVITEs (their dialogs start) and in-dialog
        // BYEs (a dialog ends) as they are forwarded.
        let dialog_observer = match (&dialog_observer, &method, in_dialog) {
            (Some(o), Some(Method::Invite), false) => {
                o.invite_forwarded(&request);
                dialog_observer
            }
            (Some(o), Some(Method::Bye), true) => {
                o.bye_forwarded(&request);
                None
            }
            _ => None,
        };
        let record_route = self.config.record_route
            && !in_dialog
            && matches!(
                method,
                Some(Method::Invite | Method::Subscribe | Method::Refer | Method::Notify)
            );
        // q-value groups, highest first, order within a group kept.
        let mut targets = targets;
        targets.sort_by_key(|t| Reverse(t.q));
        let mut groups: VecDeque<Vec<Target>> = VecDeque::new();
        for t in targets {
            match groups.back_mut() {
                Some(g) if g[0].q == t.q => g.push(t),
                _ => groups.push_back(vec![t]),
            }
        }
        let fork = Fork {
            request,
            source,
            asserted_identity,
            invite,
            record_route,
            loop_hash,
            groups,
            branches: Vec::new(),
            best: None,
            challenges: Vec::new(),
            final_sent: false,
            got_2xx: false,
            got_6xx: false,
            cancelled: false,
            server_gone: false,
            response_headers,
            dialog_observer,
        };
        self.pending.insert(tx, Pending::Fork(Box::new(fork)));
        self.start_next_group(now, tx);
    }

    fn fork_mut(&mut self, tx: TxId) -> Option<&mut Fork> {
        match self.pending.get_mut(&tx) {
            Some(Pending::Fork(f)) => Some(f),
            _ => None,
        }
    }

    fn start_next_group(&mut self, now: Time, server: TxId) {
        loop {
            let Some(f) = self.fork_mut(server) else {
                return;
            };
            let Some(group) = f.groups.pop_front() else {
                return self.check_complete(now, server);
            };
            let mut started = 0;
            for t in group {
                if self.start_branch(now, server, t) {
                    started += 1;
                }
            }
            if started > 0 {
                return self.check_complete(now, server);
            }
        }
    }

    /// Creates one branch; false when it failed at once (recorded as its final status).
    fn start_branch(&mut self, now: Time, server: TxId, target: Target) -> bool {
        let max = self.config.max_branches as usize;
        let branch_no = self.counter;
        let unique = self.next_random();
        let signer = self.signer.clone();
        let timer_c = Duration::from_secs(u64::from(self.config.timer_c_s));
        let Some(f) = self.fork_mut(server) else {
            return false;
        };
        if f.branches.len() >= max {
            return false;
        }
        let mut req = f.request.clone();
        let idx = u32::try_from(f.branches.len()).unwrap_or(u32::MAX);
        f.branches.push(Branch {
            tx: None,
            uri: target.uri.clone(),
            provisional: false,
            done: false,
            terminated: true,
            timer_c: None,
        });
        // §16.6 step 2: the Request-URI.
        if req.request_uri_bytes() != Some(target.uri.as_bytes())
            && req.set_request_uri(&target.uri).is_err()
        {
            return self.fail_branch(now, server, idx, 400);
        }
        // Path (RFC 3327) / pre-set route: Route entries in order, on top.
        for r in target.route.iter().rev() {
            if req.prepend_header(HeaderName::Route, r).is_err() {
                return self.fail_branch(now, server, idx, 500);
            }
        }
        let hop = match route::next_hop(&req, &target) {
            NextHop::Hop(h) => h,
            NextHop::Resolve { host, .. } => {
                tracing::debug!(%host, "next hop needs DNS; not resolved by the proxy core");
                return self.fail_branch(now, server, idx, 503);
            }
            NextHop::Invalid(why) => {
                tracing::debug!(why, "target is not routable");
                return self.fail_branch(now, server, idx, 404);
            }
        };
        if self.is_to_us(&hop) {
            return self.fail_branch(now, server, idx, 482);
        }
        let Some(out) = self.local.listener_for(&hop).cloned() else {
            return self.fail_branch(now, server, idx, 503);
        };
        let local = &self.local;
        let Some(Pending::Fork(f)) = self.pending.get_mut(&server) else {
            return false;
        };
        // RFC 3325: assert the identity toward trusted peers only.
        if target.trusted {
            if let Some(id) = &f.asserted_identity {
                let _ = req.set_header(HeaderName::PAssertedIdentity, id);
            }
        } else {
            req.remove_header(HeaderName::PAssertedIdentity);
        }
        // §16.6 step 4: Record-Route (RFC 5658: two when the transport or family changes;
        // RFC 5626 §5.3: flow tokens so in-dialog requests use the same flows).
        if f.record_route {
            let local_ip = Some(f.source.local.ip());
            let in_flows: Vec<FlowId> = f.source.hop.flow.into_iter().collect();
            let out_flows: Vec<FlowId> = hop.flow.into_iter().collect();
            let inl = local.listener_of(&f.source);
            let bridged = inl.is_none_or(|l| {
                l.transport != out.transport || l.local.is_ipv4() != out.local.is_ipv4()
            });
            if bridged {
                if let Some(inl) = inl {
                    let v = route::record_route_value(
                        &LocalNode::sent_by(inl, local_ip),
                        inl.transport,
                        &in_flows,
                        &signer,
                        true,
                    );
                    let _ = req.prepend_record_route(&v);
                }
                let out_ip = local_ip.filter(|ip| ip.is_ipv4() == out.local.is_ipv4());
                let v = route::record_route_value(
                    &LocalNode::sent_by(&out, out_ip),
                    out.transport,
                    &out_flows,
                    &signer,
                    true,
                );
                let _ = req.prepend_record_route(&v);
            } else {
                let mut flows = in_flows;
                flows.extend(out_flows);
                let v = route::record_route_value(
                    &LocalNode::sent_by(&out, local_ip),
                    out.transport,
                    &flows,
                    &signer,
                    false,
                );
                let _ = req.prepend_record_route(&v);
            }
        }
        // §16.6 step 8: our Via, with the loop hash and a unique part.
        let loop_hash = self.fork_mut(server).map_or(0, |f| f.loop_hash);
        let mut lh = [0u8; 8];
        hex8(loop_hash, &mut lh);
        let via = format!(
            "SIP/2.0/{} {};branch={BRANCH_PREFIX}{}.{:016x}{:x}",
            hop.transport.via_name(),
            LocalNode::sent_by(&out, None),
            std::str::from_utf8(&lh).unwrap_or("00000000"),
            unique,
            branch_no
        );
        if req.prepend_via(&via).is_err() {
            return self.fail_branch(now, server, idx, 500);
        }
        let invite = req.method() == Some(&Method::Invite);
        match self.tl.send_request(now, req, hop) {
            Ok(client) => {
                self.stats.branches += 1;
                self.by_client.insert(client, (server, idx));
                let deadline = invite.then(|| now + timer_c);
                if let Some(f) = self.fork_mut(server) {
                    let b = &mut f.branches[idx as usize];
                    b.tx = Some(client);
                    b.terminated = false;
                    b.timer_c = deadline;
                }
                if let Some(at) = deadline {
                    self.timer_c.push(Reverse((at, client)));
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a client transaction");
                self.fail_branch(now, server, idx, 500)
            }
        }
    }

    fn fail_branch(&mut self, now: Time, server: TxId, idx: u32, status: u16) -> bool {
        if let Some(f) = self.fork_mut(server) {
            if let Some(b) = f.branches.get_mut(idx as usize) {
                b.done = true;
            }
            consider(f, status, None);
        }
        let _ = now;
        false
    }

    fn on_branch_failure(&mut self, now: Time, client: TxId, status: u16) {
        if self.originated_done(client, status) {
            return;
        }
        let Some(&(server, idx)) = self.by_client.get(&client) else {
            return;
        };
        if let Some(f) = self.fork_mut(server) {
            let b = &mut f.branches[idx as usize];
            if b.done {
                return;
            }
            b.done = true;
            b.timer_c = None;
            consider(f, status, None);
        }
        self.check_complete(now, server);
    }

    fn fire_timer_c(&mut self, now: Time, client: TxId, at: Time) {
        let Some(&(server, idx)) = self.by_client.get(&client) else {
            return;
        };
        let Some(f) = self.fork_mut(server) else {
            return;
        };
        let b = &mut f.branches[idx as usize];
        if b.done || b.timer_c != Some(at) {
            return;
        }
        b.timer_c = None;
        if b.provisional {
            // §16.8: CANCEL; the branch ends with the callee's 487 (or the CANCEL guard).
            let _ = self.tl.cancel(now, client);
        } else {
            // §16.8: no provisional: behave as if a 408 had arrived.
            b.done = true;
            consider(f, 408, None);
            self.tl.abort(client);
            self.check_complete(now, server);
        }
    }

    fn on_response(&mut self, now: Time, client: TxId, mut response: Message) {
        let code = response.status().unwrap_or(500);
        if code >= 200 && self.originated_done(client, code) {
            return;
        }
        let Some(&(server, idx)) = self.by_client.get(&client) else {
            return;
        };
        let timer_c = Duration::from_secs(u64::from(self.config.timer_c_s));
        let recurse = self.config.recurse_on_3xx;
        let Some(f) = self.fork_mut(server) else {
            return;
        };
        // §16.7 step 3: our Via goes.
        response.remove_top_via();
        let b = &mut f.branches[idx as usize];
        if code < 200 {
            b.provisional = true;
            let mut rearm = None;
            if b.timer_c.is_some() {
                let at = now + timer_c;
                b.timer_c = Some(at);
                rearm = Some(at);
            }
            let forward = code > 100 && !f.final_sent && !f.server_gone;
            if code > 100
                && !f.final_sent
                && let Some(o) = &f.dialog_observer
            {
                o.invite_response(&f.request, &response);
            }
            if let Some(at) = rearm {
                self.timer_c.push(Reverse((at, client)));
            }
            if forward {
                let _ = self.tl.send_response(now, server, response);
            }
            return;
        }
        if b.done {
            // A 2xx after the branch ended (forked INVITE 2xx retransmission): forward.
            if (200..300).contains(&code) && f.invite && !f.server_gone {
                let _ = self.tl.send_response(now, server, response);
            }
            return;
        }
        b.done = true;
        b.timer_c = None;
        if (200..300).contains(&code) {
            f.got_2xx = true;
            f.groups.clear();
            let first = !f.final_sent;
            f.final_sent = true;
            let invite = f.invite;
            let others: Vec<TxId> = if invite {
                f.branches
                    .iter()
                    .filter(|b| !b.done)
                    .filter_map(|b| b.tx)
                    .collect()
            } else {
                Vec::new()
            };
            // Every 2xx to INVITE goes upstream (each is a dialog); only the first otherwise.
            let forward = (first || invite) && !f.server_gone;
            if let Some(o) = &f.dialog_observer {
                o.invite_response(&f.request, &response);
            }
            let mut response = response;
            add_headers(&mut response, &f.response_headers);
            let sent = forward && self.tl.send_response(now, server, response).is_ok();
            if sent && first {
                self.stats.finals += 1;
            }
            // §16.7 step 10: CANCEL the other branches.
            for o in others {
                let _ = self.tl.cancel(now, o);
            }
            return self.check_complete(now, server);
        }
        if (300..400).contains(&code) && recurse && !f.got_2xx && !f.cancelled {
            let tried: Vec<String> = f.branches.iter().map(|b| b.uri.clone()).collect();
            let mut new: Vec<Target> = response
                .contacts()
                .filter_map(Result::ok)
                .filter_map(|c| c.addr().copied())
                .filter(|c| !tried.iter().any(|t| t == c.addr.uri_str))
                .map(|c| {
                    let mut t = Target::new(c.addr.uri_str);
                    t.q = c.q.unwrap_or(1000);
                    t
                })
                .collect();
            if !new.is_empty() {
                new.sort_by_key(|t| Reverse(t.q));
                f.groups.push_front(new);
                return self.check_complete(now, server);
            }
        }
        if (600..700).contains(&code) && f.invite {
            f.got_6xx = true;
            f.groups.clear();
            let others: Vec<TxId> = f
                .branches
                .iter()
                .filter(|b| !b.done)
                .filter_map(|b| b.tx)
                .collect();
            for o in others {
                let _ = self.tl.cancel(now, o);
            }
        }
        if let Some(f) = self.fork_mut(server) {
            if code == 401 || code == 407 {
                let name = if code == 401 {
                    HeaderName::WwwAuthenticate
                } else {
                    HeaderName::ProxyAuthenticate
                };
                for h in response.get_all(name) {
                    if let Some(v) = h.value_str() {
                        f.challenges.push((name, v.to_owned()));
                    }
                }
            }
            consider(f, code, Some(response));
        }
        self.check_complete(now, server);
    }

    /// When no branch is pending: start the next q-group, or send the best response.
    fn check_complete(&mut self, now: Time, server: TxId) {
        let Some(f) = self.fork_mut(server) else {
            return;
        };
        if f.branches.iter().any(|b| !b.done) {
            return;
        }
        if !f.final_sent && !f.cancelled && !f.got_6xx && !f.groups.is_empty() {
            return self.start_next_group(now, server);
        }
        if !f.final_sent && !f.server_gone {
            f.final_sent = true;
            let best = f.best.take();
            let challenges = std::mem::take(&mut f.challenges);
            let request = f.request.clone();
            let extra = f.response_headers.clone();
            let observer = f.dialog_observer.clone();
            let (status, msg) = match best {
                None if f.cancelled => (487, None),
                None => (408, None),
                Some(Best { status: 503, .. }) => (500, None),
                Some(Best { status, response }) => (status, response),
            };
            let out = match msg {
                Some(mut m) => {
                    if status == 401 || status == 407 {
                        // §16.7 step 7: every challenge collected, in the one response.
                        let name = if status == 401 {
                            HeaderName::WwwAuthenticate
                        } else {
                            HeaderName::ProxyAuthenticate
                        };
                        m.remove_header(name);
                        for (n, v) in challenges.iter().filter(|(n, _)| *n == name) {
                            let _ = m.push_header(*n, v);
                        }
                    }
                    Some(m)
                }
                None => self.build_reply(&request, &Reply::new(status)),
            };
            if let (Some(o), Some(m)) = (&observer, &out) {
                o.invite_response(&request, m);
            }
            if let Some(mut m) = out
                && {
                    add_headers(&mut m, &extra);
                    self.tl.send_response(now, server, m).is_ok()
                }
            {
                self.stats.finals += 1;
            }
        }
        self.maybe_remove(server);
    }

    fn maybe_remove(&mut self, server: TxId) {
        let done = match self.pending.get(&server) {
            Some(Pending::Fork(f)) => {
                f.final_sent && f.branches.iter().all(|b| b.terminated)
                    || f.server_gone && f.branches.iter().all(|b| b.terminated)
            }
            _ => false,
        };
        if done && let Some(Pending::Fork(f)) = self.pending.remove(&server) {
            for b in f.branches.iter().filter_map(|b| b.tx) {
                self.by_client.remove(&b);
            }
        }
    }

    fn on_terminated(&mut self, now: Time, tx: TxId) {
        if self.originated_done(tx, 408) {
            return;
        }
        if let Some((server, idx)) = self.by_client.remove(&tx) {
            if let Some(f) = self.fork_mut(server) {
                let b = &mut f.branches[idx as usize];
                b.terminated = true;
                if !b.done {
                    b.done = true;
                    consider(f, 408, None);
                }
            }
            self.check_complete(now, server);
            self.maybe_remove(server);
            return;
        }
        // A server transaction ended.
        match self.pending.get_mut(&tx) {
            Some(Pending::Fork(f)) => {
                f.server_gone = true;
                let pending: Vec<TxId> = f
                    .branches
                    .iter()
                    .filter(|b| !b.done)
                    .filter_map(|b| b.tx)
                    .collect();
                for p in pending {
                    let _ = self.tl.cancel(now, p);
                }
                self.maybe_remove(tx);
            }
            Some(_) => {
                self.pending.remove(&tx);
            }
            None => {}
        }
    }
}

/// Keeps the better of the current best and a new final status (§16.7 step 6).
fn consider(f: &mut Fork, status: u16, response: Option<Message>) {
    let better = match &f.best {
        None => true,
        Some(b) => status_rank(status) < status_rank(b.status),
    };
    if better {
        f.best = Some(Best { status, response });
    }
}

fn hex8(v: u32, out: &mut [u8; 8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, o) in out.iter_mut().enumerate() {
        *o = HEX[((v >> (28 - 4 * i)) & 0xf) as usize];
    }
}

/// Appends the chain's response header fields to a final response going upstream (a field
/// the message layer refuses is skipped: the chain's handlers build valid ones).
fn add_headers(m: &mut Message, headers: &[(String, String)]) {
    for (n, v) in headers {
        if m.push_header(n.as_str(), v).is_err() {
            tracing::debug!(name = %n, "response header refused");
        }
    }
}

/// Where a response goes by its (new) top Via (RFC 3261 §18.2.2 with RFC 3581): `received`
/// and `rport` when present, else the sent-by.
pub fn response_hop(response: &Message) -> Option<Hop> {
    let via = response.top_via()?.ok()?;
    let transport: SipTransport = via.transport.parse().ok()?;
    let ip = via.received.or_else(|| via.host.ip())?;
    let port = match via.rport {
        Some(Some(p)) => p,
        _ => via.port.unwrap_or(transport.default_port()),
    };
    Some(Hop::to_addr(transport, SocketAddr::new(ip, port)))
}
