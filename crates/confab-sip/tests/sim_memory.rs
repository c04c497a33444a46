//! Memory per transaction: 100,000 concurrent client and server transactions in one
//! `TransactionLayer`, measured with a counting global allocator (`stats_alloc`). Prints
//! bytes per transaction, with and without the message bytes a transaction must keep for
//! retransmission, and checks that cost is linear (10k vs 100k) and bounded.

use std::alloc::System;

use bytes::Bytes;
use confab_sip::timer::Time;
use confab_sip::transaction::{Config, Flow, TransactionLayer};
use confab_sip::{Limits, Message, parse_datagram};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[derive(Debug, Clone, Copy)]
struct Udp(u32);
impl Flow for Udp {
    fn is_reliable(&self) -> bool {
        false
    }
}

fn request(method: &str, i: usize) -> Message {
    let s = format!(
        "{method} sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK{i:016x}\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710{i}@pc33.atlanta.example.com\r\n\
CSeq: 314159 {method}\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Length: 0\r\n\r\n"
    );
    parse_datagram(Bytes::from(s), &Limits::default()).expect("valid")
}

fn net(r: &Region<'_, System>) -> isize {
    let c = r.change();
    c.bytes_allocated as isize - c.bytes_deallocated as isize + c.bytes_reallocated
}

/// Returns (bytes per transaction, wire bytes per transaction).
fn measure(n: usize, server: bool) -> (f64, f64) {
    let msgs: Vec<Message> = (0..n)
        .map(|i| request(if i % 2 == 0 { "INVITE" } else { "OPTIONS" }, i))
        .collect();
    let wire: usize = msgs.iter().map(|m| m.original_bytes().len()).sum();
    let region = Region::new(GLOBAL);
    let mut layer = TransactionLayer::<Udp>::new(Config::default()).expect("config");
    for (i, m) in msgs.into_iter().enumerate() {
        if server {
            layer
                .handle_message(Time::ZERO, m, Udp(i as u32))
                .expect("valid");
        } else {
            layer
                .send_request(Time::ZERO, m, Udp(i as u32))
                .expect("valid");
        }
        // The transport and TU take their outputs at once.
        while layer.poll_transmit().is_some() {}
        while layer.poll_event().is_some() {}
    }
    assert_eq!(layer.len(), n);
    let bytes = net(&region);
    drop(layer);
    (bytes as f64 / n as f64, wire as f64 / n as f64)
}

#[test]
fn bytes_per_transaction() {
    for server in [false, true] {
        let what = if server { "server" } else { "client" };
        let (small, _) = measure(10_000, server);
        let (big, wire) = measure(100_000, server);
        eprintln!(
            "{what}: {big:.0} bytes per transaction at 100k concurrent ({:.0} without the {wire:.0} message bytes kept for retransmission; {small:.0} at 10k)",
            big - wire
        );
        // Client transactions keep their request for retransmission; INVITE server
        // transactions keep theirs until the TU answers (for the 100 Trying).
        assert!(big - wire < 1024.0, "{what}: {big} bytes per transaction");
        // Linear: per-transaction cost does not grow with the number of transactions
        // (hash map and slab growth make the small case vary by a factor below 2).
        assert!(
            big < small * 2.0 && small < big * 2.0,
            "{what}: {small} vs {big}"
        );
    }
}
