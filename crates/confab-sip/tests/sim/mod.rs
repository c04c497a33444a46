//! A simulated network and simulated user agents for driving the transaction layer, the
//! dialog layer and the UA cores faster than real time (the models: quinn's
//! `tests/util.rs` `Pair`, str0m's `progress()`).
//!
//! * [`Net`] delivers datagrams after a random delay (so they reorder), loses and
//!   duplicates them with configured probabilities, and fails sends with a configured
//!   probability (reported to the layer as transport errors). Reliable flows are never
//!   lost, duplicated or reordered. Everything random comes from one seeded `StdRng`, so a
//!   seed reproduces a run exactly.
//! * [`Ua`] is a user agent built only from the crate's public API: a
//!   `TransactionLayer`, a `UacCore`, a `UasCore` and `Dialogs`. It places INVITE calls
//!   (ringing, answer, ACK, BYE, CANCEL) and non-INVITE requests (OPTIONS, MESSAGE,
//!   REGISTER with digest) and answers them with behaviours drawn at random (fast, slow,
//!   busy, deaf, challenging).
//! * [`Sim`] owns the clock, the network and the nodes; [`Sim::step`] jumps the clock to
//!   the next event (delivery or deadline) and runs everything due.

// Not every test binary uses every helper; the UA's event handling reads better as
// nested steps than as long let-chains.
#![allow(dead_code, clippy::too_many_lines, clippy::collapsible_if)]

pub mod scenarios;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use confab_digest::{Algorithm, Challenge, Credentials, Ha1Set};
use confab_sip::dialog::{Dialog, DialogId, DialogState, Dialogs, RequestMatch, Usage};
use confab_sip::timer::Time;
use confab_sip::transaction::{
    CancelOutcome, Config, EdgeCounts, Event, Flow, Kind, TransactionLayer, TryingPolicy, TxId,
};
use confab_sip::ua::{Credential, Entropy, UacConfig, UacCore, UasConfig, UasCore};
use confab_sip::{HeaderName, Limits, Message, Method, ResponseBuilder, parse_datagram};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A flow: the peer node and whether the transport is reliable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SimFlow {
    /// Index of the peer node.
    pub peer: usize,
    /// TCP-like (true) or UDP-like (false).
    pub reliable: bool,
}

impl Flow for SimFlow {
    fn is_reliable(&self) -> bool {
        self.reliable
    }
}

/// Network impairments for unreliable flows.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// Minimum one-way delay.
    pub min_delay: Duration,
    /// Maximum one-way delay (delays are uniform in between, so datagrams reorder).
    pub max_delay: Duration,
    /// Probability that sending a transaction's message fails (both transports).
    pub send_error: f64,
}

impl NetConfig {
    /// A perfect network with 10 ms delay.
    #[must_use]
    pub fn perfect() -> NetConfig {
        NetConfig {
            loss: 0.0,
            duplicate: 0.0,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
            send_error: 0.0,
        }
    }

    /// A lossy network.
    #[must_use]
    pub fn lossy(loss: f64) -> NetConfig {
        NetConfig {
            loss,
            duplicate: 0.05,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(400),
            send_error: 0.002,
        }
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Packet {
    at: Time,
    seq: u64,
    from: usize,
    to: usize,
    reliable: bool,
    data: Bytes,
}

/// The simulated network.
#[derive(Debug)]
pub struct Net {
    /// Impairments.
    pub config: NetConfig,
    queue: BinaryHeap<Reverse<Packet>>,
    seq: u64,
    /// Last delivery time per (from, to) on reliable flows, to keep them in order.
    stream_tail: HashMap<(usize, usize), Time>,
    /// Datagrams sent, lost, duplicated.
    pub sent: u64,
    /// Datagrams lost.
    pub lost: u64,
    /// Datagrams duplicated.
    pub duplicated: u64,
}

impl Net {
    fn new(config: NetConfig) -> Net {
        Net {
            config,
            queue: BinaryHeap::new(),
            seq: 0,
            stream_tail: HashMap::new(),
            sent: 0,
            lost: 0,
            duplicated: 0,
        }
    }

    fn push(&mut self, at: Time, from: usize, to: usize, reliable: bool, data: Bytes) {
        self.seq += 1;
        self.queue.push(Reverse(Packet {
            at,
            seq: self.seq,
            from,
            to,
            reliable,
            data,
        }));
    }

    fn send(&mut self, rng: &mut StdRng, now: Time, from: usize, flow: SimFlow, data: Bytes) {
        self.sent += 1;
        let c = self.config;
        if flow.reliable {
            let tail = self
                .stream_tail
                .entry((from, flow.peer))
                .or_insert(Time::ZERO);
            let at = (now + c.min_delay).max(*tail);
            *tail = at;
            self.push(at, from, flow.peer, true, data);
            return;
        }
        if rng.random_bool(c.loss) {
            self.lost += 1;
            return;
        }
        let copies = if rng.random_bool(c.duplicate) {
            self.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let span = c.max_delay.saturating_sub(c.min_delay).as_micros() as u64;
            let d = c.min_delay
                + Duration::from_micros(if span == 0 {
                    0
                } else {
                    rng.random_range(0..=span)
                });
            self.push(now + d, from, flow.peer, false, data.clone());
        }
    }

    fn next_delivery(&self) -> Option<Time> {
        self.queue.peek().map(|p| p.0.at)
    }
}

/// How a UA answers an INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteBehaviour {
    /// 180 after `ring`, then 200 after `answer` (retransmitted until ACK).
    Answer {
        /// Delay before 180.
        ring: Duration,
        /// Delay before 200.
        answer: Duration,
    },
    /// 486 Busy Here after a short delay.
    Busy,
    /// 180, then nothing until CANCEL; answers CANCEL 200 but sends 487 only after
    /// `late` (after the caller gave up).
    Deaf {
        /// Delay before the late 487.
        late: Duration,
    },
    /// Answer 200 after `delay` without any provisional (with `TryingPolicy::Never` the
    /// caller sees nothing until then).
    Slow {
        /// Delay before the 200.
        delay: Duration,
    },
}

/// How a UA answers a non-INVITE request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBehaviour {
    /// 200 at once.
    Fast,
    /// 100 at once, 200 after `delay`.
    Provisional {
        /// Delay before the final.
        delay: Duration,
    },
    /// No provisional, 200 after `delay`.
    Delayed {
        /// Delay before the final.
        delay: Duration,
    },
    /// 404 at once.
    NotFound,
}

#[derive(Debug, Clone)]
enum Action {
    /// Send a response on a server transaction (if still possible).
    Respond { tx: TxId, status: u16 },
    /// Hang up a call (BYE) identified by dialog id.
    HangUp { dialog: DialogId },
    /// Cancel an INVITE client transaction.
    Cancel { tx: TxId },
    /// Pass a 2xx to the (Accepted) INVITE server transaction again.
    Resend { tx: TxId, response: Message },
    /// Send the final NOTIFY of a subscription and end its dialog.
    EndSubscription { dialog: DialogId },
}

#[derive(Debug)]
struct ServerCtx {
    request: Message,
    to_tag: String,
    behaviour: Option<InviteBehaviour>,
    dialog: Option<DialogId>,
    cancelled: bool,
    final_sent: bool,
}

#[derive(Debug)]
struct ClientCtx {
    /// A 2xx was received (later 2xx are retransmissions).
    answered: bool,
    /// The call's outcome (answered, rejected, timed out, failed) was counted.
    counted: bool,
    request: Message,
    flow: SimFlow,
    cancel_at: Option<Duration>,
    hold: Duration,
    /// For REGISTER: whether credentials were already tried.
    auth_tries: u8,
}

/// Counters of what a UA did.
#[derive(Debug, Default, Clone)]
pub struct UaStats {
    /// INVITEs sent (first attempts).
    pub calls: u64,
    /// Calls answered with 2xx.
    pub answered: u64,
    /// Calls ending in a non-2xx final response.
    pub rejected: u64,
    /// Calls whose INVITE transaction timed out.
    pub timed_out: u64,
    /// Calls whose INVITE transaction failed with a transport error.
    pub failed: u64,
    /// CANCELs requested.
    pub cancels: u64,
    /// BYEs sent.
    pub byes: u64,
    /// Non-INVITE requests started.
    pub requests: u64,
    /// Non-INVITE requests that got a final response.
    pub request_finals: u64,
    /// Digest challenges answered.
    pub auth_answers: u64,
    /// Subscription dialogs created by a NOTIFY that beat the SUBSCRIBE's 2xx.
    pub notify_dialogs: u64,
    /// Subscriptions ended by a terminating NOTIFY.
    pub subscriptions_ended: u64,
    /// Transactions started (client) or created (server).
    pub transactions: u64,
    /// Transport errors reported by the layer.
    pub transport_errors: u64,
}

/// A simulated user agent (client and server).
#[derive(Debug)]
pub struct Ua {
    /// Node index.
    pub id: usize,
    /// The transaction layer.
    pub layer: TransactionLayer<SimFlow>,
    /// Dialogs.
    pub dialogs: Dialogs,
    uac: UacCore,
    uas: UasCore,
    rng: StdRng,
    actions: BinaryHeap<Reverse<(Time, u64)>>,
    action_list: HashMap<u64, Action>,
    action_seq: u64,
    servers: HashMap<TxId, ServerCtx>,
    clients: HashMap<TxId, ClientCtx>,
    /// Pending 2xx (IST) per dialog, to stop retransmission on ACK.
    pending_2xx: HashMap<DialogId, (TxId, u32)>,
    /// Dialogs where we must hang up at some point (so no dialog outlives the run).
    /// Peer flows for in-dialog requests.
    dialog_flow: HashMap<DialogId, SimFlow>,
    /// Dialogs whose 2xx we already handled (later 2xx are retransmissions).
    established: std::collections::HashSet<DialogId>,
    /// Invite behaviours to draw from when answering.
    pub invite_behaviours: Vec<InviteBehaviour>,
    /// Request behaviours to draw from.
    pub request_behaviours: Vec<RequestBehaviour>,
    /// Whether this UA challenges REGISTER with digest.
    pub challenge_register: bool,
    /// Whether this UA sends 2xx ACKs with the INVITE's branch (RFC 2543 style).
    pub legacy_ack: bool,
    /// Whether this UA's application also passes a copy of its 2xx to the transaction
    /// once more (RFC 6026 Accepted: "2xx from TU").
    pub tu_resends_2xx: bool,
    nonce_seq: u64,
    /// What happened.
    pub stats: UaStats,
}

fn entropy(rng: &mut StdRng) -> Entropy {
    let mut b = [0u8; 32];
    rng.fill(&mut b);
    Entropy(b)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Ua {
    /// A UA with a seeded RNG and the given transaction config.
    #[must_use]
    pub fn new(id: usize, seed: u64, config: Config) -> Ua {
        let mut uac = UacConfig::new(
            &format!("sip:ua{id}@sim.example.com"),
            &format!("<sip:ua{id}@10.0.0.{id}:5060>"),
            "UDP",
            &format!("10.0.0.{id}:5060"),
        );
        uac.credentials.push(Credential {
            realm: None,
            username: format!("ua{id}"),
            password: "pw".into(),
        });
        let uas = UasConfig {
            allow: vec![
                Method::Invite,
                Method::Ack,
                Method::Cancel,
                Method::Bye,
                Method::Options,
                Method::Message,
                Method::Register,
                Method::Subscribe,
                Method::Notify,
            ],
            accept: vec!["application/sdp".into(), "text/plain".into()],
            ..UasConfig::default()
        };
        Ua {
            id,
            layer: TransactionLayer::new(config).expect("valid config"),
            dialogs: Dialogs::new(),
            uac: UacCore::new(uac),
            uas: UasCore::new(uas),
            rng: StdRng::seed_from_u64(seed),
            actions: BinaryHeap::new(),
            action_list: HashMap::new(),
            action_seq: 0,
            servers: HashMap::new(),
            clients: HashMap::new(),
            pending_2xx: HashMap::new(),
            dialog_flow: HashMap::new(),
            established: std::collections::HashSet::new(),
            invite_behaviours: vec![InviteBehaviour::Answer {
                ring: millis(50),
                answer: millis(500),
            }],
            request_behaviours: vec![RequestBehaviour::Fast],
            challenge_register: false,
            legacy_ack: false,
            tu_resends_2xx: false,
            nonce_seq: 0,
            stats: UaStats::default(),
        }
    }

    fn schedule(&mut self, at: Time, a: Action) {
        self.action_seq += 1;
        self.actions.push(Reverse((at, self.action_seq)));
        self.action_list.insert(self.action_seq, a);
    }

    /// The earliest deadline of the layer or of the UA's own actions.
    pub fn poll_timeout(&mut self) -> Option<Time> {
        let a = self.actions.peek().map(|r| r.0.0);
        let l = self.layer.poll_timeout();
        match (a, l) {
            (Some(a), Some(l)) => Some(a.min(l)),
            (a, l) => a.or(l),
        }
    }

    /// Whether the UA holds no state at all.
    pub fn is_idle(&self) -> bool {
        self.layer.is_empty()
            && self.layer.armed_timers() == 0
            && self.dialogs.is_empty()
            && self.servers.is_empty()
            && self.clients.is_empty()
            && self.pending_2xx.is_empty()
            && self.actions.is_empty()
            && self.uas.tracked() == 0
    }

    /// A description of what is left (for failure messages).
    pub fn leftovers(&self) -> String {
        format!(
            "ua{}: layer={} timers={} dialogs={} servers={} clients={} pending_2xx={} actions={} uas_tracked={}",
            self.id,
            self.layer.len(),
            self.layer.armed_timers(),
            self.dialogs.len(),
            self.servers.len(),
            self.clients.len(),
            self.pending_2xx.len(),
            self.actions.len(),
            self.uas.tracked()
        )
    }

    /// Client INVITE transactions in progress (placed calls not yet finished).
    #[must_use]
    pub fn client_invites(&self) -> Vec<TxId> {
        let mut v: Vec<TxId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.request.method() == Some(&Method::Invite) && c.auth_tries != u8::MAX)
            .map(|(t, _)| *t)
            .collect();
        v.sort();
        v
    }

    // ---- starting things ---------------------------------------------------------------

    /// Place a call to `peer`: INVITE; hang up after `hold`; cancel after `cancel_at`.
    pub fn call(
        &mut self,
        now: Time,
        peer: usize,
        reliable: bool,
        hold: Duration,
        cancel_at: Option<Duration>,
    ) {
        let r = entropy(&mut self.rng);
        let inv = self
            .uac
            .request(
                Method::Invite,
                &format!("sip:ua{peer}@sim.example.com"),
                &format!("<sip:ua{peer}@sim.example.com>"),
                &r,
            )
            .body("application/sdp", Bytes::from_static(b"v=0\r\n"))
            .build()
            .expect("valid INVITE");
        let flow = SimFlow { peer, reliable };
        let tx = self
            .layer
            .send_request(now, inv.clone(), flow)
            .expect("fresh branch");
        self.stats.calls += 1;
        self.stats.transactions += 1;
        if let Some(c) = cancel_at {
            self.schedule(now + c, Action::Cancel { tx });
        }
        // Like any phone, give up ringing after 3 minutes: without it a final response
        // lost with its connection (reliable flows do not retransmit) would leave the
        // INVITE client transaction in Proceeding forever (Timer C is a proxy's).
        self.schedule(now + secs(180), Action::Cancel { tx });
        self.clients.insert(
            tx,
            ClientCtx {
                answered: false,
                counted: false,
                flow,
                request: inv,
                cancel_at,
                hold,
                auth_tries: 0,
            },
        );
    }

    /// Send a non-INVITE request out of dialog.
    pub fn request(&mut self, now: Time, peer: usize, reliable: bool, method: Method) {
        let r = entropy(&mut self.rng);
        let mut b = self.uac.request(
            method.clone(),
            &format!("sip:ua{peer}@sim.example.com"),
            &format!("<sip:ua{peer}@sim.example.com>"),
            &r,
        );
        if method == Method::Message {
            b = b.body("text/plain", Bytes::from_static(b"hello"));
        }
        let req = b.build().expect("valid request");
        let flow = SimFlow { peer, reliable };
        let tx = self
            .layer
            .send_request(now, req.clone(), flow)
            .expect("fresh branch");
        self.stats.requests += 1;
        self.stats.transactions += 1;
        self.clients.insert(
            tx,
            ClientCtx {
                answered: false,
                counted: false,
                flow,
                request: req,
                cancel_at: None,
                hold: Duration::ZERO,
                auth_tries: 0,
            },
        );
    }

    // ---- driving -------------------------------------------------------------------------

    /// Run timers and UA actions due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        self.layer.handle_timeout(now);
        while let Some(Reverse((at, seq))) = self.actions.peek().copied() {
            if at > now {
                break;
            }
            self.actions.pop();
            if let Some(a) = self.action_list.remove(&seq) {
                self.run_action(now, a);
            }
        }
    }

    fn run_action(&mut self, now: Time, a: Action) {
        match a {
            Action::Respond { tx, status } => self.respond(now, tx, status),
            Action::HangUp { dialog } => self.hang_up(now, &dialog),
            Action::EndSubscription { dialog } => {
                self.notify(now, &dialog, "terminated;reason=timeout");
                self.dialogs.remove(&dialog);
                self.dialog_flow.remove(&dialog);
            }
            Action::Resend { tx, response } => {
                let _ = self.layer.send_response(now, tx, response);
            }
            Action::Cancel { tx } => {
                if self.clients.contains_key(&tx) {
                    if let Ok(o) = self.layer.cancel(now, tx) {
                        if let CancelOutcome::Sent(c) = o {
                            self.track_cancel(c, tx);
                        }
                        if matches!(o, CancelOutcome::Sent(_) | CancelOutcome::Deferred) {
                            self.stats.cancels += 1;
                        }
                    }
                }
            }
        }
    }

    fn track_cancel(&mut self, cancel: TxId, invite: TxId) {
        self.stats.transactions += 1;
        if let Some(inv) = self.clients.get(&invite) {
            let req = inv.request.clone();
            let flow = inv.flow;
            self.clients.insert(
                cancel,
                ClientCtx {
                    answered: false,
                    counted: false,
                    flow,
                    request: req,
                    cancel_at: None,
                    hold: Duration::ZERO,
                    auth_tries: u8::MAX,
                },
            );
        }
    }

    fn hang_up(&mut self, now: Time, id: &DialogId) {
        let Some(mut d) = self.dialogs.remove(id) else {
            return;
        };
        let flow = self.dialog_flow.remove(id);
        self.pending_2xx.remove(id);
        self.established.remove(id);
        let r = entropy(&mut self.rng);
        let (Ok(b), Some(flow)) = (self.uac.in_dialog(&mut d, Method::Bye, &r), flow) else {
            return;
        };
        let Ok(bye) = b.build() else { return };
        if let Ok(tx) = self.layer.send_request(now, bye.clone(), flow) {
            self.stats.byes += 1;
            self.stats.transactions += 1;
            self.clients.insert(
                tx,
                ClientCtx {
                    answered: false,
                    counted: false,
                    flow,
                    request: bye,
                    cancel_at: None,
                    hold: Duration::ZERO,
                    auth_tries: u8::MAX,
                },
            );
        }
    }

    fn respond(&mut self, now: Time, tx: TxId, status: u16) {
        let Some(ctx) = self.servers.get_mut(&tx) else {
            return;
        };
        if ctx.final_sent {
            return;
        }
        let mut b = ResponseBuilder::reply_to(&ctx.request, status).expect("request");
        if status > 100 {
            b = b.to_tag(&ctx.to_tag);
        }
        let is_invite = ctx.request.method() == Some(&Method::Invite);
        if is_invite && (101..300).contains(&status) {
            b = b.header(
                HeaderName::Contact,
                &format!("<sip:ua{}@10.0.0.{}:5060>", self.id, self.id),
            );
        }
        let resp = b.build().expect("response");
        if status >= 200 {
            ctx.final_sent = true;
        }
        let request = ctx.request.clone();
        let to_tag = ctx.to_tag.clone();
        let existing = ctx.dialog.clone();
        let flow = self.layer.flow(tx).copied();
        if is_invite && (101..300).contains(&status) && existing.is_none() {
            let state = if status >= 200 {
                DialogState::Confirmed
            } else {
                DialogState::Early
            };
            if let Ok(d) = Dialog::uas(&request, &to_tag, state) {
                let id = d.id().clone();
                self.dialogs.insert(d);
                if let Some(f) = flow {
                    self.dialog_flow.insert(id.clone(), f);
                }
                if let Some(c) = self.servers.get_mut(&tx) {
                    c.dialog = Some(id);
                }
            }
        }
        let dialog = self.servers.get(&tx).and_then(|c| c.dialog.clone());
        let result = if is_invite && (200..300).contains(&status) {
            if let Some(id) = &dialog {
                if let Some(d) = self.dialogs.get_mut(id) {
                    d.confirm();
                }
                let seq = request.cseq().and_then(Result::ok).map_or(0, |c| c.seq);
                self.pending_2xx.insert(id.clone(), (tx, seq));
                // Hang up eventually if the caller never does.
                self.schedule(now + secs(120), Action::HangUp { dialog: id.clone() });
            }
            if self.tu_resends_2xx {
                self.schedule(
                    now + millis(700),
                    Action::Resend {
                        tx,
                        response: resp.clone(),
                    },
                );
            }
            self.layer.send_2xx_until_ack(now, tx, resp)
        } else {
            self.layer.send_response(now, tx, resp)
        };
        if result.is_err() {
            return;
        }
        if is_invite && status >= 300 {
            if let Some(id) = dialog {
                self.dialogs.remove(&id);
                self.dialog_flow.remove(&id);
            }
        }
        if status >= 200 {
            self.uas.transaction_ended(tx);
        }
    }

    /// Handle everything the layer produced; returns the datagrams to put on the network.
    pub fn drain(&mut self, now: Time, out: &mut Vec<(SimFlow, Option<TxId>, Bytes)>) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.layer.poll_transmit() {
                out.push((t.flow, t.tx, t.data));
                progressed = true;
            }
            while let Some(e) = self.layer.poll_event() {
                self.on_event(now, e);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_event(&mut self, now: Time, e: Event<SimFlow>) {
        match e {
            Event::Request { tx, request, flow } => self.on_request(now, tx, request, flow),
            Event::Cancel {
                tx,
                request,
                invite,
                ..
            } => {
                self.stats.transactions += 1;
                let status = if invite.is_some() { 200 } else { 481 };
                let resp = ResponseBuilder::reply_to(&request, status)
                    .expect("req")
                    .to_tag("c")
                    .build()
                    .expect("resp");
                let _ = self.layer.send_response(now, tx, resp);
                if let Some(inv) = invite {
                    let deaf = self.servers.get(&inv).and_then(|c| c.behaviour);
                    if let Some(c) = self.servers.get_mut(&inv) {
                        c.cancelled = true;
                    }
                    match deaf {
                        Some(InviteBehaviour::Deaf { late }) => {
                            self.schedule(
                                now + late,
                                Action::Respond {
                                    tx: inv,
                                    status: 487,
                                },
                            );
                        }
                        _ => self.respond(now, inv, 487),
                    }
                }
            }
            Event::Ack { request, tx, .. } => {
                if let RequestMatch::Dialog(d) = self.dialogs.route_request(&request) {
                    let _ = d.handle_request(&request);
                    let id = d.id().clone();
                    if let Some((ist, _)) = self.pending_2xx.remove(&id) {
                        self.layer.ack_received(ist);
                    }
                }
                if let Some(t) = tx {
                    self.layer.ack_received(t);
                }
            }
            Event::Response { tx, response } => self.on_response(now, tx, response),
            Event::StrayResponse { response, flow } => {
                // A 2xx retransmission after our INVITE transaction ended: ACK it again if
                // the dialog still exists (§13.2.2.4).
                if response.status().is_some_and(|s| (200..300).contains(&s))
                    && response
                        .cseq()
                        .and_then(Result::ok)
                        .is_some_and(|c| c.method == Method::Invite)
                {
                    let id = response_dialog_id(&response);
                    if let Some(id) = id {
                        if let Some(d) = self.dialogs.get_mut(&id) {
                            let seq = response.cseq().and_then(Result::ok).map_or(0, |c| c.seq);
                            let r = entropy(&mut self.rng);
                            if let Ok(ack) = self.uac.ack_for_2xx(d, seq, &r) {
                                self.layer.send_stateless(&ack, flow);
                            }
                        }
                    }
                }
            }
            Event::CancelSent { invite, cancel } => self.track_cancel(cancel, invite),
            Event::Timeout { tx, .. } => {
                if let Some(c) = self.clients.remove(&tx) {
                    if c.request.method() == Some(&Method::Invite) && c.auth_tries != u8::MAX {
                        if !c.counted {
                            self.stats.timed_out += 1;
                        }
                        self.end_early_dialogs(&c.request);
                    }
                }
                self.server_done(tx);
            }
            Event::AckTimeout { tx } => {
                // §13.3.1.4: the ACK never came; end the session with BYE.
                let id = self.servers.get(&tx).and_then(|c| c.dialog.clone());
                if let Some(id) = id {
                    self.pending_2xx.remove(&id);
                    self.hang_up(now, &id);
                }
            }
            Event::TransportError { tx } => {
                self.stats.transport_errors += 1;
                if let Some(c) = self.clients.get_mut(&tx) {
                    if c.request.method() == Some(&Method::Invite)
                        && c.auth_tries != u8::MAX
                        && !c.counted
                    {
                        c.counted = true;
                        self.stats.failed += 1;
                    }
                }
            }
            Event::Terminated { tx, kind } => {
                if let Some(c) = self.clients.remove(&tx) {
                    if kind == Kind::InviteClient && c.auth_tries != u8::MAX {
                        self.end_early_dialogs(&c.request);
                    }
                }
                self.server_done(tx);
            }
        }
    }

    fn end_early_dialogs(&mut self, request: &Message) {
        let (Some(Ok(from)), Some(Ok(cid))) = (request.from(), request.call_id()) else {
            return;
        };
        let tag = from.tag().unwrap_or("").to_owned();
        for id in self.dialogs.end_early(cid, &tag) {
            self.dialog_flow.remove(&id);
        }
    }

    fn server_done(&mut self, tx: TxId) {
        if let Some(c) = self.servers.remove(&tx) {
            self.uas.transaction_ended(tx);
            if let Some(id) = c.dialog {
                if self.pending_2xx.get(&id).is_some_and(|p| p.0 == tx) {
                    self.pending_2xx.remove(&id);
                }
                // An early dialog whose INVITE never got a final answer ends with it.
                if self
                    .dialogs
                    .get(&id)
                    .is_some_and(|d| d.state() == DialogState::Early)
                {
                    self.dialogs.remove(&id);
                    self.dialog_flow.remove(&id);
                }
            }
        }
        self.uas.transaction_ended(tx);
    }

    fn on_request(&mut self, now: Time, tx: TxId, request: Message, flow: SimFlow) {
        self.stats.transactions += 1;
        let r = entropy(&mut self.rng);
        let method = request.method().cloned().unwrap_or(Method::Options);
        // In-dialog?
        match self.dialogs.route_request(&request) {
            RequestMatch::Dialog(d) => {
                let verdict = d.handle_request(&request);
                let id = d.id().clone();
                let status = match verdict {
                    Err(rej) => rej.status(),
                    Ok(_) => 200,
                };
                let resp = ResponseBuilder::reply_to(&request, status)
                    .expect("req")
                    .build()
                    .expect("resp");
                let _ = self.layer.send_response(now, tx, resp);
                if method == Method::Notify && status == 200 {
                    self.on_notify_state(&id, &request);
                }
                if method == Method::Bye {
                    self.established.remove(&id);
                    self.dialogs.remove(&id);
                    self.dialog_flow.remove(&id);
                    self.pending_2xx.remove(&id);
                }
                return;
            }
            RequestMatch::NoDialog if method == Method::Notify => {
                let subscribe = self
                    .clients
                    .values()
                    .find(|c| {
                        c.request.method() == Some(&Method::Subscribe)
                            && Dialog::from_notify(&c.request, &request).is_ok()
                    })
                    .map(|c| c.request.clone());
                let status = match subscribe.and_then(|s| Dialog::from_notify(&s, &request).ok()) {
                    Some(d) => {
                        // RFC 6665 §4.1.2.4: the NOTIFY arrived before the 2xx.
                        self.stats.notify_dialogs += 1;
                        let id = d.id().clone();
                        self.dialogs.insert(d);
                        self.dialog_flow.insert(id.clone(), flow);
                        self.on_notify_state(&id, &request);
                        200
                    }
                    None => 481,
                };
                let resp = ResponseBuilder::reply_to(&request, status)
                    .expect("req")
                    .build()
                    .expect("resp");
                let _ = self.layer.send_response(now, tx, resp);
                return;
            }
            RequestMatch::NoDialog => {
                let resp = ResponseBuilder::reply_to(&request, 481)
                    .expect("req")
                    .to_tag(&r.tag())
                    .build()
                    .expect("resp");
                let _ = self.layer.send_response(now, tx, resp);
                return;
            }
            RequestMatch::OutOfDialog => {}
        }
        if let Err(rej) = self.uas.check(tx, &request, &r) {
            let _ = self.layer.send_response(now, tx, *rej.response);
            return;
        }
        if method == Method::Register && self.challenge_register {
            if !self.verify_register(&request) {
                self.nonce_seq += 1;
                let nonce = format!("n{}x{}", self.id, self.nonce_seq);
                let mut b = ResponseBuilder::reply_to(&request, 401)
                    .expect("req")
                    .to_tag(&r.tag());
                for a in [Algorithm::Md5, Algorithm::Sha256] {
                    b = b.header(
                        HeaderName::WwwAuthenticate,
                        &Challenge::new("sim.example.com", &nonce, a).to_string(),
                    );
                }
                let _ = self.layer.send_response(now, tx, b.build().expect("resp"));
                self.uas.transaction_ended(tx);
                return;
            }
        }
        self.servers.insert(
            tx,
            ServerCtx {
                request: request.clone(),
                to_tag: r.tag(),
                behaviour: None,
                dialog: None,
                cancelled: false,
                final_sent: false,
            },
        );
        let _ = flow;
        if method == Method::Subscribe {
            // Notifier: the dialog exists as soon as we accept; the first NOTIFY goes out
            // before the 2xx (so it may arrive first), the last one 2 s later.
            let tag = r.tag();
            if let Ok(d) = Dialog::uas(&request, &tag, DialogState::Confirmed) {
                let id = d.id().clone();
                self.dialogs.insert(d);
                self.dialog_flow.insert(id.clone(), flow);
                if let Some(c) = self.servers.get_mut(&tx) {
                    c.to_tag = tag;
                    c.dialog = Some(id.clone());
                }
                self.notify(now, &id, "active;expires=600");
                self.schedule(now + millis(50), Action::Respond { tx, status: 202 });
                self.schedule(now + secs(2), Action::EndSubscription { dialog: id });
            }
            return;
        }
        if method == Method::Invite {
            let b = self.invite_behaviours[self.rng.random_range(0..self.invite_behaviours.len())];
            if let Some(c) = self.servers.get_mut(&tx) {
                c.behaviour = Some(b);
            }
            match b {
                InviteBehaviour::Answer { ring, answer } => {
                    self.schedule(now + ring, Action::Respond { tx, status: 180 });
                    self.schedule(now + ring + answer, Action::Respond { tx, status: 200 });
                }
                InviteBehaviour::Busy => {
                    self.schedule(now + millis(30), Action::Respond { tx, status: 486 })
                }
                InviteBehaviour::Deaf { late } => {
                    self.schedule(now + millis(20), Action::Respond { tx, status: 180 });
                    // Without a CANCEL it would never end: answer 480 very late.
                    self.schedule(now + late + late, Action::Respond { tx, status: 480 });
                }
                InviteBehaviour::Slow { delay } => {
                    self.schedule(now + delay, Action::Respond { tx, status: 200 })
                }
            }
        } else {
            let b =
                self.request_behaviours[self.rng.random_range(0..self.request_behaviours.len())];
            match b {
                RequestBehaviour::Fast => self.respond(now, tx, 200),
                RequestBehaviour::NotFound => self.respond(now, tx, 404),
                RequestBehaviour::Provisional { delay } => {
                    self.respond(now, tx, 100);
                    // A second provisional half-way (keep-alive), then the final.
                    self.schedule(now + delay / 2, Action::Respond { tx, status: 100 });
                    self.schedule(now + delay, Action::Respond { tx, status: 200 });
                }
                RequestBehaviour::Delayed { delay } => {
                    self.schedule(now + delay, Action::Respond { tx, status: 200 });
                }
            }
        }
    }

    /// Subscriber: subscribe to `peer`'s presence.
    pub fn subscribe(&mut self, now: Time, peer: usize, reliable: bool) {
        let r = entropy(&mut self.rng);
        let req = self
            .uac
            .request(
                Method::Subscribe,
                &format!("sip:ua{peer}@sim.example.com"),
                &format!("<sip:ua{peer}@sim.example.com>"),
                &r,
            )
            .header(HeaderName::Event, "presence")
            .header(HeaderName::Expires, "600")
            .build()
            .expect("valid SUBSCRIBE");
        let flow = SimFlow { peer, reliable };
        let tx = self
            .layer
            .send_request(now, req.clone(), flow)
            .expect("fresh branch");
        self.stats.requests += 1;
        self.stats.transactions += 1;
        self.clients.insert(
            tx,
            ClientCtx {
                answered: false,
                counted: false,
                flow,
                request: req,
                cancel_at: None,
                hold: Duration::ZERO,
                auth_tries: 0,
            },
        );
    }

    /// Notifier: send a NOTIFY in dialog `id` with this Subscription-State.
    fn notify(&mut self, now: Time, id: &DialogId, state: &str) {
        let r = entropy(&mut self.rng);
        let Some(flow) = self.dialog_flow.get(id).copied() else {
            return;
        };
        let Some(d) = self.dialogs.get_mut(id) else {
            return;
        };
        let Ok(b) = self.uac.in_dialog(d, Method::Notify, &r) else {
            return;
        };
        let Ok(n) = b
            .header(HeaderName::Event, "presence")
            .header(HeaderName::SubscriptionState, state)
            .build()
        else {
            return;
        };
        if let Ok(t) = self.layer.send_request(now, n.clone(), flow) {
            self.stats.transactions += 1;
            self.clients.insert(
                t,
                ClientCtx {
                    answered: false,
                    counted: false,
                    flow,
                    request: n,
                    cancel_at: None,
                    hold: Duration::ZERO,
                    auth_tries: u8::MAX,
                },
            );
        }
    }

    /// Subscriber: a NOTIFY was accepted in dialog `id`; a terminated subscription ends
    /// its usage, and the dialog with its last usage.
    fn on_notify_state(&mut self, id: &DialogId, notify: &Message) {
        let terminated = notify
            .subscription_state()
            .and_then(Result::ok)
            .is_some_and(|s| s.state.eq_ignore_ascii_case("terminated"));
        if !terminated {
            return;
        }
        let Some(ev) = notify.event().and_then(Result::ok) else {
            return;
        };
        let usage = Usage::Subscription {
            event: ev.package.into(),
            id: ev.id().map(Into::into),
        };
        if let Some(d) = self.dialogs.get_mut(id) {
            self.stats.subscriptions_ended += 1;
            if d.end_usage(&usage) == DialogState::Terminated {
                self.dialogs.remove(id);
                self.dialog_flow.remove(id);
            }
        }
    }

    fn verify_register(&self, request: &Message) -> bool {
        let Some(f) = request.get(HeaderName::Authorization) else {
            return false;
        };
        let Some(c) = f.value_str().and_then(|v| Credentials::parse(v).ok()) else {
            return false;
        };
        let ha1 = Ha1Set::compute(&c.username, "sim.example.com", "pw");
        c.verify(&ha1, "REGISTER", request.body()).is_ok()
    }

    fn on_response(&mut self, now: Time, tx: TxId, response: Message) {
        let Some(ctx) = self.clients.get(&tx) else {
            return;
        };
        let status = response.status().unwrap_or(0);
        let method = ctx.request.method().cloned().unwrap_or(Method::Options);
        if ctx.auth_tries == u8::MAX {
            // CANCEL or BYE: nothing to do with the answer.
            return;
        }
        if method == Method::Invite {
            let request = ctx.request.clone();
            let hold = ctx.hold;
            let flow = Some(ctx.flow);
            let answered_before = ctx.answered;
            if (200..300).contains(&status) && answered_before {
                // A retransmitted 2xx (RFC 6026 Accepted passes them up): ACK it again if
                // the call is still up; never re-create a dialog we already hung up.
                let seq = request.cseq().and_then(Result::ok).map_or(1, |c| c.seq);
                if let Some(id) = response_dialog_id(&response) {
                    let r = entropy(&mut self.rng);
                    if let Some(d) = self.dialogs.get_mut(&id) {
                        if let Ok(ack) = self.uac.ack_for_2xx(d, seq, &r) {
                            self.layer.send_stateless(&ack, ctx_flow(flow));
                        }
                    }
                }
                return;
            }
            let counted = ctx.counted;
            if status >= 200 {
                if let Some(c) = self.clients.get_mut(&tx) {
                    c.answered = status < 300;
                    c.counted = true;
                }
            }
            let dlg = self.dialogs.handle_uac_response(&request, &response);
            if (200..300).contains(&status) {
                if let Ok(Some((id, _))) = dlg {
                    let seq = request.cseq().and_then(Result::ok).map_or(1, |c| c.seq);
                    let r = entropy(&mut self.rng);
                    let legacy = self.legacy_ack;
                    let first = self.established.insert(id.clone());
                    if let (Some(d), Some(flow)) = (self.dialogs.get_mut(&id), flow) {
                        if let Ok(mut ack) = self.uac.ack_for_2xx(d, seq, &r) {
                            if legacy {
                                if let Some(v) =
                                    request.get(HeaderName::Via).and_then(|f| f.value_str())
                                {
                                    let v = v.to_owned();
                                    let _ = ack.replace_top_via(&v);
                                }
                            }
                            self.layer.send_stateless(&ack, flow);
                        }
                        if first {
                            self.dialog_flow.entry(id.clone()).or_insert(flow);
                            if !counted {
                                self.stats.answered += 1;
                            }
                            self.schedule(now + hold, Action::HangUp { dialog: id });
                        }
                    }
                }
            } else if status >= 300 && !counted {
                self.stats.rejected += 1;
            } else if let (Ok(Some((id, _))), Some(flow)) = (dlg, flow) {
                self.dialog_flow.entry(id).or_insert(flow);
            }
            return;
        }
        if status >= 200 {
            self.stats.request_finals += 1;
        }
        if method == Method::Subscribe && (200..300).contains(&status) {
            let request = ctx.request.clone();
            let flow = ctx.flow;
            if let Ok(Some((id, _))) = self.dialogs.handle_uac_response(&request, &response) {
                self.dialog_flow.entry(id).or_insert(flow);
            }
            return;
        }
        if status == 401 && method == Method::Register && ctx.auth_tries == 0 {
            let request = ctx.request.clone();
            let r = entropy(&mut self.rng);
            if let Ok(again) = self.uac.authorize(&request, &response, &r) {
                let flow = ctx.flow;
                if let Ok(t) = self.layer.send_request(now, again.clone(), flow) {
                    self.stats.auth_answers += 1;
                    self.stats.transactions += 1;
                    self.clients.insert(
                        t,
                        ClientCtx {
                            answered: false,
                            counted: false,
                            flow,
                            request: again,
                            cancel_at: None,
                            hold: Duration::ZERO,
                            auth_tries: 1,
                        },
                    );
                }
            }
        }
    }
}

fn ctx_flow(f: Option<SimFlow>) -> SimFlow {
    f.unwrap_or(SimFlow {
        peer: 0,
        reliable: false,
    })
}

fn response_dialog_id(r: &Message) -> Option<DialogId> {
    let from = r.from()?.ok()?;
    let to = r.to()?.ok()?;
    Some(DialogId {
        call_id: r.call_id()?.ok()?.into(),
        local_tag: from.tag()?.into(),
        remote_tag: to.tag()?.into(),
    })
}

/// The simulation: clock, network, nodes.
#[derive(Debug)]
pub struct Sim {
    /// Simulated time.
    pub now: Time,
    /// The network.
    pub net: Net,
    /// The user agents.
    pub nodes: Vec<Ua>,
    rng: StdRng,
    /// Parse failures of delivered datagrams (must stay 0).
    pub parse_errors: u64,
}

impl Sim {
    /// `n` UAs with the given transaction configs (cycled), seeded.
    #[must_use]
    pub fn new(seed: u64, n: usize, net: NetConfig, configs: &[Config]) -> Sim {
        let nodes = (0..n)
            .map(|i| {
                Ua::new(
                    i,
                    seed.wrapping_mul(1000).wrapping_add(i as u64),
                    configs[i % configs.len()].clone(),
                )
            })
            .collect();
        Sim {
            now: Time::ZERO,
            net: Net::new(net),
            nodes,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            parse_errors: 0,
        }
    }

    /// Move every queued transmit of node `i` to the network.
    fn flush(&mut self, i: usize) {
        let mut out = Vec::new();
        self.nodes[i].drain(self.now, &mut out);
        while !out.is_empty() {
            let mut errors = Vec::new();
            for (flow, tx, data) in out.drain(..) {
                if let Some(tx) = tx
                    && self.rng.random_bool(self.net.config.send_error)
                {
                    errors.push(tx);
                    continue;
                }
                self.net.send(&mut self.rng, self.now, i, flow, data);
            }
            for tx in errors {
                let _ = self.nodes[i].layer.handle_transport_error(self.now, tx);
            }
            self.nodes[i].drain(self.now, &mut out);
        }
    }

    /// Flush every node.
    pub fn flush_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.flush(i);
        }
    }

    /// The next time anything happens.
    pub fn next_event(&mut self) -> Option<Time> {
        let mut next = self.net.next_delivery();
        for n in &mut self.nodes {
            if let Some(t) = n.poll_timeout() {
                next = Some(next.map_or(t, |x: Time| x.min(t)));
            }
        }
        next
    }

    /// Jump to the next event (not beyond `limit`) and run everything due. Returns false
    /// when nothing is left to do before `limit`.
    pub fn step(&mut self, limit: Time) -> bool {
        self.flush_all();
        let Some(next) = self.next_event() else {
            return false;
        };
        if next > limit {
            self.now = limit;
            return false;
        }
        self.now = self.now.max(next);
        while let Some(Reverse(p)) = self.net.queue.peek() {
            if p.at > self.now {
                break;
            }
            let Reverse(p) = self.net.queue.pop().expect("peeked");
            match parse_datagram(p.data, &Limits::default()) {
                Ok(m) => {
                    let flow = SimFlow {
                        peer: p.from,
                        reliable: p.reliable,
                    };
                    if self.nodes[p.to]
                        .layer
                        .handle_message(self.now, m, flow)
                        .is_err()
                    {
                        self.parse_errors += 1;
                    }
                }
                Err(_) => self.parse_errors += 1,
            }
            self.flush(p.to);
        }
        for i in 0..self.nodes.len() {
            self.nodes[i].handle_timeout(self.now);
            self.flush(i);
        }
        true
    }

    /// Run until `t`.
    pub fn run_until(&mut self, t: Time) {
        while self.step(t) {}
        self.now = self.now.max(t);
    }

    /// Run until nothing is scheduled any more (or `limit`). Returns the time reached.
    pub fn run_until_idle(&mut self, limit: Time) -> Time {
        while self.step(limit) {}
        self.now
    }

    /// Edge counts of every node, merged.
    #[must_use]
    pub fn edge_counts(&self) -> EdgeCounts {
        let mut c = EdgeCounts::default();
        for n in &self.nodes {
            c.merge(n.layer.edge_counts());
        }
        c
    }

    /// Panic with details unless every node is idle.
    pub fn assert_idle(&self) {
        let left: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| !n.is_idle())
            .map(Ua::leftovers)
            .collect();
        assert!(left.is_empty(), "state left at {}: {left:#?}", self.now);
        assert_eq!(self.parse_errors, 0);
    }

    /// Sum of node stats.
    #[must_use]
    pub fn stats(&self) -> UaStats {
        let mut s = UaStats::default();
        for n in &self.nodes {
            let x = &n.stats;
            s.calls += x.calls;
            s.answered += x.answered;
            s.rejected += x.rejected;
            s.timed_out += x.timed_out;
            s.failed += x.failed;
            s.cancels += x.cancels;
            s.byes += x.byes;
            s.requests += x.requests;
            s.request_finals += x.request_finals;
            s.auth_answers += x.auth_answers;
            s.notify_dialogs += x.notify_dialogs;
            s.subscriptions_ended += x.subscriptions_ended;
            s.transactions += x.transactions;
            s.transport_errors += x.transport_errors;
        }
        s
    }
}

/// Transaction configurations with each 100 Trying policy.
#[must_use]
pub fn configs() -> Vec<Config> {
    vec![
        Config::default(),
        Config {
            trying: TryingPolicy::Never,
            ..Config::default()
        },
        Config {
            trying: TryingPolicy::Immediately,
            ..Config::default()
        },
    ]
}

/// Every behaviour, for randomized runs.
pub fn all_behaviours(ua: &mut Ua) {
    ua.invite_behaviours = vec![
        InviteBehaviour::Answer {
            ring: millis(50),
            answer: millis(800),
        },
        InviteBehaviour::Answer {
            ring: millis(300),
            answer: secs(3),
        },
        InviteBehaviour::Answer {
            ring: millis(10),
            answer: millis(30),
        },
        InviteBehaviour::Busy,
        InviteBehaviour::Deaf { late: secs(40) },
        InviteBehaviour::Slow { delay: secs(40) },
    ];
    ua.request_behaviours = vec![
        RequestBehaviour::Fast,
        RequestBehaviour::Fast,
        RequestBehaviour::NotFound,
        RequestBehaviour::Provisional { delay: secs(2) },
        RequestBehaviour::Provisional { delay: secs(40) },
        RequestBehaviour::Delayed {
            delay: millis(1200),
        },
        RequestBehaviour::Delayed { delay: secs(40) },
    ];
}

/// Randomized traffic: `calls` calls and `requests` non-INVITE requests spread over
/// `span`, between random pairs of nodes, over reliable and unreliable flows.
pub fn random_traffic(sim: &mut Sim, seed: u64, calls: usize, requests: usize, span: Duration) {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = sim.nodes.len();
    let mut plan: Vec<(Time, usize, bool)> = Vec::new();
    for _ in 0..calls {
        plan.push((
            Time::ZERO + Duration::from_micros(rng.random_range(0..span.as_micros() as u64)),
            0,
            rng.random_bool(0.3),
        ));
    }
    for _ in 0..requests {
        plan.push((
            Time::ZERO + Duration::from_micros(rng.random_range(0..span.as_micros() as u64)),
            1,
            rng.random_bool(0.3),
        ));
    }
    plan.sort_by_key(|p| p.0);
    let start = sim.now;
    for (at, what, reliable) in plan {
        let at = start + at.as_duration();
        sim.run_until(at);
        let a = rng.random_range(0..n);
        let mut b = rng.random_range(0..n - 1);
        if b >= a {
            b += 1;
        }
        let now = sim.now;
        if what == 0 {
            let hold = millis(rng.random_range(100..20_000));
            let cancel = rng
                .random_bool(0.25)
                .then(|| millis(rng.random_range(0..3000)));
            sim.nodes[a].call(now, b, reliable, hold, cancel);
        } else {
            let m = match rng.random_range(0..4) {
                0 => Method::Options,
                1 => Method::Message,
                2 => Method::Register,
                _ => Method::parse("FOO").expect("token"),
            };
            sim.nodes[a].request(now, b, reliable, m);
        }
    }
}
