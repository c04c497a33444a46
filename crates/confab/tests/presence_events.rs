//! The SIP events framework and presence on the real binary: `confab serve` with two users,
//! a test user agent over UDP (digest, NOTIFYs answered) subscribes, publishes, refreshes,
//! fetches, unsubscribes, and gets the precise errors (423 with Min-Expires, 489 with
//! Allow-Events, 400 naming the PIDF problem with the previous state kept, 413, 403 for
//! another user's registrations). Then the server is killed (SIGKILL) and restarted: the
//! stored subscription gets a NOTIFY with the current state at once and keeps working.

mod common;
mod presence_ua;

use std::time::Duration;

use common::{Server, add_user, init_dir};
use presence_ua::{Msg, Ua, pidf};

const T: Duration = Duration::from_secs(10);

fn start(d: &std::path::Path) -> (Server, String) {
    let srv = Server::start_with(
        d,
        "info,confab_presence=debug",
        &[],
        &["http.admin.listen", "transport.listen[0]"],
    );
    let udp = srv.addrs["transport.listen[0]"].clone();
    (srv, udp)
}

fn subscribe(
    ua: &mut Ua,
    target: &str,
    event: &str,
    expires: Option<u32>,
    call_id: &str,
    cseq: &mut u32,
) -> Msg {
    let mut h = vec![
        ("From", ua.from("wtag")),
        ("To", format!("<sip:{target}>")),
        ("Contact", ua.contact()),
        ("Event", event.to_owned()),
        ("Accept", "application/pidf+xml".to_owned()),
    ];
    if let Some(e) = expires {
        h.push(("Expires", e.to_string()));
    }
    ua.request(
        "SUBSCRIBE",
        &format!("sip:{target}"),
        call_id,
        cseq,
        &h,
        None,
    )
}

fn publish(ua: &mut Ua, cseq: &mut u32, etag: Option<&str>, body: Option<&str>) -> Msg {
    let aor = format!("{}@{}", ua.user, ua.domain);
    let mut h = vec![
        ("From", ua.from("ptag")),
        ("To", format!("<sip:{aor}>")),
        ("Event", "presence".to_owned()),
        ("Expires", "600".to_owned()),
    ];
    if let Some(e) = etag {
        h.push(("SIP-If-Match", e.to_owned()));
    }
    let call_id = format!("pub-{}-{}", ua.user, std::process::id());
    ua.request(
        "PUBLISH",
        &format!("sip:{aor}"),
        &call_id,
        cseq,
        &h,
        body.map(|b| ("application/pidf+xml", b)),
    )
}

#[test]
fn subscribe_publish_notify_and_precise_errors() {
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "alice@example.com", "alice-pw");
    add_user(d, "bob@example.com", "bob-pw");
    let (srv, udp) = start(d);
    let mut alice = Ua::new(&udp, "alice", "example.com", "alice-pw");
    let mut bob = Ua::new(&udp, "bob", "example.com", "bob-pw");

    // Errors first: expiry too brief, unknown package.
    let mut cseq = 0;
    let r = subscribe(
        &mut alice,
        "bob@example.com",
        "presence",
        Some(5),
        "e1",
        &mut cseq,
    );
    assert_eq!(r.status(), Some(423), "{r:?}");
    assert_eq!(r.header("Min-Expires"), Some("60"));
    let r = subscribe(
        &mut alice,
        "bob@example.com",
        "conference",
        Some(600),
        "e2",
        &mut cseq,
    );
    assert_eq!(r.status(), Some(489), "{r:?}");
    assert!(r.header("Allow-Events").unwrap().contains("presence"));
    // Another user's registrations are not for alice.
    let r = subscribe(
        &mut alice,
        "bob@example.com",
        "reg",
        Some(600),
        "e3",
        &mut cseq,
    );
    assert_eq!(r.status(), Some(403), "{r:?}");
    // An unknown user.
    let r = subscribe(
        &mut alice,
        "nobody@example.com",
        "presence",
        Some(600),
        "e4",
        &mut cseq,
    );
    assert_eq!(r.status(), Some(404), "{r:?}");

    // A subscription: 200 with our To tag, then a NOTIFY with bob offline.
    let mut cseq = 0;
    let r = subscribe(
        &mut alice,
        "bob@example.com",
        "presence",
        Some(600),
        "sub1",
        &mut cseq,
    );
    assert_eq!(r.status(), Some(200), "{r:?}");
    let tag = r.to_tag().expect("To tag in the 200");
    let expires: u32 = r.header("Expires").unwrap().parse().unwrap();
    assert!(expires > 500 && expires <= 600, "{expires}");
    let n = alice
        .wait_notify(0, T)
        .unwrap_or_else(|| panic!("first NOTIFY\n{}", srv.log()));
    assert!(
        n.header("Subscription-State")
            .unwrap()
            .starts_with("active"),
        "{n:?}"
    );
    assert_eq!(n.header("Event"), Some("presence"));
    assert!(n.header("From").unwrap().contains(&tag));
    assert!(n.body.contains("<basic>closed</basic>"), "{}", n.body);

    // bob publishes: alice (a colleague: same domain) sees open and the note.
    let mut bcseq = 0;
    let body = pidf("bob@example.com", "open", Some("At my desk"));
    let r = publish(&mut bob, &mut bcseq, None, Some(&body));
    assert_eq!(r.status(), Some(200), "{r:?}");
    let etag = r.header("SIP-ETag").expect("SIP-ETag").to_owned();
    let n = alice.wait_notify(1, T).expect("NOTIFY after PUBLISH");
    assert!(n.body.contains("<basic>open</basic>"), "{}", n.body);
    assert!(n.body.contains("At my desk"), "{}", n.body);
    let cseq_of = |m: &Msg| -> u32 {
        m.header("CSeq")
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(cseq_of(&alice.notifies[1]) > cseq_of(&alice.notifies[0]));

    // Malformed PIDF: 400 naming the problem; the previous state is kept.
    let r = publish(
        &mut bob,
        &mut bcseq,
        Some(&etag),
        Some(
            "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:bob@example.com\"><tuple id=\"t\"><status><basic>open</status></tuple></presence>",
        ),
    );
    assert_eq!(r.status(), Some(400), "{r:?}");
    assert!(
        r.start.len() > "SIP/2.0 400 Bad Request".len(),
        "reason names the problem: {}",
        r.start
    );
    // Oversize: 413.
    let big = format!(
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:bob@example.com\"><note>{}</note></presence>",
        "x".repeat(40_000)
    );
    let r = publish(&mut bob, &mut bcseq, Some(&etag), Some(&big));
    assert!(matches!(r.status(), Some(413)), "{:?}", r.start);
    // A fetch by a second watcher (Expires: 0) sees the kept state, then ends.
    let mut carol_like = Ua::new(&udp, "alice", "example.com", "alice-pw");
    let mut c2 = 0;
    let r = subscribe(
        &mut carol_like,
        "bob@example.com",
        "presence",
        Some(0),
        "fetch1",
        &mut c2,
    );
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert_eq!(r.header("Expires"), Some("0"));
    let n = carol_like.wait_notify(0, T).expect("fetch NOTIFY");
    assert!(
        n.header("Subscription-State")
            .unwrap()
            .starts_with("terminated"),
        "{n:?}"
    );
    assert!(n.body.contains("At my desk"), "{}", n.body);

    // Modify with the entity-tag: a new state and a new tag.
    let body = pidf("bob@example.com", "open", Some("In a meeting"));
    let r = publish(&mut bob, &mut bcseq, Some(&etag), Some(&body));
    assert_eq!(r.status(), Some(200), "{r:?}");
    let etag2 = r.header("SIP-ETag").unwrap().to_owned();
    assert_ne!(etag, etag2);
    let n = alice.wait_notify(2, T).expect("NOTIFY after modify");
    assert!(n.body.contains("In a meeting"), "{}", n.body);
    // The old tag is gone: 412.
    let r = publish(&mut bob, &mut bcseq, Some(&etag), None);
    assert_eq!(r.status(), Some(412), "{r:?}");

    // bob watches his own registrations.
    let mut bc = 0;
    let r = subscribe(
        &mut bob,
        "bob@example.com",
        "reg",
        Some(600),
        "reg1",
        &mut bc,
    );
    assert_eq!(r.status(), Some(200), "{r:?}");
    let n = bob.wait_notify(0, T).expect("reg NOTIFY");
    assert_eq!(n.header("Content-Type"), Some("application/reginfo+xml"));
    assert!(n.body.contains("sip:bob@example.com"), "{}", n.body);

    // Refresh in the dialog, then unsubscribe: a final NOTIFY.
    let in_dialog = |ua: &Ua, tag: &str| {
        vec![
            ("From", ua.from("wtag")),
            ("To", format!("<sip:bob@example.com>;tag={tag}")),
            ("Contact", ua.contact()),
            ("Event", "presence".to_owned()),
        ]
    };
    let mut h = in_dialog(&alice, &tag);
    h.push(("Expires", "300".to_owned()));
    let r = alice.request(
        "SUBSCRIBE",
        "sip:bob@example.com",
        "sub1",
        &mut cseq,
        &h,
        None,
    );
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert_eq!(r.header("Expires"), Some("300"));
    let seen = alice.notifies.len();
    let mut h = in_dialog(&alice, &tag);
    h.push(("Expires", "0".to_owned()));
    let r = alice.request(
        "SUBSCRIBE",
        "sip:bob@example.com",
        "sub1",
        &mut cseq,
        &h,
        None,
    );
    assert_eq!(r.status(), Some(200), "{r:?}");
    let mut last = alice
        .wait_notify(seen, T)
        .expect("NOTIFY after unsubscribe");
    while !last
        .header("Subscription-State")
        .unwrap()
        .starts_with("terminated")
    {
        let k = alice.notifies.len();
        last = alice.wait_notify(k, T).expect("final NOTIFY");
    }
    // The subscription is gone: another refresh is 481.
    let mut h = in_dialog(&alice, &tag);
    h.push(("Expires", "300".to_owned()));
    let r = alice.request(
        "SUBSCRIBE",
        "sip:bob@example.com",
        "sub1",
        &mut cseq,
        &h,
        None,
    );
    assert_eq!(r.status(), Some(481), "{r:?}");
}

#[test]
fn subscriptions_survive_a_killed_server() {
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "alice@example.com", "alice-pw");
    add_user(d, "bob@example.com", "bob-pw");
    let (mut srv, udp) = start(d);
    let mut alice = Ua::new(&udp, "alice", "example.com", "alice-pw");
    let mut bob = Ua::new(&udp, "bob", "example.com", "bob-pw");
    let mut cseq = 0;
    let r = subscribe(
        &mut alice,
        "bob@example.com",
        "presence",
        Some(600),
        "keep1",
        &mut cseq,
    );
    assert_eq!(r.status(), Some(200), "{r:?}");
    let first = alice.wait_notify(0, T).expect("first NOTIFY");
    let mut bcseq = 0;
    let body = pidf("bob@example.com", "open", Some("Before the crash"));
    let r = publish(&mut bob, &mut bcseq, None, Some(&body));
    assert_eq!(r.status(), Some(200), "{r:?}");
    alice.wait_notify(1, T).expect("NOTIFY after PUBLISH");

    // SIGKILL: no drain, nothing flushed beyond what was committed before each 200.
    srv.signal("KILL");
    srv.wait();
    let (_srv2, udp2) = start(d);
    // The restarted server notifies the UDP watcher at once with the current state.
    let n = alice.wait_notify(2, T).expect("NOTIFY after the restart");
    assert!(
        n.header("Subscription-State")
            .unwrap()
            .starts_with("active"),
        "{n:?}"
    );
    assert!(
        n.body.contains("Before the crash"),
        "publication survived: {}",
        n.body
    );
    assert_eq!(n.header("Call-ID"), first.header("Call-ID"));
    let cseq_of = |m: &Msg| -> u32 {
        m.header("CSeq")
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        cseq_of(&n) > cseq_of(&alice.notifies[1]),
        "CSeq keeps increasing"
    );
    // And the subscription goes on: bob's next PUBLISH (to the new server) reaches alice.
    let mut bob2 = Ua::new(&udp2, "bob", "example.com", "bob-pw");
    let body = pidf("bob@example.com", "open", Some("After the restart"));
    let r = publish(&mut bob2, &mut bcseq, None, Some(&body));
    assert_eq!(r.status(), Some(200), "{r:?}");
    // (The restart NOTIFY may be followed by others; the newest publication wins.)
    loop {
        let k = alice.notifies.len();
        let n = alice
            .wait_notify(k, T)
            .expect("NOTIFY after the new PUBLISH");
        if n.body.contains("After the restart") {
            break;
        }
    }
}

#[test]
fn publishers_and_subscribers_over_their_rate_get_503_with_retry_after() {
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "alice@example.com", "alice-pw");
    add_user(d, "bob@example.com", "bob-pw");
    // 3 at once, then one a minute (a token comes back after 60 s / 1 = 60 s).
    for (from, to) in [
        ("\nper_minute = 60\n", "\nper_minute = 1\n"),
        ("\nburst = 20\n", "\nburst = 3\n"),
        ("\nper_minute = 600\n", "\nper_minute = 2\n"),
        ("\nburst = 1000\n", "\nburst = 2\n"),
    ] {
        common::edit_config(d, from, to);
    }
    let (srv, udp) = start(d);
    let mut alice = Ua::new(&udp, "alice", "example.com", "alice-pw");
    let mut bob = Ua::new(&udp, "bob", "example.com", "bob-pw");

    let mut bcseq = 0;
    let body = pidf("bob@example.com", "open", None);
    let mut etag: Option<String> = None;
    for i in 0..3 {
        let r = publish(&mut bob, &mut bcseq, etag.as_deref(), Some(&body));
        assert_eq!(r.status(), Some(200), "PUBLISH {i}: {r:?}\n{}", srv.log());
        etag = r.header("SIP-ETag").map(str::to_owned);
    }
    let r = publish(&mut bob, &mut bcseq, etag.as_deref(), Some(&body));
    assert_eq!(r.status(), Some(503), "{r:?}");
    let retry: u32 = r
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((55..=60).contains(&retry), "Retry-After {retry}");
    // Watchers have their own buckets: two SUBSCRIBEs pass, the third is refused.
    let mut cseq = 0;
    for (i, call) in ["r1", "r2"].iter().enumerate() {
        let r = subscribe(
            &mut alice,
            "bob@example.com",
            "presence",
            Some(600),
            call,
            &mut cseq,
        );
        assert_eq!(r.status(), Some(200), "SUBSCRIBE {i}: {r:?}");
    }
    let r = subscribe(
        &mut alice,
        "bob@example.com",
        "presence",
        Some(600),
        "r3",
        &mut cseq,
    );
    assert_eq!(r.status(), Some(503), "{r:?}");
    let retry: u32 = r
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    assert!(r.start.contains("Too many SUBSCRIBE"), "{r:?}");
    drop(srv);
}

#[test]
fn partial_notification_and_partial_publication_end_to_end() {
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "alice@example.com", "alice-pw");
    add_user(d, "bob@example.com", "bob-pw");
    let (srv, udp) = start(d);
    let mut alice = Ua::new(&udp, "alice", "example.com", "alice-pw");
    let mut bob = Ua::new(&udp, "bob", "example.com", "bob-pw");

    // alice asks for partial notification (RFC 5263): full state first, as pidf-diff.
    let mut cseq = 0;
    let h = vec![
        ("From", alice.from("ptag")),
        ("To", "<sip:bob@example.com>".to_owned()),
        ("Contact", alice.contact()),
        ("Event", "presence".to_owned()),
        (
            "Accept",
            "application/pidf+xml, application/pidf-diff+xml".to_owned(),
        ),
        ("Expires", "600".to_owned()),
    ];
    let r = alice.request(
        "SUBSCRIBE",
        "sip:bob@example.com",
        "partial1",
        &mut cseq,
        &h,
        None,
    );
    assert_eq!(r.status(), Some(200), "{r:?}");
    let n = alice.wait_notify(0, T).expect("first NOTIFY");
    assert_eq!(
        n.header("Content-Type"),
        Some("application/pidf-diff+xml"),
        "{n:?}"
    );
    assert!(n.body.contains("pidf-full"), "full state first: {}", n.body);
    assert!(n.body.contains("<basic>closed</basic>"), "{}", n.body);

    // bob publishes: alice gets a patch, not the whole document.
    let mut bcseq = 0;
    let body = pidf("bob@example.com", "open", None);
    let r = publish(&mut bob, &mut bcseq, None, Some(&body));
    assert_eq!(r.status(), Some(200), "{r:?}");
    let etag = r.header("SIP-ETag").expect("SIP-ETag").to_owned();
    let n = alice.wait_notify(1, T).expect("NOTIFY after PUBLISH");
    assert_eq!(
        n.header("Content-Type"),
        Some("application/pidf-diff+xml"),
        "{n:?}"
    );
    assert!(
        n.body.contains("patch") && !n.body.contains("pidf-full"),
        "{}",
        n.body
    );
    assert!(n.body.contains("<basic>open</basic>"), "{}", n.body);

    // bob closes his tuple with a partial PUBLISH (RFC 5264) on his entity-tag.
    let patch = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<p:patch xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:p=\"urn:ietf:params:xml:ns:pidf-diff\" version=\"1\"><p:replace sel=\"*/tuple[@id='t1']/status/basic/text()\">closed</p:replace></p:patch>";
    let h = vec![
        ("From", bob.from("ptag")),
        ("To", "<sip:bob@example.com>".to_owned()),
        ("Event", "presence".to_owned()),
        ("Expires", "600".to_owned()),
        ("SIP-If-Match", etag.clone()),
    ];
    let call_id = format!("pub-bob-{}", std::process::id());
    let r = bob.request(
        "PUBLISH",
        "sip:bob@example.com",
        &call_id,
        &mut bcseq,
        &h,
        Some(("application/pidf-diff+xml", patch)),
    );
    assert_eq!(r.status(), Some(200), "{r:?}\n{}", srv.log());
    let new_etag = r.header("SIP-ETag").expect("SIP-ETag");
    assert_ne!(new_etag, etag);
    let n = alice
        .wait_notify(2, T)
        .expect("NOTIFY after the partial PUBLISH");
    assert!(
        n.body.contains("patch") && !n.body.contains("pidf-full"),
        "{}",
        n.body
    );
    assert!(n.body.contains("closed"), "{}", n.body);
    assert!(!n.body.contains("<basic>open</basic>"), "{}", n.body);
    // A patch without SIP-If-Match has nothing to apply to: 400 naming why.
    let h = vec![
        ("From", bob.from("ptag")),
        ("To", "<sip:bob@example.com>".to_owned()),
        ("Event", "presence".to_owned()),
    ];
    let r = bob.request(
        "PUBLISH",
        "sip:bob@example.com",
        &call_id,
        &mut bcseq,
        &h,
        Some(("application/pidf-diff+xml", patch)),
    );
    assert_eq!(r.status(), Some(400), "{r:?}");
    assert!(r.start.contains("SIP-If-Match"), "{r:?}");
    drop(srv);
}
