//! SIPp (Debian `sip-tester` 3.6.1) against a real `confab serve`:
//!
//! * 1,000 users imported with `confab user import` register with digest from one SIPp
//!   (`-inf` file of users and passwords), at a moderate rate;
//! * a call through the proxy with SIPp's built-in `uac` and `uas` scenarios: the UAS is
//!   registered first as bob, the UAC (on 127.0.0.2, a configured trusted peer, since the
//!   built-in `uac` cannot answer a digest challenge) calls `bob`; INVITE, 180, 200, ACK,
//!   BYE all pass through the proxy;
//! * durability: a binding registered before `kill -9` is listed by `confab registrations`
//!   after the restart and a MESSAGE still reaches the SIPp UAS behind it.
//!
//! (MESSAGE and OPTIONS relayed to a registered SIPp UAS: `sip_e2e.rs`.)
//!
//! SIPp 3.6.1 answers MD5 only and reads the first challenge, so the server offers MD5
//! first; SIPp puts `sip:<server address>` in the digest `uri` unless `-auth_uri` says
//! otherwise.

mod common;
#[path = "peers/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, add_user, edit_config, expect_code, init_dir, run, stdout};
use support::{
    Peer, UDP, assert_success, free_udp_port, output_within, require, serve, set_algorithms,
};

fn frontend_scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../confab-frontend/tests/sipp")
        .join(name)
}

fn sipp_cmd(sipp: &Path, server: &str, args: &[&str]) -> Command {
    let mut c = Command::new(sipp);
    c.arg(server)
        .args(["-t", "u1", "-nostdin", "-timeout", "30s", "-timeout_error"])
        .args(args);
    c
}

#[test]
fn sipp_registers_1000_users_with_digest() {
    let Some(sipp) = require("sipp", "sip-tester") else {
        return;
    };
    let dir = init_dir("example.com");
    let d = dir.path();
    set_algorithms(d, &["MD5", "SHA-256"]);
    const N: usize = 1000;
    let mut csv = String::from("address,password\n");
    let mut inf = String::from("SEQUENTIAL\n");
    for i in 0..N {
        csv.push_str(&format!("user{i:04}@example.com,secret-{i:04}-pw\n"));
        inf.push_str(&format!(
            "user{i:04};[authentication username=user{i:04} password=secret-{i:04}-pw]\n"
        ));
    }
    std::fs::write(d.join("users.csv"), csv).unwrap();
    std::fs::write(d.join("users.inf"), inf).unwrap();
    let o = run(d, &["user", "import", "users.csv"]);
    expect_code(&o, 0);
    assert!(
        stdout(&o).contains(&format!("imported {N} rows ({N} added")),
        "{}",
        stdout(&o)
    );

    let srv = serve(d, support::QUIET);
    let udp = srv.addrs[UDP].clone();
    let started = Instant::now();
    let mut c = sipp_cmd(&sipp, &udp, &["-i", "127.0.0.1"]);
    c.arg("-sf")
        .arg(frontend_scenario("register_csv.xml"))
        .arg("-inf")
        .arg(d.join("users.inf"))
        .args(["-key", "domain", "example.com", "-auth_uri", "example.com"])
        // 200 registrations a second, at most 50 open at once.
        .args(["-r", "200", "-l", "50", "-m", &N.to_string()])
        .args(["-trace_stat", "-stf"])
        .arg(d.join("stat.csv"));
    let out = output_within(c, Duration::from_secs(50), "sipp 1000 REGISTERs");
    let took = started.elapsed();
    assert_success(&out, "sipp 1000 REGISTERs");
    eprintln!(
        "1000 digest REGISTERs (2 transactions each) in {:.2} s = {:.0} registrations/s",
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64()
    );

    // Every user has exactly one binding at SIPp's socket.
    let o = run(d, &["registrations", "--json"]);
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let all = v.as_array().unwrap();
    assert_eq!(all.len(), N, "bindings listed");
    let mut aors: Vec<&str> = all.iter().map(|b| b["aor"].as_str().unwrap()).collect();
    aors.sort_unstable();
    aors.dedup();
    assert_eq!(aors.len(), N, "one binding per user");
    assert!(
        all.iter().all(|b| b["transport"] == "udp"),
        "{:?}",
        all.first()
    );
    drop(srv);
}

#[test]
fn sipp_builtin_uac_calls_a_registered_builtin_uas_through_the_proxy() {
    let Some(sipp) = require("sipp", "sip-tester") else {
        return;
    };
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "bob@example.com", "bob-pw");
    set_algorithms(d, &["MD5", "SHA-256"]);
    // The built-in uac sends no credentials: its address is a trusted peer (a gateway).
    edit_config(d, "trusted_peers = []", "trusted_peers = [\"127.0.0.2\"]");
    let srv = serve(d, "info");
    let udp = srv.addrs[UDP].clone();

    // bob's phone: SIPp's built-in uas, one call.
    let uas_port = free_udp_port().to_string();
    let mut c = sipp_cmd(&sipp, &udp, &["-sn", "uas", "-i", "127.0.0.1"]);
    c.args(["-p", &uas_port, "-m", "1"]);
    let mut uas = Peer::spawn(c, "sipp uas");
    std::thread::sleep(Duration::from_millis(300));

    // Registered first.
    let mut c = sipp_cmd(&sipp, &udp, &["-i", "127.0.0.1", "-m", "1"]);
    c.arg("-sf")
        .arg(frontend_scenario("register.xml"))
        .args(["-s", "bob", "-au", "bob", "-ap", "bob-pw"])
        .args(["-key", "domain", "example.com", "-key", "contact_host"])
        .args(["127.0.0.1", "-key", "contact_port", &uas_port])
        .args(["-key", "expires", "300", "-auth_uri", "example.com"]);
    assert_success(
        &output_within(c, Duration::from_secs(30), "bob REGISTER"),
        "sipp REGISTER bob",
    );

    // The call: INVITE sip:bob@<server>, 180, 200, ACK, a pause, BYE, 200.
    let mut c = sipp_cmd(&sipp, &udp, &["-sn", "uac", "-i", "127.0.0.2"]);
    c.args(["-s", "bob", "-m", "1", "-d", "500"]);
    let out = output_within(c, Duration::from_secs(40), "sipp uac");
    assert_success(&out, "sipp built-in uac");
    // The UAS got its call (INVITE through the proxy, ACK and BYE too) and exits 0.
    assert!(uas.wait(Duration::from_secs(20)), "{}", uas.output());
    drop(srv);
}

#[test]
fn a_binding_survives_kill_9_and_still_receives_messages() {
    let Some(sipp) = require("sipp", "sip-tester") else {
        return;
    };
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "alice@example.com", "alice-pw");
    add_user(d, "bob@example.com", "bob-pw");
    set_algorithms(d, &["MD5", "SHA-256"]);
    let srv = serve(d, "info");
    let udp = srv.addrs[UDP].clone();

    let uas_port = free_udp_port().to_string();
    let mut c = sipp_cmd(
        &sipp,
        &udp,
        &["-i", "127.0.0.1", "-p", &uas_port, "-m", "1"],
    );
    c.arg("-sf").arg(frontend_scenario("uas.xml"));
    let mut uas = Peer::spawn(c, "sipp uas (bob)");
    std::thread::sleep(Duration::from_millis(300));
    let mut c = sipp_cmd(&sipp, &udp, &["-i", "127.0.0.1", "-m", "1"]);
    c.arg("-sf")
        .arg(frontend_scenario("register.xml"))
        .args(["-s", "bob", "-au", "bob", "-ap", "bob-pw"])
        .args(["-key", "domain", "example.com", "-key", "contact_host"])
        .args(["127.0.0.1", "-key", "contact_port", &uas_port])
        .args(["-key", "expires", "300", "-auth_uri", "example.com"]);
    assert_success(
        &output_within(c, Duration::from_secs(30), "bob REGISTER"),
        "sipp REGISTER bob",
    );

    // The 200 OK was received: the binding is committed. No chance to flush anything.
    srv.signal("KILL");
    let mut srv = srv;
    assert_eq!(srv.wait(), None, "killed by a signal");
    drop(srv);

    let listed = run(d, &["registrations", "bob@example.com"]);
    expect_code(&listed, 0);
    assert!(
        stdout(&listed).contains(&format!("sip:bob@127.0.0.1:{uas_port}")),
        "{}",
        stdout(&listed)
    );

    let srv: Server = serve(d, "info");
    let udp = srv.addrs[UDP].clone();
    let mut c = sipp_cmd(&sipp, &udp, &["-i", "127.0.0.1", "-m", "1"]);
    c.arg("-sf")
        .arg(frontend_scenario("message.xml"))
        .args(["-s", "bob", "-au", "alice", "-ap", "alice-pw"])
        .args([
            "-key",
            "domain",
            "example.com",
            "-key",
            "from_user",
            "alice",
        ])
        .args(["-auth_uri", "bob@example.com"]);
    assert_success(
        &output_within(c, Duration::from_secs(30), "alice MESSAGE"),
        "sipp MESSAGE alice -> bob after the restart",
    );
    assert!(
        uas.wait(Duration::from_secs(20)),
        "bob's UAS: {}",
        uas.output()
    );
    drop(srv);
}
