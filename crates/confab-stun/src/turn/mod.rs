//! A sans-IO TURN server (RFC 8656) with a STUN Binding server (RFC 8489).
//!
//! [`Server`] owns every allocation, permission and channel of one worker. It never touches
//! a socket or a clock: the caller feeds it
//!
//! - [`Server::handle_client`] for each datagram or stream-framed message from a client
//!   (returns the payload to send to a peer, if any, as a range of the input: no copy),
//! - [`Server::handle_peer`] for each datagram a relay socket receives (frames it in place
//!   as ChannelData or a Data indication; no copy),
//! - [`Server::handle_timeout`] when [`Server::poll_timeout`] is reached,
//! - [`Server::handle_connection_closed`] when a TCP/TLS client goes away,
//!
//! and then drains [`Server::poll_transmit`] (responses to clients) and
//! [`Server::poll_event`] (allocation created/ended, with usage records). Relay sockets are
//! opened and closed through the [`RelayPorts`] trait the caller implements (binding a UDP
//! socket is the caller's business); [`PortPool`] helps it pick ports.
//!
//! Timers: one heap entry per allocation (and per EVEN-PORT reservation), re-armed lazily,
//! so many thousands of allocations cost one `BinaryHeap` and no tasks.
//!
//! Not implemented: TCP relay allocations (RFC 6062), DONT-FRAGMENT (answered 420 as the
//! RFC allows), OAuth third-party authorization (RFC 7635), ICMP attribute forwarding.

pub mod allocation;
pub mod auth;
pub mod policy;
mod ports;
mod server;

pub use auth::{AuthConfig, AuthOutcome, Authenticated, Authenticator};
pub use policy::{Denied, IpNet, IpNetError, PeerPolicy};
pub use ports::PortPool;
pub use server::{
    ClientSend, EndReason, Event, PEER_HEADROOM, PEER_TAILROOM, PeerSend, QuotaLedger, Server,
    ServerConfig, Stats, Transmit, UsageRecord,
};

use std::net::SocketAddr;

/// Client transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// True for TCP and TLS (ChannelData must be padded).
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// The 5-tuple identifying a client and its allocation (RFC 8656 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// Transport protocol.
    pub transport: Transport,
    /// Client's address as seen by the server.
    pub client: SocketAddr,
    /// The server's local address the client talks to.
    pub server: SocketAddr,
}

/// Address family of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// Port parity requested with EVEN-PORT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// Any port.
    Any,
    /// An even port.
    Even,
}

/// Why a relay address could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// No relay address of this family is configured (-> 440).
    #[error("no relay address of this family")]
    FamilyNotSupported,
    /// No free port (-> 508).
    #[error("relay ports exhausted")]
    Exhausted,
}

/// Opens and closes relay transport addresses; implemented by the I/O layer.
pub trait RelayPorts {
    /// Opens a relay socket of `family` on a free port of the configured range.
    fn open(&mut self, family: Family, parity: Parity) -> Result<SocketAddr, RelayError>;
    /// Opens exactly `addr` (the port after an even one, for an EVEN-PORT reservation).
    fn open_at(&mut self, addr: SocketAddr) -> Result<(), RelayError>;
    /// Closes a relay socket previously opened.
    fn close(&mut self, addr: SocketAddr);
}

/// A fast non-cryptographic hasher for the hot-path maps (5-tuple and relay address keys).
/// Keys are chosen by clients only within what the server accepts, and lookups are cheap
/// either way; what matters is not to pay SipHash per packet.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// `BuildHasher` for [`FastHasher`].
pub type FastBuild = std::hash::BuildHasherDefault<FastHasher>;
