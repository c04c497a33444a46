//! Property tests: arbitrary bytes never panic the decoder or the server; encoding then
//! decoding gives back what was encoded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use confab_stun::attr::{self, AttrType};
use confab_stun::fuzz_support;
use confab_stun::message::{Class, Encoder, Message, Method, TransactionId};
use proptest::prelude::*;

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), p)),
        (any::<u128>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), p)),
    ]
}

fn class() -> impl Strategy<Value = Class> {
    prop_oneof![
        Just(Class::Request),
        Just(Class::Indication),
        Just(Class::Success),
        Just(Class::Error)
    ]
}

/// Attribute types that are neither integrity nor fingerprint (those are added explicitly).
fn plain_attr_type() -> impl Strategy<Value = AttrType> {
    any::<u16>()
        .prop_filter("not an integrity or fingerprint attribute", |t| {
            ![0x0008, 0x001C, 0x8028].contains(t)
        })
        .prop_map(AttrType)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        fuzz_support::decode_roundtrip(&data);
    }

    #[test]
    fn stun_looking_bytes_never_panic_the_decoder(
        typ in 0u16..0x3FFF,
        attrs in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        // A valid header with the right length in front of arbitrary attribute bytes.
        let len = attrs.len() & !3;
        let mut data = Vec::new();
        data.extend_from_slice(&typ.to_be_bytes());
        data.extend_from_slice(&(len as u16).to_be_bytes());
        data.extend_from_slice(&0x2112_A442u32.to_be_bytes());
        data.extend_from_slice(&[9; 12]);
        data.extend_from_slice(&attrs[..len]);
        fuzz_support::decode_roundtrip(&data);
    }

    #[test]
    fn encode_decode_round_trip(
        method in 0u16..0x1000,
        class in class(),
        txid in any::<[u8; 12]>(),
        attrs in proptest::collection::vec((plain_attr_type(), proptest::collection::vec(any::<u8>(), 0..40)), 0..8),
        key in proptest::collection::vec(any::<u8>(), 1..40),
        integrity in 0u8..4,
        fingerprint in any::<bool>(),
    ) {
        let mut buf = Vec::new();
        let mut e = Encoder::new(&mut buf, Method(method), class, TransactionId(txid));
        for (t, v) in &attrs {
            e.attr(*t, v).unwrap();
        }
        if integrity & 1 != 0 { e.message_integrity(&key).unwrap(); }
        if integrity & 2 != 0 { e.message_integrity_sha256(&key).unwrap(); }
        if fingerprint { e.fingerprint().unwrap(); }
        let n = e.finish();
        prop_assert_eq!(n, buf.len());
        let m = Message::decode(&buf).unwrap();
        prop_assert_eq!((m.method(), m.class(), m.transaction_id()), (Method(method), class, TransactionId(txid)));
        let got: Vec<_> = m.attributes().map(|a| (a.typ, a.value.to_vec())).collect();
        prop_assert_eq!(got, attrs.clone());
        prop_assert_eq!(m.has_fingerprint(), fingerprint);
        if integrity & 1 != 0 { prop_assert!(m.verify_integrity(&key).is_ok()); }
        if integrity & 2 != 0 { prop_assert!(m.verify_integrity_sha256(&key).is_ok()); }
        let unknown: Vec<u16> = attrs.iter().map(|(t, _)| *t)
            .filter(|t| t.is_comprehension_required() && !t.is_known()).map(|t| t.0).take(8).collect();
        prop_assert_eq!(m.unknown_comprehension_required(), &unknown[..]);
    }

    #[test]
    fn xor_addresses_round_trip(addr in socket_addr(), txid in any::<[u8; 12]>()) {
        let mut buf = Vec::new();
        let mut e = Encoder::new(&mut buf, Method::BINDING, Class::Success, TransactionId(txid));
        e.xor_address(AttrType::XOR_MAPPED_ADDRESS, addr).unwrap();
        e.address(AttrType::ALTERNATE_SERVER, addr).unwrap();
        e.finish();
        let m = Message::decode(&buf).unwrap();
        prop_assert_eq!(m.xor_address(AttrType::XOR_MAPPED_ADDRESS).unwrap(), Some(addr));
        let alt = m.get(AttrType::ALTERNATE_SERVER).unwrap();
        prop_assert_eq!(attr::decode_address(AttrType::ALTERNATE_SERVER, alt).unwrap(), addr);
    }

    #[test]
    fn arbitrary_input_sequences_never_panic_the_server(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        fuzz_support::server_input(&data, Instant::now());
    }
}
