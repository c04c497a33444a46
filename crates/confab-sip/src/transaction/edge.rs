//! The four state machines as data: every (state, input) edge of RFC 3261 Figures 5–8 as
//! modified by RFC 6026, the pure transition function, and per-edge counters.
//!
//! [`transition`] is the only place that decides the next state. The layer
//! ([`super::TransactionLayer`]) turns the returned [`Edge`] into actions (send, inform
//! the TU, arm timers). [`Edge::ALL`] with [`Edge::spec`] is the table the coverage test
//! checks against: a unit test below proves `transition` and the table agree row by row.
//! Edges marked "(ext)" below are stated in the RFC's prose rather than drawn.
//!
//! # INVITE client transaction (RFC 3261 Figure 5, RFC 6026 §7.2)
//!
//! ```text
//!                                |INVITE from TU
//!              Timer A fires     |INVITE sent      Timer B fires
//!              Reset A,          V                 or Transport Err.
//!              INVITE sent +-----------+           inform TU
//!                +---------|           |--------------------------+
//!                |         |  Calling  |                          |
//!                +-------->|           |-----------+              |
//!   300-699                +-----------+ 2xx       |              |
//!   ACK sent                  |  |       2xx to TU |              |
//!   resp. to TU               |  |1xx              |              |
//!   +-------------------------+  |1xx to TU        |              |
//!   |                            |                 |              |
//!   |                1xx         V                 |              |
//!   |                1xx to TU +-----------+       |              |
//!   |                +---------|           |       |              |
//!   |                |         |Proceeding |       |              |
//!   |                +-------->|           |       |              |
//!   |                          +-----------+ 2xx   |              |
//!   |         300-699             |    |   2xx to TU              |
//!   |         ACK sent,  +--------+    +---------------+          |
//!   |         resp. to TU|                         |   |          |
//!   |                    V                         V   V          |
//!   |              +-----------+                +----------+      |
//!   +------------->|           |                |          |      |
//!                  | Completed |                | Accepted |---+  |
//!   300-699        |           |                |          |   |  |
//!   ACK sent  +----|           |                +----------+   |  |
//!             +--->|           |                  ^  |  2xx    |  |
//!                  +-----------+                  +--+  2xx to TU |
//!                    |       |                       |            |
//!       Transport Err|       | Timer D fires         | Timer M    |
//!       inform TU    |       | -                     | fires  -   |
//!                    V       V                       V            |
//!                  +-----------------------------------+          |
//!                  |            Terminated             |<---------+
//!                  +-----------------------------------+
//! ```
//!
//! (ext) Proceeding --transport error (the flow failed while waiting)--> Terminated;
//! Proceeding --64·T1 after a CANCEL with no final response (§9.1)--> Terminated.
//!
//! # Non-INVITE client transaction (RFC 3261 Figure 6)
//!
//! ```text
//!                                |Request from TU
//!                                |send request
//!            Timer E             V
//!            send request  +-----------+
//!                +---------|           |-------------------+
//!                |         |  Trying   |  Timer F          |
//!                +-------->|           |  or Transport Err.|
//!                          +-----------+  inform TU        |
//!             200-699         |  |                         |
//!             resp. to TU     |  |1xx                      |
//!             +---------------+  |resp. to TU              |
//!             |                  |                         |
//!             |   Timer E        V       Timer F           |
//!             |   send req +-----------+ or Transport Err. |
//!             |  +---------|           | inform TU         |
//!             |  |         |Proceeding |------------------>|
//!             |  +-------->|           |-----+             |
//!             |            +-----------+     |1xx          |
//!             |              |      ^        |resp to TU   |
//!             | 200-699      |      +--------+             |
//!             | resp. to TU  |                             |
//!             |              |                             |
//!             |              V                             |
//!             |            +-----------+                   |
//!             |            |           |                   |
//!             +----------->| Completed |                   |
//!                          |           |                   |
//!                          +-----------+                   |
//!                            ^   |                         |
//!                            |   | Timer K                 |
//!                            +---+ -                       |
//!                                |                         |
//!                                V                         |
//!          NOTE:           +-----------+                   |
//!                          |           |                   |
//!      transitions         | Terminated|<------------------+
//!      labeled with        |           |
//!      the event           +-----------+
//!      over the action
//!      to take
//! ```
//!
//! Timer E is T1, doubling up to T2 in Trying, T2 in Proceeding; E and the Timer K wait
//! apply only on unreliable transports (K is 0 on reliable ones).
//!
//! # INVITE server transaction (RFC 3261 Figure 7 as replaced by RFC 6026 Figure 7)
//!
//! ```text
//!                                     |INVITE
//!                                     |pass INV to TU
//!                  INVITE             V send 100 if TU won't in 200 ms
//!                  send response+------------+
//!                      +--------|            |--------+ 101-199 from TU
//!                      |        |            |        | send response
//!                      +------->|            |<-------+
//!                               | Proceeding |
//!                               |            |--------+ Transport Err.
//!                               |            |        | Inform TU
//!                               |            |<-------+
//!                               +------------+
//!                  300-699 from TU |    |2xx from TU
//!                  send response   |    |send response
//!                   +--------------+    +------------+
//!                   |                                |
//!  INVITE           V          Timer G fires         |
//!  send response +-----------+ send response         |
//!       +--------|           |--------+              |
//!       |        |           |        |              |
//!       +------->| Completed |<-------+      INVITE  |  Transport Err.
//!                |           |               -       |  Inform TU
//!       +--------|           |----+          +-----+ |  +---+
//!       |        +-----------+    | ACK      |     | v  |   v
//!       |          ^   |          | -        |  +------------+
//!       |          |   |          |          |  |            |---+ ACK
//!       +----------+   |          |          +->|  Accepted  |   | to TU
//!       Transport Err. |          |             |            |<--+
//!       Inform TU      |          V             +------------+
//!                      |      +-----------+        |  ^     |
//!                      |      |           |        |  |     |
//!                      |      | Confirmed |        |  +-----+
//!                      |      |           |        |  2xx from TU
//!        Timer H fires |      +-----------+        |  send response
//!        -             |          |                |
//!                      |          | Timer I fires  |
//!                      |          | -              | Timer L fires
//!                      |          V                | -
//!                      |        +------------+     |
//!                      |        |            |<----+
//!                      +------->| Terminated |
//!                               |            |
//!                               +------------+
//! ```
//!
//! (ext) Accepted --2xx retransmission timer of the UAS core (§13.3.1.4)--> Accepted.
//!
//! # Non-INVITE server transaction (RFC 3261 Figure 8)
//!
//! ```text
//!                           |Request received
//!                           |pass to TU
//!                           V
//!                     +-----------+
//!                     |           |
//!                     | Trying    |-------------+
//!                     |           |             |
//!                     +-----------+             |200-699 from TU
//!                           |                   |send response
//!                           |1xx from TU        |
//!                           |send response      |
//!                           |                   |
//!        Request            V      1xx from TU  |
//!        send response+-----------+send response|
//!            +--------|           |--------+    |
//!            |        | Proceeding|        |    |
//!            +------->|           |<-------+    |
//!     +<--------------|           |             |
//!     |Trnsprt Err    +-----------+             |
//!     |Inform TU            |                   |
//!     |                     |                   |
//!     |                     |200-699 from TU    |
//!     |                     |send response      |
//!     |  Request            V                   |
//!     |  send response+-----------+             |
//!     |      +--------|           |             |
//!     |      |        | Completed |<------------+
//!     |      +------->|           |
//!     +<--------------|           |
//!     |Trnsprt Err    +-----------+
//!     |Inform TU            |
//!     |                     |Timer J fires
//!     |                     |-
//!     |                     |
//!     |                     V
//!     |               +-----------+
//!     |               |           |
//!     +-------------->| Terminated|
//!                     |           |
//!                     +-----------+
//! ```
//!
//! (ext, §17.2.2) Trying --request retransmission--> Trying: discarded.

use std::fmt;

/// Which of the four RFC 3261 §17 machines a transaction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// INVITE client transaction (§17.1.1, Figure 5; RFC 6026 §7.2).
    InviteClient,
    /// Non-INVITE client transaction (§17.1.2, Figure 6).
    NonInviteClient,
    /// INVITE server transaction (§17.2.1, Figure 7; RFC 6026 §7.1).
    InviteServer,
    /// Non-INVITE server transaction (§17.2.2, Figure 8).
    NonInviteServer,
}

impl Kind {
    /// Whether this is a client transaction.
    #[must_use]
    pub fn is_client(self) -> bool {
        matches!(self, Kind::InviteClient | Kind::NonInviteClient)
    }

    /// Whether this is an INVITE transaction.
    #[must_use]
    pub fn is_invite(self) -> bool {
        matches!(self, Kind::InviteClient | Kind::InviteServer)
    }
}

/// A transaction state (the union of the four machines' states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Before the first input (the figure's entry arrow).
    Init,
    /// INVITE client: request sent, no response yet.
    Calling,
    /// Non-INVITE client/server: request sent/received, no response yet.
    Trying,
    /// A provisional response was received (client) or sent (server).
    Proceeding,
    /// A final non-2xx (INVITE) or any final (non-INVITE) response was received/sent.
    Completed,
    /// RFC 6026: a 2xx to INVITE was received (client) or sent (server).
    Accepted,
    /// INVITE server: the ACK for a non-2xx final response arrived.
    Confirmed,
    /// Done; the transaction is removed at once.
    Terminated,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The RFC timers a transaction arms (Timer C belongs to the proxy, not here), plus the two
/// timers this implementation adds for behaviour the RFC states in prose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE request retransmit (unreliable only), T1 doubling.
    A,
    /// INVITE transaction timeout, 64·T1.
    B,
    /// Wait for response retransmits: ≥ 32 s unreliable, 0 reliable.
    D,
    /// Non-INVITE request retransmit (unreliable only), T1 doubling up to T2.
    E,
    /// Non-INVITE transaction timeout, 64·T1.
    F,
    /// INVITE response retransmit (unreliable only), T1 doubling up to T2.
    G,
    /// Wait for ACK receipt, 64·T1.
    H,
    /// Wait for ACK retransmits: T4 unreliable, 0 reliable.
    I,
    /// Wait for non-INVITE request retransmits: 64·T1 unreliable, 0 reliable.
    J,
    /// Wait for non-INVITE response retransmits: T4 unreliable, 0 reliable.
    K,
    /// RFC 6026: INVITE server lingers in Accepted, 64·T1.
    L,
    /// RFC 6026: INVITE client lingers in Accepted, 64·T1.
    M,
    /// §17.2.1: send 100 Trying if the TU has not answered within 200 ms.
    Trying,
    /// §9.1: after sending CANCEL, give up on the INVITE if no final response comes in
    /// 64·T1.
    CancelGuard,
    /// §13.3.1.4: the UAS core retransmits its 2xx (T1 doubling up to T2) until the ACK.
    Retransmit2xx,
}

/// What happened to a transaction: a message, a TU action or a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    /// The TU started the transaction with its request.
    TuRequest,
    /// A request arrived that creates a server transaction.
    RecvRequest,
    /// A retransmission of the request arrived (for INVITE: an INVITE).
    RecvRetransmit,
    /// An ACK arrived (INVITE server).
    RecvAck,
    /// A 1xx arrived (client).
    Recv1xx,
    /// A 2xx arrived (client).
    Recv2xx,
    /// A 300–699 arrived (INVITE client).
    Recv3xx6xx,
    /// A 200–699 arrived (non-INVITE client).
    RecvFinal,
    /// The TU sent a 101–199 (server; also the layer's own 100 Trying).
    Send1xx,
    /// The TU sent a 2xx (INVITE server).
    Send2xx,
    /// The TU sent a 300–699 (INVITE server).
    Send3xx6xx,
    /// The TU sent a 200–699 (non-INVITE server).
    SendFinal,
    /// A timer fired.
    Timer(Timer),
    /// The transport could not send a message of this transaction.
    TransportError,
}

macro_rules! edges {
    ($( $name:ident : $kind:ident, $from:ident, $input:expr => $to:ident, $rfc:literal, $action:literal; )*) => {
        /// One edge of a transaction state machine. The set is exactly the edges of RFC
        /// 3261 Figures 5–8 as modified by RFC 6026, plus the few the RFC states in prose
        /// (their [`EdgeSpec::source`] says where).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Edge { $( #[doc = $action] $name, )* }

        impl Edge {
            /// Every edge, in table order.
            pub const ALL: &'static [Edge] = &[ $( Edge::$name, )* ];

            /// The row of the table for this edge.
            #[must_use]
            pub fn spec(self) -> EdgeSpec {
                match self {
                    $( Edge::$name => EdgeSpec {
                        kind: Kind::$kind,
                        from: State::$from,
                        input: $input,
                        to: State::$to,
                        source: $rfc,
                        action: $action,
                    }, )*
                }
            }
        }
    };
}

/// One row of the edge table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeSpec {
    /// The machine.
    pub kind: Kind,
    /// State before.
    pub from: State,
    /// What happened.
    pub input: Input,
    /// State after.
    pub to: State,
    /// Where the edge comes from (figure or section).
    pub source: &'static str,
    /// What the transaction does, as the figure labels it.
    pub action: &'static str,
}

use Input::{
    Recv1xx, Recv2xx, Recv3xx6xx, RecvAck, RecvFinal, RecvRequest, RecvRetransmit, Send1xx,
    Send2xx, Send3xx6xx, SendFinal, TransportError, TuRequest,
};
use Timer as T;

edges! {
    // ---- INVITE client, Figure 5 (RFC 6026 §7.2) --------------------------------------
    IctStart: InviteClient, Init, TuRequest => Calling, "Fig. 5", "INVITE from TU: send INVITE, start A (unreliable) and B";
    IctCallingTimerA: InviteClient, Calling, Input::Timer(T::A) => Calling, "Fig. 5", "Timer A: resend INVITE, double A";
    IctCallingTimerB: InviteClient, Calling, Input::Timer(T::B) => Terminated, "Fig. 5", "Timer B: inform TU (timeout)";
    IctCallingTransportError: InviteClient, Calling, TransportError => Terminated, "Fig. 5", "transport error: inform TU";
    IctCalling1xx: InviteClient, Calling, Recv1xx => Proceeding, "Fig. 5", "1xx: pass to TU";
    IctCalling2xx: InviteClient, Calling, Recv2xx => Accepted, "Fig. 5 / RFC 6026", "2xx: pass to TU, start M";
    IctCalling3xx6xx: InviteClient, Calling, Recv3xx6xx => Completed, "Fig. 5", "300-699: send ACK, pass to TU, start D";
    IctProceeding1xx: InviteClient, Proceeding, Recv1xx => Proceeding, "Fig. 5", "1xx: pass to TU";
    IctProceeding2xx: InviteClient, Proceeding, Recv2xx => Accepted, "Fig. 5 / RFC 6026", "2xx: pass to TU, start M";
    IctProceeding3xx6xx: InviteClient, Proceeding, Recv3xx6xx => Completed, "Fig. 5", "300-699: send ACK, pass to TU, start D";
    IctProceedingTransportError: InviteClient, Proceeding, TransportError => Terminated, "§17.1.4 (flow lost while waiting)", "transport error: inform TU";
    IctProceedingCancelGuard: InviteClient, Proceeding, Input::Timer(T::CancelGuard) => Terminated, "§9.1 (64*T1 after CANCEL)", "no final response after CANCEL: inform TU (timeout)";
    IctCompleted3xx6xx: InviteClient, Completed, Recv3xx6xx => Completed, "Fig. 5", "300-699 retransmission: resend ACK";
    IctCompletedTransportError: InviteClient, Completed, TransportError => Terminated, "Fig. 5", "transport error: inform TU";
    IctCompletedTimerD: InviteClient, Completed, Input::Timer(T::D) => Terminated, "Fig. 5", "Timer D: done";
    IctAccepted2xx: InviteClient, Accepted, Recv2xx => Accepted, "RFC 6026 Fig. 5", "2xx: pass to TU";
    IctAcceptedTimerM: InviteClient, Accepted, Input::Timer(T::M) => Terminated, "RFC 6026 Fig. 5", "Timer M: done";

    // ---- non-INVITE client, Figure 6 ---------------------------------------------------
    NictStart: NonInviteClient, Init, TuRequest => Trying, "Fig. 6", "request from TU: send request, start E (unreliable) and F";
    NictTryingTimerE: NonInviteClient, Trying, Input::Timer(T::E) => Trying, "Fig. 6", "Timer E: resend, E = min(2E, T2)";
    NictTryingTimerF: NonInviteClient, Trying, Input::Timer(T::F) => Terminated, "Fig. 6", "Timer F: inform TU (timeout)";
    NictTryingTransportError: NonInviteClient, Trying, TransportError => Terminated, "Fig. 6", "transport error: inform TU";
    NictTrying1xx: NonInviteClient, Trying, Recv1xx => Proceeding, "Fig. 6", "1xx: pass to TU";
    NictTryingFinal: NonInviteClient, Trying, RecvFinal => Completed, "Fig. 6", "200-699: pass to TU, start K";
    NictProceedingTimerE: NonInviteClient, Proceeding, Input::Timer(T::E) => Proceeding, "Fig. 6", "Timer E: resend, E = T2";
    NictProceeding1xx: NonInviteClient, Proceeding, Recv1xx => Proceeding, "Fig. 6", "1xx: pass to TU";
    NictProceedingFinal: NonInviteClient, Proceeding, RecvFinal => Completed, "Fig. 6", "200-699: pass to TU, start K";
    NictProceedingTimerF: NonInviteClient, Proceeding, Input::Timer(T::F) => Terminated, "Fig. 6", "Timer F: inform TU (timeout)";
    NictProceedingTransportError: NonInviteClient, Proceeding, TransportError => Terminated, "Fig. 6", "transport error: inform TU";
    NictCompletedTimerK: NonInviteClient, Completed, Input::Timer(T::K) => Terminated, "Fig. 6", "Timer K: done";

    // ---- INVITE server, Figure 7 (RFC 6026 §7.1) ---------------------------------------
    IstStart: InviteServer, Init, RecvRequest => Proceeding, "Fig. 7", "INVITE: pass to TU (100 Trying per policy)";
    IstProceedingTrying: InviteServer, Proceeding, Input::Timer(T::Trying) => Proceeding, "Fig. 7", "TU silent for 200 ms: send 100 Trying";
    IstProceedingInvite: InviteServer, Proceeding, RecvRetransmit => Proceeding, "Fig. 7", "INVITE: resend last provisional";
    IstProceeding1xx: InviteServer, Proceeding, Send1xx => Proceeding, "Fig. 7", "101-199 from TU: send";
    IstProceeding2xx: InviteServer, Proceeding, Send2xx => Accepted, "RFC 6026 Fig. 7", "2xx from TU: send, start L";
    IstProceeding3xx6xx: InviteServer, Proceeding, Send3xx6xx => Completed, "Fig. 7", "300-699 from TU: send, start G (unreliable) and H";
    IstProceedingTransportError: InviteServer, Proceeding, TransportError => Proceeding, "RFC 6026 Fig. 7", "transport error: inform TU";
    IstCompletedInvite: InviteServer, Completed, RecvRetransmit => Completed, "Fig. 7", "INVITE: resend final";
    IstCompletedTimerG: InviteServer, Completed, Input::Timer(T::G) => Completed, "Fig. 7", "Timer G: resend final, G = min(2G, T2)";
    IstCompletedAck: InviteServer, Completed, RecvAck => Confirmed, "Fig. 7", "ACK: start I";
    IstCompletedTimerH: InviteServer, Completed, Input::Timer(T::H) => Terminated, "Fig. 7", "Timer H: inform TU (no ACK)";
    IstCompletedTransportError: InviteServer, Completed, TransportError => Completed, "RFC 6026 Fig. 7", "transport error: inform TU";
    IstConfirmedTimerI: InviteServer, Confirmed, Input::Timer(T::I) => Terminated, "Fig. 7", "Timer I: done";
    IstAcceptedInvite: InviteServer, Accepted, RecvRetransmit => Accepted, "RFC 6026 Fig. 7", "INVITE: absorb";
    IstAcceptedAck: InviteServer, Accepted, RecvAck => Accepted, "RFC 6026 Fig. 7", "ACK: pass to TU";
    IstAccepted2xx: InviteServer, Accepted, Send2xx => Accepted, "RFC 6026 Fig. 7", "2xx from TU: send";
    IstAcceptedRetransmit2xx: InviteServer, Accepted, Input::Timer(T::Retransmit2xx) => Accepted, "§13.3.1.4 (UAS core)", "2xx retransmit timer: resend 2xx";
    IstAcceptedTransportError: InviteServer, Accepted, TransportError => Accepted, "RFC 6026 Fig. 7", "transport error: inform TU";
    IstAcceptedTimerL: InviteServer, Accepted, Input::Timer(T::L) => Terminated, "RFC 6026 Fig. 7", "Timer L: done";

    // ---- non-INVITE server, Figure 8 ---------------------------------------------------
    NistStart: NonInviteServer, Init, RecvRequest => Trying, "Fig. 8", "request: pass to TU";
    NistTryingRequest: NonInviteServer, Trying, RecvRetransmit => Trying, "§17.2.2", "request retransmission: discard";
    NistTrying1xx: NonInviteServer, Trying, Send1xx => Proceeding, "Fig. 8", "1xx from TU: send";
    NistTryingFinal: NonInviteServer, Trying, SendFinal => Completed, "Fig. 8", "200-699 from TU: send, start J";
    NistProceeding1xx: NonInviteServer, Proceeding, Send1xx => Proceeding, "Fig. 8", "1xx from TU: send";
    NistProceedingRequest: NonInviteServer, Proceeding, RecvRetransmit => Proceeding, "Fig. 8", "request: resend last provisional";
    NistProceedingFinal: NonInviteServer, Proceeding, SendFinal => Completed, "Fig. 8", "200-699 from TU: send, start J";
    NistProceedingTransportError: NonInviteServer, Proceeding, TransportError => Terminated, "Fig. 8", "transport error: inform TU";
    NistCompletedRequest: NonInviteServer, Completed, RecvRetransmit => Completed, "Fig. 8", "request: resend final";
    NistCompletedTransportError: NonInviteServer, Completed, TransportError => Terminated, "Fig. 8", "transport error: inform TU";
    NistCompletedTimerJ: NonInviteServer, Completed, Input::Timer(T::J) => Terminated, "Fig. 8", "Timer J: done";
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.spec();
        write!(f, "{:?}: {} --{:?}--> {}", s.kind, s.from, s.input, s.to)
    }
}

/// The outcome of an input the machine does not act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoEdge {
    /// A network input the RFC says to absorb or ignore in this state (a late provisional,
    /// a duplicate ACK, a response after the transaction completed, a stale timer).
    Absorb,
    /// A TU or transport input that is not allowed in this state (a response after a
    /// final response, a transport error on a transaction that sent nothing).
    Illegal,
}

/// The transition function: the one place that decides the next state.
///
/// # Errors
/// [`NoEdge::Absorb`] for network inputs to drop, [`NoEdge::Illegal`] for TU inputs the
/// state forbids.
pub fn transition(kind: Kind, from: State, input: Input) -> Result<Edge, NoEdge> {
    use Edge as E;
    use Kind as K;
    use State as S;
    let edge = match (kind, from, input) {
        (K::InviteClient, S::Init, TuRequest) => E::IctStart,
        (K::InviteClient, S::Calling, Input::Timer(T::A)) => E::IctCallingTimerA,
        (K::InviteClient, S::Calling, Input::Timer(T::B)) => E::IctCallingTimerB,
        (K::InviteClient, S::Calling, TransportError) => E::IctCallingTransportError,
        (K::InviteClient, S::Calling, Recv1xx) => E::IctCalling1xx,
        (K::InviteClient, S::Calling, Recv2xx) => E::IctCalling2xx,
        (K::InviteClient, S::Calling, Recv3xx6xx) => E::IctCalling3xx6xx,
        (K::InviteClient, S::Proceeding, Recv1xx) => E::IctProceeding1xx,
        (K::InviteClient, S::Proceeding, Recv2xx) => E::IctProceeding2xx,
        (K::InviteClient, S::Proceeding, Recv3xx6xx) => E::IctProceeding3xx6xx,
        (K::InviteClient, S::Proceeding, TransportError) => E::IctProceedingTransportError,
        (K::InviteClient, S::Proceeding, Input::Timer(T::CancelGuard)) => {
            E::IctProceedingCancelGuard
        }
        (K::InviteClient, S::Completed, Recv3xx6xx) => E::IctCompleted3xx6xx,
        (K::InviteClient, S::Completed, TransportError) => E::IctCompletedTransportError,
        (K::InviteClient, S::Completed, Input::Timer(T::D)) => E::IctCompletedTimerD,
        (K::InviteClient, S::Accepted, Recv2xx) => E::IctAccepted2xx,
        (K::InviteClient, S::Accepted, Input::Timer(T::M)) => E::IctAcceptedTimerM,

        (K::NonInviteClient, S::Init, TuRequest) => E::NictStart,
        (K::NonInviteClient, S::Trying, Input::Timer(T::E)) => E::NictTryingTimerE,
        (K::NonInviteClient, S::Trying, Input::Timer(T::F)) => E::NictTryingTimerF,
        (K::NonInviteClient, S::Trying, TransportError) => E::NictTryingTransportError,
        (K::NonInviteClient, S::Trying, Recv1xx) => E::NictTrying1xx,
        (K::NonInviteClient, S::Trying, RecvFinal) => E::NictTryingFinal,
        (K::NonInviteClient, S::Proceeding, Input::Timer(T::E)) => E::NictProceedingTimerE,
        (K::NonInviteClient, S::Proceeding, Recv1xx) => E::NictProceeding1xx,
        (K::NonInviteClient, S::Proceeding, RecvFinal) => E::NictProceedingFinal,
        (K::NonInviteClient, S::Proceeding, Input::Timer(T::F)) => E::NictProceedingTimerF,
        (K::NonInviteClient, S::Proceeding, TransportError) => E::NictProceedingTransportError,
        (K::NonInviteClient, S::Completed, Input::Timer(T::K)) => E::NictCompletedTimerK,

        (K::InviteServer, S::Init, RecvRequest) => E::IstStart,
        (K::InviteServer, S::Proceeding, Input::Timer(T::Trying)) => E::IstProceedingTrying,
        (K::InviteServer, S::Proceeding, RecvRetransmit) => E::IstProceedingInvite,
        (K::InviteServer, S::Proceeding, Send1xx) => E::IstProceeding1xx,
        (K::InviteServer, S::Proceeding, Send2xx) => E::IstProceeding2xx,
        (K::InviteServer, S::Proceeding, Send3xx6xx) => E::IstProceeding3xx6xx,
        (K::InviteServer, S::Proceeding, TransportError) => E::IstProceedingTransportError,
        (K::InviteServer, S::Completed, RecvRetransmit) => E::IstCompletedInvite,
        (K::InviteServer, S::Completed, Input::Timer(T::G)) => E::IstCompletedTimerG,
        (K::InviteServer, S::Completed, RecvAck) => E::IstCompletedAck,
        (K::InviteServer, S::Completed, Input::Timer(T::H)) => E::IstCompletedTimerH,
        (K::InviteServer, S::Completed, TransportError) => E::IstCompletedTransportError,
        (K::InviteServer, S::Confirmed, Input::Timer(T::I)) => E::IstConfirmedTimerI,
        (K::InviteServer, S::Accepted, RecvRetransmit) => E::IstAcceptedInvite,
        (K::InviteServer, S::Accepted, RecvAck) => E::IstAcceptedAck,
        (K::InviteServer, S::Accepted, Send2xx) => E::IstAccepted2xx,
        (K::InviteServer, S::Accepted, Input::Timer(T::Retransmit2xx)) => {
            E::IstAcceptedRetransmit2xx
        }
        (K::InviteServer, S::Accepted, TransportError) => E::IstAcceptedTransportError,
        (K::InviteServer, S::Accepted, Input::Timer(T::L)) => E::IstAcceptedTimerL,

        (K::NonInviteServer, S::Init, RecvRequest) => E::NistStart,
        (K::NonInviteServer, S::Trying, RecvRetransmit) => E::NistTryingRequest,
        (K::NonInviteServer, S::Trying, Send1xx) => E::NistTrying1xx,
        (K::NonInviteServer, S::Trying, SendFinal) => E::NistTryingFinal,
        (K::NonInviteServer, S::Proceeding, Send1xx) => E::NistProceeding1xx,
        (K::NonInviteServer, S::Proceeding, RecvRetransmit) => E::NistProceedingRequest,
        (K::NonInviteServer, S::Proceeding, SendFinal) => E::NistProceedingFinal,
        (K::NonInviteServer, S::Proceeding, TransportError) => E::NistProceedingTransportError,
        (K::NonInviteServer, S::Completed, RecvRetransmit) => E::NistCompletedRequest,
        (K::NonInviteServer, S::Completed, TransportError) => E::NistCompletedTransportError,
        (K::NonInviteServer, S::Completed, Input::Timer(T::J)) => E::NistCompletedTimerJ,

        // Everything else: TU-originated inputs are illegal, network inputs and timers
        // are absorbed (late or duplicate messages, timers of a state already left).
        (_, _, TuRequest | Send1xx | Send2xx | Send3xx6xx | SendFinal | TransportError) => {
            return Err(NoEdge::Illegal);
        }
        _ => return Err(NoEdge::Absorb),
    };
    Ok(edge)
}

/// How many times each edge was taken (a cheap array of counters the layer always keeps;
/// tests use it for the coverage check, operators can export it as metrics).
#[derive(Clone)]
pub struct EdgeCounts([u64; Edge::ALL.len()]);

impl Default for EdgeCounts {
    fn default() -> Self {
        EdgeCounts([0; Edge::ALL.len()])
    }
}

impl fmt::Debug for EdgeCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().filter(|(_, n)| *n > 0))
            .finish()
    }
}

impl EdgeCounts {
    pub(crate) fn bump(&mut self, e: Edge) {
        self.0[e as usize] += 1;
    }

    /// How many times `e` was taken.
    #[must_use]
    pub fn get(&self, e: Edge) -> u64 {
        self.0[e as usize]
    }

    /// Every edge with its count, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (Edge, u64)> + '_ {
        Edge::ALL.iter().map(|&e| (e, self.0[e as usize]))
    }

    /// Add `other`'s counts to these.
    pub fn merge(&mut self, other: &EdgeCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_transition_function_agree() {
        for &e in Edge::ALL {
            let s = e.spec();
            assert_eq!(transition(s.kind, s.from, s.input), Ok(e), "{e}");
        }
        // Edge discriminants index the counter array.
        for (i, &e) in Edge::ALL.iter().enumerate() {
            assert_eq!(e as usize, i);
        }
    }

    #[test]
    fn tu_inputs_outside_the_figures_are_illegal() {
        #[track_caller]
        fn check(kind: Kind, from: State, input: Input, expected: NoEdge) {
            assert_eq!(transition(kind, from, input), Err(expected));
        }
        check(
            Kind::InviteServer,
            State::Completed,
            Send2xx,
            NoEdge::Illegal,
        );
        check(
            Kind::InviteServer,
            State::Accepted,
            Send3xx6xx,
            NoEdge::Illegal,
        );
        check(
            Kind::InviteServer,
            State::Confirmed,
            Send1xx,
            NoEdge::Illegal,
        );
        check(
            Kind::NonInviteServer,
            State::Completed,
            SendFinal,
            NoEdge::Illegal,
        );
        check(
            Kind::NonInviteServer,
            State::Trying,
            TransportError,
            NoEdge::Illegal,
        );
        check(
            Kind::InviteClient,
            State::Calling,
            TuRequest,
            NoEdge::Illegal,
        );
        check(
            Kind::InviteClient,
            State::Accepted,
            Recv3xx6xx,
            NoEdge::Absorb,
        );
        check(
            Kind::InviteClient,
            State::Completed,
            Recv1xx,
            NoEdge::Absorb,
        );
        check(
            Kind::NonInviteClient,
            State::Completed,
            RecvFinal,
            NoEdge::Absorb,
        );
        check(
            Kind::InviteServer,
            State::Confirmed,
            RecvAck,
            NoEdge::Absorb,
        );
        check(
            Kind::InviteServer,
            State::Proceeding,
            Input::Timer(T::G),
            NoEdge::Absorb,
        );
    }
}
