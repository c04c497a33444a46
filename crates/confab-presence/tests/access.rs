//! Access levels: the default policy as a table, the filter, and the property that no
//! watcher ever receives state its level does not allow — through full, partial and
//! resource-list NOTIFY bodies.

use confab_core::{Address, Timestamp};
use confab_presence::access::{
    AccessLevel, AccessPolicy, Authorization, ListMember, access_level, authorize, filter,
    list_notify_body, notify_body,
};
use confab_presence::aggregate::{
    AggregateConfig, AggregateInput, Availability, EndpointPublication, ManualAvailability,
    ManualState, aggregate, availability_of, is_availability_activity, offline_document,
};
use confab_xml::pidf::{Basic, Contact, Device, Person, Presence, Tuple};
use confab_xml::pidf_diff::PidfDiff;
use confab_xml::rlmi::{self, InstanceState};
use confab_xml::rpid::{
    Activities, Activity, ActivityKind, InputState, Mood, MoodKind, MoodValue, UserInput,
};
use confab_xml::{Element, Limits, Text};
use proptest::prelude::*;

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

#[test]
fn default_levels() {
    let alice = addr("alice@example.com");
    let policy = AccessPolicy {
        overrides: vec![
            (addr("mallory@example.com"), AccessLevel::Blocked),
            (addr("boss@partner.org"), AccessLevel::Colleague),
        ],
        domain_overrides: vec![("spam.example".to_owned(), AccessLevel::Blocked)],
        contacts: vec![addr("bob@other.org"), addr("mallory@example.com")],
        anonymous: None,
        confirm_strangers: false,
    };
    let table: &[(Option<&str>, AccessLevel)] = &[
        (Some("alice@example.com"), AccessLevel::Personal),
        (Some("bob@other.org"), AccessLevel::Personal),
        (Some("carol@example.com"), AccessLevel::Colleague),
        (Some("carol@EXAMPLE.com"), AccessLevel::Colleague),
        (Some("dave@elsewhere.net"), AccessLevel::Public),
        (Some("mallory@example.com"), AccessLevel::Blocked),
        (Some("boss@partner.org"), AccessLevel::Colleague),
        (Some("x@spam.example"), AccessLevel::Blocked),
        (None, AccessLevel::Public),
    ];
    for (w, expected) in table {
        let w = w.map(addr);
        assert_eq!(
            access_level(w.as_ref(), &alice, &policy),
            *expected,
            "{w:?}"
        );
    }
    let anon_blocked = AccessPolicy {
        anonymous: Some(AccessLevel::Blocked),
        ..AccessPolicy::default()
    };
    assert_eq!(
        access_level(None, &alice, &anon_blocked),
        AccessLevel::Blocked
    );

    // Authorization: strangers wait only when the user asked for it.
    let strict = AccessPolicy {
        confirm_strangers: true,
        ..policy.clone()
    };
    let w = addr("dave@elsewhere.net");
    assert_eq!(
        authorize(Some(&w), &alice, &policy),
        Authorization::Accept(AccessLevel::Public)
    );
    assert_eq!(authorize(Some(&w), &alice, &strict), Authorization::Pending);
    let m = addr("mallory@example.com");
    assert_eq!(
        authorize(Some(&m), &alice, &strict),
        Authorization::Accept(AccessLevel::Blocked)
    );
    let c = addr("carol@example.com");
    assert_eq!(
        authorize(Some(&c), &alice, &strict),
        Authorization::Accept(AccessLevel::Colleague)
    );
}

fn rich_document() -> Presence {
    let mut p = Presence::new("sip:alice@example.com");
    let mut t = Tuple::new("pc", Basic::Open);
    t.contact = Some(Contact {
        uri: "sip:alice@10.0.0.5".into(),
        priority: Some("0.8".into()),
    });
    t.notes.push(Text::new("laptop"));
    t.device_id = Some("urn:uuid:dev".into());
    p.tuples.push(t);
    p.notes.push(Text::new("Back Monday"));
    p.persons.push(Person {
        id: "p".into(),
        activities: Some(Activities::of(&[ActivityKind::Busy, ActivityKind::Meeting])),
        mood: Some(Mood {
            values: vec![MoodValue::Known(MoodKind::Happy)],
            ..Mood::default()
        }),
        user_input: Some(UserInput::new(InputState::Active)),
        extensions: vec![Element::new("urn:x-vendor", "location").with_text("Room 4")],
        notes: vec![Text::new("Weekly sync")],
        ..Person::default()
    });
    p.devices.push(Device {
        id: "d".into(),
        device_id: Some("urn:uuid:dev".into()),
        ..Device::default()
    });
    p
}

#[test]
fn filter_by_level() {
    let doc = rich_document();
    assert_eq!(filter(&doc, AccessLevel::Personal), doc);
    assert_eq!(
        filter(&doc, AccessLevel::Blocked),
        offline_document(&doc.entity)
    );

    let public = filter(&doc, AccessLevel::Public);
    assert_eq!(availability_of(&public), Availability::Busy);
    assert_eq!(public.tuples.len(), 1);
    assert_eq!(public.tuples[0].contact, None);
    assert_eq!(
        public.persons[0].activities,
        Some(Activities::of(&[ActivityKind::Busy]))
    );
    assert!(public.notes.is_empty() && public.devices.is_empty());
    let bytes = String::from_utf8(public.to_bytes()).unwrap();
    for secret in [
        "10.0.0.5",
        "Meeting",
        "meeting",
        "Weekly",
        "Room 4",
        "happy",
        "Back Monday",
        "laptop",
    ] {
        assert!(!bytes.contains(secret), "public leaks {secret}: {bytes}");
    }

    let colleague = filter(&doc, AccessLevel::Colleague);
    assert_eq!(availability_of(&colleague), Availability::Busy);
    let person = &colleague.persons[0];
    assert!(
        person
            .activities
            .as_ref()
            .unwrap()
            .contains(ActivityKind::Meeting)
    );
    assert_eq!(person.notes[0].text, "Weekly sync");
    assert_eq!(colleague.notes[0].text, "Back Monday");
    let bytes = String::from_utf8(colleague.to_bytes()).unwrap();
    for secret in ["10.0.0.5", "Room 4", "happy", "laptop", "urn:uuid:dev"] {
        assert!(!bytes.contains(secret), "colleague leaks {secret}: {bytes}");
    }
}

/// The independent statement of what each level may receive.
fn permitted(level: AccessLevel, original: &Presence, got: &Presence) -> Result<(), String> {
    if got.entity != original.entity {
        return Err("entity changed".into());
    }
    let base = |got: &Presence| -> Result<(), String> {
        if got.tuples.len() > 1
            || got.persons.len() > 1
            || !got.devices.is_empty()
            || !got.extensions.is_empty()
        {
            return Err("more than one tuple/person, or devices/extensions".into());
        }
        for t in &got.tuples {
            if t.contact.is_some()
                || !t.notes.is_empty()
                || t.device_id.is_some()
                || t.user_input.is_some()
                || !t.extensions.is_empty()
                || t.timestamp.is_some()
                || !t.status.extensions.is_empty()
            {
                return Err(format!("tuple carries details: {t:?}"));
            }
        }
        for p in &got.persons {
            if p.mood.is_some()
                || p.place_type.is_some()
                || p.user_input.is_some()
                || !p.extensions.is_empty()
                || p.timestamp.is_some()
            {
                return Err(format!("person carries details: {p:?}"));
            }
        }
        // Never claims more availability than the original shows.
        if availability_of(got) != availability_of(original) {
            return Err("availability differs".into());
        }
        Ok(())
    };
    match level {
        AccessLevel::Blocked => (got == &offline_document(&original.entity))
            .then_some(())
            .ok_or_else(|| "blocked must see exactly offline".to_owned()),
        AccessLevel::Public => {
            base(got)?;
            if !got.notes.is_empty() || got.persons.iter().any(|p| !p.notes.is_empty()) {
                return Err("public sees notes".into());
            }
            let acts = got
                .persons
                .iter()
                .filter_map(|p| p.activities.as_ref())
                .flat_map(|a| &a.values);
            for a in acts {
                if !is_availability_activity(a) {
                    return Err(format!("public sees activity {a:?}"));
                }
            }
            Ok(())
        }
        AccessLevel::Colleague => base(got),
        AccessLevel::Personal => Ok(()),
    }
}

fn level() -> impl Strategy<Value = AccessLevel> {
    prop_oneof![
        Just(AccessLevel::Blocked),
        Just(AccessLevel::Public),
        Just(AccessLevel::Colleague),
        Just(AccessLevel::Personal)
    ]
}

fn endpoint(etag: String) -> impl Strategy<Value = EndpointPublication> {
    (
        any::<bool>(),
        proptest::collection::vec(0..ActivityKind::ALL.len(), 0..3),
        proptest::option::of(any::<bool>()),
        any::<bool>(),
        0i64..10_000,
        any::<bool>(),
    )
        .prop_map(move |(open, acts, idle, rich, ago, other_dnd)| {
            let mut doc = Presence::new("sip:alice@example.com");
            let mut t = Tuple::new(
                format!("t{etag}"),
                if open { Basic::Open } else { Basic::Closed },
            );
            t.contact = Some(Contact {
                uri: format!("sip:alice@{etag}.secret"),
                priority: None,
            });
            doc.tuples.push(t);
            let mut values: Vec<Activity> = acts
                .into_iter()
                .map(|i| Activity::Known(ActivityKind::ALL[i]))
                .collect();
            if other_dnd {
                values.push(Activity::Other(Text::new("do-not-disturb")));
            }
            doc.persons.push(Person {
                id: "p".into(),
                activities: (!values.is_empty()).then(|| Activities {
                    values,
                    ..Activities::default()
                }),
                user_input: idle.map(|i| {
                    UserInput::new(if i {
                        InputState::Idle
                    } else {
                        InputState::Active
                    })
                }),
                notes: if rich {
                    vec![Text::new("secret note")]
                } else {
                    Vec::new()
                },
                extensions: if rich {
                    vec![Element::new("urn:x", "secret")]
                } else {
                    Vec::new()
                },
                ..Person::default()
            });
            if rich {
                doc.devices.push(Device {
                    id: format!("d{etag}"),
                    ..Device::default()
                });
            }
            EndpointPublication {
                etag: etag.clone(),
                published_at: Timestamp(1_000_000 - ago),
                expires_at: Timestamp(2_000_000),
                instance: None,
                document: doc,
            }
        })
}

fn manual() -> impl Strategy<Value = Option<ManualState>> {
    proptest::option::of(
        prop_oneof![
            Just(ManualAvailability::Busy),
            Just(ManualAvailability::DoNotDisturb),
            Just(ManualAvailability::BeRightBack),
            Just(ManualAvailability::Away),
            Just(ManualAvailability::AppearOffline),
        ]
        .prop_map(|a| ManualState {
            availability: a,
            note: Some("manual secret".into()),
            until: None,
        }),
    )
}

fn aggregated() -> impl Strategy<Value = Presence> {
    (
        proptest::collection::vec(endpoint("a".into()), 0..1),
        proptest::collection::vec(endpoint("b".into()), 0..1),
        any::<bool>(),
        manual(),
    )
        .prop_map(|(a, b, phone, manual)| {
            let pubs: Vec<_> = a.into_iter().chain(b).collect();
            aggregate(
                &AggregateInput {
                    entity: "sip:alice@example.com",
                    publications: &pubs,
                    registrations: &[],
                    on_the_phone: phone,
                    manual: manual.as_ref(),
                    now: Timestamp(1_000_000),
                },
                &AggregateConfig::default(),
            )
            .document
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_watcher_receives_more_than_its_level(doc in aggregated(), prev in aggregated(), level in level()) {
        // Full NOTIFY.
        let got = filter(&doc, level);
        prop_assert_eq!(permitted(level, &doc, &got), Ok(()));
        let (ct, body) = notify_body(&doc, None, level, false, 0);
        prop_assert_eq!(ct, "application/pidf+xml");
        let sent = Presence::parse(&body, &Limits::DOCUMENT).unwrap();
        prop_assert_eq!(permitted(level, &doc, &sent), Ok(()));

        // Partial NOTIFY: what the watcher reconstructs from the previous filtered document
        // and the patch is permitted too.
        let (ct, body) = notify_body(&doc, Some(&prev), level, true, 7);
        prop_assert_eq!(ct, "application/pidf-diff+xml");
        let reconstructed = match PidfDiff::parse(&body, &Limits::DOCUMENT).unwrap() {
            PidfDiff::Full { presence, .. } => presence,
            PidfDiff::Patch(p) => p.apply(&filter(&prev, level)).unwrap(),
        };
        prop_assert_eq!(permitted(level, &doc, &reconstructed), Ok(()));
        // And the patch itself carries nothing the level may not see.
        let text = String::from_utf8(body).unwrap();
        if level < AccessLevel::Personal {
            for secret in [".secret", "secret note", "manual secret", "urn:x"] {
                // Notes (the endpoint's and the manual one) are colleague-visible.
                if level == AccessLevel::Colleague && (secret == "secret note" || secret == "manual secret") { continue; }
                prop_assert!(!text.contains(secret), "{:?} leaks {}: {}", level, secret, text);
            }
        }

        // Resource-list NOTIFY: every part is filtered with the member's level.
        let members = [
            ListMember { uri: "sip:alice@example.com", name: Some("Alice"), state: InstanceState::Active,
                instance_id: "i1", reason: None, document: Some(&doc), level },
            ListMember { uri: "sip:bob@example.com", name: None, state: InstanceState::Pending,
                instance_id: "i2", reason: None, document: Some(&prev), level: AccessLevel::Personal },
        ];
        let m = list_notify_body("sip:friends@example.com", 3, true, &members, [9; 12]).unwrap();
        let list = rlmi::List::parse(&m.root().unwrap().body, &Limits::LIST).unwrap();
        prop_assert_eq!(list.resources.len(), 2);
        // The pending member's state is never sent.
        prop_assert_eq!(list.resources[1].instances[0].cid.as_deref(), None);
        let cid = list.resources[0].instances[0].cid.clone().unwrap();
        let part = Presence::parse(&m.part(&cid).unwrap().body, &Limits::DOCUMENT).unwrap();
        prop_assert_eq!(permitted(level, &doc, &part), Ok(()));
    }

    #[test]
    fn blocked_cannot_tell_blocking_from_offline(doc in aggregated()) {
        let offline = aggregate(
            &AggregateInput { entity: "sip:alice@example.com", publications: &[], registrations: &[],
                on_the_phone: false, manual: None, now: Timestamp(0) },
            &AggregateConfig::default(),
        ).document;
        prop_assert_eq!(filter(&doc, AccessLevel::Blocked).to_bytes(), filter(&offline, AccessLevel::Personal).to_bytes());
    }
}
