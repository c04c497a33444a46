//! RFC 6665 subscriptions (with RFC 6446 throttling) and RFC 3903 PUBLISH, driven with a
//! simulated clock.

use confab_core::Timestamp;
use confab_presence::publication::{
    PublishConfig, PublishError, PublishRequest, Published, handle_publish,
};
use confab_presence::subscription::{
    EventPackage, Reason, State, SubscribeError, SubscribeRequest, Subscribed, Subscription,
    SubscriptionConfig,
};
use confab_xml::pidf::Presence;
use confab_xml::{Limits, XmlError};

fn t(secs: f64) -> Timestamp {
    Timestamp((secs * 1000.0) as i64)
}

fn subscribe(
    expires: Option<u32>,
    authorized: bool,
    at: f64,
) -> Result<(Subscription, Subscribed), SubscribeError> {
    Subscription::handle_subscribe(
        &SubscribeRequest {
            event: "presence",
            expires,
        },
        "sip:bob@example.com",
        "sip:alice@example.com",
        authorized,
        0,
        t(at),
        &SubscriptionConfig::default(),
    )
}

/// Polls every NOTIFY due at `at` and returns their Subscription-State values.
fn drain(s: &mut Subscription, at: f64) -> Vec<String> {
    std::iter::from_fn(|| s.poll_notify(t(at)))
        .map(|n| n.subscription_state)
        .collect()
}

#[test]
fn subscribe_errors() {
    let cfg = SubscriptionConfig::default();
    let table: &[(&str, Option<u32>, usize, u16)] = &[
        ("message-summary", Some(3600), 0, 489),
        ("presence", Some(30), 0, 423),
        ("presence", Some(3600), 1_000, 503),
    ];
    for (event, expires, existing, code) in table {
        let err = Subscription::handle_subscribe(
            &SubscribeRequest {
                event,
                expires: *expires,
            },
            "sip:bob@example.com",
            "sip:alice@example.com",
            true,
            *existing,
            t(0.0),
            &cfg,
        )
        .unwrap_err();
        assert_eq!(err.status_code(), *code, "{err}");
    }
    assert_eq!(
        EventPackage::from_event_header("Presence;id=1"),
        Some(EventPackage::Presence)
    );
    assert_eq!(
        EventPackage::allow_events(),
        "presence, presence.winfo, reg, dialog"
    );
    // A fetch is allowed even at the cap.
    let fetch = Subscription::handle_subscribe(
        &SubscribeRequest {
            event: "presence",
            expires: Some(0),
        },
        "w",
        "r",
        true,
        1_000,
        t(0.0),
        &cfg,
    );
    assert!(matches!(fetch, Ok((_, Subscribed::Ended))));
}

#[test]
fn lifecycle_active_refresh_expire() {
    let (mut s, out) = subscribe(Some(600), true, 0.0).unwrap();
    assert_eq!(out, Subscribed::Kept { expires: 600 });
    let n = s.poll_notify(t(0.0)).unwrap();
    assert_eq!(
        (
            n.subscription_state.as_str(),
            n.with_state,
            n.full_state,
            n.version
        ),
        ("active;expires=600", true, true, 0)
    );
    assert_eq!(s.poll_notify(t(0.0)), None);
    assert_eq!(s.poll_timeout(), Some(t(600.0)));

    // Refresh at 500 s: a NOTIFY with current state, new expiry; Max clamps long ones.
    assert_eq!(
        s.handle_refresh(Some(1_000_000), t(500.0), &SubscriptionConfig::default()),
        Ok(Subscribed::Kept { expires: 86_400 })
    );
    let n = s.poll_notify(t(500.0)).unwrap();
    assert_eq!(
        (n.subscription_state.as_str(), n.full_state, n.version),
        ("active;expires=86400", false, 1)
    );
    assert_eq!(
        s.handle_refresh(Some(10), t(501.0), &SubscriptionConfig::default()),
        Err(SubscribeError::IntervalTooBrief {
            requested: 10,
            min: 60
        })
    );

    // Expiry.
    s.handle_timeout(t(86_899.0));
    assert_eq!(s.state(), State::Active);
    s.handle_timeout(t(86_900.0));
    assert_eq!(s.state(), State::Terminated(Reason::Timeout));
    let n = s.poll_notify(t(86_900.0)).unwrap();
    assert_eq!(
        (n.subscription_state.as_str(), n.is_final),
        ("terminated;reason=timeout", true)
    );
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(
        s.handle_refresh(Some(600), t(86_901.0), &SubscriptionConfig::default()),
        Err(SubscribeError::Terminated)
    );
}

#[test]
fn pending_sees_no_state_until_approved() {
    let (mut s, _) = subscribe(None, false, 0.0).unwrap();
    let n = s.poll_notify(t(0.0)).unwrap();
    assert_eq!(
        (n.subscription_state.as_str(), n.with_state),
        ("pending;expires=3600", false)
    );
    s.handle_change(t(1.0));
    assert_eq!(
        s.poll_notify(t(100.0)),
        None,
        "a pending watcher is not told about changes"
    );
    s.handle_approve(t(120.0));
    let n = s.poll_notify(t(120.0)).unwrap();
    assert_eq!(
        (n.subscription_state.as_str(), n.with_state, n.full_state),
        ("active;expires=3480", true, true)
    );

    // A pending watcher the user blocks: rejected, still no state.
    let (mut s, _) = subscribe(None, false, 0.0).unwrap();
    let _ = drain(&mut s, 0.0);
    s.handle_terminate(Reason::Rejected, t(5.0));
    let n = s.poll_notify(t(5.0)).unwrap();
    assert_eq!(
        (n.subscription_state.as_str(), n.with_state),
        ("terminated;reason=rejected", false)
    );
}

#[test]
fn fetch_and_unsubscribe() {
    let (mut s, out) = subscribe(Some(0), true, 0.0).unwrap();
    assert_eq!(out, Subscribed::Ended);
    let n = s.poll_notify(t(0.0)).unwrap();
    assert_eq!(
        (n.subscription_state.as_str(), n.with_state, n.is_final),
        ("terminated;reason=timeout", true, true)
    );
    assert_eq!(s.poll_notify(t(0.0)), None);
    // An unauthorized fetch carries no state.
    let (mut s, _) = subscribe(Some(0), false, 0.0).unwrap();
    assert!(!s.poll_notify(t(0.0)).unwrap().with_state);

    let (mut s, _) = subscribe(None, true, 0.0).unwrap();
    let _ = drain(&mut s, 0.0);
    assert_eq!(
        s.handle_refresh(Some(0), t(10.0), &SubscriptionConfig::default()),
        Ok(Subscribed::Ended)
    );
    assert_eq!(drain(&mut s, 10.0), ["terminated;reason=timeout"]);
}

#[test]
fn notify_throttle_coalesces_changes() {
    // min interval 1 s (default): changes inside the window become one NOTIFY at its end.
    let (mut s, _) = subscribe(None, true, 0.0).unwrap();
    assert_eq!(drain(&mut s, 0.0).len(), 1);
    s.handle_change(t(0.2));
    assert_eq!(s.poll_notify(t(0.2)), None);
    assert_eq!(s.poll_timeout(), Some(t(1.0)));
    s.handle_change(t(0.5));
    s.handle_change(t(0.9));
    assert_eq!(
        s.poll_timeout(),
        Some(t(1.0)),
        "coalesced to the same deadline"
    );
    assert_eq!(s.poll_notify(t(0.99)), None);
    let n = s.poll_notify(t(1.0)).unwrap();
    assert_eq!(n.version, 1);
    assert_eq!(s.poll_notify(t(1.0)), None);
    // A change long after the last NOTIFY goes at once.
    s.handle_change(t(5.0));
    assert_eq!(s.poll_notify(t(5.0)).map(|n| n.version), Some(2));
    // Termination is never delayed by the throttle.
    s.handle_change(t(5.1));
    s.handle_terminate(Reason::Deactivated, t(5.2));
    assert_eq!(drain(&mut s, 5.2), ["terminated;reason=deactivated"]);

    // 0 disables throttling.
    let cfg = SubscriptionConfig {
        min_notify_interval_ms: 0,
        ..SubscriptionConfig::default()
    };
    let (mut s, _) = Subscription::handle_subscribe(
        &SubscribeRequest {
            event: "presence",
            expires: None,
        },
        "w",
        "r",
        true,
        0,
        t(0.0),
        &cfg,
    )
    .unwrap();
    let _ = drain(&mut s, 0.0);
    s.handle_change(t(0.001));
    assert!(s.poll_notify(t(0.001)).is_some());
}

#[test]
fn restart_resends_current_state_and_survives_serde() {
    let (mut s, _) = subscribe(None, true, 0.0).unwrap();
    let _ = drain(&mut s, 0.0);
    let stored = serde_json::to_string(&s).unwrap();
    let mut back: Subscription = serde_json::from_str(&stored).unwrap();
    assert_eq!(back, s);
    back.handle_restart(t(30.0));
    let n = back.poll_notify(t(30.0)).unwrap();
    assert_eq!(
        (n.subscription_state.as_str(), n.with_state),
        ("active;expires=3570", true)
    );
}

const PIDF: &[u8] = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com"><tuple id="a"><status><basic>open</basic></status></tuple></presence>"#;

fn publish<'a>(
    if_match: Option<&'a str>,
    expires: Option<u32>,
    body: Option<(&'a str, &'a [u8])>,
) -> PublishRequest<'a> {
    PublishRequest {
        resource: "sip:alice@example.com",
        event: "presence",
        if_match,
        expires,
        body,
        instance: None,
    }
}

#[test]
fn publish_initial_refresh_modify_remove() {
    let cfg = PublishConfig::default();
    let now = t(0.0);
    let created = handle_publish(
        &publish(None, None, Some(("application/pidf+xml", PIDF))),
        None,
        now,
        [1; 10],
        &cfg,
    )
    .unwrap();
    let Published::Created(p) = &created else {
        panic!("{created:?}")
    };
    assert_eq!(created.expires(now), 3600);
    assert_eq!(p.etag.len(), 16);
    assert_eq!(
        Presence::parse(&p.body, &Limits::DOCUMENT).unwrap().tuples[0].id,
        "a"
    );

    // Refresh: new etag, same body.
    let refreshed = handle_publish(
        &publish(Some(&p.etag), Some(120), None),
        Some(p),
        t(10.0),
        [2; 10],
        &cfg,
    )
    .unwrap();
    let Published::Refreshed(r) = &refreshed else {
        panic!("{refreshed:?}")
    };
    assert_ne!(r.etag, p.etag);
    assert_eq!(
        (r.body.clone(), refreshed.expires(t(10.0))),
        (p.body.clone(), 120)
    );

    // Modify with a partial publication (RFC 5264 patch).
    let patch = br#"<p:patch xmlns="urn:ietf:params:xml:ns:pidf" xmlns:p="urn:ietf:params:xml:ns:pidf-diff" version="1"><p:replace sel="*/tuple[@id='a']/status/basic/text()">closed</p:replace></p:patch>"#;
    let modified = handle_publish(
        &publish(
            Some(&r.etag),
            None,
            Some(("application/pidf-diff+xml", patch)),
        ),
        Some(r),
        t(20.0),
        [3; 10],
        &cfg,
    )
    .unwrap();
    let Published::Modified(m) = &modified else {
        panic!("{modified:?}")
    };
    let doc = Presence::parse(&m.body, &Limits::DOCUMENT).unwrap();
    assert_eq!(
        doc.tuples[0].status.basic,
        Some(confab_xml::pidf::Basic::Closed)
    );

    // Remove.
    let removed = handle_publish(
        &publish(Some(&m.etag), Some(0), None),
        Some(m),
        t(30.0),
        [4; 10],
        &cfg,
    )
    .unwrap();
    assert_eq!(
        removed,
        Published::Removed {
            etag: m.etag.clone()
        }
    );
    assert_eq!(removed.expires(t(30.0)), 0);
}

#[test]
fn publish_refusals() {
    let cfg = PublishConfig::default();
    let now = t(100.0);
    let (_, stored) = {
        let c = handle_publish(
            &publish(None, None, Some(("application/pidf+xml", PIDF))),
            None,
            t(0.0),
            [1; 10],
            &cfg,
        )
        .unwrap();
        let Published::Created(p) = c.clone() else {
            panic!()
        };
        (c, p)
    };
    let mut expired = stored.clone();
    expired.expires_at = t(50.0);
    let bad_xml: &[u8] =
        b"<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\">\n<tuple id=\"a\">";
    let big = vec![b' '; 70_000];
    let cases: Vec<(
        PublishRequest<'_>,
        Option<&confab_presence::publication::Publication>,
        u16,
    )> = vec![
        (
            PublishRequest {
                event: "dialog",
                ..publish(None, None, Some(("application/pidf+xml", PIDF)))
            },
            None,
            489,
        ),
        (publish(Some("nope"), None, None), None, 412),
        (publish(Some(&stored.etag), None, None), Some(&expired), 412),
        (publish(Some("other"), None, None), Some(&stored), 412),
        (
            publish(None, Some(5), Some(("application/pidf+xml", PIDF))),
            None,
            423,
        ),
        (publish(None, None, Some(("text/plain", b"hi"))), None, 415),
        (publish(None, None, None), None, 400),
        (publish(None, Some(0), None), None, 400),
        (
            publish(None, None, Some(("application/pidf+xml", bad_xml))),
            None,
            400,
        ),
        (
            publish(None, None, Some(("application/pidf+xml", &big))),
            None,
            413,
        ),
    ];
    for (req, current, code) in cases {
        let err = handle_publish(&req, current, now, [9; 10], &cfg).unwrap_err();
        assert_eq!(err.status_code(), code, "{req:?}: {err}");
    }
    // A malformed body names the line.
    let err = handle_publish(
        &publish(None, None, Some(("application/pidf+xml", bad_xml))),
        None,
        now,
        [9; 10],
        &cfg,
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            PublishError::Body(XmlError::Malformed { line: 2, .. })
        ),
        "{err:?}"
    );
}
