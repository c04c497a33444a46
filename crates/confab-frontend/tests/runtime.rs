//! The runtime's own duties: overload shedding, drain, flow failure.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::Ua;
use confab_core::chain::{Outcome, RequestContext, RequestHandler};
use confab_core::{Address, RegistrationStore, Timestamp};
use confab_frontend::FrontendSettings;
use confab_frontend::testing::TestServer;
use confab_sip::HeaderName;
use confab_transport::TransportKind;
use tokio::sync::Semaphore;

/// A chain step that holds requests carrying `X-Hold` until a permit is released.
#[derive(Debug)]
struct Gate(Arc<Semaphore>);

#[async_trait]
impl RequestHandler for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    async fn handle(&self, ctx: &mut RequestContext) -> Outcome {
        if ctx.request.contains("X-Hold") {
            self.0.acquire().await.unwrap().forget();
        }
        Outcome::Continue
    }
}

fn options(via: &str, hold: bool, call_id: &str) -> String {
    let hold = if hold { "X-Hold: yes\n" } else { "" };
    format!(
        "OPTIONS sip:example.com SIP/2.0\nVia: {via}\nFrom: <sip:visitor@elsewhere.example>;tag=v\n\
         To: <sip:example.com>\nCall-ID: {call_id}\nCSeq: 1 OPTIONS\nMax-Forwards: 70\n\
         {hold}Content-Length: 0\n\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_sheds_new_requests_and_absorbs_retransmissions() {
    let gate = Arc::new(Semaphore::new(0));
    let mut settings = FrontendSettings::new("test-node", &["example.com".into()]);
    settings.frontend.workers = 1;
    settings.frontend.max_pending_per_worker = 1;
    settings.frontend.overload_retry_after_s = 7;
    let s = TestServer::builder()
        .settings(settings)
        .handler_before("dialog", Arc::new(Gate(gate.clone())))
        .start()
        .await;
    let mut ua = Ua::udp(s.addr(TransportKind::Udp), "visitor", "x").await;
    // A request held in the chain fills the worker.
    let held_via = ua.via();
    let held = options(&held_via, true, "held");
    ua.send(&held).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Its retransmission is absorbed: no second chain run, no response.
    ua.send(&held).await;
    // A new request is refused at once with Retry-After.
    let via = ua.via();
    let other = options(&via, false, "other");
    ua.send(&other).await;
    let r = ua.recv().await;
    assert_eq!(r.status(), Some(503));
    assert_eq!(r.call_id().unwrap().unwrap(), "other");
    assert_eq!(
        r.get(HeaderName::RetryAfter).unwrap().value_str(),
        Some("7")
    );
    // Released, the held request is answered exactly once.
    gate.add_permits(1);
    let r = ua.recv().await;
    assert_eq!(
        (r.status(), r.call_id().unwrap().unwrap()),
        (Some(200), "held")
    );
    let more = tokio::time::timeout(Duration::from_millis(500), ua.recv()).await;
    assert!(more.is_err(), "a second response: {more:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_refuses_new_requests_and_finishes_old_ones() {
    let s = TestServer::builder()
        .user("alice@example.com", "alice-pw")
        .user("bob@example.com", "bob-pw")
        .start()
        .await;
    let tcp = s.addr(TransportKind::Tcp);
    let mut alice = Ua::tcp(tcp, "alice", "alice-pw").await;
    let mut bob = Ua::tcp(tcp, "bob", "bob-pw").await;
    bob.register().await;
    alice.register().await;
    // alice → bob: a MESSAGE that bob does not answer yet.
    let message = |via: &str, cseq: u32, auth: &str| {
        format!(
            "MESSAGE sip:bob@example.com SIP/2.0\nVia: {via}\nFrom: <sip:alice@example.com>;tag=m\n\
             To: <sip:bob@example.com>\nCall-ID: m1\nCSeq: {cseq} MESSAGE\nMax-Forwards: 70\n\
             {auth}Content-Type: text/plain\nContent-Length: 2\n\nhi"
        )
    };
    let via = alice.via();
    alice.send(&message(&via, 1, "")).await;
    let ch = alice.recv().await;
    let (h, v) = alice.answer(&ch, "MESSAGE", "sip:bob@example.com");
    let via = alice.via();
    alice.send(&message(&via, 2, &format!("{h}: {v}\n"))).await;
    let msg = bob.recv().await;
    assert_eq!(msg.method().unwrap().as_str(), "MESSAGE");

    let draining = tokio::spawn(s.drain());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A new request during the drain: 503 with Retry-After.
    let via = alice.via();
    let text = options(&via, false, "late");
    alice.send(&text).await;
    let r = alice.recv().await;
    assert_eq!(r.status(), Some(503));
    assert!(r.contains(HeaderName::RetryAfter));
    assert!(!draining.is_finished(), "a transaction is still open");
    // The old transaction completes, then the drain ends.
    bob.send_msg(&bob.reply(&msg, 200)).await;
    let ok = alice.recv().await;
    assert_eq!(
        (ok.status(), ok.call_id().unwrap().unwrap()),
        (Some(200), "m1")
    );
    tokio::time::timeout(Duration::from_secs(5), draining)
        .await
        .expect("drain ends once transactions are done")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_flow_removes_its_outbound_binding() {
    let s = TestServer::builder()
        .user("bob@example.com", "bob-pw")
        .start()
        .await;
    let mut bob = Ua::tcp(s.addr(TransportKind::Tcp), "bob", "bob-pw").await;
    let contact = format!(
        "<sip:bob@{};transport=tcp;ob>;reg-id=1;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000001>\"",
        bob.local
    );
    let mut auth = String::new();
    for cseq in 1..=2 {
        let via = bob.via();
        bob.send(&format!(
            "REGISTER sip:example.com SIP/2.0\nVia: {via}\nFrom: <sip:bob@example.com>;tag=r\n\
             To: <sip:bob@example.com>\nCall-ID: ob-1\nCSeq: {cseq} REGISTER\nContact: {contact}\n\
             Supported: outbound, path\nExpires: 300\nMax-Forwards: 70\n{auth}Content-Length: 0\n\n"
        ))
        .await;
        let r = bob.recv().await;
        if r.status() == Some(401) {
            let (h, v) = bob.answer(&r, "REGISTER", "sip:example.com");
            auth = format!("{h}: {v}\n");
        } else {
            assert_eq!(r.status(), Some(200), "{r:?}");
        }
    }
    let aor = Address::parse("bob@example.com").unwrap();
    let now = || Timestamp::from_system(std::time::SystemTime::now());
    let found = s.store.lookup(&aor, now()).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].is_outbound());
    drop(bob);
    let mut left = usize::MAX;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = s.store.lookup(&aor, now()).await.unwrap().len();
        if left == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "the outbound binding went with its flow");
    s.stop().await;
}
