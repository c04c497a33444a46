//! The RFC example documents under `tests/vectors/` (see its README for provenance): each
//! is parsed, checked against the values the RFC shows, written back and read again.

use confab_xml::dialog_info::{DialogInfo, DialogState, Direction, DocumentState, StateEvent};
use confab_xml::multipart::{Part, Related};
use confab_xml::pidf::{Basic, Presence};
use confab_xml::pidf_diff::{self, PidfDiff};
use confab_xml::resource_lists::{Item, ResourceLists};
use confab_xml::rlmi::{self, InstanceState};
use confab_xml::rpid::{Activity, ActivityKind, InputState, MoodKind, MoodValue, PlaceValue};
use confab_xml::watcherinfo::{State, WatcherEvent, WatcherInfo, WatcherStatus};
use confab_xml::{Limits, XmlError, ns};

fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[track_caller]
fn pidf_round_trip(p: &Presence) {
    let bytes = p.to_bytes();
    let again = Presence::parse(&bytes, &Limits::DOCUMENT)
        .unwrap_or_else(|e| panic!("re-read failed: {e}\n{}", String::from_utf8_lossy(&bytes)));
    assert_eq!(&again, p, "{}", String::from_utf8_lossy(&bytes));
}

#[test]
fn rfc3863_example() {
    let p = Presence::parse(&vector("rfc3863-example.xml"), &Limits::DOCUMENT).unwrap();
    assert_eq!(p.entity, "pres:someone@example.com");
    assert_eq!(p.tuples.len(), 2);
    let t = &p.tuples[0];
    assert_eq!(t.id, "bs35r9");
    assert_eq!(t.status.basic, Some(Basic::Open));
    // The im:im and myex:location status extensions are kept with their namespaces.
    let ext: Vec<(&str, &str, String)> = t
        .status
        .extensions
        .iter()
        .map(|e| (e.namespace.as_str(), e.name.as_str(), e.text().into_owned()))
        .collect();
    assert_eq!(
        ext,
        vec![
            ("urn:ietf:params:xml:ns:pidf:im", "im", "busy".to_owned()),
            (
                "http://id.example.com/presence/",
                "location",
                "home".to_owned()
            ),
        ]
    );
    let c = t.contact.as_ref().unwrap();
    assert_eq!(
        (c.uri.as_str(), c.priority.as_deref()),
        ("im:someone@mobilecarrier.net", Some("0.8"))
    );
    assert_eq!(t.notes.len(), 2);
    assert_eq!(t.notes[0].lang.as_deref(), Some("en"));
    assert_eq!(t.notes[0].text, "Don't Disturb Please!");
    assert_eq!(t.notes[1].lang.as_deref(), Some("fr"));
    assert_eq!(
        t.timestamp.as_ref().unwrap().unix_millis(),
        1_004_201_369_000
    );
    assert_eq!(
        p.tuples[1].contact.as_ref().unwrap().uri,
        "mailto:someone@example.com"
    );
    assert_eq!(p.notes.len(), 1);
    assert_eq!(p.notes[0].text, "I'll be in Tokyo next week");
    pidf_round_trip(&p);
}

#[test]
fn rfc4480_example() {
    let p = Presence::parse(&vector("rfc4480-example.xml"), &Limits::DOCUMENT).unwrap();
    assert_eq!(
        p.tuples.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["bs35r9", "ty4658", "eg92n8"]
    );
    assert_eq!(
        p.tuples[0].device_id.as_deref(),
        Some("urn:device:0003ba4811e3")
    );
    // rp:relationship and rp:service-class pass through as extensions.
    assert_eq!(
        p.tuples[0]
            .extensions
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["relationship", "service-class"]
    );
    let d = &p.devices[0];
    assert_eq!(d.id, "pc147");
    let ui = d.user_input.as_ref().unwrap();
    assert_eq!(ui.state, InputState::Idle);
    assert_eq!(ui.idle_threshold, Some(600));
    assert_eq!(
        ui.last_input.as_deref(),
        Some("2004-10-21T13:20:00.000-05:00")
    );
    assert_eq!(d.device_id.as_deref(), Some("urn:device:0003ba4811e3"));
    assert_eq!(d.notes[0].text, "PC");

    let person = &p.persons[0];
    assert_eq!(person.id, "p1");
    let a = person.activities.as_ref().unwrap();
    assert_eq!(a.period.from.as_deref(), Some("2005-05-30T12:00:00+05:00"));
    assert_eq!(a.period.until.as_deref(), Some("2005-05-30T17:00:00+05:00"));
    assert_eq!(a.notes[0].text, "Far away");
    assert_eq!(a.values, vec![Activity::Known(ActivityKind::Away)]);
    let m = person.mood.as_ref().unwrap();
    assert_eq!(m.values[0], MoodValue::Known(MoodKind::Angry));
    assert!(matches!(&m.values[1], MoodValue::Other(t) if t.text == "brooding"));
    assert_eq!(
        person.place_type.as_ref().unwrap().values,
        vec![PlaceValue::LocationType("residence".to_owned())]
    );
    assert_eq!(
        person
            .extensions
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        [
            "class",
            "place-is",
            "privacy",
            "sphere",
            "status-icon",
            "time-offset"
        ]
    );
    assert_eq!(person.notes[0].text, "Scoring 120");
    assert_eq!(
        person.timestamp.as_ref().unwrap().as_str(),
        "2005-05-30T16:09:44+05:00"
    );
    pidf_round_trip(&p);
}

#[test]
fn rfc4479_example() {
    let p = Presence::parse(&vector("rfc4479-example.xml"), &Limits::DOCUMENT).unwrap();
    let t = &p.tuples[0];
    assert_eq!(
        (t.id.as_str(), t.device_id.as_deref()),
        ("sg89ae", Some("mac:8asd7d7d70"))
    );
    assert!(t.extensions[0].is(ns::CAPS, "servcaps"));
    assert_eq!(t.contact.as_ref().unwrap().uri, "sip:someone@example.com");
    assert!(
        p.persons[0]
            .activities
            .as_ref()
            .unwrap()
            .contains(ActivityKind::OnThePhone)
    );
    assert_eq!(
        p.devices[0].user_input.as_ref().unwrap().state,
        InputState::Idle
    );
    assert_eq!(p.devices[0].device_id.as_deref(), Some("mac:8asd7d7d70"));
    pidf_round_trip(&p);
}

#[test]
fn rfc3858_example() {
    let w = WatcherInfo::parse(&vector("rfc3858-example.xml"), &Limits::LIST).unwrap();
    assert_eq!((w.version, w.state), (0, State::Full));
    let l = &w.lists[0];
    assert_eq!(
        (l.resource.as_str(), l.package.as_str()),
        ("sip:professor@example.net", "presence")
    );
    let a = &l.watchers[0];
    assert_eq!(
        (
            a.status,
            a.event,
            a.id.as_str(),
            a.duration_subscribed,
            a.uri.as_str()
        ),
        (
            WatcherStatus::Active,
            WatcherEvent::Approved,
            "8ajksjda7s",
            Some(509),
            "sip:userA@example.net"
        )
    );
    let b = &l.watchers[1];
    assert_eq!(
        (b.status, b.event, b.display_name.as_deref(), b.uri.as_str()),
        (
            WatcherStatus::Pending,
            WatcherEvent::Subscribe,
            Some("Mr. Subscriber"),
            "sip:userB@example.org"
        )
    );
    let again = WatcherInfo::parse(&w.to_bytes(), &Limits::LIST).unwrap();
    assert_eq!(again, w);
}

#[test]
fn rfc4662_rlmi_as_published_is_not_well_formed() {
    let err =
        rlmi::List::parse(&vector("rfc4662-rlmi-as-published.xml"), &Limits::LIST).unwrap_err();
    match &err {
        XmlError::Malformed { line, .. } => assert_eq!(*line, 7, "{err}"),
        other => panic!("expected Malformed, got {other:?}"),
    }
    assert_eq!(err.status_code(), 400);
    assert!(
        err.to_string().starts_with("line 7: malformed XML"),
        "{err}"
    );
}

#[test]
fn rfc4662_rlmi_corrected() {
    let l = rlmi::List::parse(&vector("rfc4662-rlmi-corrected.xml"), &Limits::LIST).unwrap();
    assert_eq!(l.uri, "sip:adam-friends@pres.vancouver.example.com");
    assert_eq!((l.version, l.full_state), (1, true));
    assert_eq!(l.names.len(), 2);
    assert_eq!(l.names[1].lang.as_deref(), Some("de"));
    assert_eq!(l.resources.len(), 4);
    let bob = &l.resources[0];
    assert_eq!(bob.names[0].text, "Bob Smith");
    assert_eq!(bob.instances[0].id, "juwigmtboe");
    assert_eq!(bob.instances[0].state, InstanceState::Active);
    assert_eq!(
        bob.instances[0].cid.as_deref(),
        Some("bUZBsM@pres.vancouver.example.com")
    );
    assert!(l.resources[2].instances.is_empty());
    assert_eq!(rlmi::List::parse(&l.to_bytes(), &Limits::LIST).unwrap(), l);
}

#[test]
fn rfc4662_notify_body() {
    let body = vector("rfc4662-notify-body.txt");
    let ct = r#"multipart/related;type="application/rlmi+xml";start="<nXYxAE@pres.vancouver.example.com>";boundary="50UBfW7LSCVLtggUPe5z""#;
    let m = Related::parse(ct, &body).unwrap();
    assert_eq!(m.parts.len(), 3);
    let root = m.root().unwrap();
    assert_eq!(root.media_type(), rlmi::CONTENT_TYPE);
    let list = rlmi::List::parse(&root.body, &Limits::LIST).unwrap();
    // Every active instance's cid names a PIDF part for that resource.
    for r in &list.resources {
        for i in r
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Active)
        {
            let part = m.part(i.cid.as_deref().unwrap()).expect("cid names a part");
            let p = Presence::parse(&part.body, &Limits::DOCUMENT).unwrap();
            assert_eq!(p.entity, r.uri);
        }
    }
    assert_eq!(
        m.part("ZvSvkz@pres.vancouver.example.com")
            .map(
                |p| Presence::parse(&p.body, &Limits::DOCUMENT).unwrap().tuples[0]
                    .status
                    .basic
            ),
        Some(Some(Basic::Closed))
    );
    // Re-produced with the same boundary, the body is byte-identical.
    assert_eq!(m.to_bytes(), body);
    assert_eq!(Related::parse(&m.content_type(), &m.to_bytes()).unwrap(), m);
}

#[test]
fn rfc4826_example() {
    let r = ResourceLists::parse(&vector("rfc4826-example.xml"), &Limits::LIST).unwrap();
    let friends = &r.lists[0];
    assert_eq!(friends.name.as_deref(), Some("friends"));
    assert_eq!(
        friends.entry_uris(),
        [
            "sip:bill@example.com",
            "sip:joe@example.com",
            "sip:nancy@example.com"
        ]
    );
    assert!(
        matches!(&friends.items[1], Item::EntryRef { reference, .. } if reference.starts_with("resource-lists/users/sip:bill@example.com/"))
    );
    match &friends.items[2] {
        Item::List(close) => {
            assert_eq!(close.display_name.as_ref().unwrap().text, "Close Friends");
            assert!(
                matches!(&close.items[2], Item::External { display_name: Some(d), .. } if d.text == "Marketing")
            );
        }
        other => panic!("expected the nested list, got {other:?}"),
    }
    assert_eq!(
        ResourceLists::parse(&r.to_bytes(), &Limits::LIST).unwrap(),
        r
    );
}

#[test]
fn rfc5262_full_then_patch() {
    let full = PidfDiff::parse(&vector("rfc5262-pidf-full.xml"), &Limits::DOCUMENT).unwrap();
    let PidfDiff::Full { version, presence } = &full else {
        panic!("expected pidf-full")
    };
    assert_eq!(*version, 567);
    assert_eq!(
        presence
            .tuples
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["sg89ae", "cg231jcr", "r1230d"]
    );
    // The draft-era r:person / r:device elements are extensions here and pass through.
    assert_eq!(presence.extensions.len(), 2);
    assert_eq!(
        PidfDiff::parse(&full.to_bytes(), &Limits::DOCUMENT).unwrap(),
        full
    );

    let patch = PidfDiff::parse(&vector("rfc5262-patch.xml"), &Limits::DOCUMENT).unwrap();
    let PidfDiff::Patch(patch) = patch else {
        panic!("expected patch")
    };
    assert_eq!(patch.version, 568);
    assert_eq!(patch.ops.len(), 4);
    let after = patch.apply(presence).unwrap();
    assert_eq!(
        after
            .tuples
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["sg89ae", "r1230d", "ert4773"]
    );
    assert_eq!(
        after.tuple("r1230d").unwrap().status.basic,
        Some(Basic::Open)
    );
    assert_eq!(
        after
            .tuple("sg89ae")
            .unwrap()
            .contact
            .as_ref()
            .unwrap()
            .priority
            .as_deref(),
        Some("0.7")
    );
    assert_eq!(
        after
            .tuple("ert4773")
            .unwrap()
            .contact
            .as_ref()
            .unwrap()
            .uri,
        "mailto:pep@example.com"
    );
    // Everything the patch did not touch is unchanged.
    assert_eq!(after.notes, presence.notes);
    assert_eq!(after.extensions, presence.extensions);
    // The patch survives a write/read cycle with its prefixes.
    let again = PidfDiff::parse(
        &PidfDiff::Patch(patch.clone()).to_bytes(),
        &Limits::DOCUMENT,
    )
    .unwrap();
    let PidfDiff::Patch(again) = again else {
        panic!()
    };
    assert_eq!(again.apply(presence).unwrap(), after);
    // And the computed diff between the two documents gives the same result.
    let computed = pidf_diff::diff(presence, &after, 568).unwrap();
    assert_eq!(computed.apply(presence).unwrap(), after);
}

#[test]
fn multipart_build_chooses_a_boundary_absent_from_the_parts() {
    let random = [7u8; 12];
    let first = Related::build(
        vec![Part::new("a@x", rlmi::CONTENT_TYPE, b"x".to_vec())],
        random,
    )
    .unwrap();
    // A part that contains that boundary forces a longer one.
    let hostile = format!("--{}", first.boundary).into_bytes();
    let m = Related::build(
        vec![
            Part::new("a@x", rlmi::CONTENT_TYPE, b"<list/>".to_vec()),
            Part::new("b@x", "application/pidf+xml", hostile.clone()),
        ],
        random,
    )
    .unwrap();
    assert_ne!(m.boundary, first.boundary);
    assert!(
        !hostile
            .windows(m.boundary.len())
            .any(|w| w == m.boundary.as_bytes())
    );
    let parsed = Related::parse(&m.content_type(), &m.to_bytes()).unwrap();
    assert_eq!(parsed, m);
    assert_eq!(parsed.root().unwrap().content_id.as_deref(), Some("a@x"));
}

#[track_caller]
fn dialog_info_round_trip(d: &DialogInfo) {
    let bytes = d.to_bytes();
    let again = DialogInfo::parse(&bytes, &Limits::DOCUMENT)
        .unwrap_or_else(|e| panic!("re-read failed: {e}\n{}", String::from_utf8_lossy(&bytes)));
    assert_eq!(&again, d, "{}", String::from_utf8_lossy(&bytes));
}

#[test]
fn rfc4235_early_dialog() {
    let d = DialogInfo::parse(&vector("rfc4235-4.1.1-early.xml"), &Limits::DOCUMENT).unwrap();
    assert_eq!((d.version, d.state), (0, DocumentState::Partial));
    assert_eq!(d.entity, "sip:alice@example.com");
    assert_eq!(d.dialogs.len(), 1);
    let x = &d.dialogs[0];
    assert_eq!(x.id, "as7d900as8");
    assert_eq!(x.call_id.as_deref(), Some("a84b4c76e66710"));
    assert_eq!(x.local_tag.as_deref(), Some("1928301774"));
    assert_eq!(x.remote_tag, None);
    assert_eq!(x.direction, Some(Direction::Initiator));
    assert_eq!((x.state, x.event, x.code), (DialogState::Early, None, None));
    dialog_info_round_trip(&d);
}

#[test]
fn rfc4235_rejected_dialog() {
    let d = DialogInfo::parse(&vector("rfc4235-4.1.2-rejected.xml"), &Limits::DOCUMENT).unwrap();
    let x = &d.dialogs[0];
    assert_eq!(
        (x.state, x.event, x.code, x.duration),
        (
            DialogState::Terminated,
            Some(StateEvent::Rejected),
            Some(486),
            Some(145)
        )
    );
    dialog_info_round_trip(&d);
}

#[test]
fn rfc4235_full_sample() {
    let d = DialogInfo::parse(&vector("rfc4235-4.4-full.xml"), &Limits::DOCUMENT).unwrap();
    assert_eq!((d.version, d.state), (1, DocumentState::Full));
    let x = &d.dialogs[0];
    assert_eq!(x.id, "123456");
    assert_eq!((x.state, x.duration), (DialogState::Confirmed, Some(274)));
    let local = x.local.as_ref().unwrap();
    let id = local.identity.as_ref().unwrap();
    assert_eq!(
        (id.display.as_deref(), id.uri.as_str()),
        (Some("Alice"), "sip:alice@example.com")
    );
    let target = local.target.as_ref().unwrap();
    assert_eq!(target.uri, "sip:alice@pc33.example.com");
    assert_eq!(
        target.params,
        vec![
            ("isfocus".to_owned(), "false".to_owned()),
            ("class".to_owned(), "personal".to_owned())
        ]
    );
    let remote = x.remote.as_ref().unwrap();
    assert_eq!(remote.identity.as_ref().unwrap().uri, "sip:bob@example.org");
    assert_eq!(
        remote.target.as_ref().unwrap().uri,
        "sip:bobster@phone21.example.org"
    );
    dialog_info_round_trip(&d);
}
