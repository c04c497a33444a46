//! Message-level behaviour: parsing, typed access, lossless serialization, edits, builders,
//! limits and dispositions.

use bytes::Bytes;
use confab_sip::headers::Contact;
use confab_sip::{
    ContentLengthError, Disposition, HeaderName, Host, Limits, Message, Method, ParseErrorKind,
    RequestBuilder, ResponseBuilder, StartLineError, Uri, parse_datagram, parse_stream,
};

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n\
v: SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bK1, SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK2;received=192.0.2.5;rport=5070\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
f: \"Alice, A.\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
i: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:alice@pc33.atlanta.example.com>;expires=60;q=0.7\r\n\
ms-keep-alive: UAC;hop-hop=yes\r\n\
X-Weird:   spaced\r\n  and folded\r\n\
c: application/sdp\r\n\
l: 4\r\n\
\r\n\
v=0\n";

fn invite() -> Message {
    parse_datagram(Bytes::from_static(INVITE.as_bytes()), &Limits::default()).unwrap()
}

#[test]
fn parses_start_line_and_typed_headers() {
    let m = invite();
    assert!(m.is_request());
    assert_eq!(m.method(), Some(&Method::Invite));
    let Some(Ok(Uri::Sip(u))) = m.request_uri() else {
        panic!("uri")
    };
    assert_eq!(u.host, Host::Domain("biloxi.example.com"));
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch, Some("z9hG4bKnashds8"));
    assert_eq!(vias[1].host, Host::Ipv6("2001:db8::1".parse().unwrap()));
    assert_eq!(vias[1].port, Some(5061));
    assert_eq!(vias[2].received, Some("192.0.2.5".parse().unwrap()));
    assert_eq!(vias[2].rport, Some(Some(5070)));
    assert_eq!(m.from().unwrap().unwrap().tag(), Some("1928301774"));
    assert_eq!(
        m.from().unwrap().unwrap().display_name_unquoted().unwrap(),
        "Alice, A."
    );
    assert_eq!(m.to().unwrap().unwrap().tag(), None);
    assert_eq!(
        m.call_id().unwrap().unwrap(),
        "a84b4c76e66710@pc33.atlanta.example.com"
    );
    let cseq = m.cseq().unwrap().unwrap();
    assert_eq!((cseq.seq, cseq.method), (314_159, Method::Invite));
    assert_eq!(m.max_forwards().unwrap().unwrap(), 70);
    assert_eq!(m.routes().count(), 2);
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!((c.expires, c.q), (Some(60), Some(700)));
    assert_eq!(m.content_length().unwrap().unwrap(), 4);
    assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));
    assert_eq!(m.body(), b"v=0\n");
    assert_eq!(m.get("MS-Keep-Alive").unwrap().value(), b"UAC;hop-hop=yes");
    assert_eq!(m.get("x-weird").unwrap().value(), b"spaced\r\n  and folded");
    assert!(m.expires().is_none());
    assert!(m.check().is_ok());
}

#[test]
fn unedited_serialization_is_the_input() {
    let m = invite();
    assert_eq!(m.to_bytes(), INVITE.as_bytes());
    let mut out = Vec::new();
    m.write_to(&mut out);
    assert_eq!(out, INVITE.as_bytes());
    assert_eq!(m.encoded_len(), INVITE.len());
}

#[test]
fn proxy_edits_keep_everything_else() {
    let mut m = invite();
    m.prepend_via("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1")
        .unwrap();
    m.set_max_forwards(69);
    m.remove_first_route();
    m.prepend_record_route("<sip:proxy.example.com;lr>")
        .unwrap();
    let out = String::from_utf8(m.to_bytes().to_vec()).unwrap();
    let expected = INVITE
        .replace("SIP/2.0\r\nVia: SIP/2.0/UDP pc33", "SIP/2.0\r\nRecord-Route: <sip:proxy.example.com;lr>\r\nVia: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1\r\nVia: SIP/2.0/UDP pc33")
        .replace("Max-Forwards: 70", "Max-Forwards: 69")
        .replace("Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>", "Route: <sip:p2.example.com;lr>");
    assert_eq!(out, expected);
    let re = Message::parse(out.as_bytes()).unwrap();
    assert_eq!(re, m);
    assert_eq!(re.top_via().unwrap().unwrap().branch, Some("z9hG4bKp1"));
    // response direction: remove our Via again
    let mut r = re.clone();
    assert!(r.remove_top_via());
    assert_eq!(r.top_via().unwrap().unwrap().branch, Some("z9hG4bKnashds8"));
    // second line holds two values; remove first value of that line only
    r.remove_top_via();
    r.remove_top_via();
    assert_eq!(
        r.get(HeaderName::Via).unwrap().raw_line(),
        b"v: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK2;received=192.0.2.5;rport=5070\r\n"
    );
}

#[test]
fn replace_body_fixes_content_length_in_place() {
    let mut m = invite();
    m.set_body(Bytes::from_static(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"));
    let out = m.to_bytes();
    let re = Message::parse(&out).unwrap();
    assert_eq!(re.content_length().unwrap().unwrap(), 31);
    assert_eq!(re.get(HeaderName::ContentLength).unwrap().raw_name(), b"l");
    assert_eq!(re.body(), b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n");
}

#[test]
fn builders() {
    let req = RequestBuilder::new(Method::Register, "sip:registrar.example.com")
        .via("SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1")
        .from("<sip:alice@example.com>;tag=a1")
        .to("<sip:alice@example.com>")
        .call_id("c1@192.0.2.1")
        .cseq(7)
        .contact("<sip:alice@192.0.2.1;transport=tcp>;+sip.instance=\"<urn:uuid:1>\";reg-id=1")
        .header("X-Custom", "yes")
        .build()
        .unwrap();
    assert!(req.check().is_ok());
    assert_eq!(req.cseq().unwrap().unwrap().method, Method::Register);
    assert_eq!(req.content_length().unwrap().unwrap(), 0);
    let resp = ResponseBuilder::reply_to(&req, 200)
        .unwrap()
        .to_tag("t9")
        .header("Expires", "3600")
        .build()
        .unwrap();
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.reason(), Some(&b"OK"[..]));
    assert_eq!(resp.to().unwrap().unwrap().tag(), Some("t9"));
    assert_eq!(
        resp.get(HeaderName::Via).unwrap().raw_line(),
        req.get(HeaderName::Via).unwrap().raw_line()
    );
    assert_eq!(resp.call_id().unwrap().unwrap(), "c1@192.0.2.1");
    assert!(resp.check().is_ok());
    assert!(
        RequestBuilder::new(Method::Invite, "sip:a@b")
            .via("x\r\nInjected: 1")
            .build()
            .is_err()
    );
    assert!(
        RequestBuilder::new(Method::Invite, "sip:a@b")
            .build()
            .is_err()
    );
}

#[track_caller]
fn outcome(input: &str, limits: &Limits, kind: ParseErrorKind, disposition: Disposition) {
    let err = parse_datagram(Bytes::copy_from_slice(input.as_bytes()), limits).unwrap_err();
    assert_eq!(*err.kind(), kind, "{input}");
    assert_eq!(err.disposition(), disposition, "{input}");
}

const OK_HEAD: &str = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n";

#[test]
fn limits_and_their_outcomes() {
    let l = Limits::default();
    let respond = |status, reason| Disposition::Respond { status, reason };
    outcome(
        &format!("OPTIONS sip:a@b SIP/2.0\r\n{OK_HEAD}Content-Length: 10\r\n\r\nabc"),
        &l,
        ParseErrorKind::ContentLength(ContentLengthError::LargerThanMessage {
            declared: 10,
            available: 3,
        }),
        respond(400, "Content-Length larger than message"),
    );
    outcome(
        &format!("OPTIONS sip:a@b SIP/7.0\r\n{OK_HEAD}\r\n"),
        &l,
        ParseErrorKind::UnsupportedVersion,
        respond(505, "Version Not Supported"),
    );
    outcome(
        &format!("OPTIONS  sip:a@b SIP/2.0\r\n{OK_HEAD}\r\n"),
        &l,
        ParseErrorKind::StartLine(StartLineError::RequestLineShape),
        respond(400, "Malformed Request-Line"),
    );
    let small = Limits {
        max_body_size: 2,
        max_request_uri_len: 8,
        max_headers: 5,
        max_line_length: 40,
        max_message_size: 200,
    };
    outcome(
        &format!("OPTIONS sip:a@b SIP/2.0\r\n{OK_HEAD}\r\nabc"),
        &small,
        ParseErrorKind::BodyTooLarge { len: 3, max: 2 },
        respond(413, "Request Entity Too Large"),
    );
    outcome(
        &format!("OPTIONS sip:a@bcdef SIP/2.0\r\n{OK_HEAD}\r\n"),
        &small,
        ParseErrorKind::RequestUriTooLong { len: 11, max: 8 },
        respond(414, "Request-URI Too Long"),
    );
    outcome(
        &format!("OPTIONS sip:a@b SIP/2.0\r\n{OK_HEAD}X: 1\r\n\r\n"),
        &small,
        ParseErrorKind::TooManyHeaders { max: 5 },
        respond(400, "Too many header fields"),
    );
    outcome(
        &format!(
            "OPTIONS sip:a@b SIP/2.0\r\n{OK_HEAD}X: {}\r\n\r\n",
            "a".repeat(50)
        ),
        &small,
        ParseErrorKind::LineTooLong { line: 6, max: 40 },
        respond(400, "Header line too long"),
    );
    outcome(
        &format!(
            "OPTIONS sip:a@b SIP/2.0\r\n{OK_HEAD}X: {}\r\n\r\n",
            "a".repeat(30)
        ),
        &Limits {
            max_message_size: 150,
            ..Limits::default()
        },
        ParseErrorKind::MessageTooLarge { len: 165, max: 150 },
        respond(513, "Message Too Large"),
    );
    // responses and ACKs are never answered
    outcome(
        &format!("SIP/2.0 200 OK\r\n{OK_HEAD}l: 5\r\n\r\n"),
        &l,
        ParseErrorKind::ContentLength(ContentLengthError::LargerThanMessage {
            declared: 5,
            available: 0,
        }),
        Disposition::Drop,
    );
    outcome(
        &format!(
            "ACK sip:a@b SIP/2.0\r\n{}l: 5\r\n\r\n",
            OK_HEAD.replace("OPTIONS", "ACK")
        ),
        &l,
        ParseErrorKind::ContentLength(ContentLengthError::LargerThanMessage {
            declared: 5,
            available: 0,
        }),
        Disposition::Drop,
    );
    // a request whose Via is broken cannot be answered
    outcome(
        "OPTIONS sip:a@b SIP/2.0\r\nVia: bogus\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nl: 9\r\n\r\n",
        &l,
        ParseErrorKind::ContentLength(ContentLengthError::LargerThanMessage {
            declared: 9,
            available: 0,
        }),
        Disposition::Drop,
    );
    outcome("\r\n\r\n", &l, ParseErrorKind::Empty, Disposition::Drop);
    outcome(
        "OPTIONS sip:a@b SIP/2.0\nVia: x\n\n",
        &l,
        ParseErrorKind::BareLineFeed,
        Disposition::Drop,
    );
    outcome(
        "OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n",
        &l,
        ParseErrorKind::Truncated,
        Disposition::Drop,
    );
}

#[test]
fn stream_requires_content_length_and_datagram_does_not() {
    let msg = format!("OPTIONS sip:a@b SIP/2.0\r\n{OK_HEAD}\r\nbody");
    let m = parse_datagram(Bytes::from(msg.clone()), &Limits::default()).unwrap();
    assert_eq!(m.body(), b"body");
    let e = parse_stream(Bytes::from(msg), &Limits::default()).unwrap_err();
    assert_eq!(
        *e.kind(),
        ParseErrorKind::ContentLength(ContentLengthError::Missing)
    );
    // datagram with trailing octets: truncated to Content-Length (RFC 4475 dblreq)
    let msg = format!("OPTIONS sip:a@b SIP/2.0\r\n{OK_HEAD}l: 2\r\n\r\nbody");
    let m = parse_datagram(Bytes::from(msg.clone()), &Limits::default()).unwrap();
    assert_eq!(m.body(), b"bo");
    assert_eq!(m.to_bytes(), msg.as_bytes()[..msg.len() - 2]);
}

/// `to_tag` on a `reply_to` response appends `;tag=` to the copied To value, whatever the
/// To line looks like (compact name, folding, parameters, a tag already there), and leaves
/// every other copied line byte-exact.
#[test]
fn to_tag_extends_the_copied_to_line() {
    let tos: [&[u8]; 6] = [
        b"To: <sip:bob@example.com>\r\n",
        b"t: Bob <sip:bob@example.com>;foo=bar\r\n",
        b"To:   \"Bob B\" <sip:bob@example.com>  \r\n",
        b"To: Bob\r\n <sip:bob@example.com>\r\n",
        b"To: sip:bob@example.com;tag=already\r\n",
        b"TO: <sip:bob@example.com;transport=tcp>;x=1\r\n",
    ];
    for to in tos {
        let mut raw = b"MESSAGE sip:bob@example.com SIP/2.0\r\n\
            Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK77\r\n\
            From: <sip:alice@example.com>;tag=a1\r\n"
            .to_vec();
        raw.extend_from_slice(to);
        raw.extend_from_slice(b"Call-ID: c7\r\nCSeq: 3 MESSAGE\r\nMax-Forwards: 70\r\n\r\n");
        let req = confab_sip::parse_datagram(raw.into(), &confab_sip::Limits::DEFAULT).unwrap();
        let had = req.to().unwrap().unwrap().tag().map(str::to_owned);
        let resp = ResponseBuilder::reply_to(&req, 200)
            .unwrap()
            .to_tag("t9")
            .header("Expires", "60")
            .build()
            .unwrap();
        let (rq, rs) = (
            req.get(HeaderName::To).unwrap(),
            resp.get(HeaderName::To).unwrap(),
        );
        match &had {
            Some(t) => {
                assert_eq!(rs.raw_line(), rq.raw_line(), "{to:?}");
                assert_eq!(resp.to().unwrap().unwrap().tag(), Some(t.as_str()));
            }
            None => {
                let mut want = rq.raw_name().to_vec();
                want.extend_from_slice(b": ");
                want.extend_from_slice(rq.value());
                want.extend_from_slice(b";tag=t9\r\n");
                assert_eq!(rs.raw_line(), &want[..], "{to:?}");
                assert_eq!(resp.to().unwrap().unwrap().tag(), Some("t9"), "{to:?}");
            }
        }
        for n in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            assert_eq!(
                resp.get(n).unwrap().raw_line(),
                req.get(n).unwrap().raw_line()
            );
        }
        assert!(resp.check().is_ok(), "{to:?}");
        // A second call changes nothing.
        let again = ResponseBuilder::reply_to(&req, 180)
            .unwrap()
            .to_tag("t9")
            .to_tag("other")
            .build()
            .unwrap();
        assert_eq!(
            again.to().unwrap().unwrap().tag(),
            Some(had.as_deref().unwrap_or("t9"))
        );
    }
}
