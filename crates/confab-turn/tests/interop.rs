//! Interop with coturn's test tools (Debian package `coturn`): `turnutils_stunclient` gets a
//! Binding response; `turnutils_uclient` allocates, creates permissions, binds channels (or
//! uses Send indications with `-s`) and relays to `turnutils_peer` through Confab over UDP,
//! TCP and TLS, with REST API credentials minted by `confab_turn::mint_credentials`.
//!
//! The tools are required: a missing tool fails the test with a message naming the package.
//! The peer listens on 127.0.0.2 (the relay on 127.0.0.1 refuses its own address as a peer)
//! and `allow_loopback_peers` is on, as only a test may do.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use confab_turn::{TurnConfig, TurnHandle, mint_credentials, serve};

fn tool(name: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/local/bin"])
    {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` not found: install the Debian package `coturn` (apt-get install -y coturn)");
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Relay {
    handle: Option<TurnHandle>,
    config: TurnConfig,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Relay {
    /// A relay on 127.0.0.1 with UDP, TCP and TLS listeners on free ports.
    fn start(ports: (u16, u16)) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert_file = dir.path().join("cert.pem");
        let key_file = dir.path().join("key.pem");
        std::fs::write(&cert_file, cert.cert.pem()).unwrap();
        std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
        let config = TurnConfig {
            realm: "confab.test".into(),
            listen_udp: vec!["127.0.0.1:0".parse().unwrap()],
            listen_tcp: vec!["127.0.0.1:0".parse().unwrap()],
            listen_tls: vec!["127.0.0.1:0".parse().unwrap()],
            tls_cert_file: Some(cert_file),
            tls_key_file: Some(key_file),
            min_port: ports.0,
            max_port: ports.1,
            secrets: vec!["interop-secret".into()],
            allow_loopback_peers: true,
            workers: 2,
            usage_spool: Some(dir.path().join("usage.jsonl")),
            ..TurnConfig::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let handle = serve(config.clone()).expect("relay starts");
        Relay {
            handle: Some(handle),
            config,
            rt,
            _dir: dir,
        }
    }
    fn handle(&self) -> &TurnHandle {
        self.handle.as_ref().unwrap()
    }
    fn stop(mut self) -> Vec<confab_turn::UsageLine> {
        let h = self.handle.take().unwrap();
        let spool = h.spool().cloned().unwrap();
        self.rt.block_on(h.shutdown());
        spool.read_from(0, 100_000).unwrap().0
    }
}

struct Peer(Child, u16);

impl Peer {
    fn start() -> Peer {
        let port = UdpSocket::bind("127.0.0.2:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(tool("turnutils_peer"))
            .args(["-L", "127.0.0.2", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        Peer(child, port)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Numbers read from the end of `turnutils_uclient`'s output.
#[derive(Debug, Default)]
struct Report {
    sent: u64,
    received: u64,
    lost: u64,
}

fn parse_report(out: &str) -> Report {
    let mut r = Report::default();
    let num = |line: &str, key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.trim_start_matches([' ', ':', '='])
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    for line in out.lines() {
        if let Some(v) = num(line, "tot_send_msgs") {
            r.sent = v;
        }
        if let Some(v) = num(line, "tot_recv_msgs") {
            r.received = v;
        }
        if let Some(v) = num(line, "Total lost packets") {
            r.lost = v;
        }
    }
    r
}

fn uclient(relay: &Relay, peer: &Peer, flags: &[&str], server: SocketAddr) -> Report {
    let creds = mint_credentials(&relay.config, "interop@confab.test", unix_now(), 3600).unwrap();
    let mut cmd = Command::new(tool("turnutils_uclient"));
    cmd.args(flags).args([
        "-n",
        "30",
        "-m",
        "2",
        "-l",
        "120",
        "-z",
        "5",
        "-c",
        "-X",
        "-e",
        "127.0.0.2",
        "-r",
        &peer.1.to_string(),
        "-p",
        &server.port().to_string(),
        "-u",
        &creds.username,
        "-w",
        &creds.password,
        "127.0.0.1",
    ]);
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = parse_report(&text);
    assert!(
        out.status.success(),
        "uclient {flags:?} failed: {}\n{text}",
        out.status
    );
    assert!(
        r.sent >= 60,
        "uclient {flags:?} sent {} messages:\n{text}",
        r.sent
    );
    assert!(
        r.received * 100 >= r.sent * 95,
        "uclient {flags:?}: {r:?}\n{text}"
    );
    r
}

#[test]
fn stunclient_gets_a_binding_response() {
    let relay = Relay::start((41000, 41099));
    let port = relay.handle().udp_addrs()[0].port();
    let out = Command::new(tool("turnutils_stunclient"))
        .args(["-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // It prints the reflexive address it learned from XOR-MAPPED-ADDRESS.
    assert!(text.contains("127.0.0.1"), "no mapped address in:\n{text}");
    relay.stop();
}

#[test]
fn uclient_relays_over_udp_with_channels_and_with_send_indications() {
    let relay = Relay::start((41100, 41199));
    let peer = Peer::start();
    let server = relay.handle().udp_addrs()[0];
    uclient(&relay, &peer, &[], server);
    uclient(&relay, &peer, &["-s"], server);
    let usage = relay.stop();
    // uclient also leaves an idle allocation per client; the busy ones carried 30 x 120 bytes
    // each way and were deleted by the client (Refresh with LIFETIME 0).
    assert!(
        usage
            .iter()
            .all(|u| u.user == "interop@confab.test" && u.transport == "udp")
    );
    let busy: Vec<_> = usage.iter().filter(|u| u.packets_to_peers > 0).collect();
    assert_eq!(busy.len(), 4, "{usage:?}");
    for u in busy {
        assert_eq!(
            (u.bytes_to_peers, u.bytes_from_peers),
            (3600, 3600),
            "{u:?}"
        );
        assert_eq!(u.end, "deleted");
    }
}

#[test]
fn uclient_relays_over_tcp_with_channels_and_with_send_indications() {
    let relay = Relay::start((41200, 41299));
    let peer = Peer::start();
    let server = relay.handle().tcp_addrs()[0];
    uclient(&relay, &peer, &["-t"], server);
    uclient(&relay, &peer, &["-t", "-s"], server);
    let usage = relay.stop();
    assert!(usage.iter().any(|u| u.transport == "tcp"), "{usage:?}");
}

#[test]
fn uclient_relays_over_tls() {
    let relay = Relay::start((41300, 41399));
    let peer = Peer::start();
    let server = relay.handle().tls_addrs()[0];
    uclient(&relay, &peer, &["-t", "-S"], server);
    let usage = relay.stop();
    assert!(usage.iter().any(|u| u.transport == "tls"), "{usage:?}");
}

#[test]
fn wrong_credentials_are_refused() {
    let relay = Relay::start((41400, 41499));
    let peer = Peer::start();
    let server = relay.handle().udp_addrs()[0];
    // uclient retries forever on 401: give it 3 seconds, then look at what it got.
    let mut child = Command::new(tool("turnutils_uclient"))
        .args([
            "-n",
            "3",
            "-m",
            "1",
            "-c",
            "-X",
            "-e",
            "127.0.0.2",
            "-r",
            &peer.1.to_string(),
        ])
        .args([
            "-p",
            &server.port().to_string(),
            "-u",
            "9999999999:mallory",
            "-w",
            "guess",
            "127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let _ = child.kill();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(1100)); // counters are published every second
    let stats = relay.handle().stats();
    assert_eq!(
        (stats.allocations, stats.relayed_to_peers),
        (0, 0),
        "{stats:?}"
    );
    // 401 challenges and refusals were answered, then the source was rate-limited.
    assert!(stats.errors >= 2, "{stats:?}");
    assert!(stats.rate_limited >= 1, "{stats:?}");
    assert!(relay.stop().is_empty());
}
