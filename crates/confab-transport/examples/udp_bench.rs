//! Loopback UDP benchmark: SIP receive + send round trips per second through
//! `confab-transport` (receive, RFC 3581 Via stamping, parse, event channel, send).
//!
//! ```text
//! cargo run --release -p confab-transport --example udp_bench -- [secs] [server_threads] [mode]
//! ```
//!
//! It starts the server in this process on `server_threads` tokio worker threads (one
//! SO_REUSEPORT socket per thread) and the load generator as a child process (this same
//! binary with `client`), which keeps 256 OPTIONS (≈420 bytes) in flight on each of 4
//! sockets. `mode` is `echo` (send the received message back over its flow: the transport
//! alone) or `options` (answer with a 200 built by `ResponseBuilder::reply_to`, then
//! `send_response`). It prints round trips per second and the server's CPU time per round
//! trip (from /proc/self/stat, so the client's CPU is not counted). On the 2-core machine,
//! `server_threads = 1` leaves the other core to the generator, like anchor-bench's
//! `udp.c echo` (250k round trips/s with recvfrom/sendto on one core).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use confab_transport::{Target, Transport, TransportConfig, TransportEvent};

const WINDOW: usize = 256;
const SOCKETS: usize = 4;

fn options(i: usize) -> Vec<u8> {
    format!(
        "OPTIONS sip:bench@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bKbench{i};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:client@example.com>;tag=c{i}\r\n\
         To: <sip:bench@example.com>\r\n\
         Call-ID: bench-{i}@example.com\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:client@10.1.2.3:5060>\r\n\
         Accept: application/sdp\r\n\
         User-Agent: confab-udp-bench\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn client(target: SocketAddr, secs: u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..SOCKETS)
        .map(|s| {
            let (stop, total) = (stop.clone(), total.clone());
            std::thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.connect(target).unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let msg = options(s);
                for _ in 0..WINDOW {
                    sock.send(&msg).unwrap();
                }
                let mut buf = vec![0u8; 4096];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match sock.recv(&mut buf) {
                        Ok(_) => {
                            n += 1;
                            let _ = sock.send(&msg);
                        }
                        Err(_) => {
                            for _ in 0..WINDOW {
                                let _ = sock.send(&msg);
                            }
                        }
                    }
                }
                total.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    println!("{}", total.load(Ordering::Relaxed));
}

/// utime + stime of this process, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // fields after ')' start at field 3 (state); utime is field 14, stime 15
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("client") {
        client(args[2].parse().unwrap(), args[3].parse().unwrap());
        return;
    }
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let mode = args.get(3).cloned().unwrap_or_else(|| "echo".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let cfg = TransportConfig {
            listen: vec!["udp:127.0.0.1:0".parse().unwrap()],
            udp_workers: threads,
            ..TransportConfig::default()
        };
        let mut cfg = cfg;
        cfg.limits.messages_per_second_per_source = 0; // measure the path, not the limiter
        let (h, mut rx) = Transport::bind(cfg, None).await.unwrap();
        let addr = h.listeners()[0].local;
        let answered = Arc::new(AtomicU64::new(0));
        let a = answered.clone();
        let hh = h.clone();
        let options_mode = mode == "options";
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if let TransportEvent::Message(inb) = ev {
                    let r = if options_mode {
                        let resp = confab_sip::ResponseBuilder::reply_to(&inb.message, 200)
                            .unwrap()
                            .to_tag("b1")
                            .build()
                            .unwrap();
                        hh.send_response(&resp, inb.flow).await
                    } else {
                        hh.send(&Target::Flow(inb.flow), inb.message.to_bytes())
                            .await
                    };
                    if r.is_ok() {
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        let exe = std::env::current_exe().unwrap();
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let out = tokio::process::Command::new(exe)
            .args(["client", &addr.to_string(), &secs.to_string()])
            .output()
            .await
            .unwrap();
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        let rt_count: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
        let rate = rt_count as f64 / secs as f64;
        println!(
            "mode={mode} server_threads={threads}: {rate:.0} round trips/s \
             ({rt_count} in {secs} s; server answered {}), server CPU {:.2} s over {wall:.1} s = {:.2} µs per round trip",
            answered.load(Ordering::Relaxed),
            cpu,
            cpu * 1e6 / rt_count.max(1) as f64
        );
        h.shutdown();
    });
}
