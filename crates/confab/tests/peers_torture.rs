//! The RFC 4475 torture messages sent to a running `confab serve` that serves their domains,
//! over UDP and over TCP. Each must get the outcome of the message layer's table
//! (`crates/confab-sip/tests/common/torture_table.rs`, included here, not copied; the
//! messages are the `sipx-testkit` archive files):
//!
//! * `Respond(n)` rows: a response with status `n`;
//! * `Drop` rows (and responses, and ACK): no response at all;
//! * `Accept` rows (the message layer takes them): a response from the server's handlers,
//!   never a 400, 416 or 505 (what it is depends on the chain: 401/407 challenges, 404, 200
//!   to OPTIONS, 403 relaying denied, ...);
//! * over TCP, the message layer's stream framer (`confab_sip::frame_stream`) decides first:
//!   where it waits for octets that never come (`clerr`: Content-Length past the bytes
//!   sent; `baddn`: no end of the header section) nothing is answered and the server closes
//!   the connection after its read timeout (`transport.idle_timeout_s`, set to 2 s here);
//!   where it loses the framing (no or bad Content-Length on a stream, a start line it
//!   cannot read, trailing octets after a message: `ncl`, `mcl01`, `trws`, `inv2543`,
//!   `dblreq`) the server closes the connection at once (answers to complete messages
//!   before the fault may or may not make it out first).
//!
//! Afterwards the server still serves: an OPTIONS over UDP and over TCP gets 200.
//!
//! UDP responses follow the torture messages' Via headers (sent-by ports such as 5060 on
//! 127.0.0.1, RFC 3261 §18.2.2), not our socket, so they are read from a capture of the
//! server's UDP port on the loopback interface (`tshark`, run as root as in CI).
//!
//! The server's error-response rate limit per source (5/s by default) is switched off: this
//! test sends all the malformed messages from one address within a second or two.

mod common;
#[path = "peers/support.rs"]
mod support;
#[path = "../../confab-sip/tests/common/torture_table.rs"]
mod torture_table;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, edit_config, init_dir};
use confab_sip::{Frame, Limits, frame_stream};
use sipx_testkit::rfc4475;
use support::{Peer, TCP, UDP, require, serve};
use torture_table::{Expect, O, RFC4475};

/// The domains named by the Request-URIs of the archive.
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "company.com",
    "chair-dnrc.example.com",
    "registrar.example.com",
];

/// What the running server must do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A final response with this status.
    Status(u16),
    /// Some response from the handlers, not a message-layer refusal (400, 416, 505).
    Handled,
    /// No response at all.
    Nothing,
    /// (TCP) nothing, and the server closes the connection after its read timeout.
    ClosedAfterTimeout,
    /// (TCP) the framing is lost: the server closes the connection at once.
    Closed,
}

/// What the message layer's stream framer makes of `bytes` sent on a fresh connection.
fn stream_want(bytes: &[u8]) -> Option<Want> {
    let limits = Limits::default();
    let mut pos = 0;
    loop {
        match frame_stream(&bytes[pos..], &limits) {
            Frame::Message { len } | Frame::KeepAlive { len, .. } => pos += len,
            Frame::NeedMore if pos == bytes.len() => return None,
            Frame::NeedMore => return Some(Want::ClosedAfterTimeout),
            Frame::Lost(_) => return Some(Want::Closed),
        }
    }
}

fn is_response(bytes: &[u8]) -> bool {
    bytes.starts_with(b"SIP/")
}

fn is_ack(bytes: &[u8]) -> bool {
    bytes.starts_with(b"ACK ")
}

fn outcome(o: O) -> Want {
    match o {
        O::Accept => Want::Handled,
        O::Respond(n) => Want::Status(n),
        O::Drop => Want::Nothing,
    }
}

/// The server-level expectation of a table row.
fn want(bytes: &[u8], expect: Expect, stream: bool) -> Want {
    if is_response(bytes) || is_ack(bytes) {
        // A stray response (or ACK) is never answered, whatever the parser says.
        return Want::Nothing;
    }
    if stream && let Some(w) = stream_want(bytes) {
        return w;
    }
    match expect {
        Expect::Accept => Want::Handled,
        Expect::Rejected(o) | Expect::HeaderErr(_, o) | Expect::ParseErr(_, o) => outcome(o),
    }
}

/// The value of the first Call-ID (or `i`) header line, as text.
fn call_id(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case("call-id") || n.eq_ignore_ascii_case("i"))
            .then(|| v.trim().to_string())
    })
}

/// The top Via line's value and the method: what matches a server transaction.
fn transaction_key(bytes: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let method = text.split(' ').next()?.to_string();
    let via = text.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case("via") || n.eq_ignore_ascii_case("v")).then(|| v.trim().to_string())
    })?;
    Some((via, method))
}

/// Status codes of the responses in a byte stream (or one datagram).
fn statuses(bytes: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.split("\r\n")
        .filter_map(|l| l.strip_prefix("SIP/2.0 "))
        .filter_map(|r| r.get(..3)?.parse().ok())
        .collect()
}

fn check(name: &str, want: Want, got: &[u16], closed: Option<Duration>) -> Result<(), String> {
    let finals: Vec<u16> = got.iter().copied().filter(|s| *s >= 200).collect();
    let ok = match want {
        Want::Status(n) => finals.first() == Some(&n),
        Want::Handled => finals
            .first()
            .is_some_and(|s| !matches!(s, 400 | 416 | 505)),
        Want::Nothing => got.is_empty(),
        Want::ClosedAfterTimeout => got.is_empty() && closed.is_some(),
        Want::Closed => closed.is_some_and(|t| t < Duration::from_millis(1000)),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name}: expected {want:?}, got responses {got:?}, closed after {closed:?}"
        ))
    }
}

fn server(dir: &Path) -> Server {
    let list: Vec<String> = DOMAINS.iter().map(|d| format!("\"{d}\"")).collect();
    edit_config(
        dir,
        "domains = [\"example.com\"]",
        &format!("domains = [{}]", list.join(", ")),
    );
    edit_config(dir, "idle_timeout_s = 600", "idle_timeout_s = 2");
    edit_config(
        dir,
        "error_responses_per_second_per_source = 5",
        "error_responses_per_second_per_source = 0",
    );
    serve(dir, support::QUIET)
}

/// An OPTIONS to the server itself answered 200, over UDP and TCP.
fn still_serving(srv: &Server) {
    let udp_addr: SocketAddr = srv.addrs[UDP].parse().unwrap();
    let tcp_addr: SocketAddr = srv.addrs[TCP].parse().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap();
    let options = |transport: &str, me: SocketAddr| {
        format!(
            "OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/{transport} {me};rport;branch=z9hG4bK-alive-{transport}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@probe.invalid>;tag=alive\r\nTo: <sip:example.com>\r\n\
             Call-ID: alive-{transport}@torture\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 4096];
    let mut got = None;
    for _ in 0..3 {
        sock.send_to(options("UDP", me).as_bytes(), udp_addr)
            .unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            got = statuses(&buf[..n]).first().copied();
            break;
        }
    }
    assert_eq!(got, Some(200), "OPTIONS over UDP after the torture run");

    let mut s = TcpStream::connect(tcp_addr).unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(options("TCP", me).as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let n = s.read(&mut buf).unwrap();
    assert_eq!(
        statuses(&buf[..n]).first().copied(),
        Some(200),
        "OPTIONS over TCP after the torture run: {}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// One TCP connection: writes the message, reads until the server closes it or until
/// `limit`; returns the bytes read and when the server closed (if it did).
fn over_tcp(addr: SocketAddr, bytes: &[u8], limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let mut s = TcpStream::connect(addr).unwrap();
    let start = Instant::now();
    // The server may close early on garbage; a failed write is then fine.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return (out, None);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (out, Some(start.elapsed())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset) => {
                return (out, Some(start.elapsed()));
            }
            Err(_) => return (out, None),
        }
    }
}

#[test]
fn rfc4475_messages_over_tcp_get_the_table_outcome_and_the_server_keeps_serving() {
    let dir = init_dir("example.com");
    let srv = server(dir.path());
    let addr: SocketAddr = srv.addrs[TCP].parse().unwrap();
    // One connection per message, all at once; a response comes within a second, the read
    // timeout closes silent connections after 2 s.
    let runs: Vec<_> = RFC4475
        .iter()
        .map(|r| {
            let c = rfc4475::case(r.name).expect("in the archive");
            let want = want(c.bytes, r.expect, true);
            let limit = if want == Want::ClosedAfterTimeout {
                Duration::from_secs(8)
            } else {
                Duration::from_millis(1500)
            };
            let h = std::thread::spawn(move || over_tcp(addr, c.bytes, limit));
            (r.name, want, h)
        })
        .collect();
    let mut failures = Vec::new();
    for (name, want, h) in runs {
        let (bytes, closed) = h.join().unwrap();
        let got = statuses(&bytes);
        if let Err(e) = check(name, want, &got, closed) {
            failures.push(e);
        }
        if want == Want::ClosedAfterTimeout
            && let Some(t) = closed
        {
            // Closed by the read timeout, not at once.
            if t < Duration::from_millis(1500) {
                failures.push(format!(
                    "{name}: closed after {t:?}, before the read timeout"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} messages over TCP:\n{}\nserver log:\n{}",
        failures.len(),
        RFC4475.len(),
        failures.join("\n"),
        srv.log()
    );
    still_serving(&srv);
}

#[test]
fn rfc4475_messages_over_udp_get_the_table_outcome_and_the_server_keeps_serving() {
    let Some(tshark) = require("tshark", "tshark") else {
        return;
    };
    let dir = init_dir("example.com");
    let srv = server(dir.path());
    let addr: SocketAddr = srv.addrs[UDP].parse().unwrap();

    // Every UDP datagram the server sends, wherever the Via sends it.
    let pcap = dir.path().join("torture.pcapng");
    let mut c = Command::new(&tshark);
    c.args(["-i", "lo", "-f"])
        .arg(format!(
            "udp and src host 127.0.0.1 and src port {}",
            addr.port()
        ))
        .arg("-w")
        .arg(&pcap)
        .stdin(Stdio::null());
    let mut cap = Peer::spawn(c, "tshark");
    cap.wait_for("Capturing on", Duration::from_secs(20));
    // "Capturing on" can come a moment before the filter is live.
    std::thread::sleep(Duration::from_secs(1));

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut wants: HashMap<String, (&str, Want, bool)> = HashMap::new();
    let mut silent = Vec::new();
    let mut transactions = HashMap::new();
    for r in RFC4475 {
        let c = rfc4475::case(r.name).expect("in the archive");
        let w = want(c.bytes, r.expect, false);
        // Some messages repeat the top Via (branch and sent-by) and method of an earlier one
        // (`novelsc` of `unkscm`, `cparam02` of `cparam01`, `regescrt` of `escnull`). To a
        // transaction layer that sees both, the second is a retransmission (RFC 3261
        // §17.2.3), answered with the first one's response (and Call-ID); the server spreads
        // requests over its workers by Call-ID, so whether one layer sees both is chance.
        // Such a message gets its own outcome or nothing.
        let mut retransmission = false;
        if let Some(key) = transaction_key(c.bytes)
            && let Some(first) = transactions.insert(key, r.name)
        {
            eprintln!("{}: same transaction key as {first}", r.name);
            retransmission = true;
        }
        match call_id(c.bytes) {
            Some(id) => {
                assert!(
                    wants
                        .insert(id.clone(), (r.name, w, retransmission))
                        .is_none(),
                    "Call-ID {id} twice"
                );
            }
            None => {
                assert_eq!(
                    w,
                    Want::Nothing,
                    "{}: no Call-ID to match a response",
                    r.name
                );
                silent.push(r.name);
            }
        }
        sock.send_to(c.bytes, addr).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    // Responses come within milliseconds; INVITE final responses are retransmitted after
    // 500 ms (which the matching below tolerates).
    std::thread::sleep(Duration::from_millis(1500));
    let _ = Command::new("kill")
        .args(["-INT", &cap.child.id().to_string()])
        .status();
    assert!(cap.wait(Duration::from_secs(10)), "{}", cap.output());

    // Decode: one line per datagram, the payload in hex.
    let out = Command::new(&tshark)
        .arg("-r")
        .arg(&pcap)
        .args(["-T", "fields", "-e", "udp.payload"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: HashMap<String, Vec<u16>> = HashMap::new();
    let mut strays = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let hex = line.trim().replace(':', "");
        if hex.is_empty() {
            continue;
        }
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let st = statuses(&bytes);
        match call_id(&bytes) {
            Some(id) if wants.contains_key(&id) => got.entry(id).or_default().extend(st),
            _ => strays.push(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }
    let mut failures = Vec::new();
    for (id, (name, w, retransmission)) in &wants {
        let mut st = got.get(id).cloned().unwrap_or_default();
        st.dedup(); // retransmissions of the same final response
        if *retransmission && st.is_empty() {
            continue;
        }
        if let Err(e) = check(name, *w, &st, None) {
            failures.push(e);
        }
    }
    if !strays.is_empty() {
        failures.push(format!(
            "responses matching no message (rows without a Call-ID: {silent:?}):\n{}",
            strays.join("\n---\n")
        ));
    }
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} mismatches over UDP:\n{}\nserver log:\n{}",
        failures.len(),
        failures.join("\n"),
        srv.log()
    );
    still_serving(&srv);
}
