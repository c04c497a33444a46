//! The aggregation rules (issue 8 item 4) as a table of inputs and expected outputs.

use confab_core::Timestamp;
use confab_presence::aggregate::{
    Aggregate, AggregateConfig, AggregateInput, Availability, EndpointPublication,
    ManualAvailability, ManualState, Registration, Source, aggregate, availability_of,
    offline_document,
};
use confab_xml::pidf::{Basic, Contact, Person, Presence, Tuple};
use confab_xml::rpid::{Activities, Activity, ActivityKind, InputState, UserInput};

const NOW: Timestamp = Timestamp(1_000_000_000);
const ENTITY: &str = "sip:alice@example.com";

/// An endpoint publication: `(etag, published seconds ago, activities, idle, instance)`.
fn publication(
    etag: &str,
    ago: i64,
    acts: &[ActivityKind],
    idle: Option<bool>,
    instance: Option<&str>,
) -> EndpointPublication {
    let mut doc = Presence::new(ENTITY);
    let mut t = Tuple::new(format!("t-{etag}"), Basic::Open);
    t.contact = Some(Contact {
        uri: format!("sip:alice@{etag}.example.com"),
        priority: None,
    });
    doc.tuples.push(t);
    if !acts.is_empty() || idle.is_some() {
        doc.persons.push(Person {
            id: "p".to_owned(),
            activities: (!acts.is_empty()).then(|| Activities::of(acts)),
            user_input: idle.map(|i| {
                UserInput::new(if i {
                    InputState::Idle
                } else {
                    InputState::Active
                })
            }),
            ..Person::default()
        });
    }
    EndpointPublication {
        etag: etag.to_owned(),
        published_at: Timestamp(NOW.0 - ago * 1000),
        expires_at: Timestamp(NOW.0 + 3_600_000),
        instance: instance.map(str::to_owned),
        document: doc,
    }
}

fn closed(etag: &str) -> EndpointPublication {
    let mut p = publication(etag, 1, &[], None, None);
    p.document.tuples[0].status.basic = Some(Basic::Closed);
    p
}

fn expired(mut p: EndpointPublication) -> EndpointPublication {
    p.expires_at = Timestamp(NOW.0 - 1);
    p
}

fn registration(contact: &str, instance: Option<&str>) -> Registration {
    Registration {
        contact: contact.to_owned(),
        instance: instance.map(str::to_owned),
        updated_at: Timestamp(NOW.0 - 10_000),
        expires_at: Timestamp(NOW.0 + 3_600_000),
    }
}

fn manual(a: ManualAvailability, note: Option<&str>, until: Option<i64>) -> ManualState {
    ManualState {
        availability: a,
        note: note.map(str::to_owned),
        until: until.map(|s| Timestamp(NOW.0 + s * 1000)),
    }
}

struct Case {
    name: &'static str,
    publications: Vec<EndpointPublication>,
    registrations: Vec<Registration>,
    on_the_phone: bool,
    manual: Option<ManualState>,
    config: AggregateConfig,
    availability: Availability,
    source: Source,
    /// Activities the aggregated person must show (in any order, at least these).
    activities: &'static [ActivityKind],
}

fn case(name: &'static str) -> Case {
    Case {
        name,
        publications: Vec::new(),
        registrations: Vec::new(),
        on_the_phone: false,
        manual: None,
        config: AggregateConfig::default(),
        availability: Availability::Offline,
        source: Source::Nothing,
        activities: &[],
    }
}

fn run(c: &Case) -> Aggregate {
    aggregate(
        &AggregateInput {
            entity: ENTITY,
            publications: &c.publications,
            registrations: &c.registrations,
            on_the_phone: c.on_the_phone,
            manual: c.manual.as_ref(),
            now: NOW,
        },
        &c.config,
    )
}

#[track_caller]
fn check(c: Case) {
    let a = run(&c);
    assert_eq!(
        (a.availability, &a.source),
        (c.availability, &c.source),
        "{}",
        c.name
    );
    // The document says the same availability it was built for.
    assert_eq!(
        availability_of(&a.document),
        c.availability,
        "{}: document",
        c.name
    );
    if c.availability == Availability::Offline {
        assert_eq!(
            a.document,
            offline_document(ENTITY),
            "{}: offline shape",
            c.name
        );
    }
    let acts = a
        .document
        .persons
        .first()
        .and_then(|p| p.activities.as_ref());
    for k in c.activities {
        assert!(
            acts.is_some_and(|x| x.contains(*k)),
            "{}: missing {k:?} in {acts:?}",
            c.name
        );
    }
    // Round trip through bytes: what is sent is what was built.
    assert_eq!(
        Presence::parse(&a.document.to_bytes(), &confab_xml::Limits::DOCUMENT).unwrap(),
        a.document
    );
}

#[test]
fn aggregation_rules() {
    use ActivityKind as K;
    use Availability as A;
    let pubsrc = |s: &str| Source::Publication(s.to_owned());
    let cases = vec![
        // Rule 3: nothing known → offline.
        case("no registration, no publication"),
        Case {
            publications: vec![expired(publication("a", 1, &[], None, None))],
            ..case("only an expired publication")
        },
        // Rule 2: a registered endpoint without publication → available (configurable).
        Case {
            registrations: vec![registration("sip:alice@10.0.0.1", None)],
            availability: A::Available,
            source: Source::Registration("sip:alice@10.0.0.1".into()),
            ..case("registered, no publication")
        },
        Case {
            registrations: vec![registration("sip:alice@10.0.0.1", None)],
            config: AggregateConfig {
                registered_without_publication: A::Offline,
            },
            ..case("registered, no publication, configured offline")
        },
        Case {
            registrations: vec![Registration {
                expires_at: Timestamp(NOW.0),
                ..registration("sip:alice@10.0.0.1", None)
            }],
            ..case("registration expired exactly now")
        },
        // A publication covers its own registration (same instance): the publication decides.
        Case {
            publications: vec![publication("pc", 5, &[K::Busy], None, Some("<urn:uuid:1>"))],
            registrations: vec![registration("sip:alice@10.0.0.1", Some("<urn:uuid:1>"))],
            availability: A::Busy,
            source: pubsrc("pc"),
            activities: &[K::Busy],
            ..case("registration covered by the same instance")
        },
        // ... or by a tuple contact equal to the binding contact.
        Case {
            publications: vec![publication("pc", 5, &[K::Away], None, None)],
            registrations: vec![registration("sip:alice@pc.example.com", None)],
            availability: A::Away,
            source: pubsrc("pc"),
            ..case("registration covered by tuple contact")
        },
        // An uncovered registration is another endpoint, and available beats away.
        Case {
            publications: vec![publication("pc", 5, &[K::Away], None, None)],
            registrations: vec![registration("sip:alice@deskphone", None)],
            availability: A::Available,
            source: Source::Registration("sip:alice@deskphone".into()),
            ..case("desk phone registered beside an away PC")
        },
        // Rule 4: the most available active endpoint wins.
        Case {
            publications: vec![
                publication("pc", 5, &[K::Busy], Some(false), None),
                publication("mobile", 50, &[], Some(false), None),
            ],
            availability: A::Available,
            source: pubsrc("mobile"),
            ..case("available mobile beats busy PC")
        },
        Case {
            publications: vec![
                publication("pc", 5, &[K::Away], Some(false), None),
                publication("mobile", 50, &[K::Busy], Some(false), None),
            ],
            availability: A::Busy,
            source: pubsrc("mobile"),
            ..case("busy is more available than away")
        },
        Case {
            publications: vec![
                publication("old", 500, &[], None, None),
                publication("new", 5, &[], None, None),
            ],
            availability: A::Available,
            source: pubsrc("new"),
            ..case("tie: most recent publication")
        },
        // Rule 5: an idle endpoint yields to an active one, and idle-available shows away.
        Case {
            publications: vec![
                publication("pc", 5, &[], Some(true), None),
                publication("mobile", 50, &[K::Busy], Some(false), None),
            ],
            availability: A::Busy,
            source: pubsrc("mobile"),
            ..case("active busy beats idle available")
        },
        Case {
            publications: vec![publication("pc", 5, &[], Some(true), None)],
            availability: A::Away,
            source: pubsrc("pc"),
            activities: &[K::Away],
            ..case("only endpoint idle → away")
        },
        Case {
            publications: vec![publication("pc", 5, &[K::Busy], Some(true), None)],
            availability: A::Busy,
            source: pubsrc("pc"),
            ..case("idle but busy stays busy")
        },
        // Closed and offline endpoints lose to any online one, even idle.
        Case {
            publications: vec![
                closed("pc"),
                publication("mobile", 50, &[], Some(true), None),
            ],
            availability: A::Away,
            source: pubsrc("mobile"),
            ..case("closed PC, idle mobile")
        },
        Case {
            publications: vec![closed("pc")],
            ..case("only a closed endpoint")
        },
        // A closed tuple with a person that states no activity (baresip's "offline") is
        // offline, not available.
        Case {
            publications: vec![{
                let mut p = closed("pc");
                p.document.persons.push(Person {
                    id: "p".to_owned(),
                    activities: Some(Activities::default()),
                    ..Person::default()
                });
                p
            }],
            ..case("closed tuple, person without activity")
        },
        // Rule 6: on the phone comes from the dialogs.
        Case {
            publications: vec![publication("pc", 5, &[], Some(false), None)],
            on_the_phone: true,
            availability: A::Busy,
            source: pubsrc("pc"),
            activities: &[K::OnThePhone, K::Busy],
            ..case("available + in a call → busy, on the phone")
        },
        Case {
            publications: vec![publication("pc", 5, &[], Some(true), None)],
            on_the_phone: true,
            availability: A::Busy,
            source: pubsrc("pc"),
            activities: &[K::OnThePhone],
            ..case("idle + in a call → busy")
        },
        Case {
            on_the_phone: true,
            availability: A::Busy,
            source: Source::Call,
            activities: &[K::OnThePhone],
            ..case("in a call with nothing registered (e.g. via a gateway)")
        },
        // Rule 1: manual state overrides machine state.
        Case {
            publications: vec![publication("pc", 5, &[], Some(false), None)],
            manual: Some(manual(ManualAvailability::DoNotDisturb, None, None)),
            availability: A::DoNotDisturb,
            source: Source::Manual,
            ..case("manual DND over available")
        },
        Case {
            publications: vec![publication("pc", 5, &[K::Busy], Some(false), None)],
            manual: Some(manual(ManualAvailability::BeRightBack, None, Some(600))),
            availability: A::BeRightBack,
            source: Source::Manual,
            activities: &[K::Away],
            ..case("manual BRB over busy")
        },
        Case {
            publications: vec![publication("pc", 5, &[K::Busy], Some(false), None)],
            manual: Some(manual(ManualAvailability::BeRightBack, None, Some(-1))),
            availability: A::Busy,
            source: pubsrc("pc"),
            ..case("expired manual state is ignored")
        },
        Case {
            publications: vec![publication("pc", 5, &[], Some(true), None)],
            manual: Some(manual(ManualAvailability::Busy, None, None)),
            availability: A::Busy,
            source: Source::Manual,
            ..case("manual busy over idle")
        },
        Case {
            publications: vec![publication("pc", 5, &[], Some(false), None)],
            manual: Some(manual(ManualAvailability::Away, None, None)),
            on_the_phone: true,
            availability: A::Away,
            source: Source::Manual,
            activities: &[K::OnThePhone],
            ..case("manual away + call: away, on the phone shown")
        },
        Case {
            publications: vec![publication("pc", 5, &[], Some(false), None)],
            registrations: vec![registration("sip:alice@deskphone", None)],
            manual: Some(manual(
                ManualAvailability::AppearOffline,
                Some("hidden"),
                None,
            )),
            on_the_phone: true,
            source: Source::Manual,
            ..case("appear offline hides everything, even a call")
        },
        Case {
            manual: Some(manual(ManualAvailability::Busy, None, None)),
            availability: A::Busy,
            source: Source::Manual,
            ..case("manual busy with no endpoint")
        },
    ];
    for c in cases {
        check(c);
    }
}

#[test]
fn document_carries_services_devices_and_notes() {
    let mut pc = publication("pc", 5, &[ActivityKind::Meeting], Some(false), None);
    pc.document.persons[0]
        .notes
        .push(confab_xml::Text::new("In the weekly"));
    let mobile = publication("mobile", 50, &[], Some(true), None);
    let regs = [registration("sip:alice@deskphone", None)];
    let pubs = [pc, mobile];
    let a = aggregate(
        &AggregateInput {
            entity: ENTITY,
            publications: &pubs,
            registrations: &regs,
            on_the_phone: false,
            manual: None,
            now: NOW,
        },
        &AggregateConfig::default(),
    );
    // The desk phone (available, active) wins over the PC in a meeting.
    assert_eq!(a.availability, Availability::Available);
    let ids: Vec<&str> = a.document.tuples.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["t-pc", "t-mobile", "reg0"]);
    assert_eq!(
        a.document.persons[0].user_input.as_ref().unwrap().state,
        InputState::Active
    );

    // With the desk phone gone, the PC wins: its meeting and note show.
    let a = aggregate(
        &AggregateInput {
            entity: ENTITY,
            publications: &pubs,
            registrations: &[],
            on_the_phone: false,
            manual: None,
            now: NOW,
        },
        &AggregateConfig::default(),
    );
    assert_eq!(a.availability, Availability::Busy);
    let person = &a.document.persons[0];
    assert!(
        person
            .activities
            .as_ref()
            .unwrap()
            .values
            .contains(&Activity::Known(ActivityKind::Meeting))
    );
    assert_eq!(person.notes[0].text, "In the weekly");
    // A manual note replaces it.
    let m = manual(ManualAvailability::Busy, Some("Heads down"), None);
    let a = aggregate(
        &AggregateInput {
            entity: ENTITY,
            publications: &pubs,
            registrations: &[],
            on_the_phone: false,
            manual: Some(&m),
            now: NOW,
        },
        &AggregateConfig::default(),
    );
    assert_eq!(a.document.persons[0].notes[0].text, "Heads down");
}

#[test]
fn registration_from_core_binding() {
    // The real Binding converts without loss of what aggregation needs.
    let json = r#"{"aor":"alice@example.com","contact":"sip:alice@10.0.0.1:5060","params":"","q":null,
        "expires_at":5000,"call_id":"c","cseq":1,"instance":"<urn:uuid:1>","reg_id":1,
        "flow":{"token":"t","transport":"udp","source":"10.0.0.1:5060","node":"n"},"path":[],
        "user_agent":null,"registered_at":1000,"updated_at":2000,"temp_gruu":null}"#;
    let b: confab_core::Binding = serde_json::from_str(json).unwrap();
    let r = Registration::from(&b);
    assert_eq!(
        r,
        Registration {
            contact: "sip:alice@10.0.0.1:5060".into(),
            instance: Some("<urn:uuid:1>".into()),
            updated_at: Timestamp(2000),
            expires_at: Timestamp(5000),
        }
    );
}
