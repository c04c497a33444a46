//! In-process tests over real sockets on loopback: UDP and TCP on IPv4 and IPv6, NAT
//! handling, keep-alives, framing, limits, flows, connection reuse and the §18 size rule.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use confab_transport::rules::RequestTarget;
use confab_transport::{CloseReason, SendError, Target, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

async fn udp_roundtrip(sock: &UdpSocket, to: SocketAddr, msg: &str) -> Option<String> {
    sock.send_to(msg.as_bytes(), to).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let r = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf)).await;
    r.ok()
        .map(|r| String::from_utf8_lossy(&buf[..r.unwrap().0]).into_owned())
}

fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.split("\r\n")
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

/// RFC 3581 + §18.2.1: a client behind NAT (sent-by 10.9.9.9) with `rport` gets the
/// response at its source address, and the Via shows received/rport; IPv4 and IPv6
/// listeners at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_rport_received_v4_and_v6() {
    let (h, mut seen) = start(config(&["udp:127.0.0.1:0", "udp:[::1]:0"]), None).await;
    for (listener, client_bind) in [(0usize, "127.0.0.1:0"), (1, "[::1]:0")] {
        let server = h.listeners()[listener].local;
        let c = UdpSocket::bind(client_bind).await.unwrap();
        let me = c.local_addr().unwrap();
        let resp = udp_roundtrip(
            &c,
            server,
            &options("SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKnat1;rport", "nat1"),
        )
        .await
        .expect("response over the NAT flow");
        assert!(resp.starts_with("SIP/2.0 200 "), "{resp}");
        let via = header(&resp, "Via").unwrap();
        let ip = me.ip().to_string();
        assert_eq!(
            via,
            format!(
                "SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKnat1;rport={};received={ip}",
                me.port()
            )
        );
        let flow = match next_request(&mut seen).await {
            Seen::Request {
                source,
                transport,
                flow,
                ..
            } => {
                assert_eq!(source, me);
                assert_eq!(transport, TransportKind::Udp);
                flow
            }
            other => panic!("{other:?}"),
        };
        // RFC 5626 §5.3: a later request to the client goes back over its flow, from the
        // socket it sent to (what its NAT binding accepts)
        let used = h
            .send(
                &Target::Flow(flow),
                Bytes::from_static(b"NOTIFY over the flow"),
            )
            .await
            .unwrap();
        assert_eq!(used, flow);
        let mut buf = [0u8; 64];
        let (n, from) = tokio::time::timeout(Duration::from_secs(3), c.recv_from(&mut buf))
            .await
            .expect("request over the flow")
            .unwrap();
        assert_eq!((&buf[..n], from), (&b"NOTIFY over the flow"[..], server));
    }
}

/// §18.2.2 without rport: the response goes to the sent-by port (here another socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_response_to_sent_by_port_without_rport() {
    let (h, _seen) = start(config(&["udp:127.0.0.1:0"]), None).await;
    let server = h.listeners()[0].local;
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b_port = b.local_addr().unwrap().port();
    let msg = options(
        &format!("SIP/2.0/UDP 127.0.0.1:{b_port};branch=z9hG4bKsb"),
        "sb",
    );
    a.send_to(msg.as_bytes(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, from) = tokio::time::timeout(Duration::from_secs(3), b.recv_from(&mut buf))
        .await
        .expect("response at the sent-by port")
        .unwrap();
    assert_eq!(from, server, "sent from the listener's socket");
    let resp = String::from_utf8_lossy(&buf[..n]);
    // sent-by IP equals the source: no received parameter (§18.2.1)
    assert_eq!(
        header(&resp, "Via").unwrap(),
        format!("SIP/2.0/UDP 127.0.0.1:{b_port};branch=z9hG4bKsb")
    );
}

/// RFC 5626 §8: STUN Binding on the SIP UDP port is answered with XOR-MAPPED-ADDRESS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stun_keepalive_on_sip_port() {
    let (h, _seen) = start(config(&["udp:127.0.0.1:0"]), None).await;
    let server = h.listeners()[0].local;
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = c.local_addr().unwrap();
    let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    req.extend_from_slice(b"confabtxid01");
    c.send_to(&req, server).await.unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), c.recv_from(&mut buf))
        .await
        .expect("STUN answer")
        .unwrap();
    let r = &buf[..n];
    assert_eq!(&r[0..2], &[0x01, 0x01], "Binding success");
    assert_eq!(&r[8..20], b"confabtxid01");
    assert_eq!(&r[20..22], &[0x00, 0x20], "XOR-MAPPED-ADDRESS");
    let port = u16::from_be_bytes([r[26], r[27]]) ^ 0x2112;
    let ip = std::net::Ipv4Addr::new(r[28] ^ 0x21, r[29] ^ 0x12, r[30] ^ 0xa4, r[31] ^ 0x42);
    assert_eq!(SocketAddr::from((ip, port)), me);
}

/// Garbage is dropped silently; bad input that may be answered is answered, but only at
/// the per-source error-response rate (anti-reflection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_dropped_or_answered_at_limited_rate() {
    let mut cfg = config(&["udp:127.0.0.1:0"]);
    cfg.limits.error_responses_per_second_per_source = 1;
    cfg.limits.error_response_burst_per_source = 3;
    let (h, _seen) = start(cfg, None).await;
    let server = h.listeners()[0].local;
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // pure garbage: nothing comes back
    assert_eq!(
        udp_roundtrip(&c, server, "\x16\x03\x01 not sip at all").await,
        None
    );
    // a request with an unsupported version can be answered (505)
    let bad = options("SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad;rport", "bad")
        .replace("SIP/2.0\r\n", "SIP/7.0\r\n");
    let t0 = Instant::now();
    for _ in 0..20 {
        c.send_to(bad.as_bytes(), server).await.unwrap();
    }
    let mut answers = 0;
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(500), c.recv_from(&mut buf)).await
    {
        let r = String::from_utf8_lossy(&buf[..n]);
        assert!(r.starts_with("SIP/2.0 505 "), "{r}");
        answers += 1;
    }
    let allowed = 3 + t0.elapsed().as_secs() as usize + 1;
    assert!(answers >= 1, "at least the burst is answered");
    assert!(answers <= allowed, "{answers} answers > {allowed} allowed");
}

/// Streams: CRLF ping gets a pong, a request gets its response on the same connection,
/// lost framing closes the connection and reports the flow as closed; sending on the dead
/// flow fails with FlowGone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_keepalive_response_framing_lost_and_flow_gone() {
    let (h, mut seen) = start(config(&["tcp:127.0.0.1:0", "tcp:[::1]:0"]), None).await;
    for li in 0..2 {
        let server = h.listeners()[li].local;
        let mut s = TcpStream::connect(server).await.unwrap();
        s.write_all(b"\r\n\r\n").await.unwrap();
        let mut pong = [0u8; 2];
        s.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"\r\n");
        // request split over two writes: framing waits for the rest
        let msg = options("SIP/2.0/TCP client.invalid;branch=z9hG4bKt1", "t1");
        s.write_all(&msg.as_bytes()[..40]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.write_all(&msg.as_bytes()[40..]).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        let resp = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(resp.starts_with("SIP/2.0 200 "), "{resp}");
        let me = s.local_addr().unwrap();
        assert_eq!(
            header(&resp, "Via").unwrap(),
            format!(
                "SIP/2.0/TCP client.invalid;branch=z9hG4bKt1;received={}",
                me.ip()
            )
        );
        let flow = match next_request(&mut seen).await {
            Seen::Request { flow, .. } => flow,
            other => panic!("{other:?}"),
        };
        assert!(flow.is_connection() && h.flow_is_open(flow));
        // a message without Content-Length cannot be framed on a stream
        s.write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK2\r\n\r\n")
            .await
            .unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("server closes")
            .unwrap_or(0);
        assert_eq!(n, 0, "connection closed");
        loop {
            match recv_timeout(&mut seen, 5).await.expect("FlowClosed") {
                Seen::Closed { flow: f, reason } => {
                    assert_eq!(f, flow);
                    assert_eq!(reason, CloseReason::FramingLost);
                    break;
                }
                _ => continue,
            }
        }
        let err = h
            .send(&Target::Flow(flow), Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::FlowGone(f) if f == flow), "{err}");
        assert!(err.is_flow_failure());
    }
}

/// Idle connections are closed after idle_timeout_s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_closed() {
    let mut cfg = config(&["tcp:127.0.0.1:0"]);
    cfg.idle_timeout_s = 1;
    let (h, mut seen) = start(cfg, None).await;
    let mut s = TcpStream::connect(h.listeners()[0].local).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("closed by the server")
        .unwrap_or(0);
    assert_eq!(n, 0);
    match recv_timeout(&mut seen, 5).await.expect("FlowClosed") {
        Seen::Closed { reason, .. } => assert_eq!(reason, CloseReason::Idle),
        other => panic!("{other:?}"),
    }
}

/// max_connections_per_source: the third connection from one address is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_source_limit() {
    let mut cfg = config(&["tcp:127.0.0.1:0"]);
    cfg.limits.max_connections_per_source = 2;
    let (h, _seen) = start(cfg, None).await;
    let server = h.listeners()[0].local;
    let _a = TcpStream::connect(server).await.unwrap();
    let _b = TcpStream::connect(server).await.unwrap();
    let mut c = TcpStream::connect(server).await.unwrap();
    let mut buf = [0u8; 4];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("third connection closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // another source address is not affected
    let d = tokio::net::TcpSocket::new_v4().unwrap();
    d.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut d = d.connect(server).await.unwrap();
    d.write_all(options("SIP/2.0/TCP 127.0.0.2;branch=z9hG4bKo", "o").as_bytes())
        .await
        .unwrap();
    let n = d.read(&mut [0u8; 2048]).await.unwrap();
    assert!(n > 0);
    // a, b and d are open (registration happens in each connection's task)
    let mut waited = 0;
    while h.connection_count() != 3 && waited < 500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert_eq!(h.connection_count(), 3);
}

/// A flood from one source is capped at its rate and does not keep another source from
/// being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_from_one_source_does_not_starve_another() {
    let mut cfg = config(&["udp:127.0.0.1:0"]);
    cfg.limits.messages_per_second_per_source = 200;
    cfg.limits.message_burst_per_source = 200;
    let (h, mut seen) = start(cfg, None).await;
    let server = h.listeners()[0].local;
    let flood = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let good = UdpSocket::bind("127.0.0.3:0").await.unwrap();
    let t0 = Instant::now();
    let flooder = tokio::spawn(async move {
        let m = options("SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKflood;rport", "flood");
        for _ in 0..20_000 {
            let _ = flood.send_to(m.as_bytes(), server).await;
        }
    });
    let mut answered = 0;
    for i in 0..20 {
        let m = options(
            &format!("SIP/2.0/UDP 127.0.0.3;branch=z9hG4bKg{i};rport"),
            &format!("g{i}"),
        );
        // like a SIP client over UDP, retransmit if the kernel dropped a datagram while
        // the flood filled the socket buffer
        for _attempt in 0..4 {
            if udp_roundtrip(&good, server, &m).await.is_some() {
                answered += 1;
                break;
            }
        }
    }
    flooder.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let mut from_flood = 0;
    while let Ok(Some(s)) = tokio::time::timeout(Duration::from_millis(100), seen.recv()).await {
        if let Seen::Request { source, .. } = s
            && source.ip().to_string() == "127.0.0.2"
        {
            from_flood += 1;
        }
    }
    assert_eq!(answered, 20, "the well-behaved source is served");
    let cap = 200.0 + 200.0 * elapsed + 1.0;
    assert!(
        (from_flood as f64) <= cap,
        "{from_flood} flood messages delivered, cap {cap}"
    );
    assert!(
        from_flood >= 150,
        "the burst itself is delivered ({from_flood})"
    );
}

/// RFC 3261 §18.1.1: a request over 1300 bytes moves from UDP to TCP when the target
/// supports TCP; a small one stays on UDP. The Via names the transport used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_request_moves_to_tcp() {
    let (h, _seen) = start(config(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]), None).await;
    // the peer listens on UDP and TCP on one port
    let peer_udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer = peer_udp.local_addr().unwrap();
    let peer_tcp = TcpListener::bind(peer).await.unwrap();
    let target = RequestTarget {
        transport: TransportKind::Udp,
        addr: peer,
        server_name: None,
        tcp_supported: true,
    };
    let build = |body_len: usize| {
        confab_sip::RequestBuilder::new(confab_sip::Method::Message, "sip:peer@127.0.0.1")
            .via("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbig")
            .from("<sip:a@example.com>;tag=1")
            .to("<sip:peer@example.com>")
            .call_id("big")
            .cseq(1)
            .max_forwards(70)
            .body("text/plain", Bytes::from(vec![b'x'; body_len]))
            .build()
            .unwrap()
    };
    let mut small = build(100);
    let f = h.send_request(&mut small, &target).await.unwrap();
    assert!(!f.is_connection());
    let mut buf = vec![0u8; 65536];
    let (n, _) = peer_udp.recv_from(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("Via: SIP/2.0/UDP 127.0.0.1:5060"));

    let mut big = build(1500);
    let tcp_flow = h.send_request(&mut big, &target).await.unwrap();
    assert!(tcp_flow.is_connection());
    let (mut conn, _) = peer_tcp.accept().await.unwrap();
    let mut got = Vec::new();
    while got.len() < big.encoded_len() {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKbig"),
        "{text}"
    );

    // TCP refused (reset): §18.1.1 says retry over UDP, with the Via saying UDP again
    drop(conn);
    drop(peer_tcp);
    while h.flow_is_open(tcp_flow) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut big3 = build(1500);
    let f = h.send_request(&mut big3, &target).await.unwrap();
    assert!(!f.is_connection(), "fell back to UDP");
    let (n, _) = peer_udp.recv_from(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n])
            .contains("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbig")
    );

    // the target does not support TCP: stays on UDP
    let mut big2 = build(1500);
    let t2 = RequestTarget {
        tcp_supported: false,
        ..target.clone()
    };
    assert!(
        !h.send_request(&mut big2, &t2)
            .await
            .unwrap()
            .is_connection()
    );
}

/// RFC 5923: with `alias`, a request to the client's sent-by reuses its connection
/// (alias_on_tcp set, as on a trusted network); without it a new connection is tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_reuse_with_alias() {
    let mut cfg = config(&["tcp:127.0.0.1:0"]);
    cfg.alias_on_tcp = true;
    let (h, mut seen) = start(cfg, None).await;
    let server = h.listeners()[0].local;
    // a port nobody listens on
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut s = TcpStream::connect(server).await.unwrap();
    let via = format!("SIP/2.0/TCP {closed};alias;branch=z9hG4bKal");
    s.write_all(options(&via, "al").as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200"));
    let flow = match next_request(&mut seen).await {
        Seen::Request { flow, .. } => flow,
        other => panic!("{other:?}"),
    };
    let target = Target::Addr {
        transport: TransportKind::Tcp,
        addr: closed,
        server_name: None,
    };
    let used = h
        .send(&target, Bytes::from_static(b"NOTIFY-ish bytes"))
        .await
        .unwrap();
    assert_eq!(used, flow, "reused the client's connection");
    let n = s.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"NOTIFY-ish bytes");
    drop(s);
    // once that connection is gone, the alias is gone: a new connection is refused
    loop {
        if let Seen::Closed { .. } = recv_timeout(&mut seen, 5).await.expect("closed") {
            break;
        }
    }
    let err = h.send(&target, Bytes::from_static(b"x")).await.unwrap_err();
    assert!(matches!(err, SendError::Connect { .. }), "{err}");
}

/// On streams the per-source message rate pauses reading instead of dropping: every
/// request of a burst above the rate is still answered, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_rate_limit_paces_without_loss() {
    let mut cfg = config(&["tcp:127.0.0.1:0"]);
    cfg.limits.messages_per_second_per_source = 20;
    cfg.limits.message_burst_per_source = 5;
    let (h, _seen) = start(cfg, None).await;
    let mut s = TcpStream::connect(h.listeners()[0].local).await.unwrap();
    let mut all = String::new();
    for i in 0..25 {
        all.push_str(&options(
            &format!("SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKp{i}"),
            &format!("p{i}"),
        ));
    }
    s.write_all(all.as_bytes()).await.unwrap();
    let mut got = String::new();
    let mut buf = vec![0u8; 8192];
    while got.matches("SIP/2.0 200 ").count() < 25 {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("all 25 answered")
            .unwrap();
        assert!(n > 0, "connection closed early");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let order: Vec<usize> = got
        .match_indices("Call-ID: p")
        .map(|(i, _)| got[i + 10..].split("\r\n").next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(order, (0..25).collect::<Vec<_>>());
}

/// RFC 3261 §18.1.2: a response whose Via is not ours is dropped; one with our sent-by is
/// delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_responses_dropped() {
    let (h, mut seen) = start(config(&["udp:127.0.0.1:0"]), None).await;
    let server = h.listeners()[0].local;
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let resp = |via: &str| {
        format!(
            "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n\
             Call-ID: r\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    c.send_to(
        resp("SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKx").as_bytes(),
        server,
    )
    .await
    .unwrap();
    c.send_to(
        resp(&format!("SIP/2.0/UDP {server};branch=z9hG4bKy")).as_bytes(),
        server,
    )
    .await
    .unwrap();
    match recv_timeout(&mut seen, 5).await.expect("our response") {
        Seen::Response { status, .. } => assert_eq!(status, 200),
        other => panic!("{other:?}"),
    }
    assert!(
        recv_timeout(&mut seen, 1).await.is_none(),
        "the foreign one was dropped"
    );
}

/// Random and mutated input over UDP and TCP never takes a receive task down: afterwards
/// OPTIONS from many source ports (spread over every SO_REUSEPORT socket) are all answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_input_never_breaks_the_server() {
    let (h, _seen) = start(config(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]), None).await;
    let udp = h.listener(TransportKind::Udp).unwrap().local;
    let tcp = h.listener(TransportKind::Tcp).unwrap().local;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let valid = options("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKr;rport", "r").into_bytes();
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..3000 {
        let d: Vec<u8> = if i % 2 == 0 {
            let len = (next() % 1500) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            let mut m = valid.clone();
            for _ in 0..(1 + next() % 4) {
                let at = (next() as usize) % m.len();
                m[at] = next() as u8;
            }
            let cut = (next() as usize) % (m.len() + 1);
            m.truncate(cut.max(1));
            m
        };
        let _ = c.send_to(&d, udp).await;
    }
    for _ in 0..50 {
        let mut s = TcpStream::connect(tcp).await.unwrap();
        for _ in 0..5 {
            let len = (next() % 700) as usize;
            let chunk: Vec<u8> = if next() % 2 == 0 {
                (0..len).map(|_| next() as u8).collect()
            } else {
                valid[..len.min(valid.len())].to_vec()
            };
            if s.write_all(&chunk).await.is_err() {
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..16 {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let m = options(
            &format!("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKok{i};rport"),
            &format!("ok{i}"),
        );
        let r = udp_roundtrip(&s, udp, &m)
            .await
            .expect("answered after the garbage");
        assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    }
    let mut s = TcpStream::connect(tcp).await.unwrap();
    s.write_all(options("SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKtcpok", "tok").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 "));
}

/// `flow_to` gives client transactions their flow: a datagram flow for UDP, one connection
/// for TCP even when several tasks ask at once; the token tells the transaction layer
/// whether to retransmit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_to_opens_one_connection_per_destination() {
    use confab_sip::transaction::Flow as _;
    let (h, _seen) = start(config(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]), None).await;
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = peer.local_addr().unwrap();
    let udp = h
        .flow_to(&Target::Addr {
            transport: TransportKind::Udp,
            addr,
            server_name: None,
        })
        .await
        .unwrap();
    assert!(!udp.is_reliable());
    let target = Target::Addr {
        transport: TransportKind::Tcp,
        addr,
        server_name: None,
    };
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let h = h.clone();
            let t = target.clone();
            tokio::spawn(async move { h.flow_to(&t).await.unwrap() })
        })
        .collect();
    let mut flows = Vec::new();
    for t in tasks {
        flows.push(t.await.unwrap());
    }
    assert!(
        flows.iter().all(|f| *f == flows[0] && f.is_reliable()),
        "{flows:?}"
    );
    let (_c1, _) = peer.accept().await.unwrap();
    let second = tokio::time::timeout(Duration::from_millis(300), peer.accept()).await;
    assert!(second.is_err(), "only one connection was opened");
    assert_eq!(h.flow_peer(flows[0]), Some((TransportKind::Tcp, addr)));
}

/// What the next transport event is (method or status) and how long ago it arrived.
async fn next_message(
    events: &mut tokio::sync::mpsc::Receiver<confab_transport::TransportEvent>,
) -> (String, Duration) {
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .expect("channel open");
    let confab_transport::TransportEvent::Message(inb) = ev else {
        panic!("{ev:?}")
    };
    let what = match inb.message.status() {
        Some(s) => s.to_string(),
        None => inb.message.method().unwrap().as_str().to_owned(),
    };
    (what, inb.received_at.elapsed())
}

/// `max_datagram_age_ms`: a new request that waited in the kernel's receive buffer longer
/// than the limit is dropped unparsed; a response and an ACK of the same age are delivered,
/// and so is a fresh request sent afterwards. The backlog builds because the event channel
/// (one slot) is full and nobody reads it: the receive task waits for room instead of
/// reading on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_new_requests_dropped_responses_kept() {
    let mut cfg = config(&["udp:127.0.0.1:0"]);
    cfg.udp_workers = 1;
    cfg.event_queue = 1;
    cfg.max_datagram_age_ms = 50;
    cfg.check_response_sent_by = false;
    let (h, mut events) = confab_transport::Transport::bind(cfg, None)
        .await
        .expect("bind");
    let server = h.listeners()[0].local;
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = c.local_addr().unwrap();
    let request = |method: &str, n: u32| {
        format!(
            "{method} sip:confab@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKst{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:t@example.com>;tag=t1\r\nTo: <sip:c@example.com>\r\n\
             Call-ID: stale{n}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let response = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {server};branch=z9hG4bKresp\r\n\
         From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: resp\r\nCSeq: 1 MESSAGE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    // Two BYEs (never dropped for age) fill the channel and the receive task's hands; the
    // rest waits in the kernel buffer, since nobody reads the events yet.
    for m in [
        request("BYE", 1),
        request("BYE", 2),
        request("MESSAGE", 3),
        request("INVITE", 4),
        request("ACK", 5),
        response,
    ] {
        c.send_to(m.as_bytes(), server).await.unwrap();
    }
    // Let what is queued in the kernel grow older than the limit.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next_message(&mut events).await);
    }
    c.send_to(request("MESSAGE", 6).as_bytes(), server)
        .await
        .unwrap();
    got.push(next_message(&mut events).await);
    let names: Vec<&str> = got.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(names, ["BYE", "BYE", "ACK", "200", "MESSAGE"], "{got:?}");
    // received_at is the kernel's receive time: the ACK and the response show the time they
    // spent in the socket buffer; the fresh MESSAGE does not.
    assert!(got[2].1 >= Duration::from_millis(150), "{got:?}");
    assert!(got[3].1 >= Duration::from_millis(150), "{got:?}");
    assert!(got[4].1 < Duration::from_millis(150), "{got:?}");
    h.shutdown();
}

/// `TransportHandle::is_stale`, the check for later stages: a UDP request that starts new
/// work and arrived more than twice `max_datagram_age_ms` ago; never an in-progress method,
/// a response or a stream message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_stale_for_later_stages() {
    use confab_transport::{FlowToken, Inbound, Transport};
    let mut cfg = config(&["udp:127.0.0.1:0"]);
    cfg.max_datagram_age_ms = 100;
    let (h, _events) = Transport::bind(cfg, None).await.expect("bind");
    let local = h.listeners()[0].local;
    let parse = |text: String| {
        confab_sip::parse_datagram(Bytes::from(text), &confab_sip::Limits::DEFAULT).unwrap()
    };
    let req = |method: &str| {
        parse(format!(
            "{method} sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKis\r\n\
             Max-Forwards: 70\r\nFrom: <sip:t@x>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: is\r\n\
             CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        ))
    };
    let inbound = |message, transport, ago_ms: u64| Inbound {
        message,
        flow: FlowToken::datagram(0, local),
        source: local,
        listener: None,
        local,
        transport,
        peer_identity: None,
        received_at: Instant::now() - Duration::from_millis(ago_ms),
    };
    assert!(h.is_stale(&inbound(req("MESSAGE"), TransportKind::Udp, 300)));
    assert!(!h.is_stale(&inbound(req("MESSAGE"), TransportKind::Udp, 150)));
    assert!(!h.is_stale(&inbound(req("BYE"), TransportKind::Udp, 300)));
    assert!(!h.is_stale(&inbound(req("MESSAGE"), TransportKind::Tcp, 300)));
    let resp = parse(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKis\r\nFrom: <sip:t@x>;tag=1\r\n\
         To: <sip:a@b>;tag=2\r\nCall-ID: is\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
            .to_owned(),
    );
    assert!(!h.is_stale(&inbound(resp, TransportKind::Udp, 300)));
    h.shutdown();
}
