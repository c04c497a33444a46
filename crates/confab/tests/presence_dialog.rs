//! The dialog event package (RFC 4235, busy lamps) on the real binary with SIPp only: bob
//! registers a SIPp UAS; a SIPp watcher (alice, a colleague) subscribes to bob's dialogs;
//! a SIPp UAC (carol) calls bob through Confab, talks 3 s and hangs up. The watcher must
//! see a NOTIFY with bob's dialog `confirmed`, then one with it `terminated` — the proxy's
//! reports reached presence, both as callee (bob's lamp) and through the access filter.
//! Meanwhile a presence watcher (dave, the test's own UA) sees bob `on-the-phone` and busy
//! during the call, and available again after it (aggregation rule 6).
//!
//! Needs `/usr/bin/sipp` (Debian `sip-tester`); without it the test says so and passes
//! unless `CONFAB_REQUIRE_PEERS=1`.

mod common;
mod presence_ua;

use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::sipp::{self, ok};
use common::{Server, add_user, edit_config, init_dir};
use presence_ua::Ua;

fn scenario(file: &str) -> std::path::PathBuf {
    sipp::scenario("confab/tests/sipp_dialog", file)
}

fn free_udp_port() -> u16 {
    for _ in 0..100 {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free UDP port");
}

#[test]
fn sipp_watcher_sees_a_call_confirmed_then_terminated() {
    if !sipp::available() {
        return;
    }
    let dir = init_dir("example.com");
    let d = dir.path();
    for u in ["alice", "bob", "carol", "dave"] {
        add_user(d, &format!("{u}@example.com"), &format!("{u}-pw"));
    }
    // SIPp 3.6.1 answers MD5 only and reads the first challenge.
    edit_config(
        d,
        "algorithms = [\"SHA-256\", \"MD5\"]",
        "algorithms = [\"MD5\", \"SHA-256\"]",
    );
    let srv = Server::start_with(
        d,
        "info,confab_presence=debug",
        &[],
        &["http.admin.listen", "transport.listen[0]"],
    );
    let udp = srv.addrs["transport.listen[0]"].clone();

    // bob's phone: a SIPp UAS on a port of its own, registered by a REGISTER scenario.
    let uas_port = free_udp_port();
    let uas = Command::new(sipp::SIPP)
        .arg("-sf")
        .arg(scenario("uas.xml"))
        .args(["-i", "127.0.0.1", "-p", &uas_port.to_string(), "-t", "u1"])
        .args(["-nostdin", "-m", "1", "-timeout", "30s", "-timeout_error"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp runs");
    let reg = sipp::client(
        &udp,
        &scenario("register.xml"),
        &[
            "-s",
            "bob",
            "-au",
            "bob",
            "-ap",
            "bob-pw",
            "-auth_uri",
            "example.com",
            "-key",
            "uas_port",
            &uas_port.to_string(),
        ],
    );
    ok(&reg, "REGISTER bob");

    // dave watches bob's presence: until he has seen bob on the phone, then not any more.
    let presence_watcher = {
        let udp = udp.clone();
        std::thread::spawn(move || {
            let mut dave = Ua::new(&udp, "dave", "example.com", "dave-pw");
            let mut cseq = 0;
            let h = vec![
                ("From", dave.from("dtag")),
                ("To", "<sip:bob@example.com>".to_owned()),
                ("Contact", dave.contact()),
                ("Event", "presence".to_owned()),
                ("Accept", "application/pidf+xml".to_owned()),
                ("Expires", "600".to_owned()),
            ];
            let r = dave.request(
                "SUBSCRIBE",
                "sip:bob@example.com",
                "dave-1",
                &mut cseq,
                &h,
                None,
            );
            assert_eq!(r.status(), Some(200), "{r:?}");
            let deadline = std::time::Instant::now() + Duration::from_secs(25);
            let mut seen = 0;
            let mut on_the_phone = false;
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let Some(n) = dave.wait_notify(seen, left) else {
                    break;
                };
                seen += 1;
                if n.body.contains("on-the-phone") {
                    assert!(
                        n.body.contains("<rpid:busy/>") || n.body.contains(":busy/>"),
                        "{}",
                        n.body
                    );
                    on_the_phone = true;
                } else if on_the_phone {
                    return dave.notifies;
                }
            }
            panic!(
                "no NOTIFY showed bob on the phone and then off it: {:#?}",
                dave.notifies
            );
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    // alice watches bob's dialogs.
    let watcher = {
        let udp = udp.clone();
        std::thread::spawn(move || {
            sipp::client(
                &udp,
                &scenario("watcher.xml"),
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
    // Let the subscription start (its first NOTIFY shows no dialog).
    std::thread::sleep(Duration::from_millis(1500));
    let call = sipp::client(
        &udp,
        &scenario("uac.xml"),
        &[
            "-s",
            "bob",
            "-au",
            "carol",
            "-ap",
            "carol-pw",
            "-key",
            "from_user",
            "carol",
            "-auth_uri",
            "bob@example.com",
        ],
    );
    ok(&call, "carol calls bob");
    let watched = watcher.join().unwrap();
    let callee = uas.wait_with_output().expect("the UAS ends");
    ok(&callee, "bob's UAS");
    ok(&watched, "alice watches bob's dialogs");
    let notifies = presence_watcher
        .join()
        .expect("dave saw bob on the phone, then off it");
    let last = notifies.last().unwrap();
    assert!(last.body.contains("<basic>open</basic>"), "{}", last.body);
    drop(srv);
}
