//! Shared test harness: an OPTIONS responder built on the confab-sip builder, certificates
//! made with rcgen, and small helpers.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use confab_sip::ResponseBuilder;
use confab_transport::{
    CloseReason, FlowToken, PeerIdentity, TlsConfig, Transport, TransportConfig, TransportEvent,
    TransportHandle, TransportKind,
};
use tokio::sync::mpsc;

/// What the responder saw, for assertions.
#[derive(Debug, Clone)]
pub enum Seen {
    Request {
        method: String,
        top_via: String,
        source: SocketAddr,
        transport: TransportKind,
        flow: FlowToken,
        peer: Option<Arc<PeerIdentity>>,
        len: usize,
    },
    Response {
        status: u16,
        flow: FlowToken,
    },
    Closed {
        flow: FlowToken,
        reason: CloseReason,
    },
}

pub fn config(listen: &[&str]) -> TransportConfig {
    TransportConfig {
        listen: listen.iter().map(|s| s.parse().unwrap()).collect(),
        udp_workers: 2,
        ..TransportConfig::default()
    }
}

/// Binds and starts a responder that answers every request except ACK with 200 (OPTIONS
/// gets Allow/Accept), using `send_response` (RFC 3261 §18.2.2 routing).
pub async fn start(
    cfg: TransportConfig,
    tls: Option<TlsConfig>,
) -> (TransportHandle, mpsc::UnboundedReceiver<Seen>) {
    let (handle, mut rx) = Transport::bind(cfg, tls).await.expect("bind");
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    let h = handle.clone();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            match ev {
                TransportEvent::Message(inb) => {
                    let m = &inb.message;
                    if let Some(status) = m.status() {
                        let _ = seen_tx.send(Seen::Response {
                            status,
                            flow: inb.flow,
                        });
                        continue;
                    }
                    let method = m
                        .method()
                        .map(|x| x.as_str().to_owned())
                        .unwrap_or_default();
                    let top_via = m
                        .get(confab_sip::HeaderName::Via)
                        .and_then(|v| v.value_str().map(str::to_owned))
                        .unwrap_or_default();
                    let _ = seen_tx.send(Seen::Request {
                        method: method.clone(),
                        top_via,
                        source: inb.source,
                        transport: inb.transport,
                        flow: inb.flow,
                        peer: inb.peer_identity.clone(),
                        len: m.encoded_len(),
                    });
                    if method == "ACK" {
                        continue;
                    }
                    let resp = ResponseBuilder::reply_to(m, 200)
                        .unwrap()
                        .to_tag("confab1")
                        .header("Allow", "INVITE, ACK, CANCEL, OPTIONS, BYE")
                        .header("Accept", "application/sdp")
                        .build()
                        .unwrap();
                    if let Err(e) = h.send_response(&resp, inb.flow).await {
                        eprintln!("send_response: {e}");
                    }
                }
                TransportEvent::FlowClosed { flow, reason, .. } => {
                    let _ = seen_tx.send(Seen::Closed { flow, reason });
                }
                _ => {}
            }
        }
    });
    (handle, seen_rx)
}

pub fn options(via: &str, call_id: &str) -> String {
    format!(
        "OPTIONS sip:confab@127.0.0.1 SIP/2.0\r\n\
         Via: {via}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:tester@example.com>;tag=t1\r\n\
         To: <sip:confab@example.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

pub async fn recv_timeout<T>(rx: &mut mpsc::UnboundedReceiver<T>, secs: u64) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(secs), rx.recv())
        .await
        .ok()
        .flatten()
}

/// Waits for the next request the responder saw.
pub async fn next_request(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    loop {
        match recv_timeout(rx, 10).await.expect("no request within 10 s") {
            r @ Seen::Request { .. } => return r,
            _ => continue,
        }
    }
}

/// A private CA and leaf certificates signed by it, written as PEM files.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca_key: rcgen::KeyPair,
    ca_params: rcgen::CertificateParams,
    pub ca_pem: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Confab Test CA");
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = p.self_signed(&ca_key).unwrap();
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).unwrap();
        Pki {
            dir,
            ca_key,
            ca_params: p,
            ca_pem,
        }
    }

    /// Writes `<name>.pem` and `<name>.key` for a leaf with these SANs; returns the paths
    /// and the leaf DER.
    pub fn leaf(&self, name: &str, sans: Vec<rcgen::SanType>) -> (PathBuf, PathBuf, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = sans;
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = p.signed_by(&key, &issuer).unwrap();
        let cert_path = self.dir.path().join(format!("{name}.pem"));
        let key_path = self.dir.path().join(format!("{name}.key"));
        write_atomically(&cert_path, cert.pem().as_bytes());
        write_atomically(&key_path, key.serialize_pem().as_bytes());
        (cert_path, key_path, cert.der().to_vec())
    }
}

fn write_atomically(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub fn dns(n: &str) -> rcgen::SanType {
    rcgen::SanType::DnsName(n.try_into().unwrap())
}

pub fn ip(a: &str) -> rcgen::SanType {
    rcgen::SanType::IpAddress(a.parse().unwrap())
}

pub fn uri(u: &str) -> rcgen::SanType {
    rcgen::SanType::URI(u.try_into().unwrap())
}

/// A rustls client config that trusts only the test CA (verification stays on).
pub fn client_tls(pki: &Pki, client_cert: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&pki.ca_pem).unwrap();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client_cert {
        Some((cert, key)) => {
            let certs = rustls_pemfile::certs(&mut &std::fs::read(cert).unwrap()[..])
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pemfile::private_key(&mut &std::fs::read(key).unwrap()[..])
                .unwrap()
                .unwrap();
            b.with_client_auth_cert(certs, key).unwrap()
        }
        None => b.with_no_client_auth(),
    })
}

/// Names a missing interop tool and fails (CI must install it; nothing skips silently).
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .expect("sh");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !path.is_empty(),
        "`{tool}` not found: install the Debian/npm package `{package}` (CI installs it in .ci/run)"
    );
    PathBuf::from(path)
}
