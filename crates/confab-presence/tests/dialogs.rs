//! The dialog table (RFC 4235 state machines fed by the proxy's reports) as a table of
//! call flows and the states each party's document shows, plus the access filter of the
//! `dialog` package.

use bytes::Bytes;
use confab_core::Timestamp;
use confab_presence::access::{AccessLevel, dialog_notify_body, sees_dialogs};
use confab_presence::dialogs::{DialogConfig, DialogTable};
use confab_sip::{Limits, Message, ResponseBuilder};
use confab_xml::dialog_info::{DialogInfo, DialogState, Direction, StateEvent};

fn parse(text: &str) -> Message {
    confab_sip::parse_datagram(Bytes::from(text.replace('\n', "\r\n")), &Limits::DEFAULT).unwrap()
}

fn invite(call: &str) -> Message {
    parse(&format!(
        "INVITE sip:bob@example.com SIP/2.0\n\
         Via: SIP/2.0/UDP 198.51.100.10;branch=z9hG4bK{call}\n\
         From: \"Alice\" <sip:alice@example.com>;tag=at\n\
         To: <sip:bob@example.com>\n\
         Call-ID: {call}\n\
         CSeq: 1 INVITE\n\
         Contact: <sip:alice@198.51.100.10>\n\
         Max-Forwards: 70\n\
         Content-Length: 0\n\n"
    ))
}

fn response(inv: &Message, code: u16, tag: Option<&str>) -> Message {
    let mut b = ResponseBuilder::reply_to(inv, code).unwrap();
    if let Some(t) = tag {
        b = b.to_tag(t);
    }
    b.build().unwrap()
}

fn bye(call: &str, from_tag: &str, to_tag: &str) -> Message {
    parse(&format!(
        "BYE sip:x@198.51.100.21 SIP/2.0\n\
         Via: SIP/2.0/UDP 198.51.100.10;branch=z9hG4bKbye\n\
         From: <sip:whoever@example.com>;tag={from_tag}\n\
         To: <sip:other@example.com>;tag={to_tag}\n\
         Call-ID: {call}\nCSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n"
    ))
}

/// One step of a call flow.
enum Step {
    Invite(&'static str),
    Resp(&'static str, u16, Option<&'static str>),
    /// BYE (call, From tag, To tag).
    Bye(&'static str, &'static str, &'static str),
    /// Seconds pass, then the sweep runs.
    Wait(i64),
}

/// (direction, state, event, code) of each dialog in a user's document.
type Row = (Direction, DialogState, Option<StateEvent>, Option<u16>);

#[track_caller]
fn check(steps: &[Step], alice: &[Row], bob: &[Row], alice_on_phone: bool) {
    let config = DialogConfig {
        max_duration_s: 3600,
        setup_timeout_s: 300,
        terminated_linger_s: 10,
        max_dialogs: 100,
    };
    let mut t = DialogTable::new();
    let mut now = Timestamp(1_700_000_000_000);
    let mut invites = std::collections::HashMap::new();
    for s in steps {
        match s {
            Step::Invite(c) => {
                let i = invite(c);
                t.handle_invite(&i, now, &config);
                invites.insert(*c, i);
            }
            Step::Resp(c, code, tag) => {
                let i = &invites[c];
                t.handle_response(i, &response(i, *code, *tag), now, &config);
            }
            Step::Bye(c, f, to) => {
                t.handle_bye(&bye(c, f, to), now);
            }
            Step::Wait(s) => {
                now = Timestamp(now.as_millis() + s * 1000);
                t.sweep(now, &config);
            }
        }
        now = Timestamp(now.as_millis() + 1);
    }
    let rows = |user: &str| -> Vec<Row> {
        t.document(user, 0, now)
            .dialogs
            .iter()
            .map(|d| (d.direction.unwrap(), d.state, d.event, d.code))
            .collect()
    };
    assert_eq!(rows("alice@example.com"), alice, "alice");
    assert_eq!(rows("bob@example.com"), bob, "bob");
    assert_eq!(t.on_the_phone("alice@example.com"), alice_on_phone);
}

use DialogState::{Confirmed, Early, Proceeding, Terminated, Trying};
use Direction::{Initiator as I, Recipient as R};
use Step::{Bye, Invite, Resp, Wait};

#[test]
fn call_flows() {
    // Forwarded INVITE: both parties trying.
    check(
        &[Invite("c")],
        &[(I, Trying, None, None)],
        &[(R, Trying, None, None)],
        false,
    );
    // 180 without tag: proceeding.
    check(
        &[Invite("c"), Resp("c", 180, None)],
        &[(I, Proceeding, None, None)],
        &[(R, Proceeding, None, None)],
        false,
    );
    // 180 with tag: early; 200: confirmed, on the phone.
    check(
        &[Invite("c"), Resp("c", 180, Some("b1"))],
        &[(I, Early, None, None)],
        &[(R, Early, None, None)],
        false,
    );
    check(
        &[
            Invite("c"),
            Resp("c", 180, Some("b1")),
            Resp("c", 200, Some("b1")),
        ],
        &[(I, Confirmed, None, None)],
        &[(R, Confirmed, None, None)],
        true,
    );
    // A late 180 after the 200 does not move the state back.
    check(
        &[
            Invite("c"),
            Resp("c", 200, Some("b1")),
            Resp("c", 180, Some("b1")),
        ],
        &[(I, Confirmed, None, None)],
        &[(R, Confirmed, None, None)],
        true,
    );
    // Caller hangs up: local-bye for alice, remote-bye for bob; kept 10 s, then gone.
    let hangup = [
        Invite("c"),
        Resp("c", 200, Some("b1")),
        Bye("c", "at", "b1"),
    ];
    check(
        &hangup,
        &[(I, Terminated, Some(StateEvent::LocalBye), None)],
        &[(R, Terminated, Some(StateEvent::RemoteBye), None)],
        false,
    );
    let mut later: Vec<Step> = hangup.into_iter().collect();
    later.push(Wait(11));
    check(&later, &[], &[], false);
    // Callee hangs up (BYE from bob: tags swapped).
    check(
        &[
            Invite("c"),
            Resp("c", 200, Some("b1")),
            Bye("c", "b1", "at"),
        ],
        &[(I, Terminated, Some(StateEvent::RemoteBye), None)],
        &[(R, Terminated, Some(StateEvent::LocalBye), None)],
        false,
    );
    // Busy, cancelled, timed out.
    check(
        &[Invite("c"), Resp("c", 486, Some("b1"))],
        &[(I, Terminated, Some(StateEvent::Rejected), Some(486))],
        &[(R, Terminated, Some(StateEvent::Rejected), Some(486))],
        false,
    );
    check(
        &[
            Invite("c"),
            Resp("c", 180, Some("b1")),
            Resp("c", 487, Some("b1")),
        ],
        &[(I, Terminated, Some(StateEvent::Cancelled), Some(487))],
        &[(R, Terminated, Some(StateEvent::Cancelled), Some(487))],
        false,
    );
    check(
        &[Invite("c"), Resp("c", 408, None)],
        &[(I, Terminated, Some(StateEvent::Timeout), Some(408))],
        &[(R, Terminated, Some(StateEvent::Timeout), Some(408))],
        false,
    );
    // Forked: two early dialogs; the 200 of one confirms it and ends the other.
    check(
        &[
            Invite("c"),
            Resp("c", 180, Some("b1")),
            Resp("c", 180, Some("b2")),
        ],
        &[(I, Early, None, None), (I, Early, None, None)],
        &[(R, Early, None, None), (R, Early, None, None)],
        false,
    );
    check(
        &[
            Invite("c"),
            Resp("c", 180, Some("b1")),
            Resp("c", 180, Some("b2")),
            Resp("c", 200, Some("b2")),
        ],
        &[
            (I, Terminated, Some(StateEvent::Cancelled), None),
            (I, Confirmed, None, None),
        ],
        &[
            (R, Terminated, Some(StateEvent::Cancelled), None),
            (R, Confirmed, None, None),
        ],
        true,
    );
    // A call whose BYE never passed here ends by max_duration_s (timeout).
    check(
        &[Invite("c"), Resp("c", 200, Some("b1")), Wait(3601)],
        &[(I, Terminated, Some(StateEvent::Timeout), None)],
        &[(R, Terminated, Some(StateEvent::Timeout), None)],
        false,
    );
    // A call whose final response never came (the caller's connection broke): ended after
    // setup_timeout_s; a confirmed call is not.
    check(
        &[Invite("c"), Resp("c", 180, Some("b1")), Wait(301)],
        &[(I, Terminated, Some(StateEvent::Timeout), None)],
        &[(R, Terminated, Some(StateEvent::Timeout), None)],
        false,
    );
    check(
        &[Invite("c"), Resp("c", 200, Some("b1")), Wait(301)],
        &[(I, Confirmed, None, None)],
        &[(R, Confirmed, None, None)],
        true,
    );
    // A BYE of another dialog changes nothing.
    check(
        &[
            Invite("c"),
            Resp("c", 200, Some("b1")),
            Bye("c", "at", "zz"),
        ],
        &[(I, Confirmed, None, None)],
        &[(R, Confirmed, None, None)],
        true,
    );
}

#[test]
fn the_document_names_both_parties_and_tags_from_each_side() {
    let mut t = DialogTable::new();
    let now = Timestamp(1_700_000_000_000);
    let i = invite("c9");
    t.handle_invite(&i, now, &DialogConfig::default());
    let mut ok = response(&i, 200, Some("b1"));
    ok.push_header(confab_sip::HeaderName::Contact, "<sip:bob@198.51.100.21>")
        .unwrap();
    t.handle_response(&i, &ok, now, &DialogConfig::default());
    let a = t.document("alice@example.com", 3, now);
    assert_eq!((a.version, a.entity.as_str()), (3, "sip:alice@example.com"));
    let d = &a.dialogs[0];
    assert_eq!(
        (
            d.call_id.as_deref(),
            d.local_tag.as_deref(),
            d.remote_tag.as_deref()
        ),
        (Some("c9"), Some("at"), Some("b1"))
    );
    let local = d.local.as_ref().unwrap();
    assert_eq!(
        local.identity.as_ref().unwrap().display.as_deref(),
        Some("Alice")
    );
    assert_eq!(
        local.target.as_ref().unwrap().uri,
        "sip:alice@198.51.100.10"
    );
    let remote = d.remote.as_ref().unwrap();
    assert_eq!(remote.identity.as_ref().unwrap().uri, "sip:bob@example.com");
    assert_eq!(remote.target.as_ref().unwrap().uri, "sip:bob@198.51.100.21");
    let b = t.document("bob@example.com", 0, now);
    let d = &b.dialogs[0];
    assert_eq!(
        (d.local_tag.as_deref(), d.remote_tag.as_deref()),
        (Some("b1"), Some("at"))
    );
    // The table is bounded.
    let mut small = DialogTable::new();
    let cfg = DialogConfig {
        max_dialogs: 1,
        ..DialogConfig::default()
    };
    small.handle_invite(&invite("x1"), now, &cfg);
    small.handle_invite(&invite("x2"), now, &cfg);
    assert_eq!(small.len(), 1);
}

#[test]
fn watchers_below_colleague_see_no_call() {
    let mut t = DialogTable::new();
    let now = Timestamp(1_700_000_000_000);
    let i = invite("c1");
    t.handle_invite(&i, now, &DialogConfig::default());
    t.handle_response(
        &i,
        &response(&i, 200, Some("b1")),
        now,
        &DialogConfig::default(),
    );
    let doc = t.document("bob@example.com", 7, now);
    let read = |level| {
        let (ct, body) = dialog_notify_body(&doc, level);
        assert_eq!(ct, "application/dialog-info+xml");
        DialogInfo::parse(&body, &confab_xml::Limits::DOCUMENT).unwrap()
    };
    for level in [AccessLevel::Blocked, AccessLevel::Public] {
        assert!(!sees_dialogs(level));
        let d = read(level);
        assert_eq!(d.version, 7);
        assert!(d.dialogs.is_empty(), "{level:?} sees a call");
        let raw = String::from_utf8(dialog_notify_body(&doc, level).1).unwrap();
        assert!(!raw.contains("alice") && !raw.contains("c1"), "{raw}");
    }
    let c = read(AccessLevel::Colleague);
    assert_eq!(c.dialogs.len(), 1);
    let d = &c.dialogs[0];
    assert_eq!((d.state, d.direction), (Confirmed, Some(R)));
    assert!(
        d.call_id.is_none() && d.local.is_none() && d.remote.is_none() && d.remote_tag.is_none()
    );
    let p = read(AccessLevel::Personal);
    assert_eq!(p, doc);
    // An idle user: every level gets the same empty document.
    let idle = t.document("carol@example.com", 1, now);
    for level in [
        AccessLevel::Blocked,
        AccessLevel::Public,
        AccessLevel::Colleague,
        AccessLevel::Personal,
    ] {
        let (_, body) = dialog_notify_body(&idle, level);
        let d = DialogInfo::parse(&body, &confab_xml::Limits::DOCUMENT).unwrap();
        assert_eq!(d, idle, "{level:?}");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Invite(u8),
        Resp(u8, u16, Option<u8>),
        Bye(u8, bool, u8),
        Wait(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..3).prop_map(Op::Invite),
            (
                0u8..3,
                prop_oneof![
                    Just(100u16),
                    Just(180),
                    Just(183),
                    Just(200),
                    Just(486),
                    Just(487),
                    Just(408),
                    100u16..700
                ],
                proptest::option::of(0u8..3)
            )
                .prop_map(|(c, code, tag)| Op::Resp(c, code, tag)),
            (0u8..3, any::<bool>(), 0u8..3).prop_map(|(c, swap, tag)| Op::Bye(c, swap, tag)),
            (0u8..30).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Any order of reports (duplicates, late, for unknown calls) never panics, never
        /// moves a dialog backwards, and the table's count matches the documents.
        #[test]
        fn reports_in_any_order(ops in proptest::collection::vec(op(), 0..40)) {
            let config = DialogConfig {
                max_duration_s: 60,
                setup_timeout_s: 30,
                terminated_linger_s: 10,
                max_dialogs: 8,
            };
            let mut t = DialogTable::new();
            let mut now = Timestamp(1_700_000_000_000);
            let mut invites: HashMap<u8, Message> = HashMap::new();
            let mut last: HashMap<(String, String), DialogState> = HashMap::new();
            for o in ops {
                match o {
                    Op::Invite(c) => {
                        let i = invite(&format!("c{c}"));
                        t.handle_invite(&i, now, &config);
                        invites.insert(c, i);
                    }
                    Op::Resp(c, code, tag) => {
                        let i = invites.get(&c).cloned().unwrap_or_else(|| invite(&format!("c{c}")));
                        let tag = tag.map(|x| format!("b{x}"));
                        t.handle_response(&i, &response(&i, code, tag.as_deref()), now, &config);
                    }
                    Op::Bye(c, swap, tag) => {
                        let b = format!("b{tag}");
                        let (f, to) = if swap { (b.as_str(), "at") } else { ("at", b.as_str()) };
                        t.handle_bye(&bye(&format!("c{c}"), f, to), now);
                    }
                    Op::Wait(s) => {
                        now = Timestamp(now.as_millis() + i64::from(s) * 1000);
                        t.sweep(now, &config);
                    }
                }
                let mut count = 0;
                // A dialog that left the document may come back as a new one (a Call-ID
                // reused after the old call was forgotten): monotonic while present.
                let mut present = HashMap::new();
                for user in ["alice@example.com", "bob@example.com"] {
                    let doc = t.document(user, 0, now);
                    count += doc.dialogs.len();
                    for d in &doc.dialogs {
                        let key = (user.to_owned(), d.id.clone());
                        if let Some(prev) = last.get(&key) {
                            prop_assert!(d.state >= *prev, "{key:?}: {prev:?} -> {:?}", d.state);
                        }
                        present.insert(key, d.state);
                        // Every document a watcher may get is well-formed.
                        let again = DialogInfo::parse(&doc.to_bytes(), &confab_xml::Limits::DOCUMENT);
                        prop_assert!(again.is_ok());
                    }
                }
                last = present;
                prop_assert_eq!(count, t.len());
                prop_assert!(t.len() <= config.max_dialogs, "{}", t.len());
            }
        }
    }
}

/// One user in thousands of calls (a gateway, a call centre): "on the phone" follows the
/// last confirmed dialog, the change is reported exactly when it flips, and swept calls
/// leave nothing behind.
#[test]
fn a_user_in_many_calls() {
    let config = DialogConfig {
        max_duration_s: 3600,
        setup_timeout_s: 300,
        terminated_linger_s: 10,
        max_dialogs: 100_000,
    };
    let mut t = DialogTable::new();
    let t0 = 1_700_000_000_000;
    let n = 3_000;
    let invites: Vec<Message> = (0..n).map(|i| invite(&format!("c{i}"))).collect();
    for inv in &invites {
        t.handle_invite(inv, Timestamp(t0), &config);
    }
    assert!(!t.on_the_phone("bob@example.com"));
    for (i, inv) in invites.iter().enumerate() {
        let ch = t.handle_response(
            inv,
            &response(inv, 200, Some("bt")),
            Timestamp(t0 + 1),
            &config,
        );
        let bob = ch.iter().find(|c| c.user == "bob@example.com").unwrap();
        assert_eq!(bob.on_the_phone_changed, i == 0, "answer {i}");
    }
    assert!(t.on_the_phone("bob@example.com"));
    for i in 0..n {
        let ch = t.handle_bye(&bye(&format!("c{i}"), "at", "bt"), Timestamp(t0 + 2));
        let bob = ch.iter().find(|c| c.user == "bob@example.com").unwrap();
        assert_eq!(bob.on_the_phone_changed, i == n - 1, "bye {i}");
        assert_eq!(t.on_the_phone("bob@example.com"), i < n - 1);
    }
    assert_eq!(t.len(), 2 * n);
    t.sweep(Timestamp(t0 + 5_000), &config);
    assert_eq!(t.len(), 2 * n, "still lingering");
    t.sweep(Timestamp(t0 + 20_000), &config);
    assert!(t.is_empty());
    assert_eq!(
        t.document("bob@example.com", 0, Timestamp(t0 + 20_000))
            .dialogs
            .len(),
        0
    );
}
