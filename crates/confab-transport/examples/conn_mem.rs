//! Memory per idle connection: opens N TCP (or TLS-less WS is not covered) connections to a
//! TCP listener, each after one OPTIONS/200 exchange, and prints the resident-set growth per
//! connection (server and the client sockets live in this process; the client side is a
//! bare `TcpStream`, a few dozen bytes of user memory).
//!
//! ```text
//! cargo run --release -p confab-transport --example conn_mem -- [connections]
//! ```

use std::time::Duration;

use confab_transport::{Target, Transport, TransportConfig, TransportEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let mut cfg = TransportConfig {
        listen: vec!["tcp:127.0.0.1:0".parse().unwrap()],
        ..TransportConfig::default()
    };
    cfg.limits.max_connections_per_source = 0;
    let (h, mut rx) = Transport::bind(cfg, None).await.unwrap();
    let addr = h.listeners()[0].local;
    let hh = h.clone();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let TransportEvent::Message(inb) = ev {
                let resp = confab_sip::ResponseBuilder::reply_to(&inb.message, 200)
                    .unwrap()
                    .build()
                    .unwrap();
                let _ = hh.send(&Target::Flow(inb.flow), resp.to_bytes()).await;
            }
        }
    });
    let msg = "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKm\r\n\
               From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: m\r\nCSeq: 1 OPTIONS\r\n\
               Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    // warm up allocator and runtime
    let mut keep = Vec::with_capacity(n);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    let mut buf = [0u8; 2048];
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(msg.as_bytes()).await.unwrap();
        let _ = s.read(&mut buf).await.unwrap();
        keep.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    println!(
        "{n} idle TCP connections: {} open, RSS +{} KiB = {:.2} KiB per connection",
        h.connection_count(),
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / n as f64
    );
}
