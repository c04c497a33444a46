//! SIP transports for Confab: UDP, TCP, TLS, WebSocket and secure WebSocket.
//!
//! # What it does
//!
//! It owns the sockets. It binds the listeners of [`TransportConfig::listen`] (several at
//! once, IPv4 and IPv6), receives bytes, frames and parses them with `confab-sip`, and hands
//! every SIP message up as a [`TransportEvent::Message`] with the [`FlowToken`] of the flow
//! it came on (RFC 5626 §5: every connection and every UDP 5-tuple is a flow). It sends what
//! the core asks for with [`TransportHandle::send`], over a flow or to an address.
//!
//! On the way in it applies the transport-level rules:
//!
//! * RFC 3261 §18.2.1 / RFC 3581: `received` and `rport` on the top Via of every request;
//! * RFC 3261 §18.1.2: responses whose top Via sent-by is not ours are dropped;
//! * RFC 3261 §18.3: stream framing by Content-Length; framing lost closes the connection;
//! * RFC 5626 §3.5.1/§8: CRLF ping → pong on streams, STUN Binding answered on the SIP UDP
//!   port with XOR-MAPPED-ADDRESS;
//! * RFC 7118: WebSocket with the `sip` subprotocol, one SIP message per WebSocket message,
//!   text or binary frames;
//! * RFC 5923: a Via `alias` makes the connection reusable for requests to its sent-by
//!   (on TLS with a verified client certificate, or on TCP when configured);
//! * bad input: dropped unless the message layer allows a response, and such responses are
//!   rate-limited per source so the server cannot be used as a reflector;
//! * per-source limits (connections, half-open handshakes, bytes in flight, messages per
//!   second), idle timeouts, all configurable and counted with the `metrics` crate.
//!
//! On the way out, [`rules`] has the §18 helpers that need a parsed message: where a
//! response goes (§18.2.2), when a large request must move from UDP to TCP (§18.1.1), and
//! the transport name in Via; [`TransportHandle::send_response`] and
//! [`TransportHandle::send_request`] apply them. Concurrent sends to a new destination open
//! one connection, not several.
//!
//! # Calling contract
//!
//! [`Transport::bind`] returns a [`TransportHandle`] and a receiver of [`TransportEvent`]s.
//! Read the receiver continuously: when it is full, UDP sockets and streams stop being
//! read (the backlog waits in the kernel's buffers). Overload: a UDP request that starts
//! new work and waited in the kernel longer than `max_datagram_age_ms` is dropped before
//! parsing (by the kernel's receive timestamp, which is also [`Inbound::received_at`]);
//! a stage with its own queue checks [`TransportHandle::is_stale`] when it takes a message. Answer a request with [`TransportHandle::send_response`] and the
//! request's [`FlowToken`]; send a later request to a registered contact with
//! [`TransportHandle::send`] and the flow token saved at registration (RFC 5626). A
//! [`TransportEvent::FlowClosed`] says a connection flow is dead; [`SendError::FlowGone`]
//! says the same at send time.
//!
//! ```no_run
//! use confab_transport::{Transport, TransportConfig, TransportEvent};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config: TransportConfig = toml::from_str(r#"listen = ["udp:0.0.0.0:5060", "tcp:[::]:5060"]"#)?;
//! let (handle, mut events) = Transport::bind(config, None).await?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         TransportEvent::Message(inbound) if inbound.message.is_request() => {
//!             let response = confab_sip::ResponseBuilder::reply_to(&inbound.message, 200)?
//!                 .to_tag("x1")
//!                 .build()?;
//!             handle.send_response(&response, inbound.flow).await?;
//!         }
//!         TransportEvent::FlowClosed { flow, .. } => { /* registrations on `flow` fail */ }
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # What it does not do
//!
//! No transactions, dialogs, routing or DNS (RFC 3263): the caller resolves names and hands
//! in socket addresses ([`SendError::NeedsResolution`] says when). No outgoing WebSocket
//! connections (browsers connect to us). No SCTP, no DTLS, no multicast. No TURN (its own
//! crate). RFC 5923 aliases are keyed by IP address only (a sent-by host name is not
//! resolved). Outgoing TLS verifies the peer's DNS names (rustls/webpki); a peer whose
//! certificate carries only a `sip:` URI identity is not accepted outbound. It reads the
//! clock only for idle timeouts, handshake timeouts and rate limits; the protocol core stays
//! sans-IO.
//!
//! # Threads and performance
//!
//! Each UDP listener has one SO_REUSEPORT socket per core (`udp_workers`), each drained by
//! its own task with `recvmsg` (`nix`, safe; it brings the SO_TIMESTAMPNS receive time)
//! after every readiness event, so both cores receive and a flood hashed onto one socket
//! leaves the others alone. Batched `recvmmsg`/`sendmmsg` gain about 6 % on loopback in
//! the anchor measurements (250k vs 266k round trips/s; 4.9 vs 5.5 µs of server CPU in our
//! same-run check), and a `perf` profile of our server puts syscall entry/exit, the only
//! part batching removes, at about 3 % of its samples; the crate keeps
//! `#![forbid(unsafe_code)]`. Stream
//! connections have one task each; received bytes are framed in place and handed up as
//! `Bytes` slices without copying.
//!
//! Measured on the 2-core development machine while other builds kept the load average
//! around 11: the loopback echo benchmark (`examples/udp_bench.rs`) did 66k–93k round
//! trips/s on one server thread at 6.5–7.9 µs of server CPU per round trip (receive,
//! parse, Via stamping, event channel, send); the C `recvfrom`/`sendto` echo of
//! `shared/research/anchor-bench/udp/udp.c` used 4.9–5.5 µs per round trip in the same
//! runs. About 70 % of our time is in the kernel (`sendto` on loopback also pays for the
//! peer's receive). An idle TCP connection costs about 3.3 KiB (`examples/conn_mem.rs`):
//! no receive buffer while idle, a send queue that allocates only when used.
//!
//! ```text
//! cargo run --release -p confab-transport --example udp_bench -- 5 1 echo
//! cargo run --release -p confab-transport --example conn_mem -- 5000
//! ```
//!
//! # Tests and the tools they need
//!
//! `tests/transport.rs` and `tests/tls_ws.rs` run over loopback sockets with Rust clients.
//! `tests/interop.rs` uses real peers and fails, naming the package, when one is missing:
//! SIPp (Debian `sip-tester`) as client over UDP/TCP and as server; SIPp over TLS through
//! `stunnel4` (Debian's SIPp is built without OpenSSL); JsSIP with `jssip-node-websocket`
//! (npm, installed by the test with `npm ci` from `tests/js/package-lock.json`) over WS and
//! WSS; and `tshark` capturing on `lo` (needs root or capture rights), which must decode
//! the traffic without malformed-packet or SIP warnings. Every TLS client in the tests
//! verifies against a CA made with rcgen.
//!
//! # TLS
//!
//! rustls (ring provider) offers TLS 1.2 and 1.3 with ECDHE key exchange and AEAD suites
//! only: old desk phones that need TLS 1.0/1.1, static-RSA key exchange or CBC suites cannot
//! connect. See [`TlsConfig`] for SNI, reload and client certificates.

mod config;
mod flow;
mod limits;
mod listen;
mod metrics;
mod queue;
pub mod rules;
mod sip;
mod stale;
mod stream;
pub mod stun;
mod tls;
mod transport;
mod udp;
mod x509;

pub use config::{
    ClientAuth, ConfigError, LimitsConfig, TlsCertificate, TlsConfig, TransportConfig,
};
pub use flow::{FlowToken, FlowTokenError};
pub use limits::LimitExceeded;
pub use listen::{ListenSpec, ListenSpecError, TransportKind};
pub use stale::{datagram_is_droppable, message_is_droppable};
pub use tls::{PeerIdentity, TlsError};
pub use transport::{
    BindError, CloseReason, Inbound, ListenerInfo, SendError, Target, Transport, TransportEvent,
    TransportHandle,
};
