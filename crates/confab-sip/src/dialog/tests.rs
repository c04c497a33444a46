use super::*;
use crate::{Limits, ResponseBuilder, parse_datagram};
use bytes::Bytes;

fn msg(s: &str) -> Message {
    parse_datagram(Bytes::from(s.replace('\n', "\r\n")), &Limits::default()).unwrap()
}

fn invite() -> Message {
    msg("INVITE sip:bob@biloxi.example.com SIP/2.0\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK74bf9\n\
Max-Forwards: 70\n\
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n\
To: Bob <sip:bob@biloxi.example.com>\n\
Call-ID: 3848276298220188511@atlanta.example.com\n\
CSeq: 1 INVITE\n\
Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\n\
Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\n\
Content-Length: 0\n\n")
}

fn answer(req: &Message, code: u16, tag: &str, contact: &str) -> Message {
    ResponseBuilder::reply_to(req, code)
        .unwrap()
        .to_tag(tag)
        .header(HeaderName::Contact, contact)
        .header(
            HeaderName::RecordRoute,
            "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>",
        )
        .build()
        .unwrap()
}

#[test]
fn uac_early_dialogs_per_fork_then_confirmed_by_2xx() {
    let inv = invite();
    let mut ds = Dialogs::new();
    let r1 = answer(&inv, 180, "b1", "<sip:bob@192.0.2.4>");
    let r2 = answer(&inv, 183, "b2", "<sip:bob@192.0.2.5>");
    let (id1, st) = ds.handle_uac_response(&inv, &r1).unwrap().unwrap();
    assert_eq!(st, DialogState::Early);
    ds.handle_uac_response(&inv, &r2).unwrap().unwrap();
    assert_eq!(ds.len(), 2, "forking creates one early dialog per To tag");
    let d = ds.get(&id1).unwrap();
    assert_eq!(d.role(), Role::Uac);
    assert_eq!(d.remote_target(), "sip:bob@192.0.2.4");
    // UAC route set: Record-Route reversed.
    assert_eq!(
        d.route_set(),
        &[
            "<sip:p1.example.com;lr>".into(),
            "<sip:p2.example.com;lr>".into()
        ] as &[Box<str>]
    );
    assert_eq!(d.local_seq(), Some(1));
    // 2xx from fork 1 confirms it; the other stays early until the final response.
    let ok = answer(&inv, 200, "b1", "<sip:bob@192.0.2.44>");
    let (_, st) = ds.handle_uac_response(&inv, &ok).unwrap().unwrap();
    assert_eq!(st, DialogState::Confirmed);
    assert_eq!(ds.get(&id1).unwrap().remote_target(), "sip:bob@192.0.2.44");
    assert_eq!(ds.len(), 2);
}

#[test]
fn non_2xx_final_ends_every_early_dialog() {
    let inv = invite();
    let mut ds = Dialogs::new();
    ds.handle_uac_response(&inv, &answer(&inv, 180, "b1", "<sip:b@h1>"))
        .unwrap();
    ds.handle_uac_response(&inv, &answer(&inv, 180, "b2", "<sip:b@h2>"))
        .unwrap();
    let busy = answer(&inv, 486, "b2", "<sip:b@h2>");
    let r = ds.handle_uac_response(&inv, &busy).unwrap();
    assert_eq!(r.map(|x| x.1), Some(DialogState::Terminated));
    assert!(ds.is_empty());
}

#[test]
fn uas_cseq_rules_target_refresh_and_bye() {
    let inv = invite();
    let mut d = Dialog::uas(&inv, "b1", DialogState::Early).unwrap();
    assert_eq!(d.route_set().len(), 2);
    assert_eq!(
        d.route_set()[0].as_ref(),
        "<sip:p2.example.com;lr>",
        "UAS keeps Record-Route order"
    );
    d.confirm();
    let reinvite = msg("INVITE sip:bob@192.0.2.4 SIP/2.0\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnew\n\
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n\
To: Bob <sip:bob@biloxi.example.com>;tag=b1\n\
Call-ID: 3848276298220188511@atlanta.example.com\n\
CSeq: 5 INVITE\n\
Contact: <sip:alice@198.51.100.7>\n\
Content-Length: 0\n\n");
    assert!(d.matches(&reinvite));
    assert_eq!(d.handle_request(&reinvite), Ok(DialogState::Confirmed));
    assert_eq!(d.remote_seq(), Some(5));
    assert_eq!(d.remote_target(), "sip:alice@198.51.100.7");
    let old = msg(&String::from_utf8_lossy(reinvite.original_bytes())
        .replace("CSeq: 5 INVITE", "CSeq: 3 INVITE")
        .replace("\r\n", "\n"));
    assert_eq!(
        d.handle_request(&old),
        Err(RequestRejection::OutOfOrder { seq: 3, remote: 5 })
    );
    assert_eq!(d.handle_request(&old).unwrap_err().status(), 500);
    let bye = msg(&String::from_utf8_lossy(reinvite.original_bytes())
        .replace("INVITE sip", "BYE sip")
        .replace("CSeq: 5 INVITE", "CSeq: 6 BYE")
        .replace("\r\n", "\n"));
    assert_eq!(d.handle_request(&bye), Ok(DialogState::Terminated));
}

#[test]
fn in_dialog_requests_loose_and_strict_routing() {
    let inv = invite();
    let mut d = Dialog::uac(&inv, &answer(&inv, 200, "b1", "<sip:bob@192.0.2.4>")).unwrap();
    let bye = d
        .request(Method::Bye, None)
        .unwrap()
        .via("SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKbye")
        .build()
        .unwrap();
    assert_eq!(bye.request_uri_bytes(), Some(&b"sip:bob@192.0.2.4"[..]));
    let routes: Vec<_> = bye
        .routes()
        .map(|r| r.unwrap().uri_str.to_owned())
        .collect();
    assert_eq!(routes, ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]);
    assert_eq!(bye.cseq().unwrap().unwrap().seq, 2);
    assert_eq!(bye.to().unwrap().unwrap().tag(), Some("b1"));
    assert_eq!(bye.from().unwrap().unwrap().tag(), Some("9fxced76sl"));
    let ack = d
        .request(Method::Ack, Some(1))
        .unwrap()
        .via("SIP/2.0/UDP h;branch=z9hG4bKa")
        .build()
        .unwrap();
    assert_eq!(ack.cseq().unwrap().unwrap().seq, 1);
    assert_eq!(
        d.local_seq(),
        Some(2),
        "ACK does not advance the local CSeq"
    );

    // Strict router first (no lr): it goes in the Request-URI, remote target last in Route.
    let strict = ResponseBuilder::reply_to(&inv, 200)
        .unwrap()
        .to_tag("b9")
        .header(HeaderName::Contact, "<sip:bob@192.0.2.4>")
        .header(
            HeaderName::RecordRoute,
            "<sip:p2.example.com;lr>, <sip:strict.example.com>",
        )
        .build()
        .unwrap();
    let mut d = Dialog::uac(&inv, &strict).unwrap();
    let bye = d
        .request(Method::Bye, None)
        .unwrap()
        .via("SIP/2.0/UDP h;branch=z9hG4bKs")
        .build()
        .unwrap();
    assert_eq!(
        bye.request_uri_bytes(),
        Some(&b"sip:strict.example.com"[..])
    );
    let routes: Vec<_> = bye
        .routes()
        .map(|r| r.unwrap().uri_str.to_owned())
        .collect();
    assert_eq!(routes, ["sip:p2.example.com;lr", "sip:bob@192.0.2.4"]);
}

#[test]
fn dialog_ending_responses() {
    #[track_caller]
    fn check(method: Method, status: u16, from: DialogState, expected: DialogState) {
        let inv = invite();
        let mut d = Dialog::uac(&inv, &answer(&inv, 180, "b1", "<sip:b@h>")).unwrap();
        if from == DialogState::Confirmed {
            d.confirm();
        }
        let r = answer(&inv, status, "b1", "<sip:b@h>");
        assert_eq!(d.handle_response(&method, &r).unwrap(), expected);
    }
    check(
        Method::Bye,
        481,
        DialogState::Confirmed,
        DialogState::Terminated,
    );
    check(
        Method::Info,
        408,
        DialogState::Confirmed,
        DialogState::Terminated,
    );
    check(
        Method::Invite,
        486,
        DialogState::Confirmed,
        DialogState::Confirmed,
    );
    check(
        Method::Invite,
        486,
        DialogState::Early,
        DialogState::Terminated,
    );
    check(
        Method::Invite,
        200,
        DialogState::Early,
        DialogState::Confirmed,
    );
    check(
        Method::Info,
        500,
        DialogState::Confirmed,
        DialogState::Confirmed,
    );
}

#[test]
fn notify_creates_subscription_dialog_with_several_usages() {
    let sub = msg("SUBSCRIBE sip:bob@biloxi.example.com SIP/2.0\n\
Via: SIP/2.0/TCP watcher.example.com;branch=z9hG4bKsub\n\
From: <sip:alice@atlanta.example.com>;tag=w1\n\
To: <sip:bob@biloxi.example.com>\n\
Call-ID: sub-1\n\
CSeq: 10 SUBSCRIBE\n\
Event: presence\n\
Contact: <sip:alice@watcher.example.com>\n\
Content-Length: 0\n\n");
    let notify = msg("NOTIFY sip:alice@watcher.example.com SIP/2.0\n\
Via: SIP/2.0/TCP pa.example.com;branch=z9hG4bKn1\n\
From: <sip:bob@biloxi.example.com>;tag=n1\n\
To: <sip:alice@atlanta.example.com>;tag=w1\n\
Call-ID: sub-1\n\
CSeq: 1 NOTIFY\n\
Event: presence\n\
Subscription-State: active;expires=600\n\
Contact: <sip:pa@pa.example.com>\n\
Content-Length: 0\n\n");
    let mut d = Dialog::from_notify(&sub, &notify).unwrap();
    assert_eq!(d.id().remote_tag.as_ref(), "n1");
    assert_eq!(d.remote_target(), "sip:pa@pa.example.com");
    assert_eq!(d.state(), DialogState::Confirmed);
    let presence = Usage::Subscription {
        event: "presence".into(),
        id: None,
    };
    assert_eq!(d.usages(), std::slice::from_ref(&presence));
    let winfo = Usage::Subscription {
        event: "presence.winfo".into(),
        id: Some("7".into()),
    };
    d.add_usage(winfo.clone());
    assert_eq!(d.end_usage(&presence), DialogState::Confirmed);
    assert_eq!(d.end_usage(&winfo), DialogState::Terminated);
    // A NOTIFY for someone else's SUBSCRIBE does not create a dialog.
    let other = msg(&String::from_utf8_lossy(notify.original_bytes())
        .replace("tag=w1", "tag=zz")
        .replace("\r\n", "\n"));
    assert_eq!(
        Dialog::from_notify(&sub, &other),
        Err(DialogError::Mismatch)
    );
}

#[test]
fn requests_route_to_dialogs_or_481() {
    let inv = invite();
    let mut ds = Dialogs::new();
    ds.insert(Dialog::uas(&inv, "b1", DialogState::Confirmed).unwrap());
    let mk = |to_tag: &str| {
        msg(&format!(
            "BYE sip:bob@192.0.2.4 SIP/2.0\n\
Via: SIP/2.0/UDP h;branch=z9hG4bKx\n\
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n\
To: Bob <sip:bob@biloxi.example.com>{to_tag}\n\
Call-ID: 3848276298220188511@atlanta.example.com\n\
CSeq: 2 BYE\n\
Content-Length: 0\n\n"
        ))
    };
    assert!(matches!(
        ds.route_request(&mk(";tag=b1")),
        RequestMatch::Dialog(_)
    ));
    assert!(matches!(
        ds.route_request(&mk(";tag=zz")),
        RequestMatch::NoDialog
    ));
    assert!(matches!(
        ds.route_request(&mk("")),
        RequestMatch::OutOfDialog
    ));
}

#[test]
fn early_dialogs_end_with_their_invite_transaction() {
    let inv = invite();
    let mut ds = Dialogs::new();
    ds.handle_uac_response(&inv, &answer(&inv, 180, "b1", "<sip:b@h1>"))
        .unwrap();
    ds.handle_uac_response(&inv, &answer(&inv, 180, "b2", "<sip:b@h2>"))
        .unwrap();
    // Fork b2 answers; b1 stays early until the INVITE transaction ends.
    ds.handle_uac_response(&inv, &answer(&inv, 200, "b2", "<sip:b@h2>"))
        .unwrap();
    let ended = ds.end_early("3848276298220188511@atlanta.example.com", "9fxced76sl");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].remote_tag.as_ref(), "b1");
    assert_eq!(ds.len(), 1, "the confirmed dialog stays");
}
