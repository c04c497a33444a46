//! Instant messaging with real peers through a real `confab serve` (issue 9, item 6):
//!
//! - SIPp sends a MESSAGE to bob while he is offline: 202 Accepted, queued; the server is
//!   killed with SIGKILL and restarted; baresip registers as bob and receives the message.
//! - A SIPp client whose User-Agent a Client Version Filter rule blocks is refused with the
//!   configured 403 and the Warning carrying the upgrade URL, before any challenge.
//! - With links blocked, a SIPp MESSAGE with a URL gets 403 "Message blocked: links are not
//!   allowed"; after `im-filter set --urls disable_links --prefix LINK_` (no restart) the
//!   callee (a SIPp UAS) receives the text with the prefix.
//!
//! Needs `/usr/bin/sipp` (Debian `sip-tester`) and `baresip` (Debian `baresip`); a missing
//! tool fails the test naming it when `CONFAB_REQUIRE_PEERS=1` (CI), and skips with a
//! notice otherwise.

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, add_user, edit_config, expect_code, init_dir, run, stdout};

fn require(path: &str, package: &str) -> Option<PathBuf> {
    let p = if path.starts_with('/') {
        Some(PathBuf::from(path)).filter(|p| p.exists())
    } else {
        common::which(path)
    };
    if p.is_some() {
        return p;
    }
    assert!(
        std::env::var_os("CONFAB_REQUIRE_PEERS").is_none(),
        "CONFAB_REQUIRE_PEERS is set but {path} is missing (install the Debian package {package})"
    );
    eprintln!("skipping: {path} not installed (Debian package {package})");
    None
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../confab-frontend/tests/sipp")
        .join(name)
}

fn free_port() -> u16 {
    for _ in 0..100 {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

fn sipp_cmd(sipp: &Path, server: &str, file: &str, args: &[&str]) -> Command {
    let mut c = Command::new(sipp);
    c.arg(server)
        .arg("-sf")
        .arg(scenario(file))
        .args(["-i", "127.0.0.1", "-t", "u1", "-nostdin", "-timeout", "20s"])
        .args(["-timeout_error", "-m", "1", "-key", "domain", "example.com"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[track_caller]
fn sipp(sipp: &Path, server: &str, file: &str, args: &[&str]) {
    let out = sipp_cmd(sipp, server, file, args)
        .output()
        .expect("sipp runs");
    assert!(
        out.status.success(),
        "sipp {file} {args:?}: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A MESSAGE from alice (digest with -au/-ap) to `to` with `text`.
fn message_args<'a>(to: &'a str, text: &'a str, ua: &'a str) -> Vec<&'a str> {
    vec![
        "-s",
        to,
        "-au",
        "alice",
        "-ap",
        "alice-pw",
        "-key",
        "from_user",
        "alice",
        "-key",
        "text",
        text,
        "-key",
        "ua",
        ua,
        "-auth_uri",
        "bob@example.com",
    ]
}

/// SIPp 3.6.1 and baresip 1.0.0 answer MD5 challenges only.
fn md5_only(d: &Path) {
    edit_config(
        d,
        "algorithms = [\"SHA-256\", \"MD5\"]",
        "algorithms = [\"MD5\"]",
    );
}

fn serve(d: &Path) -> Server {
    Server::start_with(
        d,
        "info",
        &[],
        &[
            "http.admin.listen",
            "transport.listen[0]",
            "transport.listen[1]",
        ],
    )
}

/// A peer process whose output lines are collected; killed on drop.
struct Peer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    name: &'static str,
}

impl Peer {
    fn spawn(mut c: Command, name: &'static str) -> Peer {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("{name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let pipes: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for p in pipes {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(p).lines() {
                    let Ok(l) = l else { break };
                    lines.lock().unwrap().push(l);
                }
            });
        }
        Peer { child, lines, name }
    }

    #[track_caller]
    fn wait_for(&self, needle: &str, limit: Duration) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{}: `{needle}` not seen within {limit:?}:\n{}",
            self.name,
            self.lines.lock().unwrap().join("\n")
        );
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A baresip config folder for bob registering over UDP through `outbound`.
fn baresip_dir(root: &Path, outbound: &str) -> PathBuf {
    let dir = root.join("baresip-bob");
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "poll_method\t\tepoll\nsip_listen\t\t127.0.0.1:{}\n\
         module_path\t\t/usr/lib/baresip/modules\nmodule_tmp\t\taccount.so\n\
         module_app\t\tmenu.so\n",
        free_port()
    );
    std::fs::write(dir.join("config"), config).unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!("<sip:bob@example.com>;auth_pass=bob-pw;outbound=\"{outbound}\";regint=300\n"),
    )
    .unwrap();
    dir
}

#[test]
fn offline_message_reaches_baresip_after_a_server_kill_9() {
    let (Some(sipp_bin), Some(baresip)) = (
        require("/usr/bin/sipp", "sip-tester"),
        require("baresip", "baresip"),
    ) else {
        return;
    };
    let dir = init_dir("example.com");
    let d = dir.path();
    md5_only(d);
    add_user(d, "alice@example.com", "alice-pw");
    add_user(d, "bob@example.com", "bob-pw");
    let mut srv = serve(d);
    let udp = srv.addrs["transport.listen[0]"].clone();
    sipp(
        &sipp_bin,
        &udp,
        "im_message_202.xml",
        &message_args("bob", "stored while you were away", "SIPp im"),
    );
    let o = run(d, &["messages", "list", "bob@example.com", "--json"]);
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["state"], "queued");
    assert_eq!(v[0]["sender"], "sip:alice@example.com");

    // kill -9: the 202 was sent after the commit, so the message is still there.
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
    drop(srv);
    let srv = serve(d);
    let udp = srv.addrs["transport.listen[0]"].clone();

    let bdir = baresip_dir(d, &format!("sip:{udp}"));
    let mut c = Command::new(&baresip);
    c.arg("-f")
        .arg(&bdir)
        .args(["-s", "-t", "30"])
        .stdin(Stdio::null());
    let bob = Peer::spawn(c, "baresip bob");
    bob.wait_for("stored while you were away", Duration::from_secs(20));
    // baresip answered it: the queue records the delivery.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let o = run(d, &["messages", "list", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        if v[0]["state"] == "delivering" {
            break;
        }
        assert!(
            Instant::now() < end,
            "not recorded as delivered: {v}\n{}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn blocked_user_agent_and_link_policy_with_sipp() {
    let Some(sipp_bin) = require("/usr/bin/sipp", "sip-tester") else {
        return;
    };
    let dir = init_dir("example.com");
    let d = dir.path();
    md5_only(d);
    add_user(d, "alice@example.com", "alice-pw");
    add_user(d, "bob@example.com", "bob-pw");
    let o = run(
        d,
        &[
            "client-filter",
            "add",
            "--product",
            "OldSIPp",
            "--version",
            "< 3",
            "--action",
            "block_with_url",
            "--reason",
            "Client version too old",
            "--url",
            "https://example.com/upgrade",
        ],
    );
    expect_code(&o, 0);
    let o = run(d, &["im-filter", "set", "--urls", "block"]);
    expect_code(&o, 0);
    let srv = serve(d);
    let udp = srv.addrs["transport.listen[0]"].clone();

    // The blocked client: 403 with the reason and the upgrade URL, no challenge.
    sipp(
        &sipp_bin,
        &udp,
        "im_register_refused.xml",
        &["-s", "alice", "-key", "ua", "OldSIPp/2.1"],
    );

    // bob's phone: a SIPp UAS registered for bob.
    let uas_port = free_port().to_string();
    let uas = sipp_cmd(&sipp_bin, &udp, "im_uas_text.xml", &["-p", &uas_port])
        .spawn()
        .expect("sipp uas");
    std::thread::sleep(Duration::from_millis(300));
    sipp(
        &sipp_bin,
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
    // Links blocked.
    sipp(
        &sipp_bin,
        &udp,
        "im_message_403.xml",
        &message_args("bob", "see http://example.org/x", "SIPp im"),
    );
    // Policy changed beside the running server: applied within the poll period.
    let o = run(
        d,
        &[
            "im-filter",
            "set",
            "--urls",
            "disable_links",
            "--prefix",
            "LINK_",
        ],
    );
    expect_code(&o, 0);
    std::thread::sleep(Duration::from_millis(2500));
    sipp(
        &sipp_bin,
        &udp,
        "im_message_200.xml",
        &message_args("bob", "see http://example.org/x", "SIPp im"),
    );
    let out = uas.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "bob's UAS (expects the LINK_ prefix): {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        srv.log().contains("IM filter policy reloaded"),
        "{}",
        srv.log()
    );
}
