//! A UDP caller reaches a TCP, WebSocket or UDP callee through the running Front End and
//! back: INVITE with proxy authentication, 180, 200, ACK and BYE along the route set,
//! with double Record-Route when the transports differ (RFC 5658) and in-dialog requests
//! sent over the callee's own connection (flow tokens in Record-Route, RFC 5626 §5.3).

mod common;

use common::{Ua, values};
use confab_frontend::testing::TestServer;
use confab_sip::{HeaderName, Message};
use confab_transport::TransportKind;

async fn server() -> TestServer {
    TestServer::builder()
        .user("alice@example.com", "alice-pw")
        .user("bob@example.com", "bob-pw")
        .listen(&[TransportKind::Udp, TransportKind::Tcp, TransportKind::Ws])
        .start()
        .await
}

fn method(m: &Message) -> &str {
    m.method().map_or("", |x| x.as_str())
}

fn uri_of(name_addr: &str) -> String {
    let s = name_addr.find('<').map_or(0, |i| i + 1);
    let e = name_addr.rfind('>').unwrap_or(name_addr.len());
    name_addr[s..e].to_owned()
}

/// alice (UDP) calls bob (any transport) and bob hangs up. Returns the Record-Route bob saw.
async fn call(alice: &mut Ua, bob: &mut Ua) -> Vec<String> {
    bob.register().await;
    alice.register().await;

    let call_id = format!("call-{}", bob.via_transport);
    let alice_addr = alice.local;
    let invite = |via: &str, cseq: u32, auth: &str| {
        format!(
            "INVITE sip:bob@example.com SIP/2.0\nVia: {via}\n\
             From: \"Alice\" <sip:alice@example.com>;tag=a1\nTo: <sip:bob@example.com>\n\
             Call-ID: {call_id}\nCSeq: {cseq} INVITE\nContact: <sip:alice@{}>\n\
             Max-Forwards: 70\n{auth}Content-Type: application/sdp\nContent-Length: 5\n\nv=0\n",
            alice_addr
        )
    };
    let via = alice.via();
    alice.send(&invite(&via, 1, "")).await;
    let challenge = alice.recv_skip_trying().await;
    assert_eq!(challenge.status(), Some(407));
    alice.send(&common_ack(&challenge, &via)).await;
    let (h, v) = alice.answer(&challenge, "INVITE", "sip:bob@example.com");
    let via = alice.via();
    alice.send(&invite(&via, 2, &format!("{h}: {v}\n"))).await;

    // bob gets the INVITE over his own connection, with our Record-Route(s).
    let inv = bob.recv().await;
    assert_eq!(method(&inv), "INVITE");
    assert_eq!(inv.body(), b"v=0\r\n");
    assert!(
        !inv.contains(HeaderName::PAssertedIdentity),
        "no PAI toward an untrusted UA"
    );
    let rr = values(&inv, HeaderName::RecordRoute);
    bob.send_msg(&bob.reply(&inv, 180)).await;
    bob.send_msg(&bob.reply(&inv, 200)).await;

    let ringing = alice.recv_skip_trying().await;
    assert_eq!(ringing.status(), Some(180));
    let ok = alice.recv_skip_trying().await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(values(&ok, HeaderName::Via).len(), 1, "proxy Via removed");
    let bob_contact = uri_of(&values(&ok, HeaderName::Contact)[0]);

    // ACK along the route set (reversed Record-Route) to bob's Contact.
    let mut routes: Vec<String> = values(&ok, HeaderName::RecordRoute);
    routes.reverse();
    let route_lines: String = routes.iter().map(|r| format!("Route: {r}\n")).collect();
    let via = alice.via();
    alice
        .send(&format!(
            "ACK {bob_contact} SIP/2.0\nVia: {via}\nFrom: \"Alice\" <sip:alice@example.com>;tag=a1\n\
             To: <sip:bob@example.com>;tag=t{}\nCall-ID: {call_id}\nCSeq: 2 ACK\n\
             Max-Forwards: 70\n{route_lines}Content-Length: 0\n\n",
            bob.user
        ))
        .await;
    let ack = bob.recv().await;
    assert_eq!(method(&ack), "ACK");
    assert!(
        !ack.contains(HeaderName::Route),
        "our Route entries are consumed"
    );

    // bob hangs up: BYE to alice's Contact along the Record-Route as received.
    let route_lines: String = rr.iter().map(|r| format!("Route: {r}\n")).collect();
    let via = bob.via();
    bob.send(&format!(
        "BYE sip:alice@{} SIP/2.0\nVia: {via}\nFrom: <sip:bob@example.com>;tag=t{}\n\
         To: \"Alice\" <sip:alice@example.com>;tag=a1\nCall-ID: {call_id}\nCSeq: 1 BYE\n\
         Max-Forwards: 70\n{route_lines}Content-Length: 0\n\n",
        alice.local, bob.user
    ))
    .await;
    let bye = alice.recv().await;
    assert_eq!(method(&bye), "BYE");
    alice.send_msg(&alice.reply(&bye, 200)).await;
    let done = bob.recv_skip_trying().await;
    assert_eq!(done.status(), Some(200));
    assert_eq!(done.cseq().unwrap().unwrap().method.as_str(), "BYE");
    rr
}

/// The ACK for a non-2xx final response (same branch as the INVITE).
fn common_ack(resp: &Message, via: &str) -> String {
    let get = |n: HeaderName| resp.get(n).unwrap().value_str().unwrap().to_owned();
    format!(
        "ACK sip:bob@example.com SIP/2.0\nVia: {via}\nFrom: {}\nTo: {}\nCall-ID: {}\n\
         CSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
        get(HeaderName::From),
        get(HeaderName::To),
        get(HeaderName::CallId)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_caller_reaches_tcp_callee_and_back() {
    let s = server().await;
    let mut alice = Ua::udp(s.addr(TransportKind::Udp), "alice", "alice-pw").await;
    let mut bob = Ua::tcp(s.addr(TransportKind::Tcp), "bob", "bob-pw").await;
    let rr = call(&mut alice, &mut bob).await;
    assert_eq!(rr.len(), 2, "double Record-Route when bridging: {rr:?}");
    assert!(rr[0].contains(";transport=tcp;lr;r2=on"), "{rr:?}");
    assert!(
        rr[1].ends_with(";lr;r2=on>") && !rr[1].contains("transport="),
        "{rr:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_caller_reaches_websocket_callee_and_back() {
    let s = server().await;
    let mut alice = Ua::udp(s.addr(TransportKind::Udp), "alice", "alice-pw").await;
    let mut bob = Ua::ws(s.addr(TransportKind::Ws), "bob", "bob-pw").await;
    let rr = call(&mut alice, &mut bob).await;
    assert_eq!(rr.len(), 2, "{rr:?}");
    assert!(rr[0].contains(";transport=ws;"), "{rr:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_to_udp_uses_one_record_route() {
    let s = server().await;
    let mut alice = Ua::udp(s.addr(TransportKind::Udp), "alice", "alice-pw").await;
    let mut bob = Ua::udp(s.addr(TransportKind::Udp), "bob", "bob-pw").await;
    let rr = call(&mut alice, &mut bob).await;
    assert_eq!(rr.len(), 1, "{rr:?}");
    s.stop().await;
}
