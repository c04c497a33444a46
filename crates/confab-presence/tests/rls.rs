//! Resource-list NOTIFY bodies (RFC 4662 §5) as the resource list server builds them,
//! against the RFC's example (the vectors of `confab-xml/tests/vectors`, whose provenance
//! that folder's README states): the produced RLMI names the same resources with the same
//! names and states, every active instance's `cid` names a PIDF part for that resource, and
//! each part is cut to the subscriber's level on that resource.

use confab_presence::access::{AccessLevel, ListMember, list_notify_body};
use confab_xml::Limits;
use confab_xml::multipart::Related;
use confab_xml::pidf::{Basic, Presence, Tuple};
use confab_xml::rlmi::{self, InstanceState};

fn vector(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../confab-xml/tests/vectors/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn doc(entity: &str, note: &str) -> Presence {
    let mut p = Presence::new(entity);
    p.tuples.push(Tuple::new("t1", Basic::Open));
    p.notes.push(confab_xml::Text::new(note));
    p
}

#[test]
fn produced_like_the_rfc4662_example() {
    let rfc = rlmi::List::parse(&vector("rfc4662-rlmi-corrected.xml"), &Limits::LIST).unwrap();
    let bob = doc("sip:bob@vancouver.example.com", "bob's note");
    let dave = doc("sip:dave@vancouver.example.com", "dave's note");
    let names: Vec<String> = rfc.resources[..2]
        .iter()
        .map(|r| r.names[0].text.clone())
        .collect();
    let members = [
        ListMember {
            uri: &rfc.resources[0].uri,
            name: Some(&names[0]),
            state: InstanceState::Active,
            instance_id: &rfc.resources[0].instances[0].id,
            reason: None,
            document: Some(&bob),
            level: AccessLevel::Personal,
        },
        ListMember {
            uri: &rfc.resources[1].uri,
            name: Some(&names[1]),
            state: InstanceState::Active,
            instance_id: &rfc.resources[1].instances[0].id,
            reason: None,
            document: Some(&dave),
            // Dave blocks this subscriber: his part is the offline document.
            level: AccessLevel::Blocked,
        },
        ListMember {
            uri: "sip:ed@dallas.example.net",
            name: None,
            state: InstanceState::Pending,
            instance_id: "ed1",
            reason: None,
            document: None,
            level: AccessLevel::Public,
        },
    ];
    let body = list_notify_body(&rfc.uri, 1, true, &members, [7; 12]).unwrap();
    // Through the wire form: Content-Type and bytes parse back.
    let related = Related::parse(&body.content_type(), &body.to_bytes()).unwrap();
    assert!(
        body.content_type()
            .starts_with("multipart/related;type=\"application/rlmi+xml\"")
    );
    let root = related.root().unwrap();
    assert_eq!(root.media_type(), rlmi::CONTENT_TYPE);
    let ours = rlmi::List::parse(&root.body, &Limits::LIST).unwrap();
    assert_eq!(
        (ours.uri.as_str(), ours.version, ours.full_state),
        (rfc.uri.as_str(), 1, true)
    );
    for (o, r) in ours.resources.iter().zip(&rfc.resources[..2]) {
        assert_eq!(o.uri, r.uri);
        assert_eq!(o.names[0].text, r.names[0].text);
        assert_eq!(o.instances[0].id, r.instances[0].id);
        assert_eq!(o.instances[0].state, r.instances[0].state);
    }
    // A pending instance has no part.
    assert_eq!(ours.resources[2].instances[0].state, InstanceState::Pending);
    assert!(ours.resources[2].instances[0].cid.is_none());
    assert_eq!(related.parts.len(), 3, "root + two active resources");
    // Every active cid names the PIDF of its resource, filtered by its level.
    let part = |i: usize| {
        let cid = ours.resources[i].instances[0].cid.as_deref().unwrap();
        let p = related.part(cid).expect("cid names a part");
        assert!(p.media_type().starts_with("application/pidf+xml"));
        Presence::parse(&p.body, &Limits::DOCUMENT).unwrap()
    };
    let b = part(0);
    assert_eq!(b.entity, ours.resources[0].uri);
    assert_eq!(b, bob, "personal sees everything");
    let d = part(1);
    assert_eq!(d.entity, ours.resources[1].uri);
    assert!(
        d.notes.is_empty()
            && d.tuples
                .iter()
                .all(|t| t.status.basic == Some(Basic::Closed))
    );
}

#[test]
fn the_rfc4662_example_body_reads_back_as_ours_would() {
    // The RFC's whole NOTIFY body, re-serialized by the same multipart writer the server
    // uses, parses to the same parts.
    let ct = r#"multipart/related;type="application/rlmi+xml";start="<nXYxAE@pres.vancouver.example.com>";boundary="50UBfW7LSCVLtggUPe5z""#;
    let m = Related::parse(ct, &vector("rfc4662-notify-body.txt")).unwrap();
    let again = Related::parse(&m.content_type(), &m.to_bytes()).unwrap();
    assert_eq!(again.parts.len(), m.parts.len());
    for (a, b) in again.parts.iter().zip(&m.parts) {
        assert_eq!(a.content_id, b.content_id);
        assert_eq!(a.body, b.body);
    }
}

mod properties {
    use confab_core::Address;
    use confab_presence::rls::{list_owner, list_uri, supports_eventlist};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn supported_header_values_never_panic(v in proptest::collection::vec(any::<u8>(), 0..64)) {
            let with = [v.as_slice(), b", eventlist".as_slice()];
            prop_assert!(supports_eventlist(with.iter().copied()) || std::str::from_utf8(&v).is_err());
            let _ = supports_eventlist([v.as_slice()]);
        }

        #[test]
        fn list_uris_round_trip(user in "[a-z0-9._-]{1,12}", domain in "[a-z0-9]{1,10}\\.[a-z]{2,4}") {
            if let Ok(owner) = Address::new(&user, &domain) {
                let uri = Address::parse(&list_uri(&owner)).unwrap();
                prop_assert_eq!(list_owner(&uri), Some(owner));
            }
        }
    }
}
