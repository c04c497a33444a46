//! Instant messaging through a whole Front End: offline store-and-forward (202 after the
//! commit, delivery in order on REGISTER, quota, expiry with an IMDN failure notification)
//! and the filters in the chain (Client Version Filter refusals and upgrade notice, IM
//! filter link blocking and rewriting), with policy changes applied without a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Ua;
use confab_core::PageRequest;
use confab_core::message_queue::MessageQueueStore;
use confab_core::policy::{
    ClientAction, ClientVersionRule, ImFilterPolicy, PolicyStore, UrlAction,
};
use confab_filters::{FilterPolicies, FilterSettings};
use confab_frontend::testing::TestServer;
use confab_im::ImConfig;
use confab_sip::{HeaderName, Message};
use confab_store::{SqliteStore, StoreConfig};
use confab_transport::TransportKind;

/// Sends a MESSAGE from `ua` to `to`, answering the 407; returns the final response.
async fn message(ua: &mut Ua, to: &str, call_id: &str, ctype: &str, body: &str) -> Message {
    let mut auth = String::new();
    for cseq in 1..=2 {
        let via = ua.via();
        let text = format!(
            "MESSAGE sip:{to} SIP/2.0\nVia: {via}\nFrom: <sip:{u}@example.com>;tag=f{call_id}\n\
             To: <sip:{to}>\nCall-ID: {call_id}\nCSeq: {cseq} MESSAGE\nMax-Forwards: 70\n\
             User-Agent: TestUA/1.0\n{auth}Content-Type: {ctype}\nContent-Length: {len}\n\n{body}",
            u = ua.user,
            len = body.len(),
        );
        ua.send(&text).await;
        let r = ua.recv_skip_trying().await;
        if r.status() == Some(407) && cseq == 1 {
            let (h, v) = ua.answer(&r, "MESSAGE", &format!("sip:{to}"));
            auth = format!("{h}: {v}\n");
            continue;
        }
        return r;
    }
    unreachable!()
}

fn reason(m: &Message) -> String {
    String::from_utf8_lossy(m.reason().unwrap_or(b"")).into_owned()
}

fn body(m: &Message) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_are_stored_then_delivered_in_order_when_the_user_registers() {
    let s = TestServer::builder()
        .user("alice@example.com", "alice-pw")
        .user("bob@example.com", "bob-pw")
        .offline_messages(ImConfig::default())
        .start()
        .await;
    let udp = s.addr(TransportKind::Udp);
    let mut alice = Ua::udp(udp, "alice", "alice-pw").await;
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        let r = message(
            &mut alice,
            "bob@example.com",
            &format!("m{i}"),
            "text/plain",
            text,
        )
        .await;
        assert_eq!(r.status(), Some(202), "{}", reason(&r));
        assert_eq!(reason(&r), confab_im::STORED_REASON);
    }
    // A user that does not exist still gets 404, not a queue.
    let r = message(&mut alice, "nobody@example.com", "n", "text/plain", "x").await;
    assert_eq!(r.status(), Some(404));
    let queued = s
        .store
        .list_queued(None, PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(queued.items.len(), 3);

    // bob comes online: the three messages arrive in order, without alice's credentials.
    let mut bob = Ua::udp(udp, "bob", "bob-pw").await;
    bob.register().await;
    for text in ["one", "two", "three"] {
        let m = bob.recv().await;
        assert_eq!(m.method().unwrap().as_str(), "MESSAGE");
        assert_eq!(body(&m), text);
        assert!(!m.contains(HeaderName::ProxyAuthorization));
        assert!(
            m.contains(HeaderName::Date),
            "a Date header tells when it was sent"
        );
        assert_eq!(m.from().unwrap().unwrap().uri_str, "sip:alice@example.com");
        bob.send_msg(&bob.reply(&m, 200)).await;
    }
    // Recorded as delivered (kept for the delivery window).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = s
        .store
        .list_queued(None, PageRequest::first(10))
        .await
        .unwrap();
    assert!(
        queued
            .items
            .iter()
            .all(|m| m.first_delivered_at.is_some() && m.delivered_to.len() == 1),
        "{queued:?}"
    );
    // bob's second device registers within the delivery window: it gets the three too,
    // and the first device does not get them twice.
    let mut bob2 = Ua::udp(udp, "bob", "bob-pw").await;
    bob2.register().await;
    for text in ["one", "two", "three"] {
        let m = bob2.recv().await;
        assert_eq!(body(&m), text);
        bob2.send_msg(&bob2.reply(&m, 200)).await;
    }
    let again = tokio::time::timeout(Duration::from_millis(700), bob.recv()).await;
    assert!(again.is_err(), "delivered twice: {again:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = s
        .store
        .list_queued(None, PageRequest::first(10))
        .await
        .unwrap();
    assert!(
        queued.items.iter().all(|m| m.delivered_to.len() == 2),
        "{queued:?}"
    );
    // Online now: the next MESSAGE is relayed, not stored.
    let relay = tokio::spawn(async move {
        let r = message(&mut alice, "bob@example.com", "live", "text/plain", "live").await;
        (alice, r)
    });
    let m = bob.recv().await;
    assert_eq!(body(&m), "live");
    let m2 = bob2.recv().await;
    assert_eq!(body(&m2), "live", "forked to every endpoint");
    bob.send_msg(&bob.reply(&m, 200)).await;
    let (_alice, r) = relay.await.unwrap();
    assert_eq!(r.status(), Some(200));
    s.stop().await;
}

const CPIM_NEGATIVE: &str = "From: <sip:alice@example.com>\r\nTo: <sip:bob@example.com>\r\n\
    NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: abc123\r\n\
    DateTime: 2026-01-01T10:00:00Z\r\n\
    imdn.Disposition-Notification: negative-delivery\r\n\r\n\
    Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_refuses_and_expiry_sends_the_imdn_failure_the_sender_asked_for() {
    let config = ImConfig {
        quota_messages: 1,
        expiry_s: 1,
        sweep_interval_s: 1,
        ..ImConfig::default()
    };
    let s = TestServer::builder()
        .user("alice@example.com", "alice-pw")
        .user("bob@example.com", "bob-pw")
        .offline_messages(config)
        .start()
        .await;
    let udp = s.addr(TransportKind::Udp);
    let mut alice = Ua::udp(udp, "alice", "alice-pw").await;
    alice.register().await;
    let r = message(
        &mut alice,
        "bob@example.com",
        "q1",
        "message/cpim",
        CPIM_NEGATIVE,
    )
    .await;
    assert_eq!(r.status(), Some(202));
    let r = message(&mut alice, "bob@example.com", "q2", "text/plain", "over").await;
    assert_eq!(r.status(), Some(480));
    assert_eq!(reason(&r), confab_im::QUOTA_REASON);
    // After expiry, alice (online) receives the IMDN "failed" for message abc123.
    let n = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            let m = alice.recv().await;
            if m.method().is_some_and(|m| m.as_str() == "MESSAGE") {
                return m;
            }
        }
    })
    .await
    .expect("an IMDN within 8 s");
    let text = body(&n);
    assert!(text.contains("<message-id>abc123</message-id>"), "{text}");
    assert!(text.contains("<failed/>"), "{text}");
    assert!(text.contains("Content-Disposition: notification"), "{text}");
    assert_eq!(n.from().unwrap().unwrap().uri_str, "sip:bob@example.com");
    alice.send_msg(&alice.reply(&n, 200)).await;
    s.stop().await;
}

async fn policies(dir: &std::path::Path) -> (SqliteStore, Arc<FilterPolicies>) {
    let store = SqliteStore::open_or_create(StoreConfig::new(dir.join("policy.db")))
        .await
        .unwrap();
    let p = FilterPolicies::load(
        Arc::new(store.clone()),
        FilterSettings {
            served_domains: vec!["example.com".into()],
            warn_agent: "example.com".into(),
        },
    )
    .await
    .unwrap();
    (store, Arc::new(p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_refuse_old_clients_notify_upgrades_and_apply_link_policy_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (pstore, policies) = policies(dir.path()).await;
    let s = TestServer::builder()
        .user("alice@example.com", "alice-pw")
        .user("bob@example.com", "bob-pw")
        .handler_before("dialog", Arc::new(policies.client_version_handler()))
        .handler_before("router", Arc::new(policies.im_filter_handler()))
        .start()
        .await;
    let udp = s.addr(TransportKind::Udp);
    let url = "https://example.com/download";
    pstore
        .insert_client_version_rule(
            None,
            ClientVersionRule::new(
                "OldPhone",
                "< 2.0",
                ClientAction::block(Some("Upgrade OldPhone")),
            ),
        )
        .await
        .unwrap();
    pstore
        .insert_client_version_rule(
            None,
            ClientVersionRule::new(
                "TestUA",
                "*",
                ClientAction::allow_with_notice(url, Some("TestUA 2 is out")),
            ),
        )
        .await
        .unwrap();
    policies.refresh().await.unwrap();

    // A blocked client: 403 with the rule's reason, before any challenge.
    let mut old = Ua::udp(udp, "alice", "alice-pw").await;
    let via = old.via();
    old.send(&format!(
        "REGISTER sip:example.com SIP/2.0\nVia: {via}\nFrom: <sip:alice@example.com>;tag=o\n\
         To: <sip:alice@example.com>\nCall-ID: old\nCSeq: 1 REGISTER\nContact: {c}\n\
         User-Agent: OldPhone/1.5\nMax-Forwards: 70\nContent-Length: 0\n\n",
        c = old.contact()
    ))
    .await;
    let r = old.recv().await;
    assert_eq!(
        (r.status(), reason(&r)),
        (Some(403), "Upgrade OldPhone".into())
    );

    // allow_with_notice: the MESSAGE's final response carries the Warning.
    let mut alice = Ua::udp(udp, "alice", "alice-pw").await;
    let mut bob = Ua::udp(udp, "bob", "bob-pw").await;
    bob.register().await;
    let send = |mut ua: Ua, body: &'static str, id: &'static str| {
        tokio::spawn(async move {
            let r = message(&mut ua, "bob@example.com", id, "text/plain", body).await;
            (ua, r)
        })
    };
    let t = send(alice, "see http://example.org/x now", "l1");
    let m = bob.recv().await;
    assert_eq!(
        body(&m),
        "see http://example.org/x now",
        "allowed by default"
    );
    bob.send_msg(&bob.reply(&m, 200)).await;
    let (a, r) = t.await.unwrap();
    alice = a;
    assert_eq!(r.status(), Some(200));
    let w = r.get(HeaderName::Warning).expect("upgrade notice");
    assert_eq!(
        w.value_str().unwrap(),
        format!("399 example.com \"TestUA 2 is out: {url}\"")
    );

    // Links blocked: 403 saying why.
    pstore
        .set_im_filter_policy(ImFilterPolicy {
            urls: confab_core::policy::UrlFilter {
                action: UrlAction::Block,
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    policies.refresh().await.unwrap();
    let r = message(
        &mut alice,
        "bob@example.com",
        "l2",
        "text/plain",
        "go to www.example.org",
    )
    .await;
    assert_eq!(r.status(), Some(403));
    assert_eq!(reason(&r), "Message blocked: links are not allowed");

    // Links disabled: delivered with the prefix.
    pstore
        .set_im_filter_policy(ImFilterPolicy {
            urls: confab_core::policy::UrlFilter {
                action: UrlAction::DisableLinks,
                prefix: "LINK_".into(),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    policies.refresh().await.unwrap();
    let t = send(alice, "see http://example.org/x now", "l3");
    let m = bob.recv().await;
    assert_eq!(body(&m), "see LINK_http://example.org/x now");
    bob.send_msg(&bob.reply(&m, 200)).await;
    let (_alice, r) = t.await.unwrap();
    assert_eq!(r.status(), Some(200));
    s.stop().await;
}
