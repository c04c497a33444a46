//! Real presence clients through `confab serve`: two baresip instances (its `presence`
//! module publishes the user's state with PUBLISH and subscribes to each contact marked
//! `;presence=p2p`) register as alice and bob and see each other online; bob goes offline
//! and online again (baresip's `presence_offline` / `presence_online` commands over its
//! `ctrl_tcp` control socket) and alice's contact list follows. baresip's own offline
//! document (a closed tuple with an empty person) and its registration over the same flow
//! must aggregate to offline.
//!
//! A second test pairs baresip (alice) with linphonec (Debian `linphone-cli`, bob), driven
//! through its standard input (`register`, `friend add`, `unregister`): each sees the
//! other come online through Confab, linphonec sees alice go offline and online again
//! (its "Friend ... is ..." lines), and alice sees bob offline once linphonec unregisters.
//!
//! Needs `baresip` (Debian `baresip-core`) and `linphonec` (Debian `linphone-cli`); without
//! them a test says so and passes unless `CONFAB_REQUIRE_PEERS=1`.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ChildStdin;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, add_user, edit_config, init_dir};

/// The tests here run one at a time: two pairs of real clients and two servers at once on
/// a loaded two-core machine made baresip's state changes miss the 15 s deadlines now and
/// then (each test alone passed every run).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn require(name: &str, package: &str) -> Option<PathBuf> {
    if let Some(p) = common::which(name) {
        return Some(p);
    }
    assert!(
        std::env::var_os("CONFAB_REQUIRE_PEERS").is_none(),
        "CONFAB_REQUIRE_PEERS is set but {name} is missing (install the Debian package {package})"
    );
    eprintln!("skipping: {name} not installed (Debian package {package})");
    None
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

/// A baresip process this test started; killed (by its own handle) on drop.
struct Baresip {
    child: Child,
    ctrl: u16,
    log: PathBuf,
}

impl Baresip {
    fn start(bin: &Path, root: &Path, user: &str, contact: &str, outbound: &str) -> Baresip {
        let dir = root.join(format!("baresip-{user}"));
        std::fs::create_dir_all(&dir).unwrap();
        let ctrl = free_port();
        let config = format!(
            "poll_method\t\tepoll\nsip_listen\t\t127.0.0.1:{}\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module_app\t\taccount.so\nmodule_app\t\tcontact.so\n\
             module_app\t\tpresence.so\nmodule_app\t\tctrl_tcp.so\n\
             ctrl_tcp_listen\t\t127.0.0.1:{ctrl}\n",
            free_port()
        );
        std::fs::write(dir.join("config"), config).unwrap();
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{user}@example.com>;auth_pass={user}-pw;outbound=\"{outbound}\";regint=300;pubint=60\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("contacts"),
            format!("\"{contact}\" <sip:{contact}@example.com>;presence=p2p\n"),
        )
        .unwrap();
        let log = dir.join("log");
        let child = Command::new(bin)
            .arg("-f")
            .arg(&dir)
            .arg("-v")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("baresip starts");
        Baresip { child, ctrl, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One ctrl_tcp command (netstring-framed JSON); returns the response text.
    fn command(&self, cmd: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut s = loop {
            match TcpStream::connect(("127.0.0.1", self.ctrl)) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("baresip control socket: {e}\n{}", self.log()),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let j = format!("{{\"command\":\"{cmd}\",\"params\":\"\",\"token\":\"t\"}}");
        s.write_all(format!("{}:{j},", j.len()).as_bytes()).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = s.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.ends_with(b",") {
                break;
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Waits until the contact list shows `contact` with `status` (`Online`/`Offline`).
    fn wait_contact(&self, contact: &str, status: &str, srv: &Server) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let list = self.command("contacts");
            let line = list
                .split("\\n")
                .find(|l| l.contains(&format!("<sip:{contact}@example.com>")))
                .unwrap_or("")
                .to_owned();
            if line.contains(status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{contact} is not {status} in the contact list: {list}\n{}\nserver:\n{}",
                self.log(),
                srv.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn baresip_users_see_each_other_change_state() {
    let _serial = serial();
    let Some(bin) = require("baresip", "baresip-core") else {
        return;
    };
    let dir = init_dir("example.com");
    let d = dir.path();
    // baresip 1.0 answers the first challenge and knows MD5 only.
    edit_config(
        d,
        "algorithms = [\"SHA-256\", \"MD5\"]",
        "algorithms = [\"MD5\"]",
    );
    add_user(d, "alice@example.com", "alice-pw");
    add_user(d, "bob@example.com", "bob-pw");
    let srv = Server::start_with(
        d,
        "info",
        &[],
        &["http.admin.listen", "transport.listen[0]"],
    );
    let outbound = format!("sip:{}", srv.addrs["transport.listen[0]"]);
    let alice = Baresip::start(&bin, d, "alice", "bob", &outbound);
    let bob = Baresip::start(&bin, d, "bob", "alice", &outbound);
    alice.wait_contact("bob", "Online", &srv);
    bob.wait_contact("alice", "Online", &srv);
    // "Online" shows as soon as the other is registered (a registration without
    // publication counts as available); let each client's first PUBLISH go out before
    // changing state, or baresip has two initial PUBLISHes racing each other.
    std::thread::sleep(Duration::from_secs(3));
    bob.command("presence_offline");
    alice.wait_contact("bob", "Offline", &srv);
    bob.command("presence_online");
    alice.wait_contact("bob", "Online", &srv);
    // And the other way round.
    alice.command("presence_offline");
    bob.wait_contact("alice", "Offline", &srv);
    drop(srv);
}

/// A linphonec process this test started, fed commands on its standard input; killed (by
/// its own handle) on drop.
struct Linphonec {
    child: Child,
    stdin: Option<ChildStdin>,
    out: PathBuf,
    log: PathBuf,
}

impl Linphonec {
    /// Starts linphonec for `user@example.com` with its account in the configuration file
    /// (proxy and outbound route: the server; linphonec's `register` command sets no route,
    /// and its friend SUBSCRIBEs then go to the domain by DNS).
    fn start(bin: &Path, root: &Path, user: &str, server: &str) -> Linphonec {
        let dir = root.join(format!("linphonec-{user}"));
        std::fs::create_dir_all(&dir).unwrap();
        let rc = dir.join("linphonerc");
        // A random UDP port, no TCP, no database in $HOME.
        std::fs::write(
            &rc,
            format!(
                "[sip]\nsip_port={}\nsip_tcp_port=-1\nsip_tls_port=-1\ndefault_proxy=0\n\
                 [storage]\nuri={}\n[misc]\nuuid=test-{user}\n\
                 [proxy_0]\nreg_proxy=<sip:{server}>\nreg_route=<sip:{server};lr>\n\
                 reg_identity=sip:{user}@example.com\nreg_expires=300\nreg_sendregister=1\n\
                 publish=1\n\
                 [auth_info_0]\nusername={user}\npasswd={user}-pw\nrealm=example.com\n\
                 domain=example.com\n",
                free_port(),
                dir.join("linphone.db").display()
            ),
        )
        .unwrap();
        let out = dir.join("out");
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&rc)
            .args(["-d", "6", "-l"])
            .arg(dir.join("log"))
            .env("HOME", &dir)
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("linphonec starts");
        let stdin = child.stdin.take();
        Linphonec {
            child,
            stdin,
            out,
            log: dir.join("log"),
        }
    }

    fn command(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The request and status lines of linphonec's log, and its errors (for failures).
    fn sip_trace(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter(|l| {
                l.contains("SIP/2.0")
                    || l.contains("error")
                    || l.contains("Content-Type")
                    || l.contains("<basic>")
            })
            .map(|l| l.chars().take(200).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until a "Friend ... is STATUS" line about `friend` appears after `from` bytes of
    /// output; returns the output length after it.
    fn wait_friend(&self, friend: &str, status: &str, from: usize, srv: &Server) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.output();
            let tail = out.get(from..).unwrap_or("");
            if let Some(line) = tail
                .lines()
                .find(|l| l.contains("Friend") && l.contains(friend) && l.contains(status))
            {
                let _ = line;
                return out.len();
            }
            assert!(
                Instant::now() < deadline,
                "linphonec did not show {friend} {status}:\n{out}\nits SIP trace:\n{}\nserver:\n{}",
                self.sip_trace(),
                srv.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Linphonec {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn baresip_and_linphonec_see_each_other_change_state() {
    let _serial = serial();
    let Some(baresip) = require("baresip", "baresip-core") else {
        return;
    };
    let Some(linphonec) = require("linphonec", "linphone-cli") else {
        return;
    };
    let dir = init_dir("example.com");
    let d = dir.path();
    // baresip 1.0 answers the first challenge and knows MD5 only.
    edit_config(
        d,
        "algorithms = [\"SHA-256\", \"MD5\"]",
        "algorithms = [\"MD5\"]",
    );
    add_user(d, "alice@example.com", "alice-pw");
    add_user(d, "bob@example.com", "bob-pw");
    let srv = Server::start_with(
        d,
        "info,confab_presence=debug",
        &[],
        &["http.admin.listen", "transport.listen[0]"],
    );
    let udp = srv.addrs["transport.listen[0]"].clone();
    let alice = Baresip::start(&baresip, d, "alice", "bob", &format!("sip:{udp}"));
    let mut bob = Linphonec::start(&linphonec, d, "bob", &udp);
    bob.command("friend add alice sip:alice@example.com");
    alice.wait_contact("bob", "Online", &srv);
    let seen = bob.wait_friend("alice", "Online", 0, &srv);
    std::thread::sleep(Duration::from_secs(3));
    alice.command("presence_offline");
    let seen = bob.wait_friend("alice", "Offline", seen, &srv);
    alice.command("presence_online");
    bob.wait_friend("alice", "Online", seen, &srv);
    // linphonec quits: it unregisters and withdraws its publication.
    bob.command("quit");
    alice.wait_contact("bob", "Offline", &srv);
    drop(srv);
}
