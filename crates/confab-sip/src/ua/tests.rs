use super::*;
use crate::dialog::{Dialog, DialogState};
use crate::method::Method;
use crate::name::HeaderName;
use crate::transaction::TxId;
use crate::{Limits, Message, ResponseBuilder, parse_datagram};
use bytes::Bytes;
use confab_digest::{Algorithm, Challenge, Credentials, Ha1Set};

fn msg(s: &str) -> Message {
    parse_datagram(Bytes::from(s.replace('\n', "\r\n")), &Limits::default()).unwrap()
}

fn rand(n: u8) -> Entropy {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = n.wrapping_mul(31).wrapping_add(i as u8);
    }
    Entropy(b)
}

fn uac() -> UacCore {
    let mut c = UacConfig::new(
        "sip:alice@atlanta.example.com",
        "<sip:alice@192.0.2.1:5060>",
        "UDP",
        "192.0.2.1:5060",
    );
    c.credentials.push(Credential {
        realm: Some("atlanta.example.com".into()),
        username: "alice".into(),
        password: "secret".into(),
    });
    UacCore::new(c)
}

#[test]
fn entropy_tokens_are_distinct_tokens() {
    let r = rand(1);
    assert!(r.branch().starts_with("z9hG4bK"));
    assert_eq!(r.branch().len(), 7 + 16);
    assert_eq!(r.tag().len(), 13);
    assert_ne!(rand(1).tag(), rand(2).tag());
    assert!(r.call_id().bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(r.cnonce().len(), 32);
}

#[test]
fn uac_builds_a_complete_request() {
    let u = uac();
    let r = u
        .request(
            Method::Invite,
            "sip:bob@biloxi.example.com",
            "Bob <sip:bob@biloxi.example.com>",
            &rand(3),
        )
        .build()
        .unwrap();
    assert!(r.check().is_ok(), "{r:?}");
    let via = r.top_via().unwrap().unwrap();
    assert!(via.has_rfc3261_branch());
    assert_eq!(via.rport, Some(None));
    assert_eq!(r.max_forwards().unwrap().unwrap(), 70);
    assert_eq!(
        r.from().unwrap().unwrap().tag(),
        Some(rand(3).tag().as_str())
    );
    assert!(r.call_id().unwrap().unwrap().ends_with("@192.0.2.1"));
    assert_eq!(r.cseq().unwrap().unwrap().seq, 1);
    assert_eq!(r.contacts().count(), 1);
    let o = u
        .request(Method::Options, "sip:bob@b", "<sip:bob@b>", &rand(4))
        .build()
        .unwrap();
    assert_eq!(o.contacts().count(), 0, "OPTIONS carries no Contact");
}

#[test]
fn outbound_route_loose_and_strict() {
    #[track_caller]
    fn check(route: &[&str], ruri: &str, routes: &[&str]) {
        let set: Vec<String> = route.iter().map(|s| (*s).to_owned()).collect();
        let (u, r) = apply_route_set("sip:bob@b.example.com", &set);
        assert_eq!(u, ruri);
        assert_eq!(r, routes);
    }
    check(&[], "sip:bob@b.example.com", &[]);
    check(
        &["<sip:p.example.com;lr>"],
        "sip:bob@b.example.com",
        &["<sip:p.example.com;lr>"],
    );
    check(
        &["<sip:strict.example.com>", "<sip:p2.example.com;lr>"],
        "sip:strict.example.com",
        &["<sip:p2.example.com;lr>", "<sip:bob@b.example.com>"],
    );
    let mut c = uac().config().clone();
    c.outbound_route = vec!["<sip:proxy.example.com;lr>".into()];
    let r = UacCore::new(c)
        .request(Method::Message, "sip:bob@b", "<sip:bob@b>", &rand(1))
        .build()
        .unwrap();
    assert_eq!(next_hop(&r).as_deref(), Some("sip:proxy.example.com;lr"));
}

fn challenge_response(req: &Message, status: u16, challenges: &[String]) -> Message {
    let h = if status == 401 {
        HeaderName::WwwAuthenticate
    } else {
        HeaderName::ProxyAuthenticate
    };
    let mut b = ResponseBuilder::reply_to(req, status)
        .unwrap()
        .to_tag("srv");
    for c in challenges {
        b = b.header(h, c);
    }
    b.build().unwrap()
}

#[test]
fn digest_picks_the_strongest_algorithm_and_verifies_server_side() {
    let mut u = uac();
    let req = u
        .request(
            Method::Register,
            "sip:atlanta.example.com",
            "<sip:alice@atlanta.example.com>",
            &rand(5),
        )
        .build()
        .unwrap();
    let offered: Vec<String> = [Algorithm::Md5, Algorithm::Sha512_256, Algorithm::Sha256]
        .iter()
        .map(|&a| Challenge::new("atlanta.example.com", "nonce-1", a).to_string())
        .collect();
    let ch = challenge_response(&req, 401, &offered);
    let again = u.authorize(&req, &ch, &rand(6)).unwrap();
    assert_eq!(again.cseq().unwrap().unwrap().seq, 2);
    assert_ne!(
        again.top_via().unwrap().unwrap().branch,
        req.top_via().unwrap().unwrap().branch,
        "a new transaction needs a new branch"
    );
    let auths: Vec<_> = again.get_all(HeaderName::Authorization).collect();
    assert_eq!(auths.len(), 1);
    let creds = Credentials::parse(auths[0].value_str().unwrap()).unwrap();
    assert_eq!(creds.algorithm, Some(Algorithm::Sha512_256));
    assert_eq!(creds.nonce_count(), Some(1));
    let ha1 = Ha1Set::compute("alice", "atlanta.example.com", "secret");
    creds.verify(&ha1, "REGISTER", b"").unwrap();
    // Same nonce again, not stale: the password was wrong, do not loop.
    let ch2 = challenge_response(&again, 401, &offered);
    assert_eq!(
        u.authorize(&again, &ch2, &rand(7)),
        Err(AuthError::Rejected("atlanta.example.com".into()))
    );
    // Stale: answered again with nc=2 for the same nonce.
    let mut stale = Challenge::new("atlanta.example.com", "nonce-1", Algorithm::Sha256);
    stale.stale = true;
    let ch3 = challenge_response(&again, 401, &[stale.to_string()]);
    let third = u.authorize(&again, &ch3, &rand(8)).unwrap();
    let creds = Credentials::parse(
        third
            .get(HeaderName::Authorization)
            .unwrap()
            .value_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(creds.nonce_count(), Some(2));
    assert_eq!(creds.algorithm, Some(Algorithm::Sha256));
}

#[test]
fn proxy_challenge_and_missing_credentials() {
    let mut u = uac();
    let req = u
        .request(Method::Invite, "sip:bob@b", "<sip:bob@b>", &rand(9))
        .build()
        .unwrap();
    let ch = challenge_response(
        &req,
        407,
        &[Challenge::new("atlanta.example.com", "n2", Algorithm::Md5).to_string()],
    );
    let again = u.authorize(&req, &ch, &rand(10)).unwrap();
    assert_eq!(again.count(HeaderName::ProxyAuthorization), 1);
    let other = challenge_response(
        &req,
        407,
        &[Challenge::new("elsewhere", "n3", Algorithm::Md5).to_string()],
    );
    assert_eq!(
        u.authorize(&req, &other, &rand(11)),
        Err(AuthError::NoCredentials("elsewhere".into()))
    );
    let none = challenge_response(
        &req,
        407,
        &["Digest realm=\"x\", nonce=\"y\", algorithm=SHA-999, qop=\"auth\"".into()],
    );
    assert_eq!(
        u.authorize(&req, &none, &rand(12)),
        Err(AuthError::NoUsableChallenge)
    );
    assert_eq!(
        u.authorize(&req, &req_resp(&req, 404), &rand(12)),
        Err(AuthError::NotAChallenge(404))
    );
}

fn req_resp(req: &Message, s: u16) -> Message {
    ResponseBuilder::reply_to(req, s).unwrap().build().unwrap()
}

fn tx(n: u32) -> TxId {
    // TxIds come from a layer; make a few distinct ones through a real layer.
    use crate::transaction::{Config, Event, Flow, TransactionLayer};
    #[derive(Debug, Clone)]
    struct F;
    impl Flow for F {
        fn is_reliable(&self) -> bool {
            true
        }
    }
    let mut l = TransactionLayer::<F>::new(Config::default()).unwrap();
    let mut last = None;
    for i in 0..=n {
        let r = msg(&format!(
            "OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK{i}\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: c\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
        ));
        l.handle_message(crate::timer::Time::ZERO, r, F).unwrap();
        while let Some(e) = l.poll_event() {
            if let Event::Request { tx, .. } = e {
                last = Some(tx);
            }
        }
    }
    last.unwrap()
}

const BASE: &str = "INVITE sip:bob@b.example.com SIP/2.0\n\
Via: SIP/2.0/UDP a.example.com;branch=z9hG4bKm1\n\
From: <sip:alice@a.example.com>;tag=f1\n\
To: <sip:bob@b.example.com>\n\
Call-ID: merged-1\n\
CSeq: 7 INVITE\n";

#[test]
fn uas_validation_table() {
    #[track_caller]
    fn check(extra: &str, body: &str, expected: Option<(u16, Option<(HeaderName, &str)>)>) {
        let mut uas = UasCore::new(UasConfig {
            supported: vec!["timer".into()],
            ..UasConfig::default()
        });
        let text = format!("{BASE}{extra}Content-Length: {}\n\n{body}", body.len());
        let req = msg(&text);
        let got = uas.check(tx(0), &req, &rand(1));
        match (got, expected) {
            (Ok(()), None) => {}
            (Err(r), Some((status, header))) => {
                assert_eq!(r.status, status);
                assert_eq!(r.response.status(), Some(status));
                assert!(
                    r.response.to().unwrap().unwrap().tag().is_some(),
                    "To tag added"
                );
                if let Some((h, v)) = header {
                    assert_eq!(r.response.get(h).unwrap().value_str(), Some(v));
                }
            }
            (g, e) => panic!("{text}: got {g:?}, expected {e:?}"),
        }
    }
    check("", "", None);
    check("Require: timer\n", "", None);
    check(
        "Require: 100rel, timer\n",
        "",
        Some((420, Some((HeaderName::Unsupported, "100rel")))),
    );
    check("Content-Type: application/sdp\n", "v=0\r\n", None);
    check(
        "Content-Type: text/plain\n",
        "hi",
        Some((415, Some((HeaderName::Accept, "application/sdp")))),
    );
    check(
        "Content-Type: application/sdp\nContent-Encoding: gzip\n",
        "x",
        Some((415, Some((HeaderName::AcceptEncoding, "identity")))),
    );
    // 405 and 416 need other request lines
    let mut uas = UasCore::new(UasConfig::default());
    let sub = msg(&format!(
        "{}Content-Length: 0\n\n",
        BASE.replace("INVITE sip", "SUBSCRIBE sip")
            .replace("7 INVITE", "7 SUBSCRIBE")
    ));
    let r = uas.check(tx(0), &sub, &rand(1)).unwrap_err();
    assert_eq!(r.status, 405);
    assert_eq!(
        r.response.get(HeaderName::Allow).unwrap().value_str(),
        Some("INVITE, ACK, CANCEL, BYE, OPTIONS")
    );
    let urn = msg(&format!(
        "{}Content-Length: 0\n\n",
        BASE.replace("sip:bob@b.example.com SIP", "urn:service:sos SIP")
    ));
    assert_eq!(uas.check(tx(0), &urn, &rand(1)).unwrap_err().status, 416);
}

#[test]
fn merged_requests_get_482_until_the_first_transaction_ends() {
    let mut uas = UasCore::new(UasConfig::default());
    let a = msg(&format!("{BASE}Content-Length: 0\n\n"));
    let b = msg(&format!(
        "{}Content-Length: 0\n\n",
        BASE.replace("z9hG4bKm1", "z9hG4bKm2")
    ));
    let (t1, t2) = (tx(0), tx(1));
    assert!(uas.check(t1, &a, &rand(1)).is_ok());
    assert_eq!(uas.check(t2, &b, &rand(1)).unwrap_err().status, 482);
    assert_eq!(uas.tracked(), 1);
    uas.transaction_ended(t1);
    assert_eq!(uas.tracked(), 0);
    assert!(uas.check(t2, &b, &rand(1)).is_ok());
}

#[test]
fn in_dialog_requests_and_ack_from_the_uac_core() {
    let u = uac();
    let inv = u
        .request(Method::Invite, "sip:bob@b", "<sip:bob@b>", &rand(1))
        .build()
        .unwrap();
    let ok = ResponseBuilder::reply_to(&inv, 200)
        .unwrap()
        .to_tag("b1")
        .header(HeaderName::Contact, "<sip:bob@192.0.2.9>")
        .build()
        .unwrap();
    let mut d = Dialog::uac(&inv, &ok).unwrap();
    assert_eq!(d.state(), DialogState::Confirmed);
    let ack = u.ack_for_2xx(&mut d, 1, &rand(2)).unwrap();
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.request_uri_bytes(), Some(&b"sip:bob@192.0.2.9"[..]));
    assert_eq!(ack.cseq().unwrap().unwrap().seq, 1);
    assert!(ack.check().is_ok());
    let bye = u
        .in_dialog(&mut d, Method::Bye, &rand(3))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(bye.cseq().unwrap().unwrap().seq, 2);
    assert!(bye.check().is_ok());
}
