//! SIGTERM on a running `confab serve` with a SIP transaction open: new requests get 503
//! with Retry-After, the open transaction still completes (SIPp's MESSAGE gets its 200 from
//! a slow SIPp UAS), and the process exits 0. The same run has `log.transactions = true`:
//! the log carries one line per request, routing decision and final response, and never the
//! message body or the digest response.
//!
//! Needs `/usr/bin/sipp` (Debian `sip-tester`); without it the test says so and passes
//! unless `CONFAB_REQUIRE_PEERS=1`.

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::sipp::{self, ok};
use common::{Server, add_user, edit_config, init_dir};

fn scenario(name: &str) -> PathBuf {
    let own = sipp::scenario("confab/tests/sipp", name);
    if own.exists() {
        own
    } else {
        sipp::scenario("confab-frontend/tests/sipp", name)
    }
}

fn run_sipp(server: &str, file: &str, args: &[&str]) -> Output {
    sipp::client(server, &scenario(file), args)
}

fn free_udp_port() -> String {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string()
}

#[test]
fn sigterm_drains_with_503_and_transactions_are_logged() {
    if !sipp::available() {
        return;
    }
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "alice@example.com", "alice-pw");
    add_user(d, "bob@example.com", "bob-pw");
    edit_config(
        d,
        "algorithms = [\"SHA-256\", \"MD5\"]",
        "algorithms = [\"MD5\", \"SHA-256\"]",
    );
    edit_config(d, "transactions = false", "transactions = true");
    let mut srv = Server::start_with(d, "info", &[], &["transport.listen[0]"]);
    let udp = srv.addrs["transport.listen[0]"].clone();

    // bob is a SIPp UAS that answers one MESSAGE after 3 s.
    let uas_port = free_udp_port();
    let uas = {
        let (udp, port) = (udp.clone(), uas_port.clone());
        std::thread::spawn(move || {
            Command::new(sipp::SIPP)
                .arg(&udp)
                .arg("-sf")
                .arg(scenario("uas_slow.xml"))
                .args(["-i", "127.0.0.1", "-p", &port, "-t", "u1", "-nostdin"])
                .args(["-timeout", "30s", "-timeout_error", "-m", "1"])
                .stdin(Stdio::null())
                .output()
                .expect("sipp uas runs")
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let reg = run_sipp(
        &udp,
        "register.xml",
        &[
            "-s",
            "bob",
            "-au",
            "bob",
            "-ap",
            "bob-pw",
            "-key",
            "contact_host",
            "127.0.0.1",
            "-key",
            "contact_port",
            &uas_port,
            "-key",
            "expires",
            "300",
            "-auth_uri",
            "example.com",
        ],
    );
    ok(&reg, "bob registers");

    // alice's MESSAGE reaches bob, who sits on it.
    let alice = {
        let udp = udp.clone();
        std::thread::spawn(move || {
            run_sipp(
                &udp,
                "message.xml",
                &[
                    "-s",
                    "bob",
                    "-au",
                    "alice",
                    "-ap",
                    "alice-pw",
                    "-key",
                    "from_user",
                    "alice",
                    "-auth_uri",
                    "bob@example.com",
                ],
            )
        })
    };
    srv.wait_for_log("\"method\":\"MESSAGE\"");
    std::thread::sleep(Duration::from_millis(500));
    srv.signal("TERM");
    srv.wait_for_log("draining");
    std::thread::sleep(Duration::from_millis(200));

    // A new request while draining: 503 with Retry-After, at once.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-drain-1\r\n\
         From: <sip:carol@example.com>;tag=d1\r\nTo: <sip:example.com>\r\nCall-ID: drain-late-1\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(options.as_bytes(), &udp).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("an answer while draining");
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(answer.starts_with("SIP/2.0 503 "), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("\r\nretry-after: "),
        "{answer}"
    );

    // The open transaction finishes: alice gets bob's 200, then the server exits 0.
    ok(
        &alice.join().unwrap(),
        "alice's MESSAGE completes during the drain",
    );
    ok(&uas.join().unwrap(), "bob's slow UAS");
    assert_eq!(srv.wait(), Some(0), "{}", srv.log());

    // Transaction lines: the MESSAGE came in, was forwarded, and its 200 went back; the
    // late OPTIONS got its 503. Bodies and digest responses never appear.
    let log = srv.log();
    let tx_lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "confab::transactions")
        .collect();
    let has = |message: &str, key: &str, value: &str| {
        tx_lines.iter().any(|v| {
            v["message"] == message
                && (v[key].as_str() == Some(value)
                    || v[key] == value.parse::<i64>().unwrap_or(i64::MIN))
        })
    };
    assert!(has("request", "method", "MESSAGE"), "{log}");
    assert!(has("routed", "decision", "forward"), "{log}");
    assert!(has("forward", "method", "MESSAGE"), "{log}");
    assert!(has("response", "status", "200"), "{log}");
    assert!(has("response", "status", "503"), "{log}");
    assert!(has("request", "call_id", "drain-late-1"), "{log}");
    assert!(
        !log.contains("hello from alice"),
        "a body was logged:\n{log}"
    );
    assert!(
        !log.contains("response="),
        "a digest response was logged:\n{log}"
    );
}

#[test]
fn transaction_log_is_off_by_default() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let mut srv = Server::start_with(d, "info", &[], &["transport.listen[0]"]);
    let udp = srv.addrs["transport.listen[0]"].clone();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-off-1\r\n\
         From: <sip:carol@example.com>;tag=o1\r\nTo: <sip:example.com>\r\nCall-ID: txlog-off-1\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(options.as_bytes(), &udp).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("an answer");
    assert!(buf[..n].starts_with(b"SIP/2.0 "));
    srv.signal("TERM");
    assert_eq!(srv.wait(), Some(0));
    let log = srv.log();
    assert!(log.contains("\"message\":\"stopped\""), "{log}");
    assert!(
        !log.contains("confab::transactions") && !log.contains("txlog-off-1"),
        "transaction lines without log.transactions:\n{log}"
    );
}
