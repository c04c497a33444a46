//! The TURN server state machine. See the [module documentation](super) for the calling
//! contract.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};

use crate::attr::{self, AttrType, FAMILY_IPV4, FAMILY_IPV6};
use crate::framing::{self, PacketKind};
use crate::message::{
    Class, DecodeError, Encoder, HEADER_LEN, MAGIC_COOKIE, Message, Method, TransactionId,
    message_type, peek_header,
};
use crate::turn::allocation::{Allocation, BindConflict};
use crate::turn::auth::{AuthConfig, AuthOutcome, Authenticated, Authenticator};
use crate::turn::policy::PeerPolicy;
use crate::turn::{Family, FastBuild, FiveTuple, Parity, RelayError, RelayPorts, Transport};

/// Bytes [`Server::handle_peer`] needs before the payload in its buffer (the largest Data
/// indication header: 20 + XOR-PEER-ADDRESS for IPv6 (24) + DATA header (4)).
pub const PEER_HEADROOM: usize = 48;
/// Bytes [`Server::handle_peer`] needs after the payload (padding).
pub const PEER_TAILROOM: usize = 3;
/// How long an EVEN-PORT reservation is kept (RFC 8656 §7.2: about 30 seconds).
const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// Configuration of a [`Server`]; defaults follow RFC 8656.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Credentials.
    pub auth: AuthConfig,
    /// Lifetime given when the client asks for less or nothing (RFC 8656: 10 minutes).
    pub default_lifetime: Duration,
    /// Largest lifetime granted (RFC 8656 recommends 1 hour).
    pub max_lifetime: Duration,
    /// Allocations on this server (all users); beyond -> 508.
    pub max_allocations: usize,
    /// Allocations per user; beyond -> 486.
    pub max_allocations_per_user: u32,
    /// Relayed bytes per second per user, both directions together; 0 = unlimited.
    /// Excess packets are dropped.
    pub user_bandwidth_bytes_per_s: u64,
    /// Permissions per allocation; beyond -> 508.
    pub max_permissions_per_allocation: usize,
    /// Channels per allocation; beyond -> 508.
    pub max_channels_per_allocation: usize,
    /// Which peers may be reached.
    pub peer_policy: PeerPolicy,
    /// SOFTWARE attribute in responses; `None` (the default) discloses nothing.
    pub software: Option<String>,
}

impl ServerConfig {
    /// RFC defaults around the given credentials.
    pub fn new(auth: AuthConfig) -> Self {
        ServerConfig {
            auth,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            max_allocations: 100_000,
            max_allocations_per_user: 16,
            user_bandwidth_bytes_per_s: 0,
            max_permissions_per_allocation: 64,
            max_channels_per_allocation: 64,
            peer_policy: PeerPolicy::default(),
            software: None,
        }
    }
}

/// Allocation counts per user, shareable between the workers of one process so the per-user
/// quota holds across them.
#[derive(Debug, Default)]
pub struct QuotaLedger {
    counts: Mutex<HashMap<Box<str>, u32>>,
}

impl QuotaLedger {
    /// Counts one more allocation for `user` unless `max` is reached.
    pub fn try_acquire(&self, user: &str, max: u32) -> bool {
        let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let c = m.entry(user.into()).or_insert(0);
        if *c >= max {
            return false;
        }
        *c += 1;
        true
    }
    /// Gives one back.
    pub fn release(&self, user: &str) {
        let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = m.get_mut(user) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                m.remove(user);
            }
        }
    }
    /// Allocations currently held by `user`.
    pub fn count(&self, user: &str) -> u32 {
        let m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        m.get(user).copied().unwrap_or(0)
    }
}

/// A STUN message to send to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Which client connection/address.
    pub five: FiveTuple,
    /// The message.
    pub data: Vec<u8>,
}

/// Payload from a client to relay: send `input[payload]` from relay socket `relay` to `peer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSend {
    /// Relay socket address to send from.
    pub relay: SocketAddr,
    /// Peer to send to.
    pub peer: SocketAddr,
    /// Byte range of the input holding the application data.
    pub payload: Range<usize>,
}

/// Data from a peer framed for a client: send `buf[range]` on the client's transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSend {
    /// The client.
    pub five: FiveTuple,
    /// Range of the buffer given to [`Server::handle_peer`] to send.
    pub range: Range<usize>,
}

/// Why an allocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Its lifetime ran out.
    Expired,
    /// Refresh with LIFETIME 0.
    Deleted,
    /// The TCP/TLS connection closed.
    ConnectionClosed,
    /// The server shut down.
    Shutdown,
}

impl EndReason {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Deleted => "deleted",
            EndReason::ConnectionClosed => "connection_closed",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// Usage of one allocation, for the Front End's call detail records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// The account (REST user part or static username).
    pub user: String,
    /// The USERNAME used.
    pub username: String,
    /// Client transport.
    pub transport: Transport,
    /// Client address.
    pub client: SocketAddr,
    /// Relay addresses (one, or two for a dual-stack allocation).
    pub relays: Vec<SocketAddr>,
    /// Start, UNIX seconds.
    pub started_unix: u64,
    /// How long it lived.
    pub duration: Duration,
    /// Application bytes relayed client -> peers.
    pub bytes_to_peers: u64,
    /// Application bytes relayed peers -> client.
    pub bytes_from_peers: u64,
    /// Packets client -> peers.
    pub packets_to_peers: u64,
    /// Packets peers -> client.
    pub packets_from_peers: u64,
    /// Why it ended.
    pub end: EndReason,
}

/// Something the caller may want to know or record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new allocation.
    AllocationCreated {
        /// Client.
        five: FiveTuple,
        /// Relay addresses.
        relays: Vec<SocketAddr>,
        /// Account.
        user: String,
    },
    /// An allocation ended; its usage.
    AllocationEnded(UsageRecord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Allocation { slot: u32, generation: u32 },
    Reservation { token: [u8; 8] },
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    alloc: Option<Allocation>,
}

#[derive(Debug)]
struct UserLocal {
    name: Box<str>,
    allocations: u32,
    tokens: u64,
    last: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Reservation {
    addr: SocketAddr,
    expires: Instant,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets relayed client -> peer.
    pub relayed_to_peers: u64,
    /// Packets relayed peer -> client.
    pub relayed_from_peers: u64,
    /// Packets dropped: no allocation, permission or channel, or over bandwidth.
    pub dropped: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Requests dropped because their source failed authentication too often.
    pub rate_limited: u64,
}

/// The sans-IO TURN server of one worker. See the [module documentation](super).
#[derive(Debug)]
pub struct Server {
    cfg: ServerConfig,
    auth: Authenticator,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    by_five: HashMap<FiveTuple, u32, FastBuild>,
    by_relay: HashMap<SocketAddr, u32, FastBuild>,
    users: Vec<UserLocal>,
    free_users: Vec<u32>,
    user_index: HashMap<Box<str>, u32>,
    ledger: Arc<QuotaLedger>,
    reservations: HashMap<[u8; 8], Reservation>,
    timers: BinaryHeap<Reverse<(Instant, TimerKind)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    alternate: Option<SocketAddr>,
    base_instant: Instant,
    base_unix: u64,
    seed: [u8; 32],
    counter: u64,
    rng: u64,
    nonce_buf: Vec<u8>,
    n_allocations: usize,
    stats: Stats,
    /// IPs of every relay socket opened so far: never valid peers.
    relay_ips: Vec<IpAddr>,
}

/// Result of request processing before the response is written.
enum Reply {
    Ok(Vec<u8>),
    Drop,
}

impl Server {
    /// A server whose clock reads `now` = `now_unix` (UNIX seconds, used for REST credential
    /// expiry, nonces and usage records) and whose secrets derive from `seed` (random bytes).
    pub fn new(cfg: ServerConfig, seed: [u8; 32], now: Instant, now_unix: u64) -> Self {
        let nonce_key = derive(&seed, b"nonce", 0);
        let auth = Authenticator::new(cfg.auth.clone(), nonce_key);
        let rng = u64::from_le_bytes(derive(&seed, b"rng", 0)[..8].try_into().expect("8"));
        Server {
            cfg,
            auth,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_five: HashMap::default(),
            by_relay: HashMap::default(),
            users: Vec::new(),
            free_users: Vec::new(),
            user_index: HashMap::new(),
            ledger: Arc::new(QuotaLedger::default()),
            reservations: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            alternate: None,
            base_instant: now,
            base_unix: now_unix,
            seed,
            counter: 0,
            rng: rng | 1,
            nonce_buf: Vec::with_capacity(64),
            n_allocations: 0,
            stats: Stats::default(),
            relay_ips: Vec::new(),
        }
    }

    /// Shares the per-user allocation counts with other workers.
    pub fn with_quota_ledger(mut self, ledger: Arc<QuotaLedger>) -> Self {
        self.ledger = ledger;
        self
    }

    /// Drains this node: new Allocate requests get 300 Try Alternate with ALTERNATE-SERVER
    /// `alt`; existing allocations continue. `None` stops draining.
    pub fn set_alternate_server(&mut self, alt: Option<SocketAddr>) {
        self.alternate = alt;
    }

    /// True if `five` holds an allocation (the I/O layer closes TCP/TLS connections that
    /// never allocate).
    pub fn has_allocation(&self, five: &FiveTuple) -> bool {
        self.by_five.contains_key(five)
    }

    /// Number of live allocations.
    pub fn allocations(&self) -> usize {
        self.n_allocations
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn unix(&self, now: Instant) -> u64 {
        self.base_unix + now.saturating_duration_since(self.base_instant).as_secs()
    }

    fn next_rand(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The next response to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Server::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Input from a client: a UDP datagram, or one message cut from a TCP/TLS stream by
    /// [`crate::framing::frame_len`]. Returns application data to relay, if any.
    pub fn handle_client(
        &mut self,
        now: Instant,
        five: FiveTuple,
        data: &[u8],
        relays: &mut dyn RelayPorts,
    ) -> Option<PeerSend> {
        match framing::classify(data) {
            PacketKind::ChannelData => self.client_channel_data(now, five, data),
            PacketKind::Stun => self.client_stun(now, five, data, relays),
            PacketKind::Other => {
                self.stats.dropped += 1;
                None
            }
        }
    }

    fn client_channel_data(
        &mut self,
        now: Instant,
        five: FiveTuple,
        data: &[u8],
    ) -> Option<PeerSend> {
        let Ok((number, payload)) = framing::decode_channel_data(data) else {
            self.stats.dropped += 1;
            return None;
        };
        let Some(&slot) = self.by_five.get(&five) else {
            self.stats.dropped += 1;
            return None;
        };
        let a = self.slots[slot as usize]
            .alloc
            .as_ref()
            .expect("indexed slot is live");
        let peer = a
            .channel_peer(number, now)
            .filter(|p| a.has_permission(p.ip(), now));
        let relay = peer.and_then(|p| a.relay_for(p.ip()));
        let (Some(peer), Some(relay)) = (peer, relay) else {
            self.stats.dropped += 1;
            return None;
        };
        let user = a.user_slot;
        if !self.spend(user, payload.len(), now) {
            self.stats.dropped += 1;
            return None;
        }
        let a = self.slots[slot as usize].alloc.as_mut().expect("live");
        a.bytes_to_peer += payload.len() as u64;
        a.packets_to_peer += 1;
        self.stats.relayed_to_peers += 1;
        Some(PeerSend {
            relay,
            peer,
            payload: 4..4 + payload.len(),
        })
    }

    /// Token bucket per user; true if `len` bytes may pass.
    fn spend(&mut self, user: u32, len: usize, now: Instant) -> bool {
        let rate = self.cfg.user_bandwidth_bytes_per_s;
        if rate == 0 {
            return true;
        }
        let u = &mut self.users[user as usize];
        let elapsed = now.saturating_duration_since(u.last);
        let add = (elapsed.as_nanos().min(u128::from(u64::MAX)) as u64).saturating_mul(rate)
            / 1_000_000_000;
        if add > 0 {
            u.tokens = (u.tokens + add).min(rate);
            u.last = now;
        }
        if u.tokens >= len as u64 {
            u.tokens -= len as u64;
            true
        } else {
            false
        }
    }

    fn client_stun(
        &mut self,
        now: Instant,
        five: FiveTuple,
        data: &[u8],
        relays: &mut dyn RelayPorts,
    ) -> Option<PeerSend> {
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                // A request whose header is sound gets 400 naming the problem; anything
                // else (indications, responses, fingerprint failures that suggest the
                // packet is not STUN at all) is dropped.
                if let Some((method, Class::Request, txid)) = peek_header(data)
                    && !matches!(e, DecodeError::FingerprintMismatch { .. })
                {
                    let reason = e.to_string();
                    let out = self.error_response(method, txid, 400, &reason, None, |_| Ok(()));
                    self.push(five, out);
                    return None;
                }
                self.stats.dropped += 1;
                return None;
            }
        };
        match msg.class() {
            Class::Indication if msg.method() == Method::SEND => {
                self.send_indication(now, five, &msg, data)
            }
            Class::Request => {
                if let Reply::Ok(out) = self.request(now, five, &msg, relays) {
                    self.push(five, out);
                }
                None
            }
            _ => {
                self.stats.dropped += 1;
                None
            }
        }
    }

    fn push(&mut self, five: FiveTuple, data: Vec<u8>) {
        self.transmits.push_back(Transmit { five, data });
    }

    fn send_indication(
        &mut self,
        now: Instant,
        five: FiveTuple,
        msg: &Message<'_>,
        data: &[u8],
    ) -> Option<PeerSend> {
        let drop = |s: &mut Self| {
            s.stats.dropped += 1;
            None
        };
        let Some(&slot) = self.by_five.get(&five) else {
            return drop(self);
        };
        if !msg.unknown_comprehension_required().is_empty()
            || msg.get(AttrType::DONT_FRAGMENT).is_some()
        {
            return drop(self);
        }
        let (Ok(Some(peer)), Some(payload)) = (
            msg.xor_address(AttrType::XOR_PEER_ADDRESS),
            msg.get(AttrType::DATA),
        ) else {
            return drop(self);
        };
        let a = self.slots[slot as usize].alloc.as_ref().expect("live");
        let Some(relay) = a
            .relay_for(peer.ip())
            .filter(|_| a.has_permission(peer.ip(), now))
        else {
            return drop(self);
        };
        let user = a.user_slot;
        if !self.spend(user, payload.len(), now) {
            return drop(self);
        }
        let start = payload.as_ptr() as usize - data.as_ptr() as usize;
        let a = self.slots[slot as usize].alloc.as_mut().expect("live");
        a.bytes_to_peer += payload.len() as u64;
        a.packets_to_peer += 1;
        self.stats.relayed_to_peers += 1;
        Some(PeerSend {
            relay,
            peer,
            payload: start..start + payload.len(),
        })
    }

    /// Input from a relay socket: `buf[PEER_HEADROOM..PEER_HEADROOM + len]` was received
    /// on `relay` from `peer`; `buf` must extend [`PEER_TAILROOM`] bytes further. If the
    /// peer has a permission, frames the data in place and says what to send to whom.
    pub fn handle_peer(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Option<ClientSend> {
        let Some(&slot) = self.by_relay.get(&relay) else {
            self.stats.dropped += 1;
            return None;
        };
        if buf.len() < PEER_HEADROOM + len + PEER_TAILROOM || len > usize::from(u16::MAX) - 64 {
            self.stats.dropped += 1;
            return None;
        }
        let a = self.slots[slot as usize].alloc.as_ref().expect("live");
        if !a.has_permission(peer.ip(), now) {
            self.stats.dropped += 1;
            return None;
        }
        let channel = a.channel_for_peer(peer, now);
        let (five, user) = (a.five, a.user_slot);
        if !self.spend(user, len, now) {
            self.stats.dropped += 1;
            return None;
        }
        let a = self.slots[slot as usize].alloc.as_mut().expect("live");
        a.bytes_from_peer += len as u64;
        a.packets_from_peer += 1;
        self.stats.relayed_from_peers += 1;
        let end = PEER_HEADROOM + len;
        if let Some(ch) = channel {
            let start = PEER_HEADROOM - 4;
            framing::encode_channel_header(ch, len as u16, &mut buf[start..PEER_HEADROOM]);
            let pad = if five.transport.is_stream() {
                framing::stream_padding(len)
            } else {
                0
            };
            buf[end..end + pad].fill(0);
            return Some(ClientSend {
                five,
                range: start..end + pad,
            });
        }
        // Data indication: header, XOR-PEER-ADDRESS, DATA.
        let addr_len = if peer.is_ipv4() { 8 } else { 20 };
        let start = PEER_HEADROOM - (HEADER_LEN + 4 + addr_len + 4);
        let pad = framing::stream_padding(len);
        let body = 4 + addr_len + 4 + len + pad;
        let mut txid = [0u8; 12];
        txid[..8].copy_from_slice(&self.next_rand().to_le_bytes());
        txid[8..].copy_from_slice(&(self.next_rand() as u32).to_le_bytes());
        let txid = TransactionId(txid);
        let h = &mut buf[start..PEER_HEADROOM];
        h[0..2].copy_from_slice(&message_type(Method::DATA, Class::Indication).to_be_bytes());
        h[2..4].copy_from_slice(&(body as u16).to_be_bytes());
        h[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        h[8..20].copy_from_slice(&txid.0);
        h[20..22].copy_from_slice(&AttrType::XOR_PEER_ADDRESS.0.to_be_bytes());
        h[22..24].copy_from_slice(&(addr_len as u16).to_be_bytes());
        attr::encode_xor_address(peer, &txid, &mut h[24..24 + addr_len]);
        let d = 24 + addr_len;
        h[d..d + 2].copy_from_slice(&AttrType::DATA.0.to_be_bytes());
        h[d + 2..d + 4].copy_from_slice(&(len as u16).to_be_bytes());
        buf[end..end + pad].fill(0);
        Some(ClientSend {
            five,
            range: start..end + pad,
        })
    }

    /// A TCP/TLS client connection closed: its allocation goes with it (RFC 8656 §3.1).
    pub fn handle_connection_closed(
        &mut self,
        now: Instant,
        five: FiveTuple,
        relays: &mut dyn RelayPorts,
    ) {
        if let Some(&slot) = self.by_five.get(&five) {
            self.delete(slot, now, EndReason::ConnectionClosed, relays);
        }
    }

    /// Expires allocations and reservations due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, relays: &mut dyn RelayPorts) {
        while let Some(Reverse((t, kind))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            match kind {
                TimerKind::Allocation { slot, generation } => {
                    let s = &mut self.slots[slot as usize];
                    if s.generation != generation {
                        continue;
                    }
                    let Some(a) = s.alloc.as_mut() else { continue };
                    if a.expires <= now {
                        self.delete(slot, now, EndReason::Expired, relays);
                    } else if a.scheduled == t {
                        a.purge(now);
                        a.scheduled = a.expires;
                        let e = a.expires;
                        self.timers.push(Reverse((e, kind)));
                    }
                }
                TimerKind::Reservation { token } => {
                    if let Some(r) = self.reservations.get(&token)
                        && r.expires <= now
                    {
                        relays.close(r.addr);
                        self.reservations.remove(&token);
                    }
                }
            }
        }
    }

    /// Ends every allocation (usage records are emitted) and closes every relay.
    pub fn shutdown(&mut self, now: Instant, relays: &mut dyn RelayPorts) {
        for slot in 0..self.slots.len() as u32 {
            if self.slots[slot as usize].alloc.is_some() {
                self.delete(slot, now, EndReason::Shutdown, relays);
            }
        }
        for (_, r) in self.reservations.drain() {
            relays.close(r.addr);
        }
        self.timers.clear();
    }

    fn delete(&mut self, slot: u32, now: Instant, end: EndReason, relays: &mut dyn RelayPorts) {
        let s = &mut self.slots[slot as usize];
        let Some(a) = s.alloc.take() else { return };
        s.generation = s.generation.wrapping_add(1);
        self.free_slots.push(slot);
        self.n_allocations -= 1;
        self.by_five.remove(&a.five);
        for r in a.relays.iter().flatten() {
            self.by_relay.remove(r);
            relays.close(*r);
        }
        self.ledger.release(&a.auth.user);
        let u = &mut self.users[a.user_slot as usize];
        u.allocations -= 1;
        if u.allocations == 0 {
            let name = std::mem::take(&mut u.name);
            self.user_index.remove(&name);
            self.free_users.push(a.user_slot);
        }
        tracing::debug!(client = %a.five.client, user = %a.auth.user, reason = end.as_str(), "allocation ended");
        self.events.push_back(Event::AllocationEnded(UsageRecord {
            user: a.auth.user.to_string(),
            username: a.auth.username.to_string(),
            transport: a.five.transport,
            client: a.five.client,
            relays: a.relays.iter().flatten().copied().collect(),
            started_unix: self.unix(a.created),
            duration: now.saturating_duration_since(a.created),
            bytes_to_peers: a.bytes_to_peer,
            bytes_from_peers: a.bytes_from_peer,
            packets_to_peers: a.packets_to_peer,
            packets_from_peers: a.packets_from_peer,
            end,
        }));
    }

    // ---- responses ----

    fn begin(&self, method: Method, class: Class, txid: TransactionId) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        let mut e = Encoder::new(&mut out, method, class, txid);
        if let Some(s) = &self.cfg.software {
            // SOFTWARE is at most 763 bytes; a longer configured value is cut.
            let s = &s.as_bytes()[..s.floor_char_boundary(763)];
            e.attr(AttrType::SOFTWARE, s).expect("short");
        }
        out
    }

    /// Builds an error response; `sign` adds MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT.
    fn error_response(
        &mut self,
        method: Method,
        txid: TransactionId,
        code: u16,
        reason: &str,
        sign: Option<&Authenticated>,
        extra: impl FnOnce(&mut Encoder<'_>) -> Result<(), crate::message::EncodeError>,
    ) -> Vec<u8> {
        self.stats.errors += 1;
        let mut out = self.begin(method, Class::Error, txid);
        let mut e = Encoder::resume(&mut out, 0);
        let reason = &reason[..reason.floor_char_boundary(128)];
        // Encoding into a Vec of bounded attributes cannot fail.
        let _ = e.error_code(code, reason);
        let _ = extra(&mut e);
        if let Some(who) = sign {
            let _ = sign_with(&mut e, who);
        }
        let _ = e.fingerprint();
        out
    }

    fn challenge(
        &mut self,
        method: Method,
        txid: TransactionId,
        code: u16,
        client: IpAddr,
        now: Instant,
    ) -> Vec<u8> {
        let mut nonce = std::mem::take(&mut self.nonce_buf);
        self.auth.nonce(client, self.unix(now), &mut nonce);
        let realm = self.auth.realm().to_owned();
        let algs = self.auth.password_algorithms_value().map(<[u8]>::to_vec);
        let reason = if code == 438 {
            "Stale Nonce"
        } else {
            "Unauthenticated"
        };
        let out = self.error_response(method, txid, code, reason, None, |e| {
            e.attr(AttrType::REALM, realm.as_bytes())?;
            e.attr(AttrType::NONCE, &nonce)?;
            if let Some(a) = &algs {
                e.attr(AttrType::PASSWORD_ALGORITHMS, a)?;
            }
            Ok(())
        });
        self.nonce_buf = nonce;
        out
    }

    fn request(
        &mut self,
        now: Instant,
        five: FiveTuple,
        msg: &Message<'_>,
        relays: &mut dyn RelayPorts,
    ) -> Reply {
        let (method, txid) = (msg.method(), msg.transaction_id());
        if method == Method::BINDING {
            if !msg.unknown_comprehension_required().is_empty() {
                let unknown: Vec<u16> = msg.unknown_comprehension_required().to_vec();
                return Reply::Ok(self.error_response(
                    method,
                    txid,
                    420,
                    "Unknown Attribute",
                    None,
                    |e| e.unknown_attributes(&unknown),
                ));
            }
            let mut out = self.begin(method, Class::Success, txid);
            let mut e = Encoder::resume(&mut out, 0);
            let _ = e.xor_address(AttrType::XOR_MAPPED_ADDRESS, five.client);
            if msg.has_fingerprint() {
                let _ = e.fingerprint();
            }
            return Reply::Ok(out);
        }
        if !matches!(
            method,
            Method::ALLOCATE | Method::REFRESH | Method::CREATE_PERMISSION | Method::CHANNEL_BIND
        ) {
            return Reply::Ok(self.error_response(
                method,
                txid,
                400,
                "Unknown method",
                None,
                |_| Ok(()),
            ));
        }
        let ip = five.client.ip();
        if self.auth.is_rate_limited(ip, now) {
            self.stats.rate_limited += 1;
            return Reply::Drop;
        }
        let slot = self.by_five.get(&five).copied();
        let bound = slot
            .and_then(|s| self.slots[s as usize].alloc.as_ref())
            .map(|a| a.auth.clone());
        let who = match self
            .auth
            .check(msg, ip, now, self.unix(now), bound.as_ref())
        {
            AuthOutcome::Ok(who) => who,
            AuthOutcome::Unauthenticated { .. } => {
                return Reply::Ok(self.challenge(method, txid, 401, ip, now));
            }
            AuthOutcome::StaleNonce => {
                return Reply::Ok(self.challenge(method, txid, 438, ip, now));
            }
            AuthOutcome::BadRequest(r) => {
                return Reply::Ok(self.error_response(method, txid, 400, r, None, |_| Ok(())));
            }
        };
        let mut unknown: Vec<u16> = msg.unknown_comprehension_required().to_vec();
        if method == Method::ALLOCATE && msg.get(AttrType::DONT_FRAGMENT).is_some() {
            unknown.push(AttrType::DONT_FRAGMENT.0);
        }
        if !unknown.is_empty() {
            return Reply::Ok(self.error_response(
                method,
                txid,
                420,
                "Unknown Attribute",
                Some(&who),
                |e| e.unknown_attributes(&unknown),
            ));
        }
        if let Some(b) = &bound
            && b.username != who.username
        {
            return Reply::Ok(self.error_response(
                method,
                txid,
                441,
                "Wrong Credentials",
                Some(&who),
                |_| Ok(()),
            ));
        }
        let result = match method {
            Method::ALLOCATE => self.allocate(now, five, msg, &who, slot, relays),
            Method::REFRESH => self.refresh(now, msg, slot, relays),
            Method::CREATE_PERMISSION => self.create_permission(now, msg, slot),
            _ => self.channel_bind(now, msg, slot),
        };
        Reply::Ok(match result {
            Ok(ok) => {
                let mut out = self.begin(method, Class::Success, txid);
                let mut e = Encoder::resume(&mut out, 0);
                let _ = ok.write(&mut e, five.client);
                let _ = sign_with(&mut e, &who);
                let _ = e.fingerprint();
                out
            }
            Err(f) => {
                let alt = self.alternate;
                self.error_response(method, txid, f.code, f.reason, Some(&who), |e| {
                    if f.code == 300
                        && let Some(a) = alt
                    {
                        e.address(AttrType::ALTERNATE_SERVER, a)?;
                    }
                    Ok(())
                })
            }
        })
    }

    fn allocate(
        &mut self,
        now: Instant,
        five: FiveTuple,
        msg: &Message<'_>,
        who: &Authenticated,
        slot: Option<u32>,
        relays: &mut dyn RelayPorts,
    ) -> Result<Success, Failure> {
        if let Some(s) = slot {
            let a = self.slots[s as usize].alloc.as_ref().expect("live");
            if a.allocate_txid == msg.transaction_id() {
                // Retransmission of the request that created it: same answer.
                return Ok(Success::Allocated {
                    relays: a.relays,
                    lifetime: a.expires.saturating_duration_since(now).as_secs() as u32,
                    token: a.reservation,
                    family_error: None,
                });
            }
            return Err(Failure::new(437, "Allocation Mismatch"));
        }
        if self.alternate.is_some() {
            return Err(Failure::new(300, "Try Alternate"));
        }
        let transport = msg
            .read(AttrType::REQUESTED_TRANSPORT, |v, _| {
                attr::decode_requested_transport(v)
            })
            .map_err(|_| Failure::new(400, "malformed REQUESTED-TRANSPORT"))?
            .ok_or(Failure::new(400, "missing REQUESTED-TRANSPORT"))?;
        if transport != 17 {
            return Err(Failure::new(442, "Unsupported Transport Protocol"));
        }
        let requested = msg
            .read(AttrType::REQUESTED_ADDRESS_FAMILY, |v, _| {
                attr::decode_family(AttrType::REQUESTED_ADDRESS_FAMILY, v)
            })
            .map_err(|_| Failure::new(440, "Address Family not Supported"))?;
        let additional = msg
            .read(AttrType::ADDITIONAL_ADDRESS_FAMILY, |v, _| {
                attr::decode_family(AttrType::ADDITIONAL_ADDRESS_FAMILY, v)
            })
            .map_err(|_| Failure::new(400, "malformed ADDITIONAL-ADDRESS-FAMILY"))?;
        let even = msg
            .read(AttrType::EVEN_PORT, |v, _| attr::decode_even_port(v))
            .map_err(|_| Failure::new(400, "malformed EVEN-PORT"))?;
        let token = msg
            .read(AttrType::RESERVATION_TOKEN, |v, _| {
                attr::decode_reservation_token(v)
            })
            .map_err(|_| Failure::new(400, "malformed RESERVATION-TOKEN"))?;
        if additional.is_some_and(|f| f != FAMILY_IPV6) {
            return Err(Failure::new(400, "ADDITIONAL-ADDRESS-FAMILY must be IPv6"));
        }
        if requested.is_some() && additional.is_some() {
            return Err(Failure::new(
                400,
                "REQUESTED- and ADDITIONAL-ADDRESS-FAMILY together",
            ));
        }
        if token.is_some() && (even.is_some() || requested.is_some() || additional.is_some()) {
            return Err(Failure::new(
                400,
                "RESERVATION-TOKEN with EVEN-PORT or an address family",
            ));
        }
        let lifetime = self.lifetime(msg)?;
        if self.n_allocations >= self.cfg.max_allocations {
            return Err(Failure::new(508, "Insufficient Capacity"));
        }
        if !self
            .ledger
            .try_acquire(&who.user, self.cfg.max_allocations_per_user)
        {
            return Err(Failure::new(486, "Allocation Quota Reached"));
        }
        let opened = self.open_relays(now, requested, additional, even, token, relays);
        let (relay_addrs, reservation, family_error) = match opened {
            Ok(x) => x,
            Err(f) => {
                self.ledger.release(&who.user);
                return Err(f);
            }
        };
        let user_slot = self.user_slot(&who.user, now);
        let expires = now + lifetime;
        let alloc = Allocation {
            five,
            relays: relay_addrs,
            auth: who.clone(),
            user_slot,
            created: now,
            expires,
            scheduled: expires,
            allocate_txid: msg.transaction_id(),
            reservation,
            permissions: Vec::new(),
            channels: Vec::new(),
            bytes_to_peer: 0,
            bytes_from_peer: 0,
            packets_to_peer: 0,
            packets_from_peer: 0,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    alloc: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.slots[slot as usize].generation;
        self.slots[slot as usize].alloc = Some(alloc);
        self.n_allocations += 1;
        self.by_five.insert(five, slot);
        for r in relay_addrs.iter().flatten() {
            self.by_relay.insert(*r, slot);
            if !self.relay_ips.contains(&r.ip()) {
                self.relay_ips.push(r.ip());
            }
        }
        self.timers.push(Reverse((
            expires,
            TimerKind::Allocation { slot, generation },
        )));
        tracing::debug!(client = %five.client, user = %who.user, "allocation created");
        self.events.push_back(Event::AllocationCreated {
            five,
            relays: relay_addrs.iter().flatten().copied().collect(),
            user: who.user.to_string(),
        });
        Ok(Success::Allocated {
            relays: relay_addrs,
            lifetime: lifetime.as_secs() as u32,
            token: reservation,
            family_error,
        })
    }

    #[allow(clippy::type_complexity)]
    fn open_relays(
        &mut self,
        now: Instant,
        requested: Option<u8>,
        additional: Option<u8>,
        even: Option<bool>,
        token: Option<[u8; 8]>,
        relays: &mut dyn RelayPorts,
    ) -> Result<([Option<SocketAddr>; 2], Option<[u8; 8]>, Option<u16>), Failure> {
        let map_err = |e: RelayError| match e {
            RelayError::FamilyNotSupported => Failure::new(440, "Address Family not Supported"),
            RelayError::Exhausted => Failure::new(508, "Insufficient Capacity"),
        };
        if let Some(t) = token {
            let r = self
                .reservations
                .remove(&t)
                .ok_or(Failure::new(508, "Insufficient Capacity"))?;
            if r.expires <= now {
                // Expired but its timer has not fired yet: release the port now.
                relays.close(r.addr);
                return Err(Failure::new(508, "Insufficient Capacity"));
            }
            return Ok(([Some(r.addr), None], None, None));
        }
        let family = if requested == Some(FAMILY_IPV6) {
            Family::V6
        } else {
            Family::V4
        };
        let parity = if even.is_some() {
            Parity::Even
        } else {
            Parity::Any
        };
        let mut reservation = None;
        let primary = if even == Some(true) {
            // Reserve the next port too; retry a few even ports if it is taken.
            let mut found = None;
            for _ in 0..8 {
                let a = relays.open(family, Parity::Even).map_err(map_err)?;
                let next = SocketAddr::new(a.ip(), a.port().wrapping_add(1));
                if a.port() < u16::MAX && relays.open_at(next).is_ok() {
                    found = Some((a, next));
                    break;
                }
                relays.close(a);
            }
            let (a, next) = found.ok_or(Failure::new(508, "Insufficient Capacity"))?;
            self.counter += 1;
            let mut t = [0u8; 8];
            t.copy_from_slice(&derive(&self.seed, b"token", self.counter)[..8]);
            self.reservations.insert(
                t,
                Reservation {
                    addr: next,
                    expires: now + RESERVATION_LIFETIME,
                },
            );
            self.timers.push(Reverse((
                now + RESERVATION_LIFETIME,
                TimerKind::Reservation { token: t },
            )));
            reservation = Some(t);
            a
        } else {
            relays.open(family, parity).map_err(map_err)?
        };
        let mut second = None;
        let mut family_error = None;
        if additional == Some(FAMILY_IPV6) {
            match relays.open(Family::V6, Parity::Any) {
                Ok(a) => second = Some(a),
                Err(RelayError::FamilyNotSupported) => family_error = Some(440),
                Err(RelayError::Exhausted) => family_error = Some(508),
            }
        }
        Ok(([Some(primary), second], reservation, family_error))
    }

    fn lifetime(&self, msg: &Message<'_>) -> Result<Duration, Failure> {
        let requested = msg
            .u32_attr(AttrType::LIFETIME)
            .map_err(|_| Failure::new(400, "malformed LIFETIME"))?;
        Ok(match requested {
            None => self.cfg.default_lifetime,
            Some(s) => Duration::from_secs(u64::from(s))
                .min(self.cfg.max_lifetime)
                .max(self.cfg.default_lifetime),
        })
    }

    fn user_slot(&mut self, user: &str, now: Instant) -> u32 {
        if let Some(&i) = self.user_index.get(user) {
            self.users[i as usize].allocations += 1;
            return i;
        }
        let entry = UserLocal {
            name: user.into(),
            allocations: 1,
            tokens: self.cfg.user_bandwidth_bytes_per_s,
            last: now,
        };
        let i = match self.free_users.pop() {
            Some(i) => {
                self.users[i as usize] = entry;
                i
            }
            None => {
                self.users.push(entry);
                (self.users.len() - 1) as u32
            }
        };
        self.user_index.insert(user.into(), i);
        i
    }

    fn refresh(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        slot: Option<u32>,
        relays: &mut dyn RelayPorts,
    ) -> Result<Success, Failure> {
        let slot = slot.ok_or(Failure::new(437, "Allocation Mismatch"))?;
        let a = self.slots[slot as usize].alloc.as_ref().expect("live");
        if let Ok(Some(f)) = msg.read(AttrType::REQUESTED_ADDRESS_FAMILY, |v, _| {
            attr::decode_family(AttrType::REQUESTED_ADDRESS_FAMILY, v)
        }) {
            let has = a
                .relays
                .iter()
                .flatten()
                .any(|r| r.is_ipv4() == (f == FAMILY_IPV4));
            if !has {
                return Err(Failure::new(443, "Peer Address Family Mismatch"));
            }
        }
        let requested = msg
            .u32_attr(AttrType::LIFETIME)
            .map_err(|_| Failure::new(400, "malformed LIFETIME"))?;
        if requested == Some(0) {
            self.delete(slot, now, EndReason::Deleted, relays);
            return Ok(Success::Lifetime(0));
        }
        let lifetime = self.lifetime(msg)?;
        let a = self.slots[slot as usize].alloc.as_mut().expect("live");
        a.expires = now + lifetime;
        if a.expires < a.scheduled {
            a.scheduled = a.expires;
            let generation = self.slots[slot as usize].generation;
            self.timers.push(Reverse((
                now + lifetime,
                TimerKind::Allocation { slot, generation },
            )));
        }
        Ok(Success::Lifetime(lifetime.as_secs() as u32))
    }

    fn check_peer(&self, a: &Allocation, peer: SocketAddr) -> Result<(), Failure> {
        if a.relay_for(peer.ip()).is_none() {
            return Err(Failure::new(443, "Peer Address Family Mismatch"));
        }
        if self
            .relay_ips
            .contains(&crate::turn::policy::canonical(peer.ip()))
        {
            return Err(Failure::new(403, "Forbidden"));
        }
        self.cfg
            .peer_policy
            .check(peer.ip())
            .map_err(|_| Failure::new(403, "Forbidden"))
    }

    fn create_permission(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        slot: Option<u32>,
    ) -> Result<Success, Failure> {
        let slot = slot.ok_or(Failure::new(437, "Allocation Mismatch"))?;
        let a = self.slots[slot as usize].alloc.as_ref().expect("live");
        let mut n = 0;
        for p in msg.xor_peer_addresses() {
            let p = p.map_err(|_| Failure::new(400, "malformed XOR-PEER-ADDRESS"))?;
            self.check_peer(a, p)?;
            n += 1;
        }
        if n == 0 {
            return Err(Failure::new(400, "missing XOR-PEER-ADDRESS"));
        }
        let max = self.cfg.max_permissions_per_allocation;
        let a = self.slots[slot as usize].alloc.as_mut().expect("live");
        for p in msg.xor_peer_addresses().flatten() {
            if !a.install_permission(p.ip(), now, max) {
                return Err(Failure::new(508, "Insufficient Capacity"));
            }
        }
        Ok(Success::Empty)
    }

    fn channel_bind(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        slot: Option<u32>,
    ) -> Result<Success, Failure> {
        let slot = slot.ok_or(Failure::new(437, "Allocation Mismatch"))?;
        let number = msg
            .read(AttrType::CHANNEL_NUMBER, |v, _| {
                attr::decode_channel_number(v)
            })
            .map_err(|_| Failure::new(400, "invalid CHANNEL-NUMBER"))?
            .ok_or(Failure::new(400, "missing CHANNEL-NUMBER"))?;
        let peer = msg
            .xor_address(AttrType::XOR_PEER_ADDRESS)
            .map_err(|_| Failure::new(400, "malformed XOR-PEER-ADDRESS"))?
            .ok_or(Failure::new(400, "missing XOR-PEER-ADDRESS"))?;
        let a = self.slots[slot as usize].alloc.as_ref().expect("live");
        self.check_peer(a, peer)?;
        let (max_ch, max_perm) = (
            self.cfg.max_channels_per_allocation,
            self.cfg.max_permissions_per_allocation,
        );
        let a = self.slots[slot as usize].alloc.as_mut().expect("live");
        a.bind_channel(number, peer, now, max_ch)
            .map_err(|c| match c {
                BindConflict::NumberInUse => Failure::new(400, "channel bound to another peer"),
                BindConflict::PeerInUse => Failure::new(400, "peer bound to another channel"),
                BindConflict::TooMany => Failure::new(508, "Insufficient Capacity"),
            })?;
        if !a.install_permission(peer.ip(), now, max_perm) {
            return Err(Failure::new(508, "Insufficient Capacity"));
        }
        Ok(Success::Empty)
    }
}

fn derive(seed: &[u8; 32], label: &[u8], counter: u64) -> [u8; 32] {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(seed).expect("any key length");
    mac.update(label);
    mac.update(&counter.to_be_bytes());
    mac.finalize().into_bytes().into()
}

fn sign_with(e: &mut Encoder<'_>, who: &Authenticated) -> Result<(), crate::message::EncodeError> {
    if who.sha256_integrity {
        e.message_integrity_sha256(who.key.as_bytes())
    } else {
        e.message_integrity(who.key.as_bytes())
    }
}

#[derive(Debug, Clone, Copy)]
struct Failure {
    code: u16,
    reason: &'static str,
}

impl Failure {
    fn new(code: u16, reason: &'static str) -> Self {
        Failure { code, reason }
    }
}

enum Success {
    Allocated {
        relays: [Option<SocketAddr>; 2],
        lifetime: u32,
        token: Option<[u8; 8]>,
        family_error: Option<u16>,
    },
    Lifetime(u32),
    Empty,
}

impl Success {
    fn write(
        &self,
        e: &mut Encoder<'_>,
        client: SocketAddr,
    ) -> Result<(), crate::message::EncodeError> {
        match self {
            Success::Allocated {
                relays,
                lifetime,
                token,
                family_error,
            } => {
                for r in relays.iter().flatten() {
                    e.xor_address(AttrType::XOR_RELAYED_ADDRESS, *r)?;
                }
                e.u32_attr(AttrType::LIFETIME, *lifetime)?;
                if let Some(t) = token {
                    e.attr(AttrType::RESERVATION_TOKEN, t)?;
                }
                if let Some(code) = family_error {
                    let reason = if *code == 440 {
                        "Address Family not Supported"
                    } else {
                        "Insufficient Capacity"
                    };
                    e.attr_with(AttrType::ADDRESS_ERROR_CODE, 4 + reason.len(), |out| {
                        out[0] = FAMILY_IPV6;
                        out[1] = 0;
                        out[2] = (code / 100) as u8;
                        out[3] = (code % 100) as u8;
                        out[4..].copy_from_slice(reason.as_bytes());
                    })?;
                }
                e.xor_address(AttrType::XOR_MAPPED_ADDRESS, client)
            }
            Success::Lifetime(l) => e.u32_attr(AttrType::LIFETIME, *l),
            Success::Empty => Ok(()),
        }
    }
}
