//! baresip (Debian `baresip` 1.0.0) against a real `confab serve`: bob registers over TCP,
//! alice over UDP, each with digest (MD5: baresip 1.0.0 has no SHA-256); alice calls bob,
//! bob answers automatically, the call is established on both sides (audio from the
//! `ausine` source, Opus: `ausine` only runs at 48 kHz, so G.711 cannot start), then alice's baresip quits, which hangs up (BYE through the
//! proxy), and bob receives it (his SIP trace, `-s`) and sees the call terminated. The call crosses transports: UDP caller, TCP callee.
//!
//! Each baresip gets a temporary config folder (`-f DIR`: `config` and `accounts`) and no
//! sound card: the `ausine` source; the player named (`aufile`) has no player side in
//! 1.0.0, so received audio is decoded and dropped (the trace still shows RTP both ways).

mod common;
#[path = "peers/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{add_user, expect_code, init_dir, run, stdout};
use support::{Peer, TCP, UDP, free_port, require, serve, set_algorithms};

/// Writes a baresip config folder for `user` registering through `outbound`.
fn baresip_dir(root: &Path, user: &str, transport: &str, outbound: &str) -> PathBuf {
    let dir = root.join(format!("baresip-{user}"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let config = format!(
        "poll_method\t\tepoll\n\
         sip_listen\t\t127.0.0.1:{port}\n\
         call_local_timeout\t120\n\
         call_max_calls\t\t4\n\
         audio_player\t\taufile,{dir}/played.wav\n\
         audio_source\t\tausine,440\n\
         audio_alert\t\taufile,{dir}/alert.wav\n\
         module_path\t\t/usr/lib/baresip/modules\n\
         module\t\t\topus.so\n\
         module\t\t\tausine.so\n\
         module\t\t\taufile.so\n\
         module_tmp\t\taccount.so\n\
         module_app\t\tmenu.so\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("config"), config).unwrap();
    let account = format!(
        "<sip:{user}@example.com;transport={transport}>;auth_pass={user}-pw;outbound=\"{outbound}\";regint=300;answermode=auto\n"
    );
    std::fs::write(dir.join("accounts"), account).unwrap();
    dir
}

fn baresip(bin: &Path, dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.arg("-f").arg(dir).args(extra).stdin(Stdio::null());
    c
}

#[test]
fn baresip_udp_caller_reaches_baresip_tcp_callee() {
    let Some(bin) = require("baresip", "baresip") else {
        return;
    };
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "alice@example.com", "alice-pw");
    add_user(d, "bob@example.com", "bob-pw");
    // baresip 1.0.0 (libre 1.x) walks every challenge of a 401/407 and gives up with
    // ENOSYS ("Function not implemented") at the first non-MD5 one, whatever the order.
    set_algorithms(d, &["MD5"]);
    let srv = serve(d, "info");
    let udp = srv.addrs[UDP].clone();
    let tcp = srv.addrs[TCP].clone();

    let bob_dir = baresip_dir(d, "bob", "tcp", &format!("sip:{tcp};transport=tcp"));
    let alice_dir = baresip_dir(d, "alice", "udp", &format!("sip:{udp}"));

    let mut bob = Peer::spawn(baresip(&bin, &bob_dir, &["-s", "-t", "40"]), "baresip bob");
    bob.wait_for("200 OK", Duration::from_secs(20));
    let o = run(d, &["registrations", "bob@example.com", "--json"]);
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["transport"], "tcp", "{v}");
    assert!(
        v[0]["user_agent"]
            .as_str()
            .unwrap_or("")
            .contains("baresip"),
        "{v}"
    );

    // alice dials at start (her REGISTER and INVITE are both challenged), quits after 8 s.
    let mut alice = Peer::spawn(
        baresip(
            &bin,
            &alice_dir,
            &["-e", "/dial sip:bob@example.com", "-t", "8"],
        ),
        "baresip alice",
    );
    alice.wait_for("Call established", Duration::from_secs(20));
    bob.wait_for("Call established", Duration::from_secs(5));
    // alice quits: her BYE goes through the proxy to bob over TCP.
    alice.wait(Duration::from_secs(20));
    bob.wait_for("terminated", Duration::from_secs(10));
    let trace = bob.output();
    let from_proxy = format!("TCP {tcp} -> ");
    assert!(
        trace.lines().any(|l| l.starts_with(&from_proxy))
            && trace.lines().any(|l| l.starts_with("BYE sip:")),
        "bob got no BYE over the proxy's TCP connection:\n{trace}"
    );
    drop(srv);
}
