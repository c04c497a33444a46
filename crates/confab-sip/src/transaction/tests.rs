//! Unit tests of the layer against hand-written messages (the simulated-network tests in
//! `tests/sim_*.rs` drive it much harder).

use super::*;
use crate::{Limits, parse_datagram};

#[derive(Debug, Clone, PartialEq, Eq)]
struct TestFlow(bool);
impl Flow for TestFlow {
    fn is_reliable(&self) -> bool {
        self.0
    }
}
const UDP: TestFlow = TestFlow(false);
const TCP: TestFlow = TestFlow(true);

fn msg(s: &str) -> Message {
    parse_datagram(Bytes::from(s.replace('\n', "\r\n")), &Limits::default()).unwrap()
}

fn request(method: &str, branch: &str) -> Message {
    msg(&format!(
        "{method} sip:bob@example.com SIP/2.0\n\
Via: SIP/2.0/UDP client.example.com:5060;branch={branch}\n\
From: <sip:alice@example.com>;tag=a1\n\
To: <sip:bob@example.com>\n\
Call-ID: call-1\n\
CSeq: 1 {method}\n\
Max-Forwards: 70\n\
Content-Length: 0\n\n"
    ))
}

fn reply(req: &Message, code: u16) -> Message {
    let mut b = ResponseBuilder::reply_to(req, code).unwrap();
    if code > 100 {
        b = b.to_tag("b1");
    }
    b.build().unwrap()
}

fn drain<F: Flow>(l: &mut TransactionLayer<F>) -> (Vec<Transmit<F>>, Vec<Event<F>>) {
    let mut t = Vec::new();
    while let Some(x) = l.poll_transmit() {
        t.push(x);
    }
    let mut e = Vec::new();
    while let Some(x) = l.poll_event() {
        e.push(x);
    }
    (t, e)
}

fn first_line(b: &Bytes) -> String {
    String::from_utf8_lossy(b.split(|&c| c == b'\r').next().unwrap()).into_owned()
}

fn layer() -> TransactionLayer<TestFlow> {
    TransactionLayer::new(Config::default()).unwrap()
}

const MS: fn(u64) -> Time = Time::from_millis;

#[test]
fn invite_client_retransmits_with_doubling_intervals_then_times_out() {
    let mut l = layer();
    let tx = l
        .send_request(MS(0), request("INVITE", "z9hG4bK1"), UDP)
        .unwrap();
    let mut sends = vec![0u64];
    let mut now = MS(0);
    drain(&mut l);
    while let Some(t) = l.poll_timeout() {
        now = t;
        l.handle_timeout(now);
        let (tr, ev) = drain(&mut l);
        if !tr.is_empty() {
            sends.push(now.as_micros() / 1000);
        }
        if ev.iter().any(|e| {
            matches!(
                e,
                Event::Timeout {
                    timer: Timer::B,
                    ..
                }
            )
        }) {
            break;
        }
    }
    // Timer A: 500, 1000, 2000, ... until Timer B at 64*T1 = 32 s.
    assert_eq!(sends, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(now, MS(32_000));
    assert!(l.is_empty());
    assert_eq!(l.state(tx), None);
    assert_eq!(l.armed_timers(), 0);
}

#[test]
fn non_invite_client_caps_retransmissions_at_t2() {
    let mut l = layer();
    l.send_request(MS(0), request("OPTIONS", "z9hG4bK2"), UDP)
        .unwrap();
    drain(&mut l);
    let mut sends = vec![];
    while let Some(t) = l.poll_timeout() {
        l.handle_timeout(t);
        let (tr, _) = drain(&mut l);
        if !tr.is_empty() {
            sends.push(t.as_micros() / 1000);
        }
    }
    assert_eq!(
        sends,
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert!(l.is_empty());
}

#[test]
fn reliable_transports_never_retransmit_and_skip_wait_timers() {
    let mut l = layer();
    let req = request("INVITE", "z9hG4bK3");
    let tx = l.send_request(MS(0), req.clone(), TCP).unwrap();
    assert_eq!(drain(&mut l).0.len(), 1);
    // only Timer B is armed
    assert_eq!(l.armed_timers(), 1);
    l.handle_message(MS(10), reply(&req, 486), TCP).unwrap();
    let (tr, ev) = drain(&mut l);
    assert_eq!(tr.len(), 1, "the ACK");
    assert!(first_line(&tr[0].data).starts_with("ACK sip:bob@example.com"));
    // Timer D is zero on TCP: Response then Terminated at once.
    assert!(matches!(ev[0], Event::Response { .. }));
    assert!(matches!(ev[1], Event::Terminated { tx: t, .. } if t == tx));
    assert!(l.is_empty());
}

#[test]
fn server_absorbs_retransmissions_and_resends_the_last_response() {
    let mut l = layer();
    let req = request("INVITE", "z9hG4bK4");
    l.handle_message(MS(0), req.clone(), UDP).unwrap();
    let (_, ev) = drain(&mut l);
    let Event::Request { tx, .. } = ev[0] else {
        panic!("{ev:?}")
    };
    // Retransmission before any response: nothing to resend.
    l.handle_message(MS(100), req.clone(), UDP).unwrap();
    assert_eq!(drain(&mut l).0.len(), 0);
    // 200 ms: automatic 100 Trying.
    assert_eq!(l.poll_timeout(), Some(MS(200)));
    l.handle_timeout(MS(200));
    let (tr, _) = drain(&mut l);
    assert_eq!(first_line(&tr[0].data), "SIP/2.0 100 Trying");
    l.send_response(MS(300), tx, reply(&req, 180)).unwrap();
    assert_eq!(first_line(&drain(&mut l).0[0].data), "SIP/2.0 180 Ringing");
    l.handle_message(MS(400), req.clone(), UDP).unwrap();
    let (tr, ev) = drain(&mut l);
    assert_eq!(first_line(&tr[0].data), "SIP/2.0 180 Ringing");
    assert!(ev.is_empty(), "a retransmission never reaches the TU");
    // 486: Completed, Timer G retransmits, ACK confirms, Timer I ends it.
    l.send_response(MS(500), tx, reply(&req, 486)).unwrap();
    drain(&mut l);
    l.handle_timeout(MS(1000));
    assert_eq!(
        first_line(&drain(&mut l).0[0].data),
        "SIP/2.0 486 Busy Here"
    );
    let mut ack = request("ACK", "z9hG4bK4");
    ack.set_header(HeaderName::To, "<sip:bob@example.com>;tag=b1")
        .unwrap();
    l.handle_message(MS(1100), ack, UDP).unwrap();
    assert_eq!(l.state(tx), Some(State::Confirmed));
    // A second final response is an illegal transition, a typed error.
    assert_eq!(
        l.send_response(MS(1200), tx, reply(&req, 500)),
        Err(SendError::IllegalTransition {
            kind: Kind::InviteServer,
            state: State::Confirmed,
            input: Input::Send3xx6xx
        })
    );
    l.handle_timeout(MS(1100 + 5000));
    assert!(l.is_empty());
}

#[test]
fn cancel_matches_the_invite_server_transaction() {
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bK5");
    l.handle_message(MS(0), inv, UDP).unwrap();
    let (_, ev) = drain(&mut l);
    let Event::Request { tx: inv_tx, .. } = ev[0] else {
        panic!()
    };
    l.handle_message(MS(10), request("CANCEL", "z9hG4bK5"), UDP)
        .unwrap();
    let (_, ev) = drain(&mut l);
    match &ev[0] {
        Event::Cancel { invite, tx, .. } => {
            assert_eq!(*invite, Some(inv_tx));
            assert_ne!(*tx, inv_tx);
        }
        e => panic!("{e:?}"),
    }
    // A CANCEL with another branch matches nothing.
    l.handle_message(MS(20), request("CANCEL", "z9hG4bK6"), UDP)
        .unwrap();
    let (_, ev) = drain(&mut l);
    assert!(matches!(ev[0], Event::Cancel { invite: None, .. }));
}

#[test]
fn cancel_is_deferred_until_a_provisional_response() {
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bK7");
    let tx = l.send_request(MS(0), inv.clone(), UDP).unwrap();
    drain(&mut l);
    assert_eq!(l.cancel(MS(1), tx), Ok(CancelOutcome::Deferred));
    assert_eq!(drain(&mut l).0.len(), 0, "no CANCEL before a provisional");
    assert_eq!(l.cancel(MS(2), tx), Ok(CancelOutcome::AlreadyRequested));
    l.handle_message(MS(50), reply(&inv, 180), UDP).unwrap();
    let (tr, ev) = drain(&mut l);
    assert!(first_line(&tr[0].data).starts_with("CANCEL sip:bob@example.com"));
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::CancelSent { invite, .. } if *invite == tx))
    );
    // The UAS never answers the INVITE: 64*T1 after the CANCEL the INVITE times out.
    let mut now = MS(50);
    while l.state(tx).is_some() {
        now = l.poll_timeout().unwrap();
        l.handle_timeout(now);
    }
    assert_eq!(
        now,
        MS(50) + Duration::from_secs(32),
        "64*T1 after the CANCEL"
    );
    let (_, ev) = drain(&mut l);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Timeout { tx: t, timer: Timer::CancelGuard } if *t == tx))
    );
}

#[test]
fn responses_without_a_transaction_are_stray() {
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bK8");
    l.handle_message(MS(0), reply(&inv, 200), UDP).unwrap();
    let (_, ev) = drain(&mut l);
    assert!(matches!(ev[0], Event::StrayResponse { .. }));
}

#[test]
fn bad_input_is_a_typed_error() {
    let mut l = layer();
    let no_via = msg(
        "OPTIONS sip:a@b SIP/2.0\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n",
    );
    assert_eq!(
        l.handle_message(MS(0), no_via.clone(), UDP),
        Err(InboundError::MissingHeader(HeaderName::Via))
    );
    assert_eq!(l.send_request(MS(0), no_via, UDP), Err(SendError::NoVia));
    assert_eq!(
        l.send_request(MS(0), request("OPTIONS", "old-branch"), UDP),
        Err(SendError::NoBranch)
    );
    assert_eq!(
        l.send_request(MS(0), request("ACK", "z9hG4bK9"), UDP),
        Err(SendError::AckIsStateless)
    );
    let tx = l
        .send_request(MS(0), request("OPTIONS", "z9hG4bK9"), UDP)
        .unwrap();
    assert_eq!(
        l.send_request(MS(0), request("OPTIONS", "z9hG4bK9"), UDP),
        Err(SendError::DuplicateBranch)
    );
    assert_eq!(
        l.send_response(MS(0), tx, reply(&request("OPTIONS", "z9hG4bK9"), 200)),
        Err(SendError::WrongKind(tx, Kind::NonInviteClient))
    );
    assert!(l.abort(tx));
    assert_eq!(
        l.handle_transport_error(MS(0), tx),
        Err(SendError::UnknownTransaction(tx))
    );
    assert!(
        Config {
            t1: Duration::ZERO,
            ..Config::default()
        }
        .validate()
        .is_err()
    );
}

#[test]
fn rfc2543_requests_match_by_the_fallback_key() {
    let mut l = layer();
    // No magic cookie: §17.2.3 matches on Request-URI, tags, Call-ID, CSeq and top Via.
    let inv = request("INVITE", "legacy-1");
    l.handle_message(MS(0), inv.clone(), UDP).unwrap();
    let (_, ev) = drain(&mut l);
    let Event::Request { tx, .. } = ev[0] else {
        panic!("{ev:?}")
    };
    l.handle_message(MS(10), inv.clone(), UDP).unwrap();
    assert!(drain(&mut l).1.is_empty(), "retransmission absorbed");
    l.send_response(MS(20), tx, reply(&inv, 603)).unwrap();
    drain(&mut l);
    // The ACK carries the response's To tag and the same (cookie-less) Via.
    let mut ack = request("ACK", "legacy-1");
    ack.set_header(HeaderName::To, "<sip:bob@example.com>;tag=b1")
        .unwrap();
    l.handle_message(MS(30), ack, UDP).unwrap();
    assert_eq!(l.state(tx), Some(State::Confirmed));
    // A CANCEL of a legacy INVITE matches it too.
    let inv2 = msg(
        &String::from_utf8_lossy(request("INVITE", "legacy-2").original_bytes())
            .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE")
            .replace("\r\n", "\n"),
    );
    l.handle_message(MS(40), inv2, UDP).unwrap();
    let (_, ev) = drain(&mut l);
    let Event::Request { tx: tx2, .. } = ev[0] else {
        panic!("{ev:?}")
    };
    let cancel = msg(
        &String::from_utf8_lossy(request("CANCEL", "legacy-2").original_bytes())
            .replace("CSeq: 1 CANCEL", "CSeq: 2 CANCEL")
            .replace("\r\n", "\n"),
    );
    l.handle_message(MS(50), cancel, UDP).unwrap();
    let (_, ev) = drain(&mut l);
    assert!(
        matches!(ev[0], Event::Cancel { invite: Some(t), .. } if t == tx2),
        "{ev:?}"
    );
}

#[test]
fn uas_2xx_is_retransmitted_until_ack_or_timer_l() {
    let mut l = layer();
    let inv = request("INVITE", "z9hG4bK2xx");
    l.handle_message(MS(0), inv.clone(), UDP).unwrap();
    let (_, ev) = drain(&mut l);
    let Event::Request { tx, .. } = ev[0] else {
        panic!()
    };
    l.send_2xx_until_ack(MS(10), tx, reply(&inv, 200)).unwrap();
    assert_eq!(l.state(tx), Some(State::Accepted));
    drain(&mut l);
    let mut sends = vec![];
    let mut ack_timeout = false;
    while let Some(t) = l.poll_timeout() {
        l.handle_timeout(t);
        let (tr, ev) = drain(&mut l);
        if !tr.is_empty() {
            sends.push(t.as_micros() / 1000);
        }
        ack_timeout |= ev.iter().any(|e| matches!(e, Event::AckTimeout { .. }));
    }
    // T1 doubling up to T2 (4 s), from 10 ms; Timer L at 10 ms + 32 s.
    assert_eq!(sends[..5], [510, 1510, 3510, 7510, 11510]);
    assert!(ack_timeout);
    // With the ACK, retransmissions stop and no AckTimeout is reported.
    let inv = request("INVITE", "z9hG4bK2xy");
    l.handle_message(MS(0), inv.clone(), UDP).unwrap();
    let (_, ev) = drain(&mut l);
    let Event::Request { tx, .. } = ev[0] else {
        panic!()
    };
    l.send_2xx_until_ack(MS(10), tx, reply(&inv, 200)).unwrap();
    assert!(l.ack_received(tx));
    drain(&mut l);
    let mut any = false;
    while let Some(t) = l.poll_timeout() {
        l.handle_timeout(t);
        let (tr, ev) = drain(&mut l);
        any |= !tr.is_empty() || ev.iter().any(|e| matches!(e, Event::AckTimeout { .. }));
    }
    assert!(!any);
    assert!(l.is_empty());
}

#[test]
fn transaction_limit_refuses_new_transactions_but_not_retransmissions() {
    let mut l = TransactionLayer::new(Config {
        max_transactions: 1,
        ..Config::default()
    })
    .unwrap();
    let a = request("OPTIONS", "z9hG4bKlim1");
    l.handle_message(MS(0), a.clone(), UDP).unwrap();
    assert_eq!(
        l.handle_message(MS(1), request("OPTIONS", "z9hG4bKlim2"), UDP),
        Err(InboundError::Overloaded)
    );
    // The retransmission still finds its transaction; an ACK is never refused.
    assert_eq!(l.handle_message(MS(2), a, UDP), Ok(()));
    assert_eq!(
        l.handle_message(MS(3), request("ACK", "z9hG4bKlim3"), UDP),
        Ok(())
    );
    assert_eq!(
        l.send_request(MS(4), request("OPTIONS", "z9hG4bKlim4"), UDP),
        Err(SendError::Overloaded)
    );
    assert_eq!(l.len(), 1);
}
