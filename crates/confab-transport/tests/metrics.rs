//! The limits and drops are counted with the `metrics` crate: a recorder installed before
//! `Transport::bind` sees the counters move. (Its own test binary: the recorder is global.)

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UdpSocket};

#[derive(Debug, Default, Clone)]
struct Counting(Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>);

impl Counting {
    fn slot(&self, key: &Key) -> Arc<AtomicU64> {
        let mut name = key.name().to_owned();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        if !labels.is_empty() {
            name = format!("{name}{{{}}}", labels.join(","));
        }
        self.0
            .lock()
            .unwrap()
            .entry(name)
            .or_insert_with(|| Arc::new(AtomicU64::new(0)))
            .clone()
    }

    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |v| v.load(Ordering::Relaxed))
    }
}

impl Recorder for Counting {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.slot(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_drops_are_counted() {
    let rec = Counting::default();
    metrics::set_global_recorder(rec.clone()).expect("first recorder");
    let mut cfg = config(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]);
    cfg.limits.messages_per_second_per_source = 1;
    cfg.limits.message_burst_per_source = 2;
    cfg.limits.max_connections_per_source = 1;
    let (h, _seen) = start(cfg, None).await;
    let udp = h.listeners()[0].local;
    let tcp = h.listeners()[1].local;
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..10 {
        let m = options(
            &format!("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKm{i};rport"),
            &format!("m{i}"),
        );
        c.send_to(m.as_bytes(), udp).await.unwrap();
    }
    let g = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    g.send_to(b"\x01\x02garbage that is not SIP", udp)
        .await
        .unwrap();
    let _first = TcpStream::connect(tcp).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = TcpStream::connect(tcp).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), second.read(&mut [0u8; 4])).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let received = rec.get("confab_transport_messages_received_total{transport=udp}");
    let limited = rec.get("confab_transport_dropped_total{reason=rate_limited}");
    assert!((2..=3).contains(&received), "received {received}");
    assert_eq!(
        received + limited,
        10,
        "every datagram is either delivered or counted"
    );
    assert_eq!(rec.get("confab_transport_dropped_total{reason=garbage}"), 1);
    assert_eq!(
        rec.get("confab_transport_connections_rejected_total{limit=connections_per_source}"),
        1
    );
    assert_eq!(
        rec.get("confab_transport_connections_opened_total{transport=tcp}"),
        1
    );
    assert!(rec.get("confab_transport_messages_sent_total{transport=udp}") >= 2);
}
