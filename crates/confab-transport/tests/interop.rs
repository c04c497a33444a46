//! Real peers nobody on the team wrote:
//!
//! * SIPp (Debian `sip-tester`) sends OPTIONS over UDP, TCP and TLS and expects 200.
//!   Debian's SIPp is built without OpenSSL, so the TLS run goes SIPp → stunnel (Debian
//!   `stunnel4`, verifying our certificate against the test CA and the host name) → our TLS
//!   listener.
//! * JsSIP (npm `jssip` + `jssip-node-websocket`, run by Node.js) sends OPTIONS over WS and
//!   WSS (the WSS certificate verified against the test CA).
//! * tshark (Debian `tshark`) captures the test ports on `lo` and must decode the traffic
//!   as SIP (and TLS) without malformed packets.
//!
//! A missing tool fails the test with the package to install; nothing is skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use confab_transport::{TlsCertificate, TlsConfig, TransportKind};

/// One interop test at a time: the peers and captures compete for the two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tshark capture on `lo` limited to some ports.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(dir: &Path, ports: &[u16]) -> Capture {
        let tshark = require_tool("tshark", "tshark");
        let filter = ports
            .iter()
            .map(|p| format!("port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let file = dir.join("capture.pcapng");
        let mut child = Command::new(tshark)
            .args(["-i", "lo", "-f", &filter, "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tshark");
        // tshark says "Capturing on 'Loopback: lo'" once packets are being captured.
        let mut err = child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let mut b = [0u8; 256];
        use std::io::Read;
        while !String::from_utf8_lossy(&seen).contains("Capturing on") {
            let n = err.read(&mut b).unwrap_or(0);
            assert!(
                n > 0,
                "tshark did not start capturing: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&b[..n]);
        }
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut err, &mut std::io::sink());
        });
        // "Capturing on" can come a moment before dumpcap's filter is live.
        std::thread::sleep(Duration::from_secs(1));
        Capture { child, file }
    }

    /// Stops the capture and decodes it: counts of frames matching each display filter.
    fn finish(mut self, decode_as: &[String], filters: &[&str]) -> Vec<usize> {
        std::thread::sleep(Duration::from_millis(500));
        if let Ok(keep) = std::env::var("CONFAB_KEEP_CAPTURES") {
            let _ = std::fs::create_dir_all(&keep);
            let name = format!("{}/{}.pcapng", keep, std::process::id());
            let _ = std::fs::copy(&self.file, name);
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        filters
            .iter()
            .map(|f| {
                let mut cmd = Command::new("tshark");
                cmd.arg("-r").arg(&self.file);
                for d in decode_as {
                    cmd.args(["-d", d]);
                }
                let out = cmd.args(["-Y", f]).output().expect("tshark -r");
                assert!(
                    out.status.success(),
                    "tshark -Y {f}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout).lines().count()
            })
            .collect()
    }
}

const MALFORMED: &str = "_ws.malformed || _ws.expert.severity >= 0x00800000 || (sip && _ws.expert.severity >= 0x00600000)";

fn run_sipp(dir: &Path, target: &str, mode: &str, via_transport: &str, calls: u32) {
    let sipp = require_tool("sipp", "sip-tester");
    let scenario = crate_dir().join("tests/sipp/uac_options.xml");
    let out = Command::new(sipp)
        .current_dir(dir)
        .arg(target)
        .arg("-sf")
        .arg(&scenario)
        .args(["-t", mode, "-i", "127.0.0.1"])
        .args(["-m", &calls.to_string(), "-r", "100", "-l", "50"])
        .args(["-key", "via_transport", via_transport])
        .args([
            "-timeout",
            "30s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .arg("-error_file")
        .arg(dir.join("sipp-errors.log"))
        .stdin(Stdio::null())
        .output()
        .expect("run sipp");
    let errors = std::fs::read_to_string(dir.join("sipp-errors.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "SIPp over {via_transport} failed ({}):\n{}\n{errors}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SIPp OPTIONS over UDP and TCP, captured and decoded by tshark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_udp_and_tcp() {
    let _serial = SERIAL.lock().await;
    let (h, _seen) = start(config(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]), None).await;
    let udp = h.listener(TransportKind::Udp).unwrap().local.port();
    let tcp = h.listener(TransportKind::Tcp).unwrap().local.port();
    let dir = tempfile::tempdir().unwrap();
    let cap = Capture::start(dir.path(), &[udp, tcp]);
    let d = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        run_sipp(&d, &format!("127.0.0.1:{udp}"), "u1", "UDP", 200);
        run_sipp(&d, &format!("127.0.0.1:{tcp}"), "t1", "TCP", 200);
    })
    .await
    .unwrap();
    let counts = cap.finish(
        &[
            format!("udp.port=={udp},sip"),
            format!("tcp.port=={tcp},sip"),
        ],
        &[
            "sip.Method == \"OPTIONS\" && udp",
            "sip.Status-Code == 200 && udp",
            "sip.Method == \"OPTIONS\" && tcp",
            "sip.Status-Code == 200 && tcp",
            MALFORMED,
        ],
    );
    assert!(
        counts[0] >= 200 && counts[1] >= 200,
        "UDP decode: {counts:?}"
    );
    assert!(
        counts[2] >= 200 && counts[3] >= 200,
        "TCP decode: {counts:?}"
    );
    assert_eq!(counts[4], 0, "malformed or warning frames: {counts:?}");
}

/// SIPp OPTIONS over TLS (through stunnel, which verifies our certificate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_tls_via_stunnel() {
    let _serial = SERIAL.lock().await;
    let stunnel = require_tool("stunnel4", "stunnel4");
    let pki = Pki::new();
    let (cert_chain, private_key, _) = pki.leaf("tls.example", vec![dns("tls.example")]);
    let tls = TlsConfig {
        certificates: vec![TlsCertificate {
            cert_chain,
            private_key,
            server_names: vec![],
        }],
        ..TlsConfig::default()
    };
    let (h, _seen) = start(config(&["tls:127.0.0.1:0"]), Some(tls)).await;
    let tls_port = h.listeners()[0].local.port();
    let dir = tempfile::tempdir().unwrap();
    let plain_port = free_port();
    let conf = dir.path().join("stunnel.conf");
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\n[sip]\nclient = yes\naccept = 127.0.0.1:{plain_port}\n\
             connect = 127.0.0.1:{tls_port}\nsni = tls.example\nverifyChain = yes\n\
             checkHost = tls.example\nCAfile = {}\n",
            pki.ca_pem.display()
        ),
    )
    .unwrap();
    let mut st = Command::new(stunnel)
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start stunnel");
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", plain_port)).is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "stunnel did not start listening on {plain_port}");
    let cap = Capture::start(dir.path(), &[tls_port, plain_port]);
    let d = dir.path().to_owned();
    let r = tokio::task::spawn_blocking(move || {
        run_sipp(&d, &format!("127.0.0.1:{plain_port}"), "t1", "TLS", 100)
    })
    .await;
    let _ = st.kill();
    let _ = st.wait();
    r.unwrap();
    let counts = cap.finish(
        &[
            format!("tcp.port=={plain_port},sip"),
            format!("tcp.port=={tls_port},tls"),
        ],
        &[
            "sip.Method == \"OPTIONS\"",
            "sip.Status-Code == 200",
            "tls.handshake.type == 1",
            "tls.app_data",
            MALFORMED,
        ],
    );
    assert!(
        counts[0] >= 100 && counts[1] >= 100,
        "SIP decode: {counts:?}"
    );
    assert!(counts[2] >= 1 && counts[3] >= 2, "TLS decode: {counts:?}");
    assert_eq!(counts[4], 0, "malformed or warning frames: {counts:?}");
}

/// JsSIP over WS and WSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jssip_ws_and_wss() {
    let _serial = SERIAL.lock().await;
    let node = require_tool("node", "nodejs");
    let npm = require_tool("npm", "npm");
    let js = crate_dir().join("tests/js");
    if !js.join("node_modules/jssip-node-websocket").exists() {
        let out = Command::new(npm)
            .current_dir(&js)
            .args(["ci", "--no-audit", "--no-fund"])
            .output()
            .expect("npm ci");
        assert!(
            out.status.success(),
            "npm ci in {} failed (npm packages jssip, jssip-node-websocket): {}",
            js.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pki = Pki::new();
    let (cert_chain, private_key, _) =
        pki.leaf("ws.example", vec![dns("ws.example"), ip("127.0.0.1")]);
    let tls = TlsConfig {
        certificates: vec![TlsCertificate {
            cert_chain,
            private_key,
            server_names: vec![],
        }],
        ..TlsConfig::default()
    };
    let (h, mut seen) = start(config(&["ws:127.0.0.1:0", "wss:127.0.0.1:0"]), Some(tls)).await;
    let ws = h.listener(TransportKind::Ws).unwrap().local;
    let wss = h.listener(TransportKind::Wss).unwrap().local;
    let dir = tempfile::tempdir().unwrap();
    let cap = Capture::start(dir.path(), &[ws.port(), wss.port()]);
    for (url, ca, transport) in [
        (format!("ws://{ws}/"), None, TransportKind::Ws),
        (
            format!("wss://{wss}/"),
            Some(pki.ca_pem.clone()),
            TransportKind::Wss,
        ),
    ] {
        let mut cmd = tokio::process::Command::new(&node);
        cmd.current_dir(&js).arg("options.js").arg(&url);
        if let Some(ca) = &ca {
            cmd.arg(ca);
        }
        let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
            .await
            .expect("JsSIP finished")
            .expect("run node");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("OPTIONS answered: 200"),
            "JsSIP over {url}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        match next_request(&mut seen).await {
            Seen::Request {
                method,
                transport: t,
                top_via,
                ..
            } => {
                assert_eq!((method.as_str(), t), ("OPTIONS", transport));
                assert!(
                    top_via.starts_with(&format!("SIP/2.0/{} ", transport.via_name())),
                    "{top_via}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    let counts = cap.finish(
        &[
            format!("tcp.port=={},http", ws.port()),
            format!("tcp.port=={},tls", wss.port()),
        ],
        &[
            "sip.Method == \"OPTIONS\"",
            "sip.Status-Code == 200",
            "tls.record",
            MALFORMED,
        ],
    );
    assert!(
        counts[0] >= 1 && counts[1] >= 1,
        "SIP over WS decode: {counts:?}"
    );
    assert!(counts[2] >= 1, "TLS decode: {counts:?}");
    assert_eq!(counts[3], 0, "malformed or warning frames: {counts:?}");
}

/// The other direction: SIPp answers, Confab's transport sends the requests
/// (`send_request`) over UDP and TCP and receives the 200s (which pass the §18.1.2 sent-by
/// check because the Via carries our listener's sent-by).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_as_server_udp_and_tcp() {
    let _serial = SERIAL.lock().await;
    let sipp = require_tool("sipp", "sip-tester");
    let (h, mut seen) = start(config(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]), None).await;
    let scenario = crate_dir().join("tests/sipp/uas_options.xml");
    for (mode, transport) in [("u1", TransportKind::Udp), ("t1", TransportKind::Tcp)] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut uas = tokio::process::Command::new(&sipp)
            .current_dir(dir.path())
            .arg("-sf")
            .arg(&scenario)
            .args(["-t", mode, "-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", "20", "-timeout", "30s", "-nostdin"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sipp");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let sent_by = h.listener(transport).unwrap().sent_by();
        let target = confab_transport::rules::RequestTarget {
            transport,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            server_name: None,
            tcp_supported: false,
        };
        for i in 0..20 {
            let mut req = confab_sip::RequestBuilder::new(
                confab_sip::Method::Options,
                &format!("sip:sipp@127.0.0.1:{port}"),
            )
            .via(&format!(
                "SIP/2.0/{} {sent_by};branch=z9hG4bKuas{mode}{i}",
                transport.via_name()
            ))
            .from(&format!("<sip:confab@127.0.0.1>;tag=u{i}"))
            .to(&format!("<sip:sipp@127.0.0.1:{port}>"))
            .call_id(&format!("uas-{mode}-{i}"))
            .cseq(1)
            .max_forwards(70)
            .build()
            .unwrap();
            h.send_request(&mut req, &target).await.unwrap();
        }
        let mut ok = 0;
        while ok < 20 {
            match recv_timeout(&mut seen, 10).await.expect("200 from SIPp") {
                Seen::Response { status, .. } => {
                    assert_eq!(status, 200);
                    ok += 1;
                }
                _ => continue,
            }
        }
        let out = tokio::time::timeout(Duration::from_secs(30), uas.wait())
            .await
            .expect("SIPp ends after 20 calls")
            .unwrap();
        assert!(out.success(), "SIPp UAS over {mode}: {out}");
    }
}
