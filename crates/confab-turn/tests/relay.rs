//! The relay over real sockets with a small client built on confab-stun: IPv4 and IPv6,
//! Send/Data indications and ChannelData end to end, draining, usage spooling.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use confab_stun::attr::{self, AttrType, PasswordAlgorithm};
use confab_stun::credentials::LongTermKey;
use confab_stun::framing;
use confab_stun::message::{Class, Encoder, Message, Method, TransactionId};
use confab_turn::{StaticUser, TurnConfig, TurnHandle, serve};

const REALM: &str = "relay.test";

fn config(listen: &str, ports: (u16, u16), dir: &std::path::Path) -> TurnConfig {
    TurnConfig {
        realm: REALM.into(),
        listen_udp: vec![listen.parse().unwrap()],
        listen_tcp: vec![],
        min_port: ports.0,
        max_port: ports.1,
        static_users: vec![StaticUser {
            username: "dev".into(),
            password: "pw".into(),
        }],
        allow_loopback_peers: true,
        workers: 1,
        usage_spool: Some(dir.join("usage.jsonl")),
        ..TurnConfig::default()
    }
}

struct Client {
    sock: UdpSocket,
    server: SocketAddr,
    nonce: Vec<u8>,
    n: u32,
}

impl Client {
    fn new(local: &str, server: SocketAddr) -> Client {
        let sock = UdpSocket::bind(local).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        Client {
            sock,
            server,
            nonce: Vec::new(),
            n: 0,
        }
    }
    fn key() -> LongTermKey {
        LongTermKey::derive(PasswordAlgorithm::Md5, "dev", REALM, "pw")
    }
    fn recv(&self) -> Vec<u8> {
        let mut buf = vec![0; 2048];
        let n = self.sock.recv(&mut buf).expect("an answer from the relay");
        buf.truncate(n);
        buf
    }
    /// An authenticated request (answering the 401 challenge first); returns the response.
    fn call(&mut self, method: Method, attrs: impl Fn(&mut Encoder<'_>)) -> Vec<u8> {
        for _ in 0..2 {
            self.n += 1;
            let mut t = [7u8; 12];
            t[..4].copy_from_slice(&self.n.to_be_bytes());
            let mut buf = Vec::new();
            let mut e = Encoder::new(&mut buf, method, Class::Request, TransactionId(t));
            attrs(&mut e);
            if !self.nonce.is_empty() {
                e.attr(AttrType::USERNAME, b"dev").unwrap();
                e.attr(AttrType::REALM, REALM.as_bytes()).unwrap();
                e.attr(AttrType::NONCE, &self.nonce).unwrap();
                e.message_integrity(Self::key().as_bytes()).unwrap();
            }
            e.finish();
            self.sock.send_to(&buf, self.server).unwrap();
            let resp = self.recv();
            let m = Message::decode(&resp).unwrap();
            match m.error_code().unwrap().map(|e| e.code) {
                Some(401 | 438) => self.nonce = m.nonce().unwrap().unwrap().to_vec(),
                _ => return resp,
            }
        }
        panic!("authentication did not succeed");
    }
}

fn code(resp: &[u8]) -> Option<u16> {
    Message::decode(resp)
        .unwrap()
        .error_code()
        .unwrap()
        .map(|e| e.code)
}

fn transport(e: &mut Encoder<'_>) {
    e.u32_attr(AttrType::REQUESTED_TRANSPORT, 17 << 24).unwrap();
}

fn stop(handle: TurnHandle) -> Vec<confab_turn::UsageLine> {
    let spool = handle.spool().cloned().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(handle.shutdown());
    spool.read_from(0, 1000).unwrap().0
}

#[test]
fn ipv4_send_data_and_channel_data_end_to_end_with_usage_record() {
    let dir = tempfile::tempdir().unwrap();
    let handle = serve(config("127.0.0.1:0", (42000, 42099), dir.path())).unwrap();
    let server = handle.udp_addrs()[0];
    let mut c = Client::new("127.0.0.1:0", server);
    let peer = UdpSocket::bind("127.0.0.2:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let peer_addr = peer.local_addr().unwrap();

    let r = c.call(Method::ALLOCATE, transport);
    assert_eq!(code(&r), None);
    let relay = Message::decode(&r)
        .unwrap()
        .xor_address(AttrType::XOR_RELAYED_ADDRESS)
        .unwrap()
        .unwrap();
    assert!((42000..=42099).contains(&relay.port()), "{relay}");
    Message::decode(&r)
        .unwrap()
        .verify_integrity(Client::key().as_bytes())
        .unwrap();

    // A private peer is refused; the loopback peer is allowed by the test-only switch.
    let r = c.call(Method::CREATE_PERMISSION, |e| {
        e.xor_address(AttrType::XOR_PEER_ADDRESS, "10.0.0.1:9".parse().unwrap())
            .unwrap()
    });
    assert_eq!(code(&r), Some(403));
    let r = c.call(Method::CREATE_PERMISSION, |e| {
        e.xor_address(AttrType::XOR_PEER_ADDRESS, peer_addr)
            .unwrap()
    });
    assert_eq!(code(&r), None);

    // Send indication -> peer, from the relay address.
    let mut ind = Vec::new();
    let mut e = Encoder::new(
        &mut ind,
        Method::SEND,
        Class::Indication,
        TransactionId([1; 12]),
    );
    e.xor_address(AttrType::XOR_PEER_ADDRESS, peer_addr)
        .unwrap();
    e.attr(AttrType::DATA, b"ping").unwrap();
    e.finish();
    c.sock.send_to(&ind, server).unwrap();
    let mut buf = [0u8; 100];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], relay));

    // Peer -> client as a Data indication.
    peer.send_to(b"pong", relay).unwrap();
    let d = c.recv();
    let m = Message::decode(&d).unwrap();
    assert_eq!((m.method(), m.class()), (Method::DATA, Class::Indication));
    assert_eq!(m.get(AttrType::DATA), Some(&b"pong"[..]));
    assert_eq!(
        m.xor_address(AttrType::XOR_PEER_ADDRESS).unwrap(),
        Some(peer_addr)
    );

    // ChannelBind, then ChannelData both ways.
    let r = c.call(Method::CHANNEL_BIND, |e| {
        e.u32_attr(AttrType::CHANNEL_NUMBER, 0x4001 << 16).unwrap();
        e.xor_address(AttrType::XOR_PEER_ADDRESS, peer_addr)
            .unwrap();
    });
    assert_eq!(code(&r), None);
    c.sock
        .send_to(&[0x40, 0x01, 0x00, 0x03, b'a', b'b', b'c'], server)
        .unwrap();
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"abc");
    peer.send_to(b"xyz!", relay).unwrap();
    let cd = c.recv();
    assert_eq!(
        framing::decode_channel_data(&cd),
        Ok((0x4001, &b"xyz!"[..]))
    );

    // Refresh with LIFETIME 0 deletes; the usage record is spooled.
    let r = c.call(Method::REFRESH, |e| {
        e.u32_attr(AttrType::LIFETIME, 0).unwrap()
    });
    assert_eq!(code(&r), None);
    std::thread::sleep(Duration::from_millis(50));
    let usage = stop(handle);
    assert_eq!(usage.len(), 1, "{usage:?}");
    let u = &usage[0];
    assert_eq!(
        (u.user.as_str(), u.end.as_str(), u.transport.as_str()),
        ("dev", "deleted", "udp")
    );
    assert_eq!((u.bytes_to_peers, u.bytes_from_peers), (7, 8));
    assert_eq!((u.packets_to_peers, u.packets_from_peers), (2, 2));
    assert_eq!(u.relays, vec![relay]);
    assert_eq!(u.client, c.sock.local_addr().unwrap());
}

#[test]
fn ipv6_binding_and_relay_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let handle = serve(config("[::1]:0", (42100, 42199), dir.path())).unwrap();
    let server = handle.udp_addrs()[0];
    let mut c = Client::new("[::1]:0", server);
    // Binding over IPv6.
    let mut req = Vec::new();
    Encoder::new(
        &mut req,
        Method::BINDING,
        Class::Request,
        TransactionId([2; 12]),
    )
    .finish();
    c.sock.send_to(&req, server).unwrap();
    let r = c.recv();
    let mapped = Message::decode(&r)
        .unwrap()
        .xor_address(AttrType::XOR_MAPPED_ADDRESS)
        .unwrap();
    assert_eq!(mapped, Some(c.sock.local_addr().unwrap()));
    // Only IPv6 relays exist: the default (IPv4) family gets 440, IPv6 succeeds.
    let r = c.call(Method::ALLOCATE, transport);
    assert_eq!(code(&r), Some(440));
    let r = c.call(Method::ALLOCATE, |e| {
        transport(e);
        e.u32_attr(
            AttrType::REQUESTED_ADDRESS_FAMILY,
            u32::from(attr::FAMILY_IPV6) << 24,
        )
        .unwrap();
    });
    assert_eq!(code(&r), None);
    let relay = Message::decode(&r)
        .unwrap()
        .xor_address(AttrType::XOR_RELAYED_ADDRESS)
        .unwrap()
        .unwrap();
    assert_eq!(relay.ip().to_string(), "::1");
    assert!((42100..=42199).contains(&relay.port()));
    assert_eq!(stop(handle).len(), 1);
}

#[test]
fn draining_answers_300_with_the_alternate_server() {
    let dir = tempfile::tempdir().unwrap();
    let handle = serve(config("127.0.0.1:0", (42200, 42299), dir.path())).unwrap();
    let alt: SocketAddr = "192.0.2.99:3478".parse().unwrap();
    handle.set_alternate_server(Some(alt));
    std::thread::sleep(Duration::from_millis(100));
    let mut c = Client::new("127.0.0.1:0", handle.udp_addrs()[0]);
    let r = c.call(Method::ALLOCATE, transport);
    assert_eq!(code(&r), Some(300));
    let m = Message::decode(&r).unwrap();
    assert_eq!(
        attr::decode_address(
            AttrType::ALTERNATE_SERVER,
            m.get(AttrType::ALTERNATE_SERVER).unwrap()
        ),
        Ok(alt)
    );
    // Undrained, allocations work again.
    handle.set_alternate_server(None);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(code(&c.call(Method::ALLOCATE, transport)), None);
    stop(handle);
}

#[test]
fn tcp_connections_that_never_allocate_are_closed() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config("127.0.0.1:0", (42400, 42449), dir.path());
    cfg.listen_tcp = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.idle_connection_s = 1;
    let handle = serve(cfg).unwrap();
    let mut conn = std::net::TcpStream::connect(handle.tcp_addrs()[0]).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = std::time::Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(conn.read(&mut buf).unwrap(), 0, "closed by the relay");
    assert!(t.elapsed() < Duration::from_secs(4));
    stop(handle);
}

#[test]
fn a_second_listener_on_the_same_address_is_a_bind_error() {
    let dir = tempfile::tempdir().unwrap();
    let first = serve(config("127.0.0.1:0", (42300, 42349), dir.path())).unwrap();
    let taken = first.udp_addrs()[0].to_string();
    let e = serve(config(&taken, (42350, 42399), dir.path())).unwrap_err();
    assert!(e.to_string().contains(&taken), "{e}");
    stop(first);
}
