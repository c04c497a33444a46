//! The registrar as a feature: REGISTER in, response and stored bindings out, on a
//! simulated clock. Each scenario is a table of steps; each step says what is sent, how long
//! after the previous one, and what must come back (status, Contact values of the response)
//! and what must be stored afterwards.

mod common;

use common::{Harness, reason, register, status, values};
use confab_core::{Address, SipTransport};
use confab_registrar::{FlowFailure, GruuTarget, Registrant, RegistrarConfig, TooManyContacts};
use confab_sip::HeaderName;

const A: &str = "alice@example.com";
const C1: &str = "sip:alice@192.0.2.10:5060";
const C2: &str = "sip:alice@192.0.2.11:5062;transport=tcp";
const C3: &str = "sip:alice@198.51.100.7";

struct Step<'a> {
    what: &'a str,
    /// Seconds the clock moves before this step.
    after_s: i64,
    call_id: &'a str,
    cseq: u32,
    headers: &'a [&'a str],
    status: u16,
    /// The Contact header values of the response, exactly, in order.
    contacts: &'a [&'a str],
    /// The live contacts stored afterwards, in order.
    stored: &'a [&'a str],
}

async fn run(h: &mut Harness, steps: &[Step<'_>]) {
    for s in steps {
        h.now_s += s.after_s;
        let req = register(A, s.call_id, s.cseq, s.headers);
        let out = h.send(&req).await;
        let r = &out.response;
        assert_eq!(
            status(r),
            s.status,
            "{}: got {} {}",
            s.what,
            status(r),
            reason(r)
        );
        assert_eq!(
            values(r, HeaderName::Contact),
            s.contacts,
            "{}: Contact",
            s.what
        );
        assert_eq!(h.stored(A).await, s.stored, "{}: stored", s.what);
        // Every response has a To tag and copies Call-ID and CSeq.
        let to = r.to().unwrap().unwrap();
        assert!(to.tag().is_some(), "{}: To tag", s.what);
        assert_eq!(r.call_id().unwrap().unwrap(), s.call_id);
        // A 200 carries a Date; only a 2xx that changed something reports an update.
        if s.status == 200 {
            assert_eq!(values(r, HeaderName::Date).len(), 1, "{}: Date", s.what);
        } else {
            assert!(out.update.is_none(), "{}: no update on error", s.what);
        }
    }
}

#[tokio::test]
async fn rfc3261_bindings_expiry_ordering_and_star() {
    let mut h = Harness::new(RegistrarConfig::default());
    run(
        &mut h,
        &[
            Step {
                what: "query with no bindings",
                after_s: 0,
                call_id: "q1",
                cseq: 1,
                headers: &[],
                status: 200,
                contacts: &[],
                stored: &[],
            },
            Step {
                what: "first contact, Expires header",
                after_s: 0,
                call_id: "c1",
                cseq: 1,
                headers: &["Contact: <sip:alice@192.0.2.10:5060>", "Expires: 1800"],
                status: 200,
                contacts: &["<sip:alice@192.0.2.10:5060>;expires=1800"],
                stored: &[C1],
            },
            Step {
                what: "second device, q and expires parameters, default-free",
                after_s: 10,
                call_id: "c2",
                cseq: 7,
                headers: &["Contact: \"Desk\" <sip:alice@192.0.2.11:5062;transport=tcp>;q=0.5;expires=600;+sip.foo"],
                status: 200,
                contacts: &[
                    "<sip:alice@192.0.2.10:5060>;expires=1790",
                    "<sip:alice@192.0.2.11:5062;transport=tcp>;+sip.foo;expires=600;q=0.5",
                ],
                stored: &[C1, C2],
            },
            Step {
                what: "query lists both with remaining time",
                after_s: 100,
                call_id: "q2",
                cseq: 1,
                headers: &[],
                status: 200,
                contacts: &[
                    "<sip:alice@192.0.2.10:5060>;expires=1690",
                    "<sip:alice@192.0.2.11:5062;transport=tcp>;+sip.foo;expires=500;q=0.5",
                ],
                stored: &[C1, C2],
            },
            Step {
                what: "refresh above max_expires_s is shortened",
                after_s: 0,
                call_id: "c1",
                cseq: 2,
                headers: &["Contact: <sip:alice@192.0.2.10:5060>;expires=99999"],
                status: 200,
                contacts: &[
                    "<sip:alice@192.0.2.10:5060>;expires=3600",
                    "<sip:alice@192.0.2.11:5062;transport=tcp>;+sip.foo;expires=500;q=0.5",
                ],
                stored: &[C1, C2],
            },
            Step {
                what: "too brief: 423, nothing changes",
                after_s: 0,
                call_id: "c1",
                cseq: 3,
                headers: &["Contact: <sip:alice@192.0.2.10:5060>", "Expires: 59"],
                status: 423,
                contacts: &[],
                stored: &[C1, C2],
            },
            Step {
                what: "same Call-ID, same CSeq: out of order, 500",
                after_s: 0,
                call_id: "c1",
                cseq: 2,
                headers: &["Contact: <sip:alice@192.0.2.10:5060>;expires=0"],
                status: 500,
                contacts: &[],
                stored: &[C1, C2],
            },
            Step {
                what: "same Call-ID, lower CSeq: 500",
                after_s: 0,
                call_id: "c2",
                cseq: 6,
                headers: &["Contact: <sip:alice@192.0.2.11:5062;transport=tcp>"],
                status: 500,
                contacts: &[],
                stored: &[C1, C2],
            },
            Step {
                what: "another Call-ID may update any binding (§10.3 step 7)",
                after_s: 0,
                call_id: "other",
                cseq: 1,
                headers: &["Contact: <sip:alice@192.0.2.11:5062;transport=tcp>;expires=120"],
                status: 200,
                contacts: &[
                    "<sip:alice@192.0.2.10:5060>;expires=3600",
                    "<sip:alice@192.0.2.11:5062;transport=tcp>;expires=120",
                ],
                stored: &[C1, C2],
            },
            Step {
                what: "remove one with expires=0, add another with the default expiry",
                after_s: 0,
                call_id: "other",
                cseq: 2,
                headers: &[
                    "Contact: <sip:alice@192.0.2.11:5062;transport=tcp>;expires=0",
                    "Contact: <sip:alice@198.51.100.7>",
                ],
                status: 200,
                contacts: &[
                    "<sip:alice@192.0.2.10:5060>;expires=3600",
                    "<sip:alice@198.51.100.7>;expires=3600",
                ],
                stored: &[C1, C3],
            },
            Step {
                what: "removing an unknown contact is not an error",
                after_s: 0,
                call_id: "other",
                cseq: 3,
                headers: &["Contact: <sip:nobody@192.0.2.99>;expires=0"],
                status: 200,
                contacts: &[
                    "<sip:alice@192.0.2.10:5060>;expires=3600",
                    "<sip:alice@198.51.100.7>;expires=3600",
                ],
                stored: &[C1, C3],
            },
            Step {
                what: "* without Expires: 0 is 400",
                after_s: 0,
                call_id: "x",
                cseq: 1,
                headers: &["Contact: *", "Expires: 10"],
                status: 400,
                contacts: &[],
                stored: &[C1, C3],
            },
            Step {
                what: "* without Expires at all is 400",
                after_s: 0,
                call_id: "x",
                cseq: 1,
                headers: &["Contact: *"],
                status: 400,
                contacts: &[],
                stored: &[C1, C3],
            },
            Step {
                what: "* with another contact is 400",
                after_s: 0,
                call_id: "x",
                cseq: 1,
                headers: &["Contact: *", "Contact: <sip:alice@192.0.2.10>", "Expires: 0"],
                status: 400,
                contacts: &[],
                stored: &[C1, C3],
            },
            Step {
                what: "* with a stale CSeq for a binding's Call-ID fails whole",
                after_s: 0,
                call_id: "other",
                cseq: 2,
                headers: &["Contact: *", "Expires: 0"],
                status: 500,
                contacts: &[],
                stored: &[C1, C3],
            },
            Step {
                what: "* removes everything",
                after_s: 0,
                call_id: "other",
                cseq: 4,
                headers: &["Contact: *", "Expires: 0"],
                status: 200,
                contacts: &[],
                stored: &[],
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn expired_bindings_vanish_and_are_swept() {
    let mut h = Harness::new(RegistrarConfig::default());
    run(
        &mut h,
        &[Step {
            what: "short registration",
            after_s: 0,
            call_id: "c1",
            cseq: 1,
            headers: &["Contact: <sip:alice@192.0.2.10:5060>;expires=60"],
            status: 200,
            contacts: &["<sip:alice@192.0.2.10:5060>;expires=60"],
            stored: &[C1],
        }],
    )
    .await;
    h.now_s += 60;
    assert!(h.stored(A).await.is_empty(), "expired at exactly 60 s");
    assert_eq!(h.store.all().len(), 1, "still stored until swept");
    let swept = h.registrar.sweep_expired(h.now(), 10).await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].contact, C1);
    assert!(h.store.all().is_empty());
    assert!(
        h.registrar
            .sweep_expired(h.now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn bad_requests_get_precise_answers() {
    #[track_caller]
    fn check(out: &confab_registrar::RegisterOutcome, code: u16, phrase: &str) {
        assert_eq!(status(&out.response), code);
        assert_eq!(reason(&out.response), phrase);
    }
    let mut h = Harness::new(RegistrarConfig::default());
    let cases: &[(&[&str], u16, &str)] = &[
        (
            &["Contact: <sip:alice@192.0.2.10>;q=2"],
            400,
            "Malformed Contact header",
        ),
        (
            &["Contact: <tel:+12015550123>"],
            400,
            "Contact URI must be sip: or sips:",
        ),
        (
            &["Contact: <sip:alice@example.com;gr=urn:uuid:1>"],
            403,
            "Forbidden (Contact is a GRUU)",
        ),
        (
            &["Contact: <sip:alice@192.0.2.10>", "Expires: soon"],
            400,
            "Malformed Expires header",
        ),
        (
            &["Contact: <sip:alice@192.0.2.10>", "Require: foo, path"],
            420,
            "Bad Extension",
        ),
        (
            &[
                "Contact: <sip:alice@192.0.2.10>",
                "Require: path, gruu, outbound",
            ],
            200,
            "OK",
        ),
    ];
    for (i, (headers, code, phrase)) in cases.iter().enumerate() {
        let out = h.send(&register(A, "c", i as u32 + 1, headers)).await;
        check(&out, *code, phrase);
        if *code == 420 {
            assert_eq!(values(&out.response, HeaderName::Unsupported), ["foo"]);
        }
    }
    let out = h
        .send(&register(
            A,
            "c",
            10,
            &["Contact: <sip:alice@192.0.2.10>", "Expires: 5"],
        ))
        .await;
    check(&out, 423, "Interval Too Brief");
    assert_eq!(values(&out.response, HeaderName::MinExpires), ["60"]);
}

#[tokio::test]
async fn to_address_must_be_the_registrants_own() {
    let mut h = Harness::new(RegistrarConfig::default());
    h.registrant = Registrant::User(Address::parse("bob@example.com").unwrap());
    let out = h
        .send(&register(A, "c", 1, &["Contact: <sip:bob@192.0.2.10>"]))
        .await;
    assert_eq!(status(&out.response), 403);
    assert!(h.stored(A).await.is_empty());

    // A To that cannot be an address of ours: 404.
    h.registrant = Registrant::TrustedPeer;
    let out = h
        .send(&register(
            "%41lice@example.com",
            "c",
            1,
            &["Contact: <sip:x@192.0.2.10>"],
        ))
        .await;
    assert_eq!(status(&out.response), 404);

    // A trusted peer may register anyone.
    let out = h
        .send(&register(A, "c", 2, &["Contact: <sip:alice@192.0.2.10>"]))
        .await;
    assert_eq!(status(&out.response), 200);
    assert_eq!(h.stored(A).await, ["sip:alice@192.0.2.10"]);
}

#[tokio::test]
async fn contact_cap_reject_and_replace_oldest() {
    let config = RegistrarConfig {
        max_contacts: 2,
        ..RegistrarConfig::default()
    };
    let mut h = Harness::new(config.clone());
    for (i, c) in ["<sip:a@10.0.0.1>", "<sip:a@10.0.0.2>"].iter().enumerate() {
        h.now_s += 1;
        let out = h
            .send(&register(
                A,
                &format!("d{i}"),
                1,
                &[&format!("Contact: {c}")],
            ))
            .await;
        assert_eq!(status(&out.response), 200);
    }
    let third = register(A, "d3", 1, &["Contact: <sip:a@10.0.0.3>"]);
    let out = h.send(&third).await;
    assert_eq!(
        (status(&out.response), reason(&out.response).as_str()),
        (403, "Too Many Contacts")
    );
    assert_eq!(h.stored(A).await, ["sip:a@10.0.0.1", "sip:a@10.0.0.2"]);
    // Refreshing an existing binding while at the cap is fine.
    let out = h
        .send(&register(A, "d0", 2, &["Contact: <sip:a@10.0.0.1>"]))
        .await;
    assert_eq!(status(&out.response), 200);

    // replace_oldest: the least recently refreshed binding (10.0.0.2) makes room.
    let mut h2 = Harness::new(RegistrarConfig {
        on_too_many_contacts: TooManyContacts::ReplaceOldest,
        ..config
    });
    for (i, c) in ["<sip:a@10.0.0.1>", "<sip:a@10.0.0.2>"].iter().enumerate() {
        h2.now_s += 1;
        h2.send(&register(
            A,
            &format!("d{i}"),
            1,
            &[&format!("Contact: {c}")],
        ))
        .await;
    }
    h2.now_s += 1;
    h2.send(&register(A, "d0", 2, &["Contact: <sip:a@10.0.0.1>"]))
        .await;
    let out = h2.send(&third).await;
    assert_eq!(status(&out.response), 200);
    assert_eq!(h2.stored(A).await, ["sip:a@10.0.0.1", "sip:a@10.0.0.3"]);
    let update = out.update.unwrap();
    assert_eq!(update.before.len(), 2);
    assert_eq!(update.after.len(), 2);
    // More contacts in one REGISTER than the cap: refused even with replace_oldest.
    let out = h2
        .send(&register(
            A,
            "d9",
            1,
            &["Contact: <sip:a@10.0.0.7>, <sip:a@10.0.0.8>, <sip:a@10.0.0.9>"],
        ))
        .await;
    assert_eq!(status(&out.response), 403);
}

const INSTANCE: &str = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>\"";

#[tokio::test]
async fn outbound_one_binding_per_instance_and_reg_id_flow_failure_removes_it() {
    let mut h = Harness::new(RegistrarConfig {
        flow_timer_s: Some(120),
        ..RegistrarConfig::default()
    });
    h.flow = common::flow("conn-1", SipTransport::Tcp, 40001);
    let ob = |uri: &str, reg_id: u32| format!("Contact: <{uri};ob>;{INSTANCE};reg-id={reg_id}");
    let out = h
        .send(&register(
            A,
            "ob1",
            1,
            &[
                "Supported: outbound, path",
                &ob("sip:alice@10.1.1.1:40001;transport=tcp", 1),
            ],
        ))
        .await;
    let r = &out.response;
    assert_eq!(status(r), 200);
    assert_eq!(values(r, HeaderName::Require), ["outbound"]);
    assert_eq!(values(r, HeaderName::FlowTimer), ["120"]);
    assert_eq!(
        values(r, HeaderName::Contact),
        [format!(
            "<sip:alice@10.1.1.1:40001;transport=tcp;ob>;{INSTANCE};reg-id=1;expires=3600"
        )]
    );

    // A second flow (reg-id 2) of the same instance: a second binding.
    h.flow = common::flow("conn-2", SipTransport::Tcp, 40002);
    let out = h
        .send(&register(
            A,
            "ob2",
            1,
            &[
                "Supported: outbound",
                &ob("sip:alice@10.1.1.1:40002;transport=tcp", 2),
            ],
        ))
        .await;
    assert_eq!(values(&out.response, HeaderName::Contact).len(), 2);

    // reg-id 1 again over a new connection with a new URI: replaces the first binding.
    h.flow = common::flow("conn-3", SipTransport::Tcp, 40003);
    h.now_s += 5;
    let out = h
        .send(&register(
            A,
            "ob3",
            1,
            &[
                "Supported: outbound",
                &ob("sip:alice@10.1.1.1:40003;transport=tcp", 1),
            ],
        ))
        .await;
    assert_eq!(status(&out.response), 200);
    let flows: Vec<(String, Option<u32>)> = h
        .registrar
        .lookup(&Address::parse(A).unwrap(), h.now())
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.flow.token, b.reg_id))
        .collect();
    assert_eq!(
        flows,
        [("conn-3".into(), Some(1)), ("conn-2".into(), Some(2))]
    );

    // A plain contact over conn-3 too.
    h.send(&register(
        A,
        "plain",
        1,
        &["Contact: <sip:alice@10.1.1.1:40003;transport=tcp>"],
    ))
    .await;
    assert_eq!(h.stored(A).await.len(), 3);

    // conn-3 fails: its outbound binding goes, the plain one stays (default policy).
    let gone = h
        .registrar
        .handle_flow_failure("node-1", "conn-3")
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].reg_id, Some(1));
    assert_eq!(h.stored(A).await.len(), 2);
    // The same token on another node is another flow.
    assert!(
        h.registrar
            .handle_flow_failure("node-2", "conn-2")
            .await
            .unwrap()
            .is_empty()
    );

    // With flow_failure_removes = "all", the plain binding goes as well.
    let mut all = Harness::new(RegistrarConfig {
        flow_failure_removes: FlowFailure::All,
        ..RegistrarConfig::default()
    });
    all.send(&register(A, "p", 1, &["Contact: <sip:alice@10.1.1.1>"]))
        .await;
    assert_eq!(
        all.registrar
            .handle_flow_failure("node-1", "udp-flow-1")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn outbound_needs_the_clients_support_and_an_outbound_first_hop() {
    let mut h = Harness::new(RegistrarConfig::default());
    let contact = format!("Contact: <sip:alice@10.1.1.1;ob>;{INSTANCE};reg-id=1");
    // Without Supported: outbound, reg-id is ignored: a plain (instance) binding, no
    // reg-id echoed, no Require.
    let out = h.send(&register(A, "a", 1, &[&contact])).await;
    assert_eq!(status(&out.response), 200);
    assert!(values(&out.response, HeaderName::Require).is_empty());
    assert_eq!(
        values(&out.response, HeaderName::Contact),
        [format!("<sip:alice@10.1.1.1;ob>;{INSTANCE};expires=3600")]
    );
    assert_eq!(h.store.all()[0].reg_id, None);

    // Through an edge proxy whose Path has no `ob`: 439.
    let out = h
        .send(&register(
            A,
            "b",
            1,
            &[
                "Supported: outbound, path",
                "Path: <sip:edge.example.com;lr>",
                &contact,
            ],
        ))
        .await;
    assert_eq!(
        (status(&out.response), reason(&out.response).as_str()),
        (439, "First Hop Lacks Outbound Support")
    );

    // Two proxies, the first hop (last Path value) supports outbound: accepted, Path echoed.
    let out = h
        .send(&register(
            A,
            "c",
            1,
            &[
                "Supported: outbound, path",
                "Path: <sip:core.example.com;lr>, <sip:edge.example.com;lr;ob>",
                &contact,
            ],
        ))
        .await;
    assert_eq!(status(&out.response), 200);
    assert_eq!(
        values(&out.response, HeaderName::Path),
        ["<sip:core.example.com;lr>", "<sip:edge.example.com;lr;ob>"]
    );
    let stored = h
        .registrar
        .lookup(&Address::parse(A).unwrap(), h.now())
        .await
        .unwrap();
    let ob = stored.iter().find(|b| b.reg_id == Some(1)).unwrap();
    assert_eq!(
        ob.path,
        ["<sip:core.example.com;lr>", "<sip:edge.example.com;lr;ob>"]
    );
}

#[tokio::test]
async fn path_is_stored_always_and_echoed_only_when_supported_service_route_always() {
    let mut h = Harness::new(RegistrarConfig {
        service_route: vec![
            "sip:fe1.example.com;lr".into(),
            "sip:orig@fe2.example.com;lr".into(),
        ],
        ..RegistrarConfig::default()
    });
    let out = h
        .send(&register(
            A,
            "p",
            1,
            &[
                "Path: <sip:edge.example.com;lr>",
                "Contact: <sip:alice@10.0.0.1>",
            ],
        ))
        .await;
    assert_eq!(status(&out.response), 200);
    assert!(values(&out.response, HeaderName::Path).is_empty());
    assert_eq!(
        values(&out.response, HeaderName::ServiceRoute),
        ["<sip:fe1.example.com;lr>", "<sip:orig@fe2.example.com;lr>"]
    );
    assert_eq!(h.store.all()[0].path, ["<sip:edge.example.com;lr>"]);
    let out = h
        .send(&register(
            A,
            "p",
            2,
            &[
                "Supported: path",
                "Path: <sip:edge.example.com;lr>",
                "Contact: <sip:alice@10.0.0.1>",
            ],
        ))
        .await;
    assert_eq!(
        values(&out.response, HeaderName::Path),
        ["<sip:edge.example.com;lr>"]
    );
}

fn gruu_params(contact: &str) -> (String, String) {
    let grab = |name: &str| {
        let start = contact.find(&format!(";{name}=\"")).unwrap() + name.len() + 3;
        let end = start + contact[start..].find('"').unwrap();
        contact[start..end].to_owned()
    };
    (grab("pub-gruu"), grab("temp-gruu"))
}

#[tokio::test]
async fn gruus_public_and_temporary_resolve_while_valid() {
    let mut h = Harness::new(RegistrarConfig::default());
    let reg = |call_id: &str, cseq| {
        register(
            A,
            call_id,
            cseq,
            &[
                "Supported: gruu",
                &format!("Contact: <sip:alice@10.0.0.1>;{INSTANCE}"),
            ],
        )
    };
    let out = h.send(&reg("g1", 1)).await;
    let contacts = values(&out.response, HeaderName::Contact);
    assert_eq!(contacts.len(), 1);
    let (public, temp1) = gruu_params(&contacts[0]);
    assert_eq!(
        public,
        "sip:alice@example.com;gr=urn:uuid:00000000-0000-1000-8000-000a95a0e128"
    );
    assert!(
        temp1.starts_with("sip:tgruu.") && temp1.ends_with("@example.com;gr"),
        "{temp1}"
    );

    let resolves =
        |t: GruuTarget| matches!(t, GruuTarget::Binding(b) if b.contact == "sip:alice@10.0.0.1");
    let r = &h.registrar;
    assert!(resolves(r.resolve_gruu(&public, h.now()).await.unwrap()));
    assert!(resolves(r.resolve_gruu(&temp1, h.now()).await.unwrap()));
    assert_eq!(
        r.resolve_gruu("sip:alice@example.com", h.now())
            .await
            .unwrap(),
        GruuTarget::NotGruu
    );
    assert_eq!(
        r.resolve_gruu("sip:alice@example.com;gr=urn:uuid:ffff", h.now())
            .await
            .unwrap(),
        GruuTarget::Unknown
    );
    let forged = temp1.replacen("tgruu.", "tgruu.A", 1);
    assert_eq!(
        r.resolve_gruu(&forged, h.now()).await.unwrap(),
        GruuTarget::Unknown
    );
    let other_domain = temp1.replace("@example.com", "@example.org");
    assert_eq!(
        r.resolve_gruu(&other_domain, h.now()).await.unwrap(),
        GruuTarget::Unknown
    );

    // A refresh issues a new temporary GRUU; the old one stays valid (same Call-ID).
    let out = h.send(&reg("g1", 2)).await;
    let (public2, temp2) = gruu_params(&values(&out.response, HeaderName::Contact)[0]);
    assert_eq!(public2, public);
    assert_ne!(temp2, temp1);
    assert!(resolves(
        h.registrar.resolve_gruu(&temp1, h.now()).await.unwrap()
    ));
    assert!(resolves(
        h.registrar.resolve_gruu(&temp2, h.now()).await.unwrap()
    ));

    // A new Call-ID (the device rebooted): earlier temporary GRUUs die, the new one works.
    let out = h.send(&reg("g2", 1)).await;
    let (_, temp3) = gruu_params(&values(&out.response, HeaderName::Contact)[0]);
    assert_eq!(
        h.registrar.resolve_gruu(&temp1, h.now()).await.unwrap(),
        GruuTarget::Unknown
    );
    assert_eq!(
        h.registrar.resolve_gruu(&temp2, h.now()).await.unwrap(),
        GruuTarget::Unknown
    );
    assert!(resolves(
        h.registrar.resolve_gruu(&temp3, h.now()).await.unwrap()
    ));

    // Once expired, nothing resolves.
    h.now_s += 3600;
    assert_eq!(
        h.registrar.resolve_gruu(&temp3, h.now()).await.unwrap(),
        GruuTarget::Unknown
    );
    assert_eq!(
        h.registrar.resolve_gruu(&public, h.now()).await.unwrap(),
        GruuTarget::Unknown
    );

    // Without Supported: gruu, no GRUU parameters.
    let out = h
        .send(&register(
            A,
            "n",
            1,
            &[&format!("Contact: <sip:alice@10.0.0.1>;{INSTANCE}")],
        ))
        .await;
    assert_eq!(
        values(&out.response, HeaderName::Contact),
        [format!("<sip:alice@10.0.0.1>;{INSTANCE};expires=3600")]
    );
}

#[tokio::test]
async fn instance_without_reg_id_replaces_its_old_contact() {
    let mut h = Harness::new(RegistrarConfig::default());
    h.send(&register(
        A,
        "i",
        1,
        &[&format!("Contact: <sip:alice@10.0.0.1>;{INSTANCE}")],
    ))
    .await;
    h.send(&register(
        A,
        "i",
        2,
        &[&format!("Contact: <sip:alice@10.0.0.2>;{INSTANCE}")],
    ))
    .await;
    assert_eq!(h.stored(A).await, ["sip:alice@10.0.0.2"]);
}

#[tokio::test]
async fn no_200_unless_committed() {
    let mut h = Harness::new(RegistrarConfig::default());
    h.store.fail_next_commits(1);
    let out = h
        .send(&register(A, "d", 1, &["Contact: <sip:alice@10.0.0.1>"]))
        .await;
    assert_eq!(status(&out.response), 500);
    assert_eq!(values(&out.response, HeaderName::RetryAfter), ["5"]);
    assert!(out.update.is_none());
    assert!(h.store.all().is_empty());
    // The client retries (same Call-ID, next CSeq) and the store works again.
    let out = h
        .send(&register(A, "d", 2, &["Contact: <sip:alice@10.0.0.1>"]))
        .await;
    assert_eq!(status(&out.response), 200);
    assert_eq!(h.stored(A).await, ["sip:alice@10.0.0.1"]);
    let update = out.update.unwrap();
    assert!(update.before.is_empty());
    assert_eq!(update.after.len(), 1);
    // Each binding records the flow and the node holding it.
    let b = &update.after[0];
    assert_eq!(
        (b.flow.token.as_str(), b.flow.node.as_str()),
        ("udp-flow-1", "node-1")
    );
}
