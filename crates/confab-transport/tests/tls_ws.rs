//! TLS (SNI, reload, client certificates with RFC 5922 identities) and WebSocket (RFC 7118)
//! over loopback. Certificates come from a private CA made with rcgen; every client verifies
//! against that CA (verification is never switched off).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use confab_transport::{ClientAuth, TlsCertificate, TlsConfig, TransportKind};
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

fn tls_config(pki: &Pki, certs: &[(&str, Vec<rcgen::SanType>)]) -> TlsConfig {
    TlsConfig {
        certificates: certs
            .iter()
            .map(|(name, sans)| {
                let (cert_chain, private_key, _) = pki.leaf(name, sans.clone());
                TlsCertificate {
                    cert_chain,
                    private_key,
                    server_names: Vec::new(),
                }
            })
            .collect(),
        trust_anchors: Some(pki.ca_pem.clone()),
        reload_interval_s: 0,
        ..TlsConfig::default()
    }
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    sni: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(cfg)
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await
}

fn leaf_der(s: &tokio_rustls::client::TlsStream<TcpStream>) -> Vec<u8> {
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

async fn options_over<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    via: &str,
) -> String {
    s.write_all(options(via, "tls1").as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("response")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// SNI picks the certificate of the asked domain; the client verifies it against the test
/// CA; OPTIONS gets 200 over TLS on IPv4 and IPv6; renewed files are picked up by
/// `reload_tls` and by the periodic check without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sni_and_reload() {
    let pki = Pki::new();
    let mut tls = tls_config(
        &pki,
        &[
            (
                "a.example",
                vec![dns("a.example"), ip("127.0.0.1"), ip("::1")],
            ),
            ("b.example", vec![dns("b.example")]),
        ],
    );
    tls.reload_interval_s = 1;
    let (h, _seen) = start(config(&["tls:127.0.0.1:0", "tls:[::1]:0"]), Some(tls)).await;
    let client = client_tls(&pki, None);
    for li in 0..2 {
        let addr = h.listeners()[li].local;
        let mut a = tls_connect(addr, client.clone(), "a.example")
            .await
            .unwrap();
        let resp = options_over(&mut a, "SIP/2.0/TLS a.invalid;branch=z9hG4bKtls").await;
        assert!(resp.starts_with("SIP/2.0 200 "), "{resp}");
    }
    let addr = h.listener(TransportKind::Tls).unwrap().local;
    let a = tls_connect(addr, client.clone(), "a.example")
        .await
        .unwrap();
    let b = tls_connect(addr, client.clone(), "b.example")
        .await
        .unwrap();
    let a_der = leaf_der(&a);
    assert_ne!(a_der, leaf_der(&b), "one certificate per domain");
    // a name the server does not serve gets the default (a.example) cert, which the
    // client rightly refuses
    assert!(
        tls_connect(addr, client.clone(), "c.example")
            .await
            .is_err()
    );

    // renew a.example in place and reload explicitly
    let (_, _, renewed) = pki.leaf("a.example", vec![dns("a.example")]);
    h.reload_tls().unwrap();
    let a2 = tls_connect(addr, client.clone(), "a.example")
        .await
        .unwrap();
    assert_eq!(leaf_der(&a2), renewed);
    // the old connection keeps working
    drop(a);

    // renew again and let the periodic check find it
    tokio::time::sleep(Duration::from_millis(1100)).await; // distinct mtime
    let (_, _, renewed2) = pki.leaf("a.example", vec![dns("a.example")]);
    let mut picked_up = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = tls_connect(addr, client.clone(), "a.example")
            .await
            .unwrap();
        if leaf_der(&s) == renewed2 {
            picked_up = true;
            break;
        }
    }
    assert!(
        picked_up,
        "periodic reload picked up the renewed certificate"
    );

    // a broken renewal keeps the old certificate in force
    std::fs::write(pki.dir.path().join("a.example.key"), "not a key").unwrap();
    assert!(h.reload_tls().is_err());
    let s = tls_connect(addr, client, "a.example").await.unwrap();
    assert_eq!(leaf_der(&s), renewed2);
}

/// Server-to-server: `client_auth = "required"`; a peer with a certificate from the CA is
/// accepted and its RFC 5922 identity (the sip: URI SAN) is reported with each message; a
/// peer without a certificate is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificate_identity() {
    let pki = Pki::new();
    let mut tls = tls_config(&pki, &[("server.example", vec![dns("server.example")])]);
    tls.client_auth = ClientAuth::Required;
    tls.client_ca = Some(pki.ca_pem.clone());
    let (h, mut seen) = start(config(&["tls:127.0.0.1:0"]), Some(tls)).await;
    let addr = h.listeners()[0].local;
    let (cert, key, _) = pki.leaf(
        "peer",
        vec![uri("sip:peer.example"), dns("mail.peer.example")],
    );
    let with_cert = client_tls(&pki, Some((&cert, &key)));
    let mut s = tls_connect(addr, with_cert, "server.example")
        .await
        .unwrap();
    let resp = options_over(&mut s, "SIP/2.0/TLS peer.example;branch=z9hG4bKs2s").await;
    assert!(resp.starts_with("SIP/2.0 200 "), "{resp}");
    match next_request(&mut seen).await {
        Seen::Request {
            peer, transport, ..
        } => {
            assert_eq!(transport, TransportKind::Tls);
            let peer = peer.expect("peer identity");
            assert_eq!(peer.domains(), ["peer.example"]);
            assert!(peer.matches("PEER.example") && !peer.matches("mail.peer.example"));
        }
        other => panic!("{other:?}"),
    }
    // no client certificate: the handshake (or the first read) fails
    let without = client_tls(&pki, None);
    let refused = match tls_connect(addr, without, "server.example").await {
        Err(_) => true,
        Ok(mut s) => {
            let _ = s.write_all(b"\r\n\r\n").await;
            let mut b = [0u8; 2];
            !matches!(s.read(&mut b).await, Ok(2))
        }
    };
    assert!(refused, "a peer without a certificate is refused");
}

/// Outgoing TLS: the server connects to a peer by name and verifies it against the CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_outgoing_verifies_peer() {
    let pki = Pki::new();
    let peer_tls = tls_config(&pki, &[("peer.example", vec![dns("peer.example")])]);
    let (peer, mut peer_seen) = start(config(&["tls:127.0.0.1:0"]), Some(peer_tls)).await;
    let peer_addr = peer.listeners()[0].local;
    let tls = tls_config(&pki, &[("server.example", vec![dns("server.example")])]);
    let (h, mut seen) = start(config(&["tls:127.0.0.1:0"]), Some(tls)).await;
    let sent_by = h.listeners()[0].sent_by();
    let msg = options(&format!("SIP/2.0/TLS {sent_by};branch=z9hG4bKout"), "out");
    let target = |name: &str| confab_transport::Target::Addr {
        transport: TransportKind::Tls,
        addr: peer_addr,
        server_name: Some(name.into()),
    };
    let flow = h
        .send(&target("peer.example"), msg.clone().into())
        .await
        .unwrap();
    assert!(matches!(
        next_request(&mut peer_seen).await,
        Seen::Request { .. }
    ));
    // the 200 comes back over the same connection
    loop {
        match recv_timeout(&mut seen, 5).await.expect("200 back") {
            Seen::Response { status, flow: f } => {
                assert_eq!((status, f), (200, flow));
                break;
            }
            _ => continue,
        }
    }
    // the wrong name fails verification
    let other = tls_config(&pki, &[("server.example", vec![dns("server.example")])]);
    let (h2, _s2) = start(config(&["tls:127.0.0.1:0"]), Some(other)).await;
    let err = h2
        .send(&target("evil.example"), msg.into())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TLS handshake"), "{err}");
}

fn ws_request(
    url: &str,
    subprotocol: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut r = url.into_client_request().unwrap();
    if let Some(p) = subprotocol {
        r.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    r
}

/// RFC 7118: the `sip` subprotocol is negotiated (and required), text and binary frames
/// both carry one SIP message; the response comes back over the same WebSocket, as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_secure_websocket() {
    let pki = Pki::new();
    let tls = tls_config(
        &pki,
        &[("ws.example", vec![dns("ws.example"), ip("127.0.0.1")])],
    );
    let (h, mut seen) = start(config(&["ws:127.0.0.1:0", "wss:127.0.0.1:0"]), Some(tls)).await;
    let ws_addr = h.listener(TransportKind::Ws).unwrap().local;
    let wss_addr = h.listener(TransportKind::Wss).unwrap().local;

    // without the sip subprotocol: refused
    let tcp = TcpStream::connect(ws_addr).await.unwrap();
    let r =
        tokio_tungstenite::client_async(ws_request(&format!("ws://{ws_addr}/"), None), tcp).await;
    assert!(r.is_err(), "handshake without `sip` must fail");

    // ws
    let tcp = TcpStream::connect(ws_addr).await.unwrap();
    let (mut ws, resp) =
        tokio_tungstenite::client_async(ws_request(&format!("ws://{ws_addr}/"), Some("sip")), tcp)
            .await
            .unwrap();
    assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), "sip");
    let via = "SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKws1";
    ws.send(Ws::text(options(via, "ws1"))).await.unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    let Ws::Text(t) = reply else {
        panic!("{reply:?}")
    };
    assert!(t.as_str().starts_with("SIP/2.0 200 "), "{t}");
    ws.send(Ws::binary(options(via, "ws2").into_bytes()))
        .await
        .unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert!(reply.to_text().unwrap().starts_with("SIP/2.0 200 "));
    match next_request(&mut seen).await {
        Seen::Request { transport, .. } => assert_eq!(transport, TransportKind::Ws),
        other => panic!("{other:?}"),
    }

    // wss, verified against the CA
    let tcp = TcpStream::connect(wss_addr).await.unwrap();
    let tls = TlsConnector::from(client_tls(&pki, None))
        .connect(ServerName::try_from("ws.example").unwrap(), tcp)
        .await
        .unwrap();
    let (mut wss, _) = tokio_tungstenite::client_async(
        ws_request(
            &format!("wss://ws.example:{}/", wss_addr.port()),
            Some("sip"),
        ),
        tls,
    )
    .await
    .unwrap();
    wss.send(Ws::text(options(
        "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKwss",
        "wss1",
    )))
    .await
    .unwrap();
    let reply = wss.next().await.unwrap().unwrap();
    assert!(reply.to_text().unwrap().starts_with("SIP/2.0 200 "));
}

/// Half-open handshakes are limited per source: with a limit of 2, a third TLS connection
/// that has not finished its handshake is closed at once, and another source still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_handshakes_limited() {
    let pki = Pki::new();
    let tls = tls_config(&pki, &[("h.example", vec![dns("h.example")])]);
    let mut cfg = config(&["tls:127.0.0.1:0"]);
    cfg.limits.max_handshakes_per_source = 2;
    let (h, _seen) = start(cfg, Some(tls)).await;
    let addr = h.listeners()[0].local;
    // two connections that never send a ClientHello
    let _a = TcpStream::connect(addr).await.unwrap();
    let _b = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut [0u8; 8]))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // another source completes a handshake
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let tcp = sock.connect(addr).await.unwrap();
    TlsConnector::from(client_tls(&pki, None))
        .connect(ServerName::try_from("h.example").unwrap(), tcp)
        .await
        .expect("another source is not affected");
}

/// A TLS (or WSS) connection that never completes its handshake is closed after
/// handshake_timeout_s, and counted as a failed handshake rather than a flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshake_times_out() {
    let pki = Pki::new();
    let tls = tls_config(&pki, &[("t.example", vec![dns("t.example")])]);
    let mut cfg = config(&["tls:127.0.0.1:0", "wss:127.0.0.1:0"]);
    cfg.handshake_timeout_s = 1;
    let (h, mut seen) = start(cfg, Some(tls)).await;
    for l in h.listeners() {
        let mut s = TcpStream::connect(l.local).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut [0u8; 8]))
            .await
            .expect("closed by the handshake timeout")
            .unwrap_or(0);
        assert_eq!(n, 0, "{}", l.spec);
    }
    assert_eq!(h.connection_count(), 0);
    // never became flows: no FlowClosed events
    assert!(recv_timeout(&mut seen, 1).await.is_none());
}
