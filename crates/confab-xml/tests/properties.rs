//! Property tests: arbitrary and mutated bodies never panic; produce → parse gives the same
//! document; a computed pidf-diff applied to the old document gives the new one.

use confab_xml::dialog_info::{
    self as di, DialogInfo, DialogState, Direction, DocumentState, StateEvent,
};
use confab_xml::multipart::Related;
use confab_xml::pidf::{Basic, Contact, Device, Person, Presence, Status, Tuple};
use confab_xml::pidf_diff::{self, PidfDiff};
use confab_xml::resource_lists::ResourceLists;
use confab_xml::rlmi;
use confab_xml::rpid::{
    Activities, Activity, ActivityKind, InputState, Mood, MoodKind, MoodValue, UserInput,
};
use confab_xml::watcherinfo::WatcherInfo;
use confab_xml::{DateTime, Element, Limits, Node, Text};
use proptest::prelude::*;

fn every_reader(body: &[u8]) {
    let l = Limits::DOCUMENT;
    let _ = Element::parse(body, &l);
    let _ = Presence::parse(body, &l);
    let _ = PidfDiff::parse(body, &l);
    let _ = WatcherInfo::parse(body, &l);
    let _ = DialogInfo::parse(body, &l);
    let _ = rlmi::List::parse(body, &l);
    let _ = ResourceLists::parse(body, &l);
    let _ = Related::parse(
        "multipart/related;type=\"application/rlmi+xml\";boundary=b",
        body,
    );
}

fn vectors() -> Vec<Vec<u8>> {
    let dir = format!("{}/tests/vectors", env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "xml" || x == "txt") {
            out.push(std::fs::read(p).unwrap());
        }
    }
    out.sort();
    out
}

/// Text that survives a round trip: no XML-forbidden characters, not whitespace-only.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 <>&'\"é☺\t\n.:;!?-]{0,12}".prop_map(|s| {
        if s.trim().is_empty() {
            String::new()
        } else {
            format!("x{s}x")
        }
    })
}

fn token() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,7}"
}

fn note() -> impl Strategy<Value = Text> {
    (
        proptest::option::of(prop_oneof![Just("en".to_owned()), Just("fr".to_owned())]),
        text(),
    )
        .prop_map(|(lang, text)| Text { lang, text })
}

fn extension() -> impl Strategy<Value = Element> {
    let leaf = (
        prop_oneof![
            Just("urn:x-vendor:ext"),
            Just("http://example.com/a"),
            Just("urn:x-other")
        ],
        token(),
        proptest::collection::vec((token(), text()), 0..3),
        text(),
    )
        .prop_map(|(ns, name, attrs, t)| {
            let mut e = Element::new(ns, &name);
            for (k, v) in attrs {
                e.set_attr(&k, v);
            }
            e.with_text(t)
        });
    leaf.prop_recursive(2, 8, 3, |inner| {
        (token(), proptest::collection::vec(inner, 1..3)).prop_map(|(name, kids)| {
            let mut e = Element::new("urn:x-vendor:ext", &name);
            e.children = kids.into_iter().map(Node::Element).collect();
            e
        })
    })
}

fn datetime() -> impl Strategy<Value = DateTime> {
    (0i64..4_000_000_000_000).prop_map(DateTime::from_unix_millis)
}

fn user_input() -> impl Strategy<Value = UserInput> {
    (
        any::<bool>(),
        proptest::option::of(1u32..100_000),
        proptest::option::of(datetime()),
    )
        .prop_map(|(idle, threshold, last)| {
            let mut u = UserInput::new(if idle {
                InputState::Idle
            } else {
                InputState::Active
            });
            u.idle_threshold = threshold;
            u.last_input = last.map(|d| d.as_str().to_owned());
            u
        })
}

fn tuple(id: String) -> impl Strategy<Value = Tuple> {
    (
        proptest::option::of(any::<bool>()),
        proptest::collection::vec(extension(), 0..2),
        proptest::option::of(token()),
        proptest::option::of(user_input()),
        proptest::option::of((
            token(),
            proptest::option::of(prop_oneof![Just("0.5"), Just("1.0"), Just("0")]),
        )),
        proptest::collection::vec(note(), 0..2),
        proptest::option::of(datetime()),
        proptest::collection::vec(extension(), 0..2),
    )
        .prop_map(move |(basic, sx, dev, ui, contact, notes, ts, ext)| Tuple {
            id: id.clone(),
            status: Status {
                basic: basic.map(|o| if o { Basic::Open } else { Basic::Closed }),
                extensions: sx,
            },
            device_id: dev,
            user_input: ui,
            extensions: ext,
            contact: contact.map(|(u, p)| Contact {
                uri: format!("sip:{u}@example.com"),
                priority: p.map(str::to_owned),
            }),
            notes,
            timestamp: ts,
        })
}

fn person(id: String) -> impl Strategy<Value = Person> {
    (
        proptest::option::of(proptest::collection::vec(0..ActivityKind::ALL.len(), 1..3)),
        proptest::option::of(0..MoodKind::ALL.len()),
        proptest::option::of(user_input()),
        proptest::collection::vec(extension(), 0..2),
        proptest::collection::vec(note(), 0..2),
        proptest::option::of(datetime()),
    )
        .prop_map(move |(acts, mood, ui, ext, notes, ts)| Person {
            id: id.clone(),
            activities: acts.map(|a| Activities {
                values: a
                    .into_iter()
                    .map(|i| Activity::Known(ActivityKind::ALL[i]))
                    .collect(),
                ..Activities::default()
            }),
            mood: mood.map(|m| Mood {
                values: vec![MoodValue::Known(MoodKind::ALL[m])],
                ..Mood::default()
            }),
            place_type: None,
            user_input: ui,
            extensions: ext,
            notes,
            timestamp: ts,
        })
}

fn presence() -> impl Strategy<Value = Presence> {
    (
        token(),
        proptest::collection::btree_set(token(), 0..4),
        proptest::collection::btree_set(token(), 0..3),
        proptest::collection::btree_set(token(), 0..3),
        proptest::collection::vec(note(), 0..2),
        proptest::collection::vec(extension(), 0..2),
    )
        .prop_flat_map(|(entity, tids, pids, dids, notes, ext)| {
            let tuples: Vec<_> = tids.into_iter().map(tuple).collect();
            let persons: Vec<_> = pids.into_iter().map(person).collect();
            let devices: Vec<_> = dids
                .into_iter()
                .map(|id| {
                    (
                        proptest::option::of(user_input()),
                        proptest::option::of(token()),
                    )
                        .prop_map(move |(u, d)| Device {
                            id: id.clone(),
                            user_input: u,
                            device_id: d,
                            ..Device::default()
                        })
                })
                .collect();
            (tuples, persons, devices).prop_map(move |(tuples, persons, devices)| Presence {
                entity: format!("pres:{entity}@example.com"),
                tuples,
                notes: notes.clone(),
                persons,
                devices,
                extensions: ext.clone(),
            })
        })
}

fn sorted(mut p: Presence) -> Presence {
    p.tuples.sort_by(|a, b| a.id.cmp(&b.id));
    p.persons.sort_by(|a, b| a.id.cmp(&b.id));
    p.devices.sort_by(|a, b| a.id.cmp(&b.id));
    p
}

fn di_token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9.@-]{1,10}"
}

fn uri() -> impl Strategy<Value = String> {
    "[a-z]{1,6}".prop_map(|u| format!("sip:{u}@example.com"))
}

fn participant() -> impl Strategy<Value = di::Participant> {
    (
        proptest::option::of((proptest::option::of(text()), uri())),
        proptest::option::of((
            uri(),
            proptest::collection::vec((di_token(), di_token()), 0..3),
        )),
    )
        .prop_map(|(identity, target)| di::Participant {
            identity: identity.map(|(display, uri)| di::Identity {
                display: display.filter(|d| !d.is_empty()),
                uri,
            }),
            target: target.map(|(uri, params)| di::Target { uri, params }),
            extensions: Vec::new(),
        })
}

fn dialog_state() -> impl Strategy<Value = DialogState> {
    prop_oneof![
        Just(DialogState::Trying),
        Just(DialogState::Proceeding),
        Just(DialogState::Early),
        Just(DialogState::Confirmed),
        Just(DialogState::Terminated),
    ]
}

fn dialog() -> impl Strategy<Value = di::Dialog> {
    (
        di_token(),
        proptest::option::of(di_token()),
        proptest::option::of(di_token()),
        proptest::option::of(di_token()),
        proptest::option::of(prop_oneof![
            Just(Direction::Initiator),
            Just(Direction::Recipient)
        ]),
        dialog_state(),
        proptest::option::of(proptest::sample::select(StateEvent::ALL.to_vec())),
        proptest::option::of(100u16..700),
        proptest::option::of(any::<u32>()),
        proptest::option::of(participant()),
        proptest::option::of(participant()),
    )
        .prop_map(
            |(
                id,
                call_id,
                local_tag,
                remote_tag,
                direction,
                state,
                event,
                code,
                duration,
                local,
                remote,
            )| di::Dialog {
                id,
                call_id,
                local_tag,
                remote_tag,
                direction,
                state,
                event,
                code,
                duration,
                local,
                remote,
                extensions: Vec::new(),
            },
        )
}

fn dialog_info() -> impl Strategy<Value = DialogInfo> {
    (
        any::<u32>(),
        any::<bool>(),
        uri(),
        proptest::collection::vec(dialog(), 0..4),
    )
        .prop_map(|(version, full, entity, dialogs)| DialogInfo {
            version,
            state: if full {
                DocumentState::Full
            } else {
                DocumentState::Partial
            },
            entity,
            dialogs,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        every_reader(&body);
    }

    #[test]
    fn mutated_vectors_never_panic(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let vs = vectors();
        let mut body = vs[which.index(vs.len())].clone();
        for (at, byte) in edits {
            let i = at.index(body.len());
            body[i] = byte;
        }
        every_reader(&body);
        body.truncate(cut.index(body.len() + 1));
        every_reader(&body);
    }

    #[test]
    fn pidf_produce_then_parse_is_identity(p in presence()) {
        let bytes = p.to_bytes();
        let again = Presence::parse(&bytes, &Limits::DOCUMENT);
        prop_assert_eq!(again.as_ref(), Ok(&p), "{}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn diff_then_apply_gives_the_new_document(old in presence(), mut new in presence()) {
        // Same entity, notes and extensions, so a patch is possible.
        new.entity = old.entity.clone();
        new.notes = old.notes.clone();
        new.extensions = old.extensions.clone();
        let patch = pidf_diff::diff(&old, &new, 2).expect("patchable");
        // The patch also survives being written and read.
        let bytes = PidfDiff::Patch(patch).to_bytes();
        let PidfDiff::Patch(patch) = PidfDiff::parse(&bytes, &Limits::DOCUMENT).unwrap() else {
            panic!("not a patch")
        };
        let applied = patch.apply(&old).unwrap();
        prop_assert_eq!(sorted(applied), sorted(new));
    }

    #[test]
    fn multipart_round_trip(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..4),
        random in any::<[u8; 12]>(),
    ) {
        let parts = bodies
            .into_iter()
            .enumerate()
            .map(|(i, b)| confab_xml::multipart::Part::new(format!("p{i}@x"), "application/pidf+xml", b))
            .collect();
        let m = Related::build(parts, random).unwrap();
        prop_assert_eq!(Related::parse(&m.content_type(), &m.to_bytes()).unwrap(), m);
    }

    #[test]
    fn dialog_info_produce_then_parse_is_identity(d in dialog_info()) {
        let bytes = d.to_bytes();
        let again = DialogInfo::parse(&bytes, &Limits::DOCUMENT);
        prop_assert_eq!(again.as_ref(), Ok(&d), "{}", String::from_utf8_lossy(&bytes));
    }
}
