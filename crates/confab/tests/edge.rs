//! `confab serve --role av-edge`: the STUN/TURN relay of confab-turn started by the binary
//! from the `[turn]` table, answering a real STUN Binding request over UDP, and stopping
//! cleanly on SIGTERM.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;

const TURN_TABLE: &str = "
[turn]
realm = \"example.com\"
listen_udp = [\"127.0.0.1:0\"]
listen_tcp = []
secrets = [\"edge-shared-secret\"]
workers = 1
";

#[test]
fn av_edge_answers_stun_binding_and_drains() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let cfg = d.join("confab.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(TURN_TABLE);
    std::fs::write(&cfg, text).unwrap();

    let mut srv = Server::start_with(d, "info", &["--role", "av-edge"], &["turn.listen_udp"]);
    let addr = srv.addrs["turn.listen_udp"].clone();
    assert!(
        !srv.addrs.contains_key("http.user.listen"),
        "an edge-only node runs no user API (its admin listener: tests/turn.rs)"
    );

    // RFC 8489 Binding request: type 0x0001, length 0, magic cookie, transaction id.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let txid: [u8; 12] = *b"confab-edge1";
    let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    req.extend_from_slice(&txid);
    sock.send_to(&req, &addr).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).expect("a STUN response");
    let resp = &buf[..n];
    assert_eq!(&resp[..2], &[0x01, 0x01], "Binding success response");
    assert_eq!(&resp[4..8], &[0x21, 0x12, 0xA4, 0x42]);
    assert_eq!(&resp[8..20], &txid);
    // XOR-MAPPED-ADDRESS (0x0020) carries our port XOR the cookie's high half.
    let my_port = sock.local_addr().unwrap().port() ^ 0x2112;
    let mut at = 20;
    let mut found = false;
    while at + 4 <= n {
        let ty = u16::from_be_bytes([resp[at], resp[at + 1]]);
        let len = usize::from(u16::from_be_bytes([resp[at + 2], resp[at + 3]]));
        if ty == 0x0020 {
            assert_eq!(u16::from_be_bytes([resp[at + 6], resp[at + 7]]), my_port);
            found = true;
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    assert!(found, "XOR-MAPPED-ADDRESS in {resp:02x?}");

    srv.signal("TERM");
    assert_eq!(srv.wait(), Some(0), "{}", srv.log());
    assert!(
        srv.log().contains("\"message\":\"stopped\""),
        "{}",
        srv.log()
    );
}

#[test]
fn av_edge_needs_a_turn_table_and_checks_it() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let out = run(d, &["serve", "--role", "av-edge", "--check"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains(": turn: --role av-edge needs a [turn] table"),
        "{}",
        stderr(&out)
    );

    let cfg = d.join("confab.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&TURN_TABLE.replace(
        "workers = 1",
        "workers = 1\nmin_port = 60000\nmax_port = 50000",
    ));
    std::fs::write(&cfg, text).unwrap();
    let out = run(d, &["serve", "--role", "av-edge", "--check"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains(": turn."), "{}", stderr(&out));
    // The front end does not read [turn], but a bad one is still reported.
    let out = run(d, &["serve", "--check"]);
    expect_code(&out, 2);
}
