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
struct Udp(#[allow(dead_code)] u32);
impl Flow for Udp {
    fn is_reliable(&self) -> bool {
        false
    }
}

fn request_text(method: &str, i: usize) -> String {
    format!(
        "{method} sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK{i:016x}\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710{i}@pc33.atlanta.example.com\r\n\
CSeq: 314159 {method}\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Length: 0\r\n\r\n"
    )
}

fn net(r: &Region<'_, System>) -> isize {
    let c = r.change();
    c.bytes_allocated as isize - c.bytes_deallocated as isize + c.bytes_reallocated
}

/// Returns (bytes per transaction, message bytes per transaction the layer keeps).
///
/// Everything happens inside the measured region: the message text is allocated, parsed,
/// handed to the layer, and the outputs are drained and dropped at once, as a transport
/// and TU would. What remains allocated is what the layer holds: slab entry, key, map
/// entry, timer heap entries, and the message bytes it keeps for retransmission (client:
/// the request; INVITE server: the request until the TU answers, for the 100 Trying;
/// non-INVITE server: nothing until it sends a response).
fn measure(n: usize, server: bool) -> (f64, f64) {
    let region = Region::new(GLOBAL);
    let mut layer = TransactionLayer::<Udp>::new(Config::default()).expect("config");
    let mut kept = 0usize;
    for i in 0..n {
        let invite = i % 2 == 0;
        let text = request_text(if invite { "INVITE" } else { "OPTIONS" }, i);
        if !server || invite {
            kept += text.len();
        }
        // A transport copies a datagram into a buffer of its exact size.
        let mut buf = text.into_bytes();
        buf.shrink_to_fit();
        let m: Message = parse_datagram(Bytes::from(buf), &Limits::default()).expect("valid");
        if server {
            layer
                .handle_message(Time::ZERO, m, Udp(i as u32))
                .expect("valid");
        } else {
            layer
                .send_request(Time::ZERO, m, Udp(i as u32))
                .expect("valid");
        }
        while layer.poll_transmit().is_some() {}
        while layer.poll_event().is_some() {}
    }
    assert_eq!(layer.len(), n);
    let bytes = net(&region);
    drop(layer);
    (bytes as f64 / n as f64, kept as f64 / n as f64)
}

#[test]
fn bytes_per_transaction() {
    for server in [false, true] {
        let what = if server { "server" } else { "client" };
        let (small, _) = measure(10_000, server);
        let (big, kept) = measure(100_000, server);
        let overhead = big - kept;
        eprintln!(
            "{what}: {big:.0} bytes per transaction at 100k concurrent ({small:.0} at 10k): {kept:.0} message bytes kept for retransmission + {overhead:.0} bytes of transaction state"
        );
        assert!(
            overhead > 0.0 && overhead < 1024.0,
            "{what}: {overhead} bytes of state per transaction"
        );
        // Linear: per-transaction cost does not grow with the number of transactions
        // (hash map and slab growth make the small case vary by a factor below 2).
        assert!(
            big < small * 2.0 && small < big * 2.0,
            "{what}: {small} vs {big}"
        );
    }
}
