//! Entry points shared by the cargo-fuzz targets (`fuzz/`), the property tests and the
//! regression corpus test, so that all three check the same invariants. They panic when an
//! invariant breaks; that is their purpose. Not part of the supported API.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::attr::{self, AttrType, PasswordAlgorithm};
use crate::credentials::{LongTermKey, mint_rest_credentials};
use crate::framing;
use crate::message::{Class, Encoder, Message, Method, TransactionId};
use crate::turn::{
    AuthConfig, Family, FiveTuple, PEER_HEADROOM, PEER_TAILROOM, Parity, RelayError, RelayPorts,
    Server, ServerConfig, Transport,
};

/// Decodes `data` as STUN, reads every attribute through its typed accessor, and if it
/// decodes, re-encodes the visible attributes and checks the result decodes to the same.
/// Also exercises ChannelData and stream framing. Never panics on any input unless a
/// round-trip invariant is broken.
pub fn decode_roundtrip(data: &[u8]) {
    let _ = framing::frame_len(data);
    let _ = framing::decode_channel_data(data);
    let _ = crate::message::peek_header(data);
    let Ok(m) = Message::decode(data) else { return };
    let _ = (
        m.username(),
        m.realm(),
        m.nonce(),
        m.userhash(),
        m.error_code(),
    );
    for t in [
        AttrType::XOR_MAPPED_ADDRESS,
        AttrType::XOR_PEER_ADDRESS,
        AttrType::XOR_RELAYED_ADDRESS,
    ] {
        let _ = m.xor_address(t);
    }
    let _ = m.xor_peer_addresses().count();
    let _ = m.u32_attr(AttrType::LIFETIME);
    let _ = m.verify_integrity(b"key");
    let _ = m.verify_integrity_sha256(b"key");
    for a in m.attributes() {
        let v = a.value;
        let _ = match a.typ {
            AttrType::CHANNEL_NUMBER => attr::decode_channel_number(v).map(|_| ()),
            AttrType::REQUESTED_TRANSPORT => attr::decode_requested_transport(v).map(|_| ()),
            AttrType::EVEN_PORT => attr::decode_even_port(v).map(|_| ()),
            AttrType::RESERVATION_TOKEN => attr::decode_reservation_token(v).map(|_| ()),
            AttrType::PASSWORD_ALGORITHM => attr::decode_password_algorithm(v).map(|_| ()),
            AttrType::PASSWORD_ALGORITHMS => {
                attr::password_algorithms(v).try_for_each(|r| r.map(|_| ()))
            }
            AttrType::UNKNOWN_ATTRIBUTES => attr::unknown_attributes(v).map(|i| i.for_each(drop)),
            AttrType::ALTERNATE_SERVER | AttrType::MAPPED_ADDRESS => {
                attr::decode_address(a.typ, v).map(|_| ())
            }
            t @ (AttrType::REQUESTED_ADDRESS_FAMILY | AttrType::ADDITIONAL_ADDRESS_FAMILY) => {
                attr::decode_family(t, v).map(|_| ())
            }
            _ => Ok(()),
        };
    }
    // Re-encode what is visible and compare.
    let mut buf = Vec::with_capacity(data.len());
    let mut e = Encoder::new(&mut buf, m.method(), m.class(), m.transaction_id());
    for a in m.attributes() {
        e.attr(a.typ, a.value)
            .expect("attributes of a decoded message fit again");
    }
    e.finish();
    let again = Message::decode(&buf).expect("re-encoded message decodes");
    assert_eq!(
        (again.method(), again.class(), again.transaction_id()),
        (m.method(), m.class(), m.transaction_id())
    );
    assert!(
        again.attributes().eq(m.attributes()),
        "attributes survive a round trip"
    );
    assert_eq!(
        again.unknown_comprehension_required(),
        m.unknown_comprehension_required()
    );
}

/// Relay ports for the fuzzer: 256 ports per family, no sockets.
#[derive(Debug, Default)]
pub struct FakeRelays {
    open: HashSet<SocketAddr>,
    next: u16,
}

impl RelayPorts for FakeRelays {
    fn open(&mut self, family: Family, parity: Parity) -> Result<SocketAddr, RelayError> {
        if self.open.len() >= 256 {
            return Err(RelayError::Exhausted);
        }
        self.next = self
            .next
            .wrapping_add(1 + u16::from(parity == Parity::Even && self.next.is_multiple_of(2)));
        let ip = if family == Family::V4 {
            "203.0.113.1"
        } else {
            "2001:db8::1"
        };
        let a = SocketAddr::new(ip.parse().expect("literal"), 40_000 + self.next % 20_000);
        if !self.open.insert(a) {
            return Err(RelayError::Exhausted);
        }
        Ok(a)
    }
    fn open_at(&mut self, addr: SocketAddr) -> Result<(), RelayError> {
        if self.open.insert(addr) {
            Ok(())
        } else {
            Err(RelayError::Exhausted)
        }
    }
    fn close(&mut self, addr: SocketAddr) {
        assert!(
            self.open.remove(&addr),
            "server closed a relay it did not open: {addr}"
        );
    }
}

const REALM: &str = "fuzz.example";
const SECRET: &[u8] = b"fuzz-secret";

/// Drives a [`Server`] that already holds an allocation with a permission and a channel
/// (so the data paths are reachable) with a sequence of inputs cut from `data`:
/// `[kind][len_hi][len_lo][bytes...]`, kind % 4 = UDP client / TCP client / peer / clock.
/// Checks that responses decode and that relayed ranges lie inside the input. `t0` is any
/// instant (the crate reads no clock).
pub fn server_input(data: &[u8], t0: Instant) {
    let mut now = t0;
    let mut cfg = ServerConfig::new(AuthConfig {
        realm: REALM.into(),
        rest_secrets: vec![SECRET.to_vec()],
        static_users: vec![("dev".into(), "pw".into())],
        password_algorithms: vec![PasswordAlgorithm::Sha256, PasswordAlgorithm::Md5],
        username_anonymity: true,
        nonce_lifetime: Duration::from_secs(600),
        failure_burst: 5,
        failure_refill: Duration::from_secs(1),
    });
    cfg.user_bandwidth_bytes_per_s = 1_000_000;
    let mut server = Server::new(cfg, [3; 32], t0, 1_800_000_000);
    let mut relays = FakeRelays::default();
    let udp = FiveTuple {
        transport: Transport::Udp,
        client: "192.0.2.1:4000".parse().expect("literal"),
        server: "192.0.2.2:3478".parse().expect("literal"),
    };
    let tcp = FiveTuple {
        transport: Transport::Tcp,
        ..udp
    };
    let peer: SocketAddr = "198.51.99.1:7000".parse().expect("literal");
    let relay = setup_allocation(&mut server, &mut relays, now, udp, peer);

    let mut rest = data;
    let mut peer_buf = vec![0u8; PEER_HEADROOM + 65_535 + PEER_TAILROOM];
    while rest.len() >= 3 {
        let kind = rest[0] % 4;
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let chunk = &rest[3..3 + len];
        rest = &rest[3 + len..];
        match kind {
            0 | 1 => {
                let five = if kind == 0 { udp } else { tcp };
                if let Some(send) = server.handle_client(now, five, chunk, &mut relays) {
                    assert!(
                        send.payload.end <= chunk.len(),
                        "payload range inside input"
                    );
                }
            }
            2 => {
                let n = chunk.len().min(65_000);
                peer_buf[PEER_HEADROOM..PEER_HEADROOM + n].copy_from_slice(&chunk[..n]);
                let from = if chunk.first().is_some_and(|b| b & 1 == 1) {
                    peer
                } else {
                    SocketAddr::new(peer.ip(), 9)
                };
                if let Some(s) = server.handle_peer(now, relay, from, &mut peer_buf, n) {
                    assert!(s.range.end <= peer_buf.len());
                    let framed = &peer_buf[s.range];
                    match framing::classify(framed) {
                        framing::PacketKind::Stun => {
                            Message::decode(framed).expect("Data indication decodes");
                        }
                        framing::PacketKind::ChannelData => {
                            framing::decode_channel_data(framed).expect("ChannelData decodes");
                        }
                        framing::PacketKind::Other => panic!("framed peer data is neither"),
                    }
                }
            }
            _ => {
                let secs = chunk.first().copied().unwrap_or(1);
                now += Duration::from_secs(u64::from(secs) * 4);
                server.handle_timeout(now, &mut relays);
            }
        }
        while let Some(t) = server.poll_transmit() {
            Message::decode(&t.data).expect("every response decodes");
        }
        while server.poll_event().is_some() {}
    }
    server.shutdown(now, &mut relays);
    assert!(relays.open.is_empty(), "shutdown closes every relay");
}

fn setup_allocation(
    server: &mut Server,
    relays: &mut FakeRelays,
    now: Instant,
    five: FiveTuple,
    peer: SocketAddr,
) -> SocketAddr {
    let creds = mint_rest_credentials(SECRET, "fuzzer", 1_800_000_000, 86_400);
    let key = LongTermKey::derive(
        PasswordAlgorithm::Md5,
        &creds.username,
        REALM,
        &creds.password,
    );
    let mut call =
        |server: &mut Server, method: Method, n: u8, nonce: &[u8], f: &dyn Fn(&mut Encoder<'_>)| {
            let mut buf = Vec::new();
            let mut e = Encoder::new(&mut buf, method, Class::Request, TransactionId([n; 12]));
            f(&mut e);
            if !nonce.is_empty() {
                e.attr(AttrType::USERNAME, creds.username.as_bytes())
                    .expect("fits");
                e.attr(AttrType::REALM, REALM.as_bytes()).expect("fits");
                e.attr(AttrType::NONCE, nonce).expect("fits");
                e.message_integrity(key.as_bytes()).expect("fits");
            }
            e.finish();
            let r = server.handle_client(now, five, &buf, relays);
            assert!(r.is_none());
            let t = server.poll_transmit().expect("a response");
            t.data
        };
    let transport = |e: &mut Encoder<'_>| {
        e.u32_attr(AttrType::REQUESTED_TRANSPORT, 17 << 24)
            .expect("fits")
    };
    let challenge = call(server, Method::ALLOCATE, 1, b"", &transport);
    let nonce = Message::decode(&challenge)
        .expect("decodes")
        .nonce()
        .expect("ok")
        .expect("nonce")
        .to_vec();
    let ok = call(server, Method::ALLOCATE, 2, &nonce, &transport);
    let m = Message::decode(&ok).expect("decodes");
    let relay = m
        .xor_address(AttrType::XOR_RELAYED_ADDRESS)
        .expect("ok")
        .expect("allocated");
    let bind = |e: &mut Encoder<'_>| {
        e.u32_attr(AttrType::CHANNEL_NUMBER, 0x4000 << 16)
            .expect("fits");
        e.xor_address(AttrType::XOR_PEER_ADDRESS, peer)
            .expect("fits");
    };
    let r = call(server, Method::CHANNEL_BIND, 3, &nonce, &bind);
    assert!(
        Message::decode(&r)
            .expect("decodes")
            .error_code()
            .expect("ok")
            .is_none()
    );
    relay
}
