//! The sans-IO TURN server driven through a simulated clock, with a fake relay-port
//! provider and a small test client built on the crate's encoder.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use confab_stun::attr::{AttrType, PasswordAlgorithm};
use confab_stun::credentials::{LongTermKey, mint_rest_credentials, userhash};
use confab_stun::framing;
use confab_stun::message::{Class, Encoder, Message, Method, TransactionId};
use confab_stun::turn::{
    AuthConfig, ClientSend, EndReason, Event, Family, FiveTuple, PEER_HEADROOM, PEER_TAILROOM,
    Parity, PeerSend, RelayError, RelayPorts, Server, ServerConfig, Transport,
};

const REALM: &str = "edge.example.com";
const SECRET: &[u8] = b"current-secret";
const OLD_SECRET: &[u8] = b"previous-secret";
const UNIX0: u64 = 1_800_000_000;
const PEER: &str = "198.51.99.7:5000";

/// Relay ports 50000.. on 203.0.114.1 / 2001:db9::1, with a capacity.
#[derive(Default)]
struct FakeRelays {
    open: HashSet<SocketAddr>,
    next: u16,
    capacity: usize,
    no_v6: bool,
}

impl FakeRelays {
    fn new(capacity: usize) -> Self {
        FakeRelays {
            next: 50_000,
            capacity,
            ..Default::default()
        }
    }
}

impl RelayPorts for FakeRelays {
    fn open(&mut self, family: Family, parity: Parity) -> Result<SocketAddr, RelayError> {
        if family == Family::V6 && self.no_v6 {
            return Err(RelayError::FamilyNotSupported);
        }
        if self.open.len() >= self.capacity {
            return Err(RelayError::Exhausted);
        }
        if parity == Parity::Even && self.next % 2 == 1 {
            self.next += 1;
        }
        let ip = if family == Family::V4 {
            "203.0.114.1"
        } else {
            "2001:db9::1"
        };
        let a = SocketAddr::new(ip.parse().unwrap(), self.next);
        self.next += 1;
        self.open.insert(a);
        Ok(a)
    }
    fn open_at(&mut self, addr: SocketAddr) -> Result<(), RelayError> {
        if !self.open.insert(addr) {
            return Err(RelayError::Exhausted);
        }
        self.next = self.next.max(addr.port() + 1);
        Ok(())
    }
    fn close(&mut self, addr: SocketAddr) {
        assert!(self.open.remove(&addr), "closing {addr} which is not open");
    }
}

fn config() -> ServerConfig {
    let mut cfg = ServerConfig::new(AuthConfig {
        realm: REALM.into(),
        rest_secrets: vec![SECRET.to_vec(), OLD_SECRET.to_vec()],
        static_users: vec![("phone1".into(), "device-password".into())],
        password_algorithms: vec![PasswordAlgorithm::Sha256, PasswordAlgorithm::Md5],
        username_anonymity: false,
        nonce_lifetime: Duration::from_secs(600),
        failure_burst: 3,
        failure_refill: Duration::from_secs(10),
    });
    cfg.max_allocations_per_user = 2;
    cfg
}

struct World {
    server: Server,
    relays: FakeRelays,
    t0: Instant,
    now: Instant,
}

impl World {
    fn new(cfg: ServerConfig) -> Self {
        let t0 = Instant::now();
        World {
            server: Server::new(cfg, [7; 32], t0, UNIX0),
            relays: FakeRelays::new(100),
            t0,
            now: t0,
        }
    }
    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.server.handle_timeout(self.now, &mut self.relays);
    }
    fn unix(&self) -> u64 {
        UNIX0 + (self.now - self.t0).as_secs()
    }
    /// Sends bytes, returns (relay instruction, responses).
    fn send(&mut self, five: FiveTuple, data: &[u8]) -> (Option<PeerSend>, Vec<Vec<u8>>) {
        let r = self
            .server
            .handle_client(self.now, five, data, &mut self.relays);
        let mut out = Vec::new();
        while let Some(t) = self.server.poll_transmit() {
            assert_eq!(t.five, five);
            out.push(t.data);
        }
        (r, out)
    }
    fn request(&mut self, five: FiveTuple, data: &[u8]) -> Vec<u8> {
        let (r, mut out) = self.send(five, data);
        assert!(r.is_none());
        assert_eq!(out.len(), 1, "expected exactly one response");
        out.pop().unwrap()
    }
    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }
    fn peer_data(
        &mut self,
        relay: SocketAddr,
        peer: SocketAddr,
        payload: &[u8],
    ) -> Option<(ClientSend, Vec<u8>)> {
        let mut buf = vec![0xEE; PEER_HEADROOM + payload.len() + PEER_TAILROOM];
        buf[PEER_HEADROOM..PEER_HEADROOM + payload.len()].copy_from_slice(payload);
        let s = self
            .server
            .handle_peer(self.now, relay, peer, &mut buf, payload.len())?;
        let bytes = buf[s.range.clone()].to_vec();
        Some((s, bytes))
    }
}

fn udp(client: &str) -> FiveTuple {
    FiveTuple {
        transport: Transport::Udp,
        client: client.parse().unwrap(),
        server: "192.0.3.1:3478".parse().unwrap(),
    }
}

/// A TURN client's credential state.
struct Client {
    username: String,
    password: String,
    nonce: Vec<u8>,
    algorithms: Option<Vec<u8>>,
    alg: PasswordAlgorithm,
    sha256_mi: bool,
    n: u32,
}

impl Client {
    fn rest(world: &World, user: &str, secret: &[u8], ttl: u64) -> Self {
        let c = mint_rest_credentials(secret, user, world.unix(), ttl);
        Client::new(&c.username, &c.password)
    }
    fn new(username: &str, password: &str) -> Self {
        Client {
            username: username.into(),
            password: password.into(),
            nonce: Vec::new(),
            algorithms: None,
            alg: PasswordAlgorithm::Md5,
            sha256_mi: false,
            n: 0,
        }
    }
    fn key(&self) -> LongTermKey {
        LongTermKey::derive(self.alg, &self.username, REALM, &self.password)
    }
    fn txid(&mut self) -> TransactionId {
        self.n += 1;
        let mut t = [0xA5; 12];
        t[..4].copy_from_slice(&self.n.to_be_bytes());
        TransactionId(t)
    }
    /// Builds a request; `attrs` adds method-specific attributes.
    fn build(
        &mut self,
        method: Method,
        txid: TransactionId,
        auth: bool,
        attrs: impl FnOnce(&mut Encoder<'_>),
    ) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut e = Encoder::new(&mut buf, method, Class::Request, txid);
        attrs(&mut e);
        if auth {
            e.attr(AttrType::USERNAME, self.username.as_bytes())
                .unwrap();
            e.attr(AttrType::REALM, REALM.as_bytes()).unwrap();
            e.attr(AttrType::NONCE, &self.nonce).unwrap();
            if self.alg == PasswordAlgorithm::Sha256 {
                e.attr(
                    AttrType::PASSWORD_ALGORITHMS,
                    self.algorithms.as_ref().unwrap(),
                )
                .unwrap();
                e.attr(AttrType::PASSWORD_ALGORITHM, &[0, 2, 0, 0]).unwrap();
            }
            let key = self.key();
            if self.sha256_mi {
                e.message_integrity_sha256(key.as_bytes()).unwrap();
            } else {
                e.message_integrity(key.as_bytes()).unwrap();
            }
        }
        e.fingerprint().unwrap();
        e.finish();
        buf
    }
    /// Learns realm/nonce from a 401/438.
    fn learn(&mut self, response: &[u8]) {
        let m = Message::decode(response).unwrap();
        assert_eq!(m.realm().unwrap(), Some(REALM));
        self.nonce = m.nonce().unwrap().unwrap().to_vec();
        self.algorithms = m.get(AttrType::PASSWORD_ALGORITHMS).map(<[u8]>::to_vec);
    }
    /// Sends an authenticated request, handling the initial 401 challenge.
    fn call(
        &mut self,
        w: &mut World,
        five: FiveTuple,
        method: Method,
        attrs: impl Fn(&mut Encoder<'_>),
    ) -> Vec<u8> {
        if self.nonce.is_empty() {
            let txid = self.txid();
            let req = self.build(method, txid, false, &attrs);
            let resp = w.request(five, &req);
            assert_eq!(code(&resp), Some(401));
            self.learn(&resp);
        }
        let txid = self.txid();
        let req = self.build(method, txid, true, &attrs);
        let resp = w.request(five, &req);
        if let Some(438) = code(&resp) {
            self.learn(&resp);
            let txid = self.txid();
            let req = self.build(method, txid, true, &attrs);
            return w.request(five, &req);
        }
        resp
    }
    fn verify(&self, response: &[u8]) {
        let m = Message::decode(response).unwrap();
        if self.sha256_mi {
            m.verify_integrity_sha256(self.key().as_bytes()).unwrap();
        } else {
            m.verify_integrity(self.key().as_bytes()).unwrap();
        }
    }
}

fn code(response: &[u8]) -> Option<u16> {
    let m = Message::decode(response).unwrap();
    m.error_code().unwrap().map(|e| e.code)
}

fn udp_transport(e: &mut Encoder<'_>) {
    e.u32_attr(AttrType::REQUESTED_TRANSPORT, 17 << 24).unwrap();
}

fn allocate(w: &mut World, c: &mut Client, five: FiveTuple) -> SocketAddr {
    let resp = c.call(w, five, Method::ALLOCATE, udp_transport);
    assert_eq!(
        code(&resp),
        None,
        "allocate failed: {:?}",
        Message::decode(&resp).unwrap().error_code()
    );
    c.verify(&resp);
    let m = Message::decode(&resp).unwrap();
    assert_eq!(
        m.xor_address(AttrType::XOR_MAPPED_ADDRESS).unwrap(),
        Some(five.client)
    );
    m.xor_address(AttrType::XOR_RELAYED_ADDRESS)
        .unwrap()
        .unwrap()
}

fn peer_attr(peer: SocketAddr) -> impl Fn(&mut Encoder<'_>) {
    move |e| e.xor_address(AttrType::XOR_PEER_ADDRESS, peer).unwrap()
}

fn permit(w: &mut World, c: &mut Client, five: FiveTuple, peer: SocketAddr) -> Option<u16> {
    let r = c.call(w, five, Method::CREATE_PERMISSION, peer_attr(peer));
    code(&r)
}

fn bind(w: &mut World, c: &mut Client, five: FiveTuple, ch: u16, peer: SocketAddr) -> Option<u16> {
    let r = c.call(w, five, Method::CHANNEL_BIND, move |e| {
        e.u32_attr(AttrType::CHANNEL_NUMBER, u32::from(ch) << 16)
            .unwrap();
        e.xor_address(AttrType::XOR_PEER_ADDRESS, peer).unwrap();
    });
    code(&r)
}

fn send_indication(peer: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut e = Encoder::new(
        &mut buf,
        Method::SEND,
        Class::Indication,
        TransactionId([9; 12]),
    );
    e.xor_address(AttrType::XOR_PEER_ADDRESS, peer).unwrap();
    e.attr(AttrType::DATA, data).unwrap();
    e.finish();
    buf
}

fn channel_data(ch: u16, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0; 4];
    framing::encode_channel_header(ch, data.len() as u16, &mut b);
    b.extend_from_slice(data);
    b
}

#[test]
fn binding_answers_with_the_mapped_address_and_420_for_unknown_attributes() {
    let mut w = World::new(config());
    let five = udp("192.0.2.10:40000");
    let mut c = Client::new("x", "y");
    let txid = c.txid();
    let req = c.build(Method::BINDING, txid, false, |_| {});
    let m_bytes = w.request(five, &req);
    let m = Message::decode(&m_bytes).unwrap();
    assert_eq!(
        (m.method(), m.class(), m.transaction_id()),
        (Method::BINDING, Class::Success, txid)
    );
    assert_eq!(
        m.xor_address(AttrType::XOR_MAPPED_ADDRESS).unwrap(),
        Some(five.client)
    );
    assert!(m.has_fingerprint());

    let req = c.build(Method::BINDING, txid, false, |e| {
        e.attr(AttrType(0x0042), b"?").unwrap()
    });
    let resp = w.request(five, &req);
    assert_eq!(code(&resp), Some(420));
    let m = Message::decode(&resp).unwrap();
    let unknown: Vec<u16> =
        confab_stun::attr::unknown_attributes(m.get(AttrType::UNKNOWN_ATTRIBUTES).unwrap())
            .unwrap()
            .collect();
    assert_eq!(unknown, vec![0x0042]);
}

#[test]
fn allocate_challenge_then_success_with_rest_credentials() {
    let mut w = World::new(config());
    let five = udp("192.0.2.10:40000");
    let mut c = Client::rest(&w, "alice@example.com", SECRET, 3600);
    let txid = c.txid();
    let resp = w.request(five, &c.build(Method::ALLOCATE, txid, false, udp_transport));
    assert_eq!(code(&resp), Some(401));
    let m = Message::decode(&resp).unwrap();
    assert!(!m.has_integrity(), "a 401 is not signed");
    // Nonce cookie advertising password algorithms (bit 0).
    assert!(m.nonce().unwrap().unwrap().starts_with(b"obMatJos2AAAB"));
    assert_eq!(
        m.get(AttrType::PASSWORD_ALGORITHMS),
        Some(&[0, 2, 0, 0, 0, 1, 0, 0][..])
    );
    c.learn(&resp);
    let relay = allocate(&mut w, &mut c, five);
    assert_eq!(relay.ip().to_string(), "203.0.114.1");
    assert_eq!(w.server.allocations(), 1);
    match &w.events()[..] {
        [Event::AllocationCreated { user, relays, .. }] => {
            assert_eq!(user, "alice@example.com");
            assert_eq!(relays, &vec![relay]);
        }
        other => panic!("unexpected events {other:?}"),
    }
}

#[test]
fn rest_credentials_rotation_expiry_and_wrong_password() {
    let mut w = World::new(config());
    // The previous secret is still accepted.
    let mut old = Client::rest(&w, "bob", OLD_SECRET, 60);
    allocate(&mut w, &mut old, udp("192.0.2.11:1"));
    // An unknown secret is not.
    let mut bad = Client::rest(&w, "bob", b"not-a-secret", 60);
    let r = bad.call(&mut w, udp("192.0.2.12:1"), Method::ALLOCATE, udp_transport);
    assert_eq!(code(&r), Some(401));
    // Expired credentials: minted with a TTL already past.
    let mut expired = Client::rest(&w, "carol", SECRET, 60);
    w.advance(Duration::from_secs(61));
    let r = expired.call(&mut w, udp("192.0.2.13:1"), Method::ALLOCATE, udp_transport);
    assert_eq!(code(&r), Some(401));
}

#[test]
fn failed_authentication_is_rate_limited_per_source() {
    let mut w = World::new(config());
    let five = udp("192.0.2.20:1000");
    let mut bad = Client::new("1900000000:mallory", "guess");
    // Burst of 3 failures answered with 401, then silence.
    for _ in 0..3 {
        let r = bad.call(&mut w, five, Method::ALLOCATE, udp_transport);
        assert_eq!(code(&r), Some(401));
    }
    let txid = bad.txid();
    let (_, out) = w.send(
        five,
        &bad.build(Method::ALLOCATE, txid, true, udp_transport),
    );
    assert!(out.is_empty(), "rate-limited source gets no answer");
    assert_eq!(w.server.stats().rate_limited, 1);
    // Another source is not affected.
    let mut good = Client::rest(&w, "dave", SECRET, 3600);
    allocate(&mut w, &mut good, udp("192.0.2.21:1000"));
    // After the refill interval the source may try again.
    w.advance(Duration::from_secs(10));
    let (_, out) = w.send(
        five,
        &bad.build(Method::ALLOCATE, txid, true, udp_transport),
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn stale_nonce_gets_438_with_a_fresh_nonce() {
    let mut cfg = config();
    cfg.auth.nonce_lifetime = Duration::from_secs(300);
    let mut w = World::new(cfg);
    let five = udp("192.0.2.30:1000");
    let mut c = Client::rest(&w, "erin", SECRET, 86_400);
    allocate(&mut w, &mut c, five);
    w.advance(Duration::from_secs(301));
    let txid = c.txid();
    let resp = w.request(five, &c.build(Method::REFRESH, txid, true, |_| {}));
    assert_eq!(code(&resp), Some(438));
    let old = c.nonce.clone();
    c.learn(&resp);
    assert_ne!(c.nonce, old);
    let resp = c.call(&mut w, five, Method::REFRESH, |_| {});
    assert_eq!(code(&resp), None);
}

#[test]
fn nonce_is_bound_to_the_client_address() {
    let mut w = World::new(config());
    let mut c = Client::rest(&w, "frank", SECRET, 86_400);
    allocate(&mut w, &mut c, udp("192.0.2.31:1000"));
    // The same nonce from another IP is stale there.
    let txid = c.txid();
    let resp = w.request(
        udp("192.0.2.32:1000"),
        &c.build(Method::ALLOCATE, txid, true, udp_transport),
    );
    assert_eq!(code(&resp), Some(438));
}

#[test]
fn sha256_password_algorithm_and_integrity() {
    let mut w = World::new(config());
    let five = udp("192.0.2.40:1000");
    let mut c = Client::rest(&w, "gina", SECRET, 3600);
    c.alg = PasswordAlgorithm::Sha256;
    c.sha256_mi = true;
    allocate(&mut w, &mut c, five);
    // A PASSWORD-ALGORITHMS list that differs from the server's is a downgrade attempt: 400.
    c.algorithms = Some(vec![0, 2, 0, 0]);
    let txid = c.txid();
    let resp = w.request(five, &c.build(Method::REFRESH, txid, true, |_| {}));
    assert_eq!(code(&resp), Some(400));
}

#[test]
fn static_user_by_username_and_by_userhash() {
    let mut cfg = config();
    cfg.auth.username_anonymity = true;
    let mut w = World::new(cfg);
    let mut c = Client::new("phone1", "device-password");
    allocate(&mut w, &mut c, udp("192.0.2.50:1000"));
    assert!(c.nonce.starts_with(b"obMatJos2AAAD"));
    // USERHASH instead of USERNAME.
    let five = udp("192.0.2.51:1000");
    let txid = c.txid();
    let mut buf = Vec::new();
    let mut e = Encoder::new(&mut buf, Method::ALLOCATE, Class::Request, txid);
    udp_transport(&mut e);
    e.attr(AttrType::USERHASH, &userhash("phone1", REALM))
        .unwrap();
    e.attr(AttrType::REALM, REALM.as_bytes()).unwrap();
    let nonce_resp = w.request(
        five,
        &c.build(
            Method::ALLOCATE,
            TransactionId([99; 12]),
            false,
            udp_transport,
        ),
    );
    c.learn(&nonce_resp);
    e.attr(AttrType::NONCE, &c.nonce).unwrap();
    e.message_integrity(c.key().as_bytes()).unwrap();
    e.finish();
    let resp = w.request(five, &buf);
    assert_eq!(code(&resp), None);
    c.verify(&resp);
}

#[test]
fn permissions_gate_relaying_both_ways_and_expire() {
    let mut w = World::new(config());
    let five = udp("192.0.2.60:1000");
    let mut c = Client::rest(&w, "hana", SECRET, 86_400);
    let relay = allocate(&mut w, &mut c, five);
    let peer: SocketAddr = PEER.parse().unwrap();

    // Nothing relayed without a permission, either way.
    let ind = send_indication(peer, b"hello");
    assert_eq!(w.send(five, &ind), (None, vec![]));
    assert!(w.peer_data(relay, peer, b"hi").is_none());

    // Forbidden peers.
    for bad in [
        "127.0.0.1:9",
        "10.0.0.1:9",
        "169.254.0.1:9",
        "224.0.0.1:9",
        "203.0.114.1:9",
        "0.0.0.0:9",
    ] {
        let bad: SocketAddr = bad.parse().unwrap();
        assert_eq!(permit(&mut w, &mut c, five, bad), Some(403), "{bad}");
    }
    // Family mismatch.
    assert_eq!(
        permit(&mut w, &mut c, five, "[2001:4860::1]:9".parse().unwrap()),
        Some(443)
    );

    assert_eq!(permit(&mut w, &mut c, five, peer), None);
    let (send, out) = w.send(five, &ind);
    assert!(out.is_empty());
    let send = send.expect("relayed");
    assert_eq!((send.relay, send.peer), (relay, peer));
    assert_eq!(&ind[send.payload.clone()], b"hello");

    // Peer -> client as a Data indication (no channel), from any port of the permitted IP.
    let other_port = SocketAddr::new(peer.ip(), 6000);
    let (to, bytes) = w
        .peer_data(relay, other_port, b"world!")
        .expect("permitted");
    assert_eq!(to.five, five);
    let m = Message::decode(&bytes).unwrap();
    assert_eq!((m.method(), m.class()), (Method::DATA, Class::Indication));
    assert_eq!(
        m.xor_address(AttrType::XOR_PEER_ADDRESS).unwrap(),
        Some(other_port)
    );
    assert_eq!(m.get(AttrType::DATA), Some(&b"world!"[..]));

    // Permissions last 300 s.
    w.advance(Duration::from_secs(299));
    assert!(w.send(five, &ind).0.is_some());
    w.advance(Duration::from_secs(2));
    assert!(w.send(five, &ind).0.is_none());
    assert!(w.peer_data(relay, peer, b"late").is_none());
}

#[test]
fn internal_networks_and_loopback_are_explicit_options() {
    let mut cfg = config();
    cfg.peer_policy.internal_networks = vec!["10.0.0.0/8".parse().unwrap()];
    cfg.peer_policy.allow_loopback = true;
    let mut w = World::new(cfg);
    let five = udp("192.0.2.61:1000");
    let mut c = Client::rest(&w, "ines", SECRET, 86_400);
    allocate(&mut w, &mut c, five);
    assert_eq!(
        permit(&mut w, &mut c, five, "10.1.2.3:9".parse().unwrap()),
        None
    );
    assert_eq!(
        permit(&mut w, &mut c, five, "127.0.0.1:9".parse().unwrap()),
        None
    );
    assert_eq!(
        permit(&mut w, &mut c, five, "192.168.1.1:9".parse().unwrap()),
        Some(403)
    );
}

#[test]
fn channels_relay_channel_data_with_stream_padding_and_expire() {
    let mut w = World::new(config());
    let tcp = FiveTuple {
        transport: Transport::Tcp,
        ..udp("192.0.2.70:1000")
    };
    let mut c = Client::rest(&w, "jon", SECRET, 86_400);
    let relay = allocate(&mut w, &mut c, tcp);
    let r = c.call(&mut w, tcp, Method::REFRESH, |e| {
        e.u32_attr(AttrType::LIFETIME, 3600).unwrap()
    });
    assert_eq!(code(&r), None);
    let peer: SocketAddr = PEER.parse().unwrap();
    let other: SocketAddr = "198.51.99.8:5000".parse().unwrap();

    assert_eq!(bind(&mut w, &mut c, tcp, 0x3FFF, peer), Some(400));
    assert_eq!(bind(&mut w, &mut c, tcp, 0x8000, peer), Some(400));
    assert_eq!(
        bind(&mut w, &mut c, tcp, 0x4000, "10.0.0.1:1".parse().unwrap()),
        Some(403)
    );
    assert_eq!(bind(&mut w, &mut c, tcp, 0x4000, peer), None);
    assert_eq!(
        bind(&mut w, &mut c, tcp, 0x4000, peer),
        None,
        "refresh is allowed"
    );
    assert_eq!(
        bind(&mut w, &mut c, tcp, 0x4000, other),
        Some(400),
        "number taken"
    );
    assert_eq!(
        bind(&mut w, &mut c, tcp, 0x4001, peer),
        Some(400),
        "peer taken"
    );

    // Client -> peer.
    let cd = channel_data(0x4000, b"abcde");
    let send = w.send(tcp, &cd).0.expect("relayed");
    assert_eq!(
        (send.relay, send.peer, &cd[send.payload.clone()]),
        (relay, peer, &b"abcde"[..])
    );
    assert!(
        w.send(tcp, &channel_data(0x4001, b"x")).0.is_none(),
        "unbound channel"
    );

    // Peer -> client: ChannelData padded to 4 on a stream.
    let (to, bytes) = w.peer_data(relay, peer, b"12345").unwrap();
    assert_eq!(to.five, tcp);
    assert_eq!(
        bytes,
        [
            0x40, 0x00, 0x00, 0x05, b'1', b'2', b'3', b'4', b'5', 0, 0, 0
        ]
    );

    // The binding implies a permission (300 s); refresh the permission, then the channel
    // runs out at 600 s.
    w.advance(Duration::from_secs(290));
    assert_eq!(permit(&mut w, &mut c, tcp, peer), None);
    w.advance(Duration::from_secs(290));
    assert!(w.send(tcp, &cd).0.is_some());
    assert_eq!(permit(&mut w, &mut c, tcp, peer), None);
    w.advance(Duration::from_secs(21));
    assert!(w.send(tcp, &cd).0.is_none(), "channel expired");
    // Data from the peer now comes as a Data indication (the permission is still alive).
    let (_, bytes) = w.peer_data(relay, peer, b"z").unwrap();
    assert_eq!(Message::decode(&bytes).unwrap().method(), Method::DATA);
    // The expired number cannot be rebound to another peer during the cool-down.
    assert_eq!(bind(&mut w, &mut c, tcp, 0x4000, other), Some(400));
}

#[test]
fn udp_channel_data_is_not_padded() {
    let mut w = World::new(config());
    let five = udp("192.0.2.71:1000");
    let mut c = Client::rest(&w, "kim", SECRET, 86_400);
    let relay = allocate(&mut w, &mut c, five);
    let peer: SocketAddr = PEER.parse().unwrap();
    assert_eq!(bind(&mut w, &mut c, five, 0x4abc, peer), None);
    let (_, bytes) = w.peer_data(relay, peer, b"12345").unwrap();
    assert_eq!(
        bytes,
        [0x4a, 0xbc, 0x00, 0x05, b'1', b'2', b'3', b'4', b'5']
    );
}

#[track_caller]
fn check_lifetime(requested: Option<u32>, granted: u32) {
    let mut w = World::new(config());
    let five = udp("192.0.2.80:1000");
    let mut c = Client::rest(&w, "lee", SECRET, 86_400);
    allocate(&mut w, &mut c, five);
    let resp = c.call(&mut w, five, Method::REFRESH, move |e| {
        if let Some(l) = requested {
            e.u32_attr(AttrType::LIFETIME, l).unwrap();
        }
    });
    assert_eq!(code(&resp), None);
    assert_eq!(
        Message::decode(&resp)
            .unwrap()
            .u32_attr(AttrType::LIFETIME)
            .unwrap(),
        Some(granted)
    );
}

#[test]
fn refresh_lifetimes_are_clamped() {
    check_lifetime(None, 600);
    check_lifetime(Some(10), 600);
    check_lifetime(Some(1200), 1200);
    check_lifetime(Some(100_000), 3600);
}

#[test]
fn allocation_expiry_and_deletion_emit_usage_records() {
    let mut w = World::new(config());
    let five = udp("192.0.2.90:1000");
    let mut c = Client::rest(&w, "mia", SECRET, 86_400);
    let relay = allocate(&mut w, &mut c, five);
    let peer: SocketAddr = PEER.parse().unwrap();
    assert_eq!(permit(&mut w, &mut c, five, peer), None);
    w.send(five, &send_indication(peer, b"1234567")).0.unwrap();
    w.peer_data(relay, peer, b"123").unwrap();
    w.events();
    assert_eq!(
        w.server.poll_timeout(),
        Some(w.t0 + Duration::from_secs(600))
    );
    w.advance(Duration::from_secs(599));
    assert_eq!(w.server.allocations(), 1);
    w.advance(Duration::from_secs(1));
    assert_eq!(w.server.allocations(), 0);
    assert!(w.relays.open.is_empty(), "relay port closed");
    match &w.events()[..] {
        [Event::AllocationEnded(u)] => {
            assert_eq!(u.user, "mia");
            assert_eq!(u.end, EndReason::Expired);
            assert_eq!((u.bytes_to_peers, u.bytes_from_peers), (7, 3));
            assert_eq!((u.packets_to_peers, u.packets_from_peers), (1, 1));
            assert_eq!(u.duration, Duration::from_secs(600));
            assert_eq!(u.started_unix, UNIX0);
            assert_eq!(u.relays, vec![relay]);
            assert_eq!(u.client, five.client);
        }
        other => panic!("unexpected {other:?}"),
    }
    // Refresh with LIFETIME 0 deletes at once.
    let mut c = Client::rest(&w, "mia", SECRET, 86_400);
    allocate(&mut w, &mut c, five);
    w.events();
    let resp = c.call(&mut w, five, Method::REFRESH, |e| {
        e.u32_attr(AttrType::LIFETIME, 0).unwrap()
    });
    assert_eq!(
        Message::decode(&resp)
            .unwrap()
            .u32_attr(AttrType::LIFETIME)
            .unwrap(),
        Some(0)
    );
    assert!(matches!(&w.events()[..], [Event::AllocationEnded(u)] if u.end == EndReason::Deleted));
    // Refresh without an allocation: 437.
    let resp = c.call(&mut w, five, Method::REFRESH, |_| {});
    assert_eq!(code(&resp), Some(437));
}

#[test]
fn tcp_connection_close_ends_the_allocation() {
    let mut w = World::new(config());
    let tcp = FiveTuple {
        transport: Transport::Tcp,
        ..udp("192.0.2.91:1000")
    };
    let mut c = Client::rest(&w, "nia", SECRET, 86_400);
    allocate(&mut w, &mut c, tcp);
    w.events();
    assert!(w.server.has_allocation(&tcp));
    w.server.handle_connection_closed(w.now, tcp, &mut w.relays);
    assert!(!w.server.has_allocation(&tcp));
    assert!(
        matches!(&w.events()[..], [Event::AllocationEnded(u)] if u.end == EndReason::ConnectionClosed)
    );
    assert!(w.relays.open.is_empty());
}

#[test]
fn quotas_capacity_mismatch_and_retransmission() {
    let mut w = World::new(config());
    let mut c = Client::rest(&w, "olga", SECRET, 86_400);
    allocate(&mut w, &mut c, udp("192.0.2.100:1"));
    allocate(&mut w, &mut c, udp("192.0.2.100:2"));
    let r = c.call(
        &mut w,
        udp("192.0.2.100:3"),
        Method::ALLOCATE,
        udp_transport,
    );
    assert_eq!(code(&r), Some(486));
    c.verify(&r);

    // A second Allocate on the same 5-tuple: 437; the same transaction again: same 200.
    let five = udp("192.0.2.101:1");
    let mut p = Client::rest(&w, "pat", SECRET, 86_400);
    let first = p.call(&mut w, five, Method::ALLOCATE, udp_transport);
    assert_eq!(code(&first), None);
    let txid = Message::decode(&first).unwrap().transaction_id();
    let again = p.build(Method::ALLOCATE, txid, true, udp_transport);
    let resp = w.request(five, &again);
    assert_eq!(
        Message::decode(&resp)
            .unwrap()
            .xor_address(AttrType::XOR_RELAYED_ADDRESS)
            .unwrap(),
        Message::decode(&first)
            .unwrap()
            .xor_address(AttrType::XOR_RELAYED_ADDRESS)
            .unwrap()
    );
    let r = p.call(&mut w, five, Method::ALLOCATE, udp_transport);
    assert_eq!(code(&r), Some(437));

    // Out of relay ports: 508.
    w.relays.capacity = w.relays.open.len();
    let mut q = Client::rest(&w, "quinn", SECRET, 86_400);
    let r = q.call(
        &mut w,
        udp("192.0.2.102:1"),
        Method::ALLOCATE,
        udp_transport,
    );
    assert_eq!(code(&r), Some(508));
}

#[test]
fn draining_redirects_new_allocations() {
    let mut w = World::new(config());
    let alt: SocketAddr = "192.0.3.2:3478".parse().unwrap();
    w.server.set_alternate_server(Some(alt));
    let mut c = Client::rest(&w, "rae", SECRET, 86_400);
    let r = c.call(
        &mut w,
        udp("192.0.2.110:1"),
        Method::ALLOCATE,
        udp_transport,
    );
    assert_eq!(code(&r), Some(300));
    let m = Message::decode(&r).unwrap();
    let v = m.get(AttrType::ALTERNATE_SERVER).unwrap();
    assert_eq!(
        confab_stun::attr::decode_address(AttrType::ALTERNATE_SERVER, v),
        Ok(alt)
    );
}

#[test]
fn bad_requests_and_indications() {
    let mut w = World::new(config());
    let five = udp("192.0.2.120:1");
    let mut c = Client::rest(&w, "sam", SECRET, 86_400);
    // Truncated attribute in a request: 400 naming it.
    let mut req = c.build(
        Method::ALLOCATE,
        TransactionId([1; 12]),
        false,
        udp_transport,
    );
    req.truncate(req.len() - 4);
    req[3] -= 4;
    req[22..24].copy_from_slice(&[0, 9]); // REQUESTED-TRANSPORT claims 9 bytes
    let resp = w.request(five, &req);
    assert_eq!(code(&resp), Some(400));
    let m = Message::decode(&resp).unwrap();
    assert!(
        m.error_code()
            .unwrap()
            .unwrap()
            .reason
            .contains("REQUESTED-TRANSPORT")
    );
    // The same damage in an indication: silence.
    req[1] = 0x16; // Send indication
    assert_eq!(w.send(five, &req), (None, vec![]));
    // Garbage and responses: silence.
    assert_eq!(w.send(five, &[0x80, 1, 2, 3]), (None, vec![]));
    let mut resp_msg = Vec::new();
    Encoder::new(
        &mut resp_msg,
        Method::BINDING,
        Class::Success,
        TransactionId([3; 12]),
    )
    .finish();
    assert_eq!(w.send(five, &resp_msg), (None, vec![]));
    // Unknown method: 400.
    let r = w.request(
        five,
        &c.build(Method(0x0FF), TransactionId([4; 12]), false, |_| {}),
    );
    assert_eq!(code(&r), Some(400));
    // TCP relay allocation: 442. DONT-FRAGMENT: 420. Missing REQUESTED-TRANSPORT: 400.
    let r = c.call(&mut w, five, Method::ALLOCATE, |e| {
        e.u32_attr(AttrType::REQUESTED_TRANSPORT, 6 << 24).unwrap()
    });
    assert_eq!(code(&r), Some(442));
    let r = c.call(&mut w, five, Method::ALLOCATE, |e| {
        udp_transport(e);
        e.attr(AttrType::DONT_FRAGMENT, &[]).unwrap();
    });
    assert_eq!(code(&r), Some(420));
    let r = c.call(&mut w, five, Method::ALLOCATE, |_| {});
    assert_eq!(code(&r), Some(400));
    // CreatePermission without an allocation: 437; without a peer: 400.
    let r = c.call(
        &mut w,
        five,
        Method::CREATE_PERMISSION,
        peer_attr(PEER.parse().unwrap()),
    );
    assert_eq!(code(&r), Some(437));
    allocate(&mut w, &mut c, five);
    let r = c.call(&mut w, five, Method::CREATE_PERMISSION, |_| {});
    assert_eq!(code(&r), Some(400));
}

#[test]
fn other_credentials_on_an_existing_allocation_get_441() {
    let mut w = World::new(config());
    let five = udp("192.0.2.130:1");
    let mut c = Client::rest(&w, "tom", SECRET, 86_400);
    allocate(&mut w, &mut c, five);
    let mut other = Client::rest(&w, "uma", SECRET, 86_400);
    let r = other.call(&mut w, five, Method::REFRESH, |_| {});
    assert_eq!(code(&r), Some(441));
}

#[test]
fn even_port_reservation_and_dual_stack() {
    let mut cfg = config();
    cfg.max_allocations_per_user = 100;
    let mut w = World::new(cfg);
    let mut c = Client::rest(&w, "vic", SECRET, 86_400);
    let r = c.call(&mut w, udp("192.0.2.140:1"), Method::ALLOCATE, |e| {
        udp_transport(e);
        e.attr(AttrType::EVEN_PORT, &[0x80]).unwrap();
    });
    assert_eq!(code(&r), None);
    let m = Message::decode(&r).unwrap();
    let relay = m
        .xor_address(AttrType::XOR_RELAYED_ADDRESS)
        .unwrap()
        .unwrap();
    assert_eq!(relay.port() % 2, 0);
    let token = m.get(AttrType::RESERVATION_TOKEN).unwrap().to_vec();
    let r = c.call(&mut w, udp("192.0.2.140:2"), Method::ALLOCATE, |e| {
        udp_transport(e);
        e.attr(AttrType::RESERVATION_TOKEN, &token).unwrap();
    });
    assert_eq!(code(&r), None);
    let second = Message::decode(&r)
        .unwrap()
        .xor_address(AttrType::XOR_RELAYED_ADDRESS)
        .unwrap()
        .unwrap();
    assert_eq!(second.port(), relay.port() + 1);

    // A reservation is single-use and expires after about 30 s, releasing its port.
    let r = c.call(&mut w, udp("192.0.2.140:3"), Method::ALLOCATE, |e| {
        udp_transport(e);
        e.attr(AttrType::RESERVATION_TOKEN, &token).unwrap();
    });
    assert_eq!(code(&r), Some(508));
    let r = c.call(&mut w, udp("192.0.2.140:4"), Method::ALLOCATE, |e| {
        udp_transport(e);
        e.attr(AttrType::EVEN_PORT, &[0x80]).unwrap();
    });
    let token = Message::decode(&r)
        .unwrap()
        .get(AttrType::RESERVATION_TOKEN)
        .unwrap()
        .to_vec();
    let open_before = w.relays.open.len();
    w.advance(Duration::from_secs(31));
    assert_eq!(
        w.relays.open.len(),
        open_before - 1,
        "reserved port released"
    );
    let r = c.call(&mut w, udp("192.0.2.140:5"), Method::ALLOCATE, |e| {
        udp_transport(e);
        e.attr(AttrType::RESERVATION_TOKEN, &token).unwrap();
    });
    assert_eq!(code(&r), Some(508));

    // A malformed LIFETIME is refused before any relay port is taken.
    let open_before = w.relays.open.len();
    let r = c.call(&mut w, udp("192.0.2.140:6"), Method::ALLOCATE, |e| {
        udp_transport(e);
        e.attr(AttrType::LIFETIME, &[1, 2]).unwrap();
    });
    assert_eq!(code(&r), Some(400));
    assert_eq!(w.relays.open.len(), open_before);

    // Dual stack: ADDITIONAL-ADDRESS-FAMILY IPv6.
    let mut d = Client::rest(&w, "wes", SECRET, 86_400);
    let r = d.call(&mut w, udp("192.0.2.141:1"), Method::ALLOCATE, |e| {
        udp_transport(e);
        e.u32_attr(AttrType::ADDITIONAL_ADDRESS_FAMILY, 2 << 24)
            .unwrap();
    });
    let m = Message::decode(&r).unwrap();
    let relays: Vec<_> = m
        .attributes()
        .filter(|a| a.typ == AttrType::XOR_RELAYED_ADDRESS)
        .collect();
    assert_eq!(relays.len(), 2);
    // IPv6 only when asked.
    w.relays.no_v6 = true;
    let r = d.call(&mut w, udp("192.0.2.141:2"), Method::ALLOCATE, |e| {
        udp_transport(e);
        e.u32_attr(AttrType::REQUESTED_ADDRESS_FAMILY, 2 << 24)
            .unwrap();
    });
    assert_eq!(code(&r), Some(440));
}

#[test]
fn thousands_of_allocations_share_one_timer_heap() {
    let mut cfg = config();
    cfg.max_allocations_per_user = 10_000;
    let mut w = World::new(cfg);
    w.relays.capacity = 10_000;
    let mut c = Client::rest(&w, "bulk", SECRET, 86_400);
    for i in 0..5000u32 {
        let five = udp(&format!(
            "192.0.{}.{}:{}",
            10 + i / 250,
            i % 250 + 1,
            1000 + i % 7
        ));
        allocate(&mut w, &mut c, five);
        if i % 1000 == 0 {
            w.advance(Duration::from_secs(60));
        }
    }
    assert_eq!(w.server.allocations(), 5000);
    w.events();
    w.advance(Duration::from_secs(3600));
    assert_eq!(w.server.allocations(), 0);
    assert_eq!(w.events().len(), 5000);
    assert_eq!(w.server.poll_timeout(), None);
    assert!(w.relays.open.is_empty());
}

#[test]
fn bandwidth_quota_drops_excess() {
    let mut cfg = config();
    cfg.user_bandwidth_bytes_per_s = 1000;
    let mut w = World::new(cfg);
    let five = udp("192.0.2.150:1");
    let mut c = Client::rest(&w, "xia", SECRET, 86_400);
    allocate(&mut w, &mut c, five);
    let peer: SocketAddr = PEER.parse().unwrap();
    assert_eq!(bind(&mut w, &mut c, five, 0x4000, peer), None);
    let cd = channel_data(0x4000, &[0; 400]);
    let passed = (0..5).filter(|_| w.send(five, &cd).0.is_some()).count();
    assert_eq!(passed, 2, "1000 bytes of burst");
    w.advance(Duration::from_millis(400));
    assert!(w.send(five, &cd).0.is_some());
}
