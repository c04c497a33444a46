//! The SIP transaction layer (RFC 3261 §17 with the RFC 6026 corrections), sans-IO.
//!
//! **What it does:** runs the four transaction state machines for every transaction of an
//! element in one [`TransactionLayer`]: matching requests to server transactions (§17.2.3,
//! with the RFC 2543 fallback) and responses to client transactions (§17.1.3), matching
//! CANCEL to the INVITE it cancels (§9.2), retransmitting over unreliable transports only,
//! timers A–M (T1/T2/T4 configurable), 100 Trying for INVITE, the ACK for non-2xx final
//! responses, CANCEL sending (deferred until a provisional response, §9.1), and the UAS
//! core's 2xx retransmission (§13.3.1.4) on top of the RFC 6026 Accepted state.
//!
//! **What it does not do:** sockets, DNS (RFC 3263), clocks, randomness (branches are in
//! the requests the caller builds), Timer C (the proxy's), deciding what to answer (the
//! transaction user, "TU", does: a UA core, a proxy core, a registrar).
//!
//! # Calling contract
//!
//! Inputs ("handle" and "send" calls) take `now`; outputs are polled:
//!
//! | input | when |
//! |---|---|
//! | [`TransactionLayer::handle_message`] | a parsed message arrived on a flow |
//! | [`TransactionLayer::send_request`] | the TU starts a client transaction (any method but ACK) |
//! | [`TransactionLayer::send_response`] | the TU answers a server transaction |
//! | [`TransactionLayer::send_2xx_until_ack`] / [`TransactionLayer::ack_received`] | a UAS answers INVITE with 2xx and wants it retransmitted until the ACK (§13.3.1.4) |
//! | [`TransactionLayer::send_stateless`] | the TU sends an ACK for a 2xx, or forwards statelessly |
//! | [`TransactionLayer::cancel`] | the TU cancels an INVITE client transaction |
//! | [`TransactionLayer::handle_transport_error`] | the transport failed to send a [`Transmit`] of a transaction |
//! | [`TransactionLayer::handle_timeout`] | the deadline of [`TransactionLayer::poll_timeout`] passed |
//!
//! After any input, drain [`TransactionLayer::poll_transmit`] (datagrams/stream writes with
//! the caller's opaque [`Flow`] token) and [`TransactionLayer::poll_event`] (what the TU must
//! see), then ask [`TransactionLayer::poll_timeout`] for the next deadline. Events and
//! transmits come out in the order they were produced.
//!
//! # Example
//!
//! One OPTIONS transaction between a client layer and a server layer (the transport is
//! the two `parse_datagram` calls):
//!
//! ```
//! use std::time::Duration;
//! use confab_sip::timer::Time;
//! use confab_sip::transaction::{Config, Event, Flow, TransactionLayer};
//! use confab_sip::{Limits, Method, RequestBuilder, ResponseBuilder, parse_datagram};
//!
//! #[derive(Debug, Clone, Copy)]
//! struct Udp(std::net::SocketAddr);
//! impl Flow for Udp {
//!     fn is_reliable(&self) -> bool { false }
//! }
//! let peer = Udp("192.0.2.2:5060".parse().unwrap());
//! let mut client = TransactionLayer::new(Config::default()).unwrap();
//! let mut server = TransactionLayer::new(Config::default()).unwrap();
//! let now = Time::ZERO;
//!
//! let req = RequestBuilder::new(Method::Options, "sip:bob@example.com")
//!     .via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKexample1")
//!     .from("<sip:alice@example.com>;tag=a1")
//!     .to("<sip:bob@example.com>")
//!     .call_id("c1@192.0.2.1")
//!     .cseq(1)
//!     .build()
//!     .unwrap();
//! let tx = client.send_request(now, req, peer).unwrap();
//! let out = client.poll_transmit().unwrap();
//!
//! server.handle_message(now, parse_datagram(out.data, &Limits::default()).unwrap(), peer).unwrap();
//! let Some(Event::Request { tx: stx, request, .. }) = server.poll_event() else { panic!() };
//! let ok = ResponseBuilder::reply_to(&request, 200).unwrap().to_tag("b1").build().unwrap();
//! server.send_response(now, stx, ok).unwrap();
//! let out = server.poll_transmit().unwrap();
//!
//! client.handle_message(now, parse_datagram(out.data, &Limits::default()).unwrap(), peer).unwrap();
//! assert!(matches!(client.poll_event(), Some(Event::Response { tx: t, .. }) if t == tx));
//! // Timer K (T4 on UDP) removes the completed client transaction 5 s later.
//! assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(5)));
//! client.handle_timeout(now + Duration::from_secs(5));
//! assert!(matches!(client.poll_event(), Some(Event::Terminated { .. })));
//! assert!(client.is_empty());
//! ```
//!
//! # 100 Trying
//!
//! §17.2.1 lets the server transaction send 100 Trying itself "unless it knows that the TU
//! will generate a provisional or final response within 200 ms". The default
//! ([`TryingPolicy::After`] 200 ms) sends it when the TU has sent nothing 200 ms after the
//! INVITE arrived; a proxy that always takes longer can choose
//! [`TryingPolicy::Immediately`], a TU that sends its own provisional at once
//! [`TryingPolicy::Never`].
//!
//! # Storage and timers
//!
//! Transactions live in a slab (`Vec` + free list) indexed by [`TxId`] (index and
//! generation, so a stale id is detected, never aliased) and a `HashMap` from key to index.
//! A transaction keeps only the bytes it may have to resend (request, ACK or last response,
//! as the one shared `Bytes` buffer they were sent from), its flow token, its key and two
//! timer slots. All transactions share one [`crate::timer`] heap: there is no task, thread
//! or allocation per timer.
//!
//! # Transport errors
//!
//! Figures 5 and 6 terminate a client transaction on a transport error; RFC 6026's Figure 7
//! keeps an INVITE server transaction in its state (it only informs the TU), and Figure 8
//! terminates a non-INVITE server transaction. Either way the TU gets
//! [`Event::TransportError`].

mod edge;
mod key;

use std::collections::HashMap;
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::limits::Limits;
use crate::message::Message;
use crate::method::Method;
use crate::name::HeaderName;
use crate::timer::{Time, TimerEntry, TimerHeap};
use crate::{BuildError, ResponseBuilder};

pub use edge::{Edge, EdgeCounts, EdgeSpec, Input, Kind, NoEdge, State, Timer, transition};
pub(crate) use key::{build_ack, build_cancel};

/// The caller's opaque handle for where a message came from / goes to (a socket address
/// and local socket, a connection id, ...). The layer only stores, clones and hands it
/// back, and asks whether the transport is reliable (retransmissions and the "wait"
/// timers D, I, J, K depend on it, §17.1.1.2).
pub trait Flow: Clone + fmt::Debug {
    /// TCP, TLS, SCTP, WebSocket: `true`. UDP: `false`.
    fn is_reliable(&self) -> bool;
}

/// When an INVITE server transaction sends 100 Trying on its own (§17.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryingPolicy {
    /// As soon as the INVITE arrives.
    Immediately,
    /// If the TU has not sent a response this long after the INVITE arrived (RFC: 200 ms).
    After(Duration),
    /// Never: the TU sends its own provisional response.
    Never,
}

/// Transaction timer configuration (RFC 3261 §17.1.1.1, Table 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Duration,
    /// Maximum duration a message remains in the network, 5 s.
    pub t4: Duration,
    /// Timer D on unreliable transports ("at least 32 s").
    pub timer_d: Duration,
    /// 100 Trying policy for INVITE server transactions.
    pub trying: TryingPolicy,
    /// At most this many live transactions (overload protection: a new request beyond
    /// it is refused with [`InboundError::Overloaded`], to be answered 503 statelessly;
    /// a new client transaction with [`SendError::Overloaded`]). Default 1,000,000.
    pub max_transactions: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
            trying: TryingPolicy::After(Duration::from_millis(200)),
            max_transactions: 1_000_000,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// T1 must be positive (every retransmission interval derives from it).
    #[error("T1 must be greater than zero")]
    ZeroT1,
    /// T2 below T1 would make retransmission intervals shrink.
    #[error("T2 ({t2:?}) must not be below T1 ({t1:?})")]
    T2BelowT1 {
        /// Configured T1.
        t1: Duration,
        /// Configured T2.
        t2: Duration,
    },
}

impl Config {
    /// Check the configuration.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.t1.is_zero() {
            return Err(ConfigError::ZeroT1);
        }
        if self.t2 < self.t1 {
            return Err(ConfigError::T2BelowT1 {
                t1: self.t1,
                t2: self.t2,
            });
        }
        Ok(())
    }

    fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// A transaction handle. Stale handles (of terminated transactions) are detected: the slot
/// generation differs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId {
    index: u32,
    generation: u32,
}

impl fmt::Debug for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx{}.{}", self.index, self.generation)
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Something to put on the wire.
#[derive(Debug, Clone)]
pub struct Transmit<F> {
    /// Where: the flow the TU gave for a client transaction, the flow a request came from
    /// for a server transaction.
    pub flow: F,
    /// The serialized message.
    pub data: Bytes,
    /// The transaction it belongs to, to report a failure with
    /// [`TransactionLayer::handle_transport_error`]; `None` for stateless sends.
    pub tx: Option<TxId>,
}

/// What the transaction user must see.
#[derive(Debug)]
pub enum Event<F> {
    /// A new request created a server transaction (not for ACK or CANCEL). Answer it with
    /// [`TransactionLayer::send_response`].
    Request {
        /// The new server transaction.
        tx: TxId,
        /// The request.
        request: Message,
        /// Where it came from.
        flow: F,
    },
    /// A CANCEL created a server transaction. `invite` is the INVITE server transaction it
    /// matches (§9.2), if any: the TU answers the CANCEL (200, or 481 without a match) and,
    /// if the INVITE has no final response yet, answers it 487.
    Cancel {
        /// The CANCEL's own server transaction.
        tx: TxId,
        /// The CANCEL.
        request: Message,
        /// Where it came from.
        flow: F,
        /// The INVITE server transaction it cancels.
        invite: Option<TxId>,
    },
    /// An ACK the transactions did not absorb: the ACK for a 2xx (its own transaction,
    /// `tx: None`), or an ACK matching an INVITE server transaction in the RFC 6026 Accepted
    /// state (`tx: Some`).
    Ack {
        /// The INVITE server transaction, when the ACK matched one.
        tx: Option<TxId>,
        /// The ACK.
        request: Message,
        /// Where it came from.
        flow: F,
    },
    /// A response for a client transaction. On reliable transports a final response also
    /// ends the transaction at once (Timers D and K are zero), so [`Event::Terminated`]
    /// may follow immediately and [`TransactionLayer::flow`] may already be `None`: keep
    /// what you need about the request on your side.
    Response {
        /// The client transaction.
        tx: TxId,
        /// The response.
        response: Message,
    },
    /// A response that matches no client transaction (§17.1.3: passed to the core; a
    /// proxy forwards a stray 2xx to INVITE, a UA core re-sends its ACK for it).
    StrayResponse {
        /// The response.
        response: Message,
        /// Where it came from.
        flow: F,
    },
    /// A deferred CANCEL (requested before any provisional response) was sent now.
    CancelSent {
        /// The INVITE client transaction.
        invite: TxId,
        /// The CANCEL's client transaction.
        cancel: TxId,
    },
    /// Timer B, F or H fired, or no final response came within 64·T1 after a CANCEL: the
    /// transaction failed (the TU treats a client timeout as a 408).
    Timeout {
        /// The transaction.
        tx: TxId,
        /// Which timer.
        timer: Timer,
    },
    /// A 2xx sent with [`TransactionLayer::send_2xx_until_ack`] was never acknowledged
    /// within 64·T1 (§13.3.1.4: the UAS should end the session with BYE).
    AckTimeout {
        /// The INVITE server transaction.
        tx: TxId,
    },
    /// The transport failed to send a message of this transaction.
    TransportError {
        /// The transaction.
        tx: TxId,
    },
    /// The transaction ended and was removed; its [`TxId`] is now stale.
    Terminated {
        /// The transaction.
        tx: TxId,
        /// Its machine.
        kind: Kind,
    },
}

/// A received message that cannot be matched or start a transaction. The caller drops it
/// (these are the messages [`Message::check`] also rejects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// A header needed for matching is absent.
    #[error("missing {0} header")]
    MissingHeader(HeaderName),
    /// A header needed for matching does not parse.
    #[error("malformed {0} header")]
    MalformedHeader(HeaderName),
    /// The layer holds [`Config::max_transactions`] transactions: answer 503 without
    /// state (the request is still a valid request: build the response from it).
    #[error("transaction limit reached")]
    Overloaded,
    /// Internal: a response was given where a request was expected.
    #[error("not a request")]
    NotARequest,
}

/// The TU asked for something the transaction cannot do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No transaction has this id (it terminated, or never existed).
    #[error("no transaction {0}")]
    UnknownTransaction(TxId),
    /// `send_request` needs a request.
    #[error("not a request")]
    NotARequest,
    /// `send_response` needs a response.
    #[error("not a response")]
    NotAResponse,
    /// ACK is not a transaction: use [`TransactionLayer::send_stateless`].
    #[error("ACK does not start a transaction; send it statelessly")]
    AckIsStateless,
    /// The request has no (parseable) Via.
    #[error("request has no valid Via")]
    NoVia,
    /// The top Via has no RFC 3261 branch (`z9hG4bK...`); this layer only starts client
    /// transactions with such branches (§8.1.1.7).
    #[error("top Via has no z9hG4bK branch")]
    NoBranch,
    /// The layer holds [`Config::max_transactions`] transactions.
    #[error("transaction limit reached")]
    Overloaded,
    /// A client transaction with this branch and method already exists.
    #[error("a client transaction with this branch and method exists")]
    DuplicateBranch,
    /// The call does not fit this transaction's machine (a response on a client
    /// transaction, a CANCEL of a non-INVITE...).
    #[error("{0} is a {1:?} transaction")]
    WrongKind(TxId, Kind),
    /// The machine has no edge for this input in its current state (a response after the
    /// final response, a 2xx on a non-INVITE server transaction...).
    #[error("{kind:?} transaction in state {state} cannot take {input:?}")]
    IllegalTransition {
        /// The machine.
        kind: Kind,
        /// Its state.
        state: State,
        /// The refused input.
        input: Input,
    },
    /// Building the ACK or CANCEL failed (the stored request was not UTF-8 in a copied
    /// header).
    #[error("building a request: {0}")]
    Build(#[from] BuildError),
}

/// What [`TransactionLayer::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The CANCEL was sent on its own client transaction.
    Sent(TxId),
    /// No provisional response yet (§9.1 forbids sending CANCEL before one): the CANCEL
    /// goes out with the first provisional response ([`Event::CancelSent`]).
    Deferred,
    /// A final response was already received: nothing to cancel.
    TooLate,
    /// A CANCEL was already sent or deferred for this INVITE.
    AlreadyRequested,
}

const SLOT_RETRANSMIT: usize = 0;
const SLOT_GUARD: usize = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelState {
    None,
    Deferred,
    Sent,
}

#[derive(Debug)]
struct Tx<F> {
    kind: Kind,
    state: State,
    reliable: bool,
    cancel: CancelState,
    /// IST: 2xx retransmission requested (§13.3.1.4) and not yet acknowledged.
    retransmit_2xx: bool,
    /// Current retransmission interval in ms (A, E, G, 2xx).
    interval_ms: u32,
    timers: [Option<(Timer, Time)>; 2],
    flow: F,
    key: Box<[u8]>,
    /// Client: the request (then the ACK, ICT Completed). Server: the last response sent.
    wire: Bytes,
    /// IST with a delayed 100 Trying: the INVITE, until a response is sent.
    request: Option<Bytes>,
}

#[derive(Debug)]
struct Slot<F> {
    generation: u32,
    /// Boxed: a slot outlives its transaction (the free list reuses it, the vector never
    /// shrinks), so after a burst the idle slots cost 16 bytes each, not a whole `Tx`
    /// (about 230 bytes: issue 7's memory profile).
    tx: Option<Box<Tx<F>>>,
}

/// All transactions of one SIP element; see the [module docs](self) for the calling
/// contract.
pub struct TransactionLayer<F: Flow> {
    config: Config,
    slots: Vec<Slot<F>>,
    free: Vec<u32>,
    by_key: HashMap<Box<[u8]>, u32>,
    timers: TimerHeap,
    armed: usize,
    live: usize,
    scratch: Vec<u8>,
    transmits: VecDeque<Transmit<F>>,
    events: VecDeque<Event<F>>,
    edges: EdgeCounts,
}

impl<F: Flow> fmt::Debug for TransactionLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionLayer")
            .field("transactions", &self.live)
            .field("armed_timers", &self.armed)
            .field("queued_transmits", &self.transmits.len())
            .field("queued_events", &self.events.len())
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn parse_stored(b: &Bytes) -> Option<Message> {
    crate::parse_datagram(b.clone(), &Limits::UNLIMITED).ok()
}

impl<F: Flow> TransactionLayer<F> {
    /// A layer with this configuration.
    ///
    /// # Errors
    /// The configuration's [`ConfigError`].
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(TransactionLayer {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::new(),
            timers: TimerHeap::default(),
            armed: 0,
            live: 0,
            scratch: Vec::with_capacity(256),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            edges: EdgeCounts::default(),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of live transactions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no transaction is live.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Number of timers currently armed (a leak check for tests).
    #[must_use]
    pub fn armed_timers(&self) -> usize {
        self.armed
    }

    /// Entries in the timer heap, live or stale (bounded by a small multiple of
    /// [`TransactionLayer::armed_timers`] after each [`TransactionLayer::handle_timeout`]).
    #[must_use]
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    /// How often each edge of the four machines was taken.
    #[must_use]
    pub fn edge_counts(&self) -> &EdgeCounts {
        &self.edges
    }

    /// The state of a live transaction.
    #[must_use]
    pub fn state(&self, tx: TxId) -> Option<State> {
        self.get(tx).map(|t| t.state)
    }

    /// The machine of a live transaction.
    #[must_use]
    pub fn kind(&self, tx: TxId) -> Option<Kind> {
        self.get(tx).map(|t| t.kind)
    }

    /// The flow of a live transaction.
    #[must_use]
    pub fn flow(&self, tx: TxId) -> Option<&F> {
        self.get(tx).map(|t| &t.flow)
    }

    fn get(&self, tx: TxId) -> Option<&Tx<F>> {
        let s = self.slots.get(tx.index as usize)?;
        if s.generation != tx.generation {
            return None;
        }
        s.tx.as_deref()
    }

    fn get_mut(&mut self, tx: TxId) -> Option<&mut Tx<F>> {
        let s = self.slots.get_mut(tx.index as usize)?;
        if s.generation != tx.generation {
            return None;
        }
        s.tx.as_deref_mut()
    }

    fn id_of(&self, index: u32) -> TxId {
        TxId {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    fn tx(&mut self, id: TxId) -> &mut Tx<F> {
        // Callers only pass ids they just resolved.
        self.slots[id.index as usize]
            .tx
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("resolved transaction vanished"))
    }

    // ---- outputs ------------------------------------------------------------------------

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit<F>> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<F>> {
        self.events.pop_front()
    }

    /// The earliest armed deadline; call [`TransactionLayer::handle_timeout`] when it has
    /// passed.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Time> {
        while let Some(e) = self.timers.peek().copied() {
            if self.entry_is_live(&e) {
                return Some(e.at);
            }
            self.timers.pop();
        }
        None
    }

    fn entry_is_live(&self, e: &TimerEntry) -> bool {
        self.slots.get(e.owner as usize).is_some_and(|s| {
            s.generation == e.generation
                && s.tx
                    .as_ref()
                    .is_some_and(|t| t.timers[e.tag as usize].is_some_and(|(_, at)| at == e.at))
        })
    }

    // ---- inputs -------------------------------------------------------------------------

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(e) = self.timers.peek().copied() {
            if e.at > now {
                break;
            }
            self.timers.pop();
            if !self.entry_is_live(&e) {
                continue;
            }
            let id = TxId {
                index: e.owner,
                generation: e.generation,
            };
            let t = self.tx(id);
            let Some((timer, _)) = t.timers[e.tag as usize].take() else {
                continue;
            };
            self.armed -= 1;
            self.input(now, id, Input::Timer(timer), None);
        }
        let slots = &self.slots;
        self.timers.maybe_compact(self.armed, |e| {
            slots.get(e.owner as usize).is_some_and(|s| {
                s.generation == e.generation
                    && s.tx
                        .as_ref()
                        .is_some_and(|t| t.timers[e.tag as usize].is_some_and(|(_, at)| at == e.at))
            })
        });
    }

    /// A message arrived on `flow`.
    ///
    /// Requests: a retransmission goes to its server transaction; an ACK is absorbed by
    /// its INVITE server transaction or reported as [`Event::Ack`]; anything else creates
    /// a server transaction ([`Event::Request`] / [`Event::Cancel`]). Responses go to their
    /// client transaction or come out as [`Event::StrayResponse`].
    ///
    /// # Errors
    /// An [`InboundError`] when a request lacks what matching needs (drop it).
    pub fn handle_message(&mut self, now: Time, msg: Message, flow: F) -> Result<(), InboundError> {
        if msg.is_request() {
            self.handle_request(now, msg, flow)
        } else {
            self.handle_response(now, msg, flow);
            Ok(())
        }
    }

    fn lookup(&self, key: &[u8]) -> Option<TxId> {
        self.by_key.get(key).map(|&i| self.id_of(i))
    }

    fn handle_request(&mut self, now: Time, msg: Message, flow: F) -> Result<(), InboundError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.handle_request_inner(now, msg, flow, &mut scratch);
        self.scratch = scratch;
        result
    }

    fn handle_request_inner(
        &mut self,
        now: Time,
        msg: Message,
        flow: F,
        key: &mut Vec<u8>,
    ) -> Result<(), InboundError> {
        key::server_key(&msg, None, key)?;
        let method = msg.method().cloned().ok_or(InboundError::NotARequest)?;
        if let Some(id) = self.lookup(key) {
            if method == Method::Ack {
                if self.get(id).is_some_and(|t| t.kind == Kind::InviteServer) {
                    self.input(now, id, Input::RecvAck, Some((msg, flow)));
                }
            } else {
                self.input(now, id, Input::RecvRetransmit, None);
            }
            return Ok(());
        }
        if method != Method::Ack && self.live >= self.config.max_transactions {
            return Err(InboundError::Overloaded);
        }
        match method {
            Method::Ack => {
                self.events.push_back(Event::Ack {
                    tx: None,
                    request: msg,
                    flow,
                });
            }
            Method::Cancel => {
                let mut inv_key = Vec::with_capacity(key.len());
                key::server_key(&msg, Some(&Method::Invite), &mut inv_key)?;
                let invite = self
                    .lookup(&inv_key)
                    .filter(|&i| self.get(i).is_some_and(|t| t.kind == Kind::InviteServer));
                let id = self.insert(Kind::NonInviteServer, flow.clone(), key, Bytes::new());
                self.edge(id, Edge::NistStart);
                self.events.push_back(Event::Cancel {
                    tx: id,
                    request: msg,
                    flow,
                    invite,
                });
            }
            Method::Invite => {
                let id = self.insert(Kind::InviteServer, flow.clone(), key, Bytes::new());
                self.edge(id, Edge::IstStart);
                match self.config.trying {
                    TryingPolicy::Immediately => {
                        if let Some(b) = ResponseBuilder::reply_to(&msg, 100)
                            .ok()
                            .and_then(|b| b.build().ok())
                        {
                            let bytes = b.to_bytes();
                            self.tx(id).wire = bytes.clone();
                            self.send(id, bytes);
                        }
                    }
                    TryingPolicy::After(d) => {
                        self.tx(id).request = Some(msg.original_bytes().clone());
                        self.arm(id, SLOT_GUARD, Timer::Trying, now + d);
                    }
                    TryingPolicy::Never => {}
                }
                self.events.push_back(Event::Request {
                    tx: id,
                    request: msg,
                    flow,
                });
            }
            _ => {
                let id = self.insert(Kind::NonInviteServer, flow.clone(), key, Bytes::new());
                self.edge(id, Edge::NistStart);
                self.events.push_back(Event::Request {
                    tx: id,
                    request: msg,
                    flow,
                });
            }
        }
        Ok(())
    }

    fn handle_response(&mut self, now: Time, msg: Message, flow: F) {
        let mut key = std::mem::take(&mut self.scratch);
        let found = key::client_key_for_response(&msg, &mut key).and_then(|()| self.lookup(&key));
        self.scratch = key;
        let Some(id) = found else {
            self.events.push_back(Event::StrayResponse {
                response: msg,
                flow,
            });
            return;
        };
        let code = msg.status().unwrap_or(0);
        let kind = self.tx(id).kind;
        let input = match (kind, code) {
            (_, 100..=199) => Input::Recv1xx,
            (Kind::InviteClient, 200..=299) => Input::Recv2xx,
            (Kind::InviteClient, _) => Input::Recv3xx6xx,
            _ => Input::RecvFinal,
        };
        self.input(now, id, input, Some((msg, flow)));
    }

    /// Start a client transaction for `request` (any method but ACK), sent on `flow`. The
    /// top Via must carry a fresh RFC 3261 branch (the caller's randomness).
    ///
    /// # Errors
    /// [`SendError::NotARequest`], [`SendError::AckIsStateless`], [`SendError::NoVia`],
    /// [`SendError::NoBranch`], [`SendError::DuplicateBranch`].
    pub fn send_request(
        &mut self,
        now: Time,
        request: Message,
        flow: F,
    ) -> Result<TxId, SendError> {
        if self.live >= self.config.max_transactions {
            return Err(SendError::Overloaded);
        }
        let kind = match request.method() {
            None => return Err(SendError::NotARequest),
            Some(Method::Ack) => return Err(SendError::AckIsStateless),
            Some(Method::Invite) => Kind::InviteClient,
            Some(_) => Kind::NonInviteClient,
        };
        let mut key = std::mem::take(&mut self.scratch);
        let r = key::client_key_for_request(&request, &mut key);
        let result = r.and_then(|()| {
            if self.by_key.contains_key(key.as_slice()) {
                return Err(SendError::DuplicateBranch);
            }
            Ok(self.insert(kind, flow, &key, request.to_bytes()))
        });
        self.scratch = key;
        let id = result?;
        self.input(now, id, Input::TuRequest, None);
        Ok(id)
    }

    /// Send `response` on server transaction `tx`.
    ///
    /// # Errors
    /// [`SendError::UnknownTransaction`], [`SendError::NotAResponse`],
    /// [`SendError::WrongKind`] (a client transaction),
    /// [`SendError::IllegalTransition`] (e.g. a second final response).
    pub fn send_response(
        &mut self,
        now: Time,
        tx: TxId,
        response: Message,
    ) -> Result<(), SendError> {
        let code = response.status().ok_or(SendError::NotAResponse)?;
        let t = self.get(tx).ok_or(SendError::UnknownTransaction(tx))?;
        let input = match (t.kind, code) {
            (Kind::InviteClient | Kind::NonInviteClient, _) => {
                return Err(SendError::WrongKind(tx, t.kind));
            }
            (_, 100..=199) => Input::Send1xx,
            (Kind::InviteServer, 200..=299) => Input::Send2xx,
            (Kind::InviteServer, _) => Input::Send3xx6xx,
            (Kind::NonInviteServer, _) => Input::SendFinal,
        };
        let edge =
            transition(t.kind, t.state, input).map_err(|_| SendError::IllegalTransition {
                kind: t.kind,
                state: t.state,
                input,
            })?;
        let t = self.tx(tx);
        t.wire = response.to_bytes();
        t.request = None;
        self.apply(now, tx, edge, None);
        Ok(())
    }

    /// Send a 2xx on INVITE server transaction `tx` and retransmit it (T1 doubling up to
    /// T2, unreliable transports only) until [`TransactionLayer::ack_received`] or 64·T1,
    /// when [`Event::AckTimeout`] tells the TU the ACK never came (§13.3.1.4). This is the
    /// UAS core's duty; a proxy forwarding a 2xx uses [`TransactionLayer::send_response`].
    ///
    /// # Errors
    /// As [`TransactionLayer::send_response`]; also [`SendError::WrongKind`] for a
    /// non-INVITE transaction and [`SendError::IllegalTransition`] for a non-2xx.
    pub fn send_2xx_until_ack(
        &mut self,
        now: Time,
        tx: TxId,
        response: Message,
    ) -> Result<(), SendError> {
        let t = self.get(tx).ok_or(SendError::UnknownTransaction(tx))?;
        if t.kind != Kind::InviteServer {
            return Err(SendError::WrongKind(tx, t.kind));
        }
        if !matches!(response.status(), Some(200..=299)) {
            return Err(SendError::IllegalTransition {
                kind: t.kind,
                state: t.state,
                input: Input::Send3xx6xx,
            });
        }
        let was_accepted = t.state == State::Accepted;
        self.send_response(now, tx, response)?;
        let d = self.config.t1;
        let t = self.tx(tx);
        t.retransmit_2xx = true;
        if !t.reliable && !was_accepted {
            t.interval_ms = ms(d);
            self.arm(tx, SLOT_RETRANSMIT, Timer::Retransmit2xx, now + d);
        }
        Ok(())
    }

    /// The ACK for the 2xx of INVITE server transaction `tx` arrived (the TU matched it to
    /// its dialog, since that ACK carries its own branch): stop retransmitting the 2xx.
    /// Returns whether `tx` is live.
    pub fn ack_received(&mut self, tx: TxId) -> bool {
        let Some(t) = self.get_mut(tx) else {
            return false;
        };
        t.retransmit_2xx = false;
        if t.timers[SLOT_RETRANSMIT].take().is_some() {
            self.armed -= 1;
        }
        true
    }

    /// Send a message outside any transaction: the ACK for a 2xx (RFC 3261 §13.2.2.4), a
    /// response retransmitted by a UA core, a statelessly forwarded message.
    pub fn send_stateless(&mut self, msg: &Message, flow: F) {
        self.transmits.push_back(Transmit {
            flow,
            data: msg.to_bytes(),
            tx: None,
        });
    }

    /// Cancel INVITE client transaction `invite` (RFC 3261 §9.1). The CANCEL is its own
    /// non-INVITE client transaction; its responses come as [`Event::Response`] for the
    /// returned id (or the one in [`Event::CancelSent`]). If no final response arrives
    /// within 64·T1 of sending the CANCEL the INVITE transaction times out.
    ///
    /// # Errors
    /// [`SendError::UnknownTransaction`], [`SendError::WrongKind`], [`SendError::Build`].
    pub fn cancel(&mut self, now: Time, invite: TxId) -> Result<CancelOutcome, SendError> {
        let t = self
            .get(invite)
            .ok_or(SendError::UnknownTransaction(invite))?;
        if t.kind != Kind::InviteClient {
            return Err(SendError::WrongKind(invite, t.kind));
        }
        if matches!(
            t.state,
            State::Completed | State::Accepted | State::Terminated
        ) {
            return Ok(CancelOutcome::TooLate);
        }
        if t.cancel != CancelState::None {
            return Ok(CancelOutcome::AlreadyRequested);
        }
        match t.state {
            State::Calling => {
                self.tx(invite).cancel = CancelState::Deferred;
                Ok(CancelOutcome::Deferred)
            }
            State::Proceeding => self.send_cancel(now, invite).map(CancelOutcome::Sent),
            _ => Ok(CancelOutcome::TooLate),
        }
    }

    fn send_cancel(&mut self, now: Time, invite: TxId) -> Result<TxId, SendError> {
        let t = self.tx(invite);
        let flow = t.flow.clone();
        let inv = parse_stored(&t.wire).ok_or(SendError::Build(BuildError::InvalidValue))?;
        let cancel = build_cancel(&inv)?;
        let id = self.send_request(now, cancel, flow)?;
        self.tx(invite).cancel = CancelState::Sent;
        let guard = self.config.t1x64();
        self.arm(invite, SLOT_GUARD, Timer::CancelGuard, now + guard);
        Ok(id)
    }

    /// The transport failed to send a [`Transmit`] of `tx` (or lost the connection it was
    /// waiting on).
    ///
    /// # Errors
    /// [`SendError::UnknownTransaction`]; [`SendError::IllegalTransition`] when the
    /// transaction has sent nothing that could fail.
    pub fn handle_transport_error(&mut self, now: Time, tx: TxId) -> Result<(), SendError> {
        let t = self.get(tx).ok_or(SendError::UnknownTransaction(tx))?;
        let edge = transition(t.kind, t.state, Input::TransportError).map_err(|_| {
            SendError::IllegalTransition {
                kind: t.kind,
                state: t.state,
                input: Input::TransportError,
            }
        })?;
        self.apply(now, tx, edge, None);
        Ok(())
    }

    /// Remove a transaction at once, without sending anything (the TU gave up on it, e.g.
    /// a UA shutting down). [`Event::Terminated`] follows. Returns whether it was live.
    pub fn abort(&mut self, tx: TxId) -> bool {
        if self.get(tx).is_none() {
            return false;
        }
        self.terminate(tx);
        true
    }

    // ---- machinery ----------------------------------------------------------------------

    fn insert(&mut self, kind: Kind, flow: F, key: &[u8], wire: Bytes) -> TxId {
        let tx = Tx {
            kind,
            state: State::Init,
            reliable: flow.is_reliable(),
            cancel: CancelState::None,
            retransmit_2xx: false,
            interval_ms: 0,
            timers: [None, None],
            flow,
            key: key.into(),
            wire,
            request: None,
        };
        let index = if let Some(i) = self.free.pop() {
            let s = &mut self.slots[i as usize];
            s.tx = Some(Box::new(tx));
            i
        } else {
            let i = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
            self.slots.push(Slot {
                generation: 0,
                tx: Some(Box::new(tx)),
            });
            i
        };
        self.by_key.insert(key.into(), index);
        self.live += 1;
        self.id_of(index)
    }

    fn terminate(&mut self, id: TxId) {
        let slot = &mut self.slots[id.index as usize];
        let Some(t) = slot.tx.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.armed -= t.timers.iter().filter(|x| x.is_some()).count();
        self.by_key.remove(&t.key);
        // After a burst, give the index's memory back once it is mostly empty (amortised:
        // at most one rehash per halving).
        if self.by_key.capacity() > 4096 && self.by_key.len() * 4 < self.by_key.capacity() {
            self.by_key.shrink_to(self.by_key.len() * 2);
        }
        self.free.push(id.index);
        self.live -= 1;
        if t.state != State::Terminated {
            tracing::trace!(tx = %id, "{:?} {} => Terminated (aborted)", t.kind, t.state);
        }
        self.events.push_back(Event::Terminated {
            tx: id,
            kind: t.kind,
        });
    }

    fn arm(&mut self, id: TxId, slot: usize, timer: Timer, at: Time) {
        let t = self.tx(id);
        if t.timers[slot].replace((timer, at)).is_none() {
            self.armed += 1;
        }
        self.timers.push(TimerEntry {
            at,
            owner: id.index,
            generation: id.generation,
            tag: slot as u8,
        });
    }

    fn disarm(&mut self, id: TxId, slot: usize) {
        if self.tx(id).timers[slot].take().is_some() {
            self.armed -= 1;
        }
    }

    fn send(&mut self, id: TxId, data: Bytes) {
        let flow = self.tx(id).flow.clone();
        self.transmits.push_back(Transmit {
            flow,
            data,
            tx: Some(id),
        });
    }

    fn resend_wire(&mut self, id: TxId) {
        let w = self.tx(id).wire.clone();
        if !w.is_empty() {
            self.send(id, w);
        }
    }

    fn edge(&mut self, id: TxId, e: Edge) {
        let spec = e.spec();
        self.edges.bump(e);
        let t = self.tx(id);
        debug_assert_eq!(t.state, spec.from);
        t.state = spec.to;
        tracing::trace!(tx = %id, edge = ?e, "{:?} {} => {}", spec.kind, spec.from, spec.to);
    }

    /// Run the machine on a network input or timer; absorbed inputs are dropped.
    fn input(&mut self, now: Time, id: TxId, input: Input, msg: Option<(Message, F)>) {
        let t = self.tx(id);
        match transition(t.kind, t.state, input) {
            Ok(edge) => {
                let (m, f) = match msg {
                    Some((m, f)) => (Some(m), Some(f)),
                    None => (None, None),
                };
                self.apply_from(now, id, edge, m, f);
            }
            Err(_) => {
                tracing::trace!(tx = %id, state = %t.state, ?input, "absorbed");
            }
        }
    }

    fn apply(&mut self, now: Time, id: TxId, edge: Edge, msg: Option<Message>) {
        self.apply_from(now, id, edge, msg, None);
    }

    /// Take `edge` and do what the figure says. `msg` is the received message (if any),
    /// `from` the flow it arrived on.
    fn apply_from(
        &mut self,
        now: Time,
        id: TxId,
        edge: Edge,
        msg: Option<Message>,
        from: Option<F>,
    ) {
        use Edge as E;
        self.edge(id, edge);
        let c = &self.config;
        let (t1, t2, t4, t1x64, timer_d) = (c.t1, c.t2, c.t4, c.t1x64(), c.timer_d);
        let reliable = self.tx(id).reliable;
        let to_tu = |this: &mut Self, m: Option<Message>| {
            if let Some(response) = m {
                this.events.push_back(Event::Response { tx: id, response });
            }
        };
        match edge {
            // ---- INVITE client ----
            E::IctStart | E::NictStart => {
                self.resend_wire(id);
                if !reliable {
                    self.tx(id).interval_ms = ms(t1);
                    let timer = if edge == E::IctStart {
                        Timer::A
                    } else {
                        Timer::E
                    };
                    self.arm(id, SLOT_RETRANSMIT, timer, now + t1);
                }
                let timer = if edge == E::IctStart {
                    Timer::B
                } else {
                    Timer::F
                };
                self.arm(id, SLOT_GUARD, timer, now + t1x64);
            }
            E::IctCallingTimerA => {
                self.resend_wire(id);
                let t = self.tx(id);
                t.interval_ms = t.interval_ms.saturating_mul(2);
                let d = Duration::from_millis(u64::from(t.interval_ms));
                self.arm(id, SLOT_RETRANSMIT, Timer::A, now + d);
            }
            E::IctCallingTimerB | E::NictTryingTimerF | E::NictProceedingTimerF => {
                let timer = if edge == E::IctCallingTimerB {
                    Timer::B
                } else {
                    Timer::F
                };
                self.events.push_back(Event::Timeout { tx: id, timer });
                self.terminate(id);
            }
            E::IctProceedingCancelGuard => {
                self.events.push_back(Event::Timeout {
                    tx: id,
                    timer: Timer::CancelGuard,
                });
                self.terminate(id);
            }
            E::IctCallingTransportError
            | E::IctCompletedTransportError
            | E::IctProceedingTransportError
            | E::NictTryingTransportError
            | E::NictProceedingTransportError
            | E::NistProceedingTransportError
            | E::NistCompletedTransportError => {
                self.events.push_back(Event::TransportError { tx: id });
                self.terminate(id);
            }
            E::IstProceedingTransportError
            | E::IstCompletedTransportError
            | E::IstAcceptedTransportError => {
                self.events.push_back(Event::TransportError { tx: id });
            }
            E::IctCalling1xx => {
                self.disarm(id, SLOT_RETRANSMIT);
                self.disarm(id, SLOT_GUARD);
                to_tu(self, msg);
                if self.tx(id).cancel == CancelState::Deferred {
                    match self.send_cancel(now, id) {
                        Ok(cancel) => self
                            .events
                            .push_back(Event::CancelSent { invite: id, cancel }),
                        Err(e) => tracing::debug!(tx = %id, "deferred CANCEL not sent: {e}"),
                    }
                }
            }
            E::IctProceeding1xx | E::NictTrying1xx | E::NictProceeding1xx | E::IctAccepted2xx => {
                to_tu(self, msg);
            }
            E::IctCalling2xx | E::IctProceeding2xx => {
                self.disarm(id, SLOT_RETRANSMIT);
                // Nothing is resent in Accepted (the TU ACKs 2xx): drop the INVITE.
                self.tx(id).wire = Bytes::new();
                to_tu(self, msg);
                self.arm(id, SLOT_GUARD, Timer::M, now + t1x64);
            }
            E::IctCalling3xx6xx | E::IctProceeding3xx6xx => {
                self.disarm(id, SLOT_RETRANSMIT);
                self.disarm(id, SLOT_GUARD);
                if let Some(resp) = &msg {
                    let ack =
                        parse_stored(&self.tx(id).wire).and_then(|inv| build_ack(&inv, resp).ok());
                    match ack {
                        Some(ack) => {
                            let bytes = ack.to_bytes();
                            self.tx(id).wire = bytes.clone();
                            self.send(id, bytes);
                        }
                        None => {
                            self.tx(id).wire = Bytes::new();
                            tracing::debug!(tx = %id, "could not build ACK");
                        }
                    }
                }
                to_tu(self, msg);
                if reliable {
                    self.fire_now(now, id, Timer::D);
                } else {
                    self.arm(id, SLOT_GUARD, Timer::D, now + timer_d);
                }
            }
            E::IctCompleted3xx6xx => self.resend_wire(id),
            E::IctCompletedTimerD
            | E::IctAcceptedTimerM
            | E::NictCompletedTimerK
            | E::IstConfirmedTimerI
            | E::NistCompletedTimerJ => self.terminate(id),

            // ---- non-INVITE client ----
            E::NictTryingTimerE | E::NictProceedingTimerE => {
                self.resend_wire(id);
                let t = self.tx(id);
                t.interval_ms = if edge == E::NictTryingTimerE {
                    t.interval_ms.saturating_mul(2).min(ms(t2))
                } else {
                    ms(t2)
                };
                let d = Duration::from_millis(u64::from(t.interval_ms));
                self.arm(id, SLOT_RETRANSMIT, Timer::E, now + d);
            }
            E::NictTryingFinal | E::NictProceedingFinal => {
                self.disarm(id, SLOT_RETRANSMIT);
                self.disarm(id, SLOT_GUARD);
                self.tx(id).wire = Bytes::new();
                to_tu(self, msg);
                if reliable {
                    self.fire_now(now, id, Timer::K);
                } else {
                    self.arm(id, SLOT_GUARD, Timer::K, now + t4);
                }
            }

            // ---- INVITE server ----
            E::IstStart | E::NistStart => {}
            E::IstProceedingTrying => {
                let trying = self
                    .tx(id)
                    .request
                    .take()
                    .and_then(|b| parse_stored(&b))
                    .and_then(|req| ResponseBuilder::reply_to(&req, 100).ok())
                    .and_then(|b| b.build().ok());
                if let Some(trying) = trying {
                    let bytes = trying.to_bytes();
                    self.tx(id).wire = bytes.clone();
                    self.send(id, bytes);
                }
            }
            E::IstProceedingInvite
            | E::IstCompletedInvite
            | E::NistProceedingRequest
            | E::NistCompletedRequest => self.resend_wire(id),
            E::IstAcceptedInvite | E::NistTryingRequest => {}
            E::IstProceeding1xx | E::NistTrying1xx | E::NistProceeding1xx | E::IstAccepted2xx => {
                if self.tx(id).timers[SLOT_GUARD].is_some_and(|(t, _)| t == Timer::Trying) {
                    self.disarm(id, SLOT_GUARD);
                }
                self.resend_wire(id);
            }
            E::IstProceeding2xx => {
                self.disarm(id, SLOT_GUARD);
                self.resend_wire(id);
                self.arm(id, SLOT_GUARD, Timer::L, now + t1x64);
            }
            E::IstProceeding3xx6xx => {
                self.disarm(id, SLOT_GUARD);
                self.resend_wire(id);
                if !reliable {
                    self.tx(id).interval_ms = ms(t1);
                    self.arm(id, SLOT_RETRANSMIT, Timer::G, now + t1);
                }
                self.arm(id, SLOT_GUARD, Timer::H, now + t1x64);
            }
            E::IstCompletedTimerG | E::IstAcceptedRetransmit2xx => {
                self.resend_wire(id);
                let t = self.tx(id);
                t.interval_ms = t.interval_ms.saturating_mul(2).min(ms(t2));
                let d = Duration::from_millis(u64::from(t.interval_ms));
                let timer = if edge == E::IstCompletedTimerG {
                    Timer::G
                } else {
                    Timer::Retransmit2xx
                };
                self.arm(id, SLOT_RETRANSMIT, timer, now + d);
            }
            E::IstCompletedAck => {
                self.disarm(id, SLOT_RETRANSMIT);
                self.disarm(id, SLOT_GUARD);
                self.tx(id).wire = Bytes::new();
                if reliable {
                    self.fire_now(now, id, Timer::I);
                } else {
                    self.arm(id, SLOT_GUARD, Timer::I, now + t4);
                }
            }
            E::IstCompletedTimerH => {
                self.events.push_back(Event::Timeout {
                    tx: id,
                    timer: Timer::H,
                });
                self.terminate(id);
            }
            E::IstAcceptedAck => {
                self.ack_received(id);
                if let Some(request) = msg {
                    let flow = from.unwrap_or_else(|| self.tx(id).flow.clone());
                    self.events.push_back(Event::Ack {
                        tx: Some(id),
                        request,
                        flow,
                    });
                }
            }
            E::IstAcceptedTimerL => {
                if self.tx(id).retransmit_2xx {
                    self.events.push_back(Event::AckTimeout { tx: id });
                }
                self.terminate(id);
            }

            // ---- non-INVITE server ----
            E::NistTryingFinal | E::NistProceedingFinal => {
                self.resend_wire(id);
                if reliable {
                    self.fire_now(now, id, Timer::J);
                } else {
                    self.arm(id, SLOT_GUARD, Timer::J, now + t1x64);
                }
            }
        }
    }

    /// A timer of zero duration (reliable transports): take its edge at once.
    fn fire_now(&mut self, now: Time, id: TxId, timer: Timer) {
        self.input(now, id, Input::Timer(timer), None);
    }
}

#[cfg(test)]
mod tests;
