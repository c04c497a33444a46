//! The proxy core driven without sockets: messages in, transmits out, a simulated clock.
//! One test per rule of RFC 3261 §16 (and RFC 5658 / 5626 / 3325 where the proxy applies
//! them).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use confab_core::SipTransport;
use confab_core::chain::{Addressed, FlowId, Hop, Outcome, Reply, RequestContext, Source, Target};
use confab_proxy::{Listener, LocalNode, Proxy, ProxyConfig, ProxyEvent};
use confab_sip::timer::Time;
use confab_sip::transaction::{self, TxId};
use confab_sip::{HeaderName, Limits, Message, ResponseBuilder};

const PROXY_UDP: &str = "192.0.2.1:5060";
const PROXY_TCP: &str = "192.0.2.1:5060";
const ALICE: &str = "198.51.100.10:5060";
const BOB1: &str = "198.51.100.21:5060";
const BOB2: &str = "198.51.100.22:5062";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Sim {
    proxy: Proxy,
    now: Time,
}

fn config(f: impl FnOnce(&mut ProxyConfig)) -> ProxyConfig {
    let mut c = ProxyConfig::default();
    f(&mut c);
    c
}

impl Sim {
    fn new(cfg: ProxyConfig) -> Sim {
        Sim::with_t1(cfg, Duration::from_millis(500))
    }

    fn with_t1(cfg: ProxyConfig, t1: Duration) -> Sim {
        let local = LocalNode::new(
            &["example.com".into()],
            vec![
                Listener {
                    transport: SipTransport::Udp,
                    local: addr(PROXY_UDP),
                    sent_by: PROXY_UDP.into(),
                },
                Listener {
                    transport: SipTransport::Tcp,
                    local: addr(PROXY_TCP),
                    sent_by: PROXY_TCP.into(),
                },
            ],
        );
        let timers = transaction::Config {
            trying: transaction::TryingPolicy::Never,
            t1,
            t2: t1.max(Duration::from_secs(4)),
            ..transaction::Config::default()
        };
        Sim {
            proxy: Proxy::new(cfg, timers, local, 42, b"flow key for tests").unwrap(),
            now: Time::from_millis(1_000),
        }
    }

    fn udp_source(remote: &str) -> Source {
        let r = addr(remote);
        Source {
            hop: Hop::over_flow(
                SipTransport::Udp,
                r,
                FlowId::Datagram {
                    listener: 0,
                    remote: r,
                },
            ),
            local: addr(PROXY_UDP),
            tls_names: None,
        }
    }

    fn tcp_source(remote: &str, id: u64) -> Source {
        Source {
            hop: Hop::over_flow(SipTransport::Tcp, addr(remote), FlowId::Connection { id }),
            local: addr(PROXY_TCP),
            tls_names: None,
        }
    }

    fn feed(&mut self, msg: Message, source: Source) -> Vec<(TxId, Box<RequestContext>)> {
        self.proxy
            .handle_message(self.now, 1_700_000_000_000, msg, source)
            .expect("matchable");
        self.events()
    }

    fn events(&mut self) -> Vec<(TxId, Box<RequestContext>)> {
        let mut out = Vec::new();
        while let Some(ev) = self.proxy.poll_event() {
            match ev {
                ProxyEvent::Request { tx, ctx } => out.push((tx, ctx)),
                other => panic!("unexpected {other:?}"),
            }
        }
        out
    }

    /// Everything sent since the last call: (hop, parsed message).
    fn sent(&mut self) -> Vec<(Hop, Message)> {
        let mut out = Vec::new();
        while let Some(t) = self.proxy.poll_transmit() {
            let m = confab_sip::parse_datagram(t.data.clone(), &Limits::DEFAULT).unwrap();
            out.push((t.flow, m));
        }
        out
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.proxy.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.proxy.handle_timeout(self.now);
        }
        self.now = end;
    }

    /// Feeds a request that the chain answers with `outcome`; returns what was sent.
    fn decide(&mut self, msg: Message, source: Source, outcome: Outcome) -> Vec<(Hop, Message)> {
        let evs = self.feed(msg, source);
        assert_eq!(evs.len(), 1, "one request for the chain");
        let (tx, ctx) = evs.into_iter().next().unwrap();
        self.proxy.handle_outcome(self.now, tx, *ctx, outcome);
        self.sent()
    }
}

fn parse(text: &str) -> Message {
    confab_sip::parse_datagram(Bytes::from(text.replace('\n', "\r\n")), &Limits::DEFAULT).unwrap()
}

fn invite(extra: &str) -> Message {
    parse(&format!(
        "INVITE sip:bob@example.com SIP/2.0\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bKa1;rport=5060;received=198.51.100.10\n\
         From: <sip:alice@example.com>;tag=at\n\
         To: <sip:bob@example.com>\n\
         Call-ID: call-1@alice\n\
         CSeq: 1 INVITE\n\
         Contact: <sip:alice@{ALICE}>\n\
         Max-Forwards: 70\n\
         {extra}Content-Length: 0\n\n"
    ))
}

fn message_req(extra: &str) -> Message {
    parse(&format!(
        "MESSAGE sip:bob@example.com SIP/2.0\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bKm1;rport=5060;received=198.51.100.10\n\
         From: <sip:alice@example.com>;tag=at\n\
         To: <sip:bob@example.com>\n\
         Call-ID: msg-1@alice\n\
         CSeq: 1 MESSAGE\n\
         Max-Forwards: 70\n\
         {extra}Content-Type: text/plain\nContent-Length: 2\n\nhi"
    ))
}

fn target(uri: &str, hop_addr: &str, q: u16) -> Target {
    let mut t = Target::new(uri);
    t.hop = Some(Hop::to_addr(SipTransport::Udp, addr(hop_addr)));
    t.q = q;
    t
}

fn status(m: &Message) -> u16 {
    m.status().expect("a response")
}

fn reply_from(req: &Message, code: u16, tag: &str) -> Message {
    ResponseBuilder::reply_to(req, code)
        .unwrap()
        .to_tag(tag)
        .build()
        .unwrap()
}

fn hv(m: &Message, name: HeaderName) -> Vec<&str> {
    m.get_all(name).filter_map(|f| f.value_str()).collect()
}

fn requests_to(sent: &[(Hop, Message)], remote: &str) -> Vec<Message> {
    sent.iter()
        .filter(|(h, m)| h.remote == addr(remote) && m.is_request())
        .map(|(_, m)| m.clone())
        .collect()
}

fn responses(sent: &[(Hop, Message)]) -> Vec<u16> {
    sent.iter()
        .filter(|(_, m)| m.is_response())
        .map(|(_, m)| status(m))
        .collect()
}

// ---- §16.3 validation ---------------------------------------------------------------------

#[test]
fn max_forwards_zero_is_483_except_options_to_us() {
    let mut s = Sim::new(ProxyConfig::default());
    let m = invite("").to_bytes();
    let text = String::from_utf8(m.to_vec())
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    let evs = s.feed(parse(&text.replace("\r\n", "\n")), Sim::udp_source(ALICE));
    assert!(evs.is_empty());
    assert_eq!(responses(&s.sent()), [483]);

    let opts = parse(&format!(
        "OPTIONS sip:example.com SIP/2.0\nVia: SIP/2.0/UDP {ALICE};branch=z9hG4bKo\n\
         From: <sip:alice@example.com>;tag=1\nTo: <sip:example.com>\nCall-ID: o\nCSeq: 1 OPTIONS\n\
         Max-Forwards: 0\nContent-Length: 0\n\n"
    ));
    let evs = s.feed(opts, Sim::udp_source(ALICE));
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].1.addressed, Addressed::Server);
}

#[test]
fn message_layer_faults_are_refused_before_the_chain() {
    // Found by sending the RFC 4475 torture messages to `confab serve`: these reached the
    // chain and got a 407 challenge instead of the 400/416 the message layer calls for.
    let mut s = Sim::new(ProxyConfig::default());
    let text = String::from_utf8(invite("").to_bytes().to_vec())
        .unwrap()
        .replace("\r\n", "\n");
    // CSeq method differs from the request method (RFC 4475 §3.1.2.17).
    let evs = s.feed(
        parse(&text.replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS")),
        Sim::udp_source(ALICE),
    );
    assert!(evs.is_empty());
    assert_eq!(responses(&s.sent()), [400]);
    // An unknown Request-URI scheme (RFC 4475 §3.3.2): 416.
    let evs = s.feed(
        parse(
            &text
                .replace(
                    "INVITE sip:bob@example.com",
                    "INVITE nobodyKnowsThisScheme:opaque",
                )
                .replace("call-1@alice", "call-2@alice")
                .replace("z9hG4bKa1", "z9hG4bKa2"),
        ),
        Sim::udp_source(ALICE),
    );
    assert!(evs.is_empty());
    assert_eq!(responses(&s.sent()), [416]);
    // A request without Call-ID cannot be answered (RFC 4475 §3.3.1): dropped.
    let evs = s.feed(
        parse(
            &text
                .replace("Call-ID: call-1@alice\n", "")
                .replace("z9hG4bKa1", "z9hG4bKa3"),
        ),
        Sim::udp_source(ALICE),
    );
    assert!(evs.is_empty());
    assert!(s.sent().is_empty());
    assert_eq!(s.proxy.stats().refused, 3);
}

#[test]
fn proxy_require_is_420_with_unsupported_and_require_passes() {
    let mut s = Sim::new(ProxyConfig::default());
    let evs = s.feed(invite("Proxy-Require: foo, bar\n"), Sim::udp_source(ALICE));
    assert!(evs.is_empty());
    let sent = s.sent();
    assert_eq!(responses(&sent), [420]);
    assert_eq!(hv(&sent[0].1, HeaderName::Unsupported), ["foo, bar"]);

    let mut s = Sim::new(config(|c| c.supported_proxy_require = vec!["foo".into()]));
    s.feed(invite("Proxy-Require: foo\n"), Sim::udp_source(ALICE));
    assert!(s.sent().is_empty());

    let mut s = Sim::new(ProxyConfig::default());
    let sent = s.decide(
        invite("Require: 100rel\n"),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![target("sip:bob@198.51.100.21", BOB1, 1000)]),
    );
    let fwd = requests_to(&sent, BOB1);
    assert_eq!(hv(&fwd[0], HeaderName::Require), ["100rel"]);
}

#[test]
fn loops_are_482_and_spirals_pass() {
    let mut s = Sim::new(ProxyConfig::default());
    // Forward to a "callee" that is a downstream proxy sending the request back unchanged.
    let sent = s.decide(
        invite(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![target("sip:bob@example.com", BOB1, 1000)]),
    );
    let fwd = requests_to(&sent, BOB1).remove(0);
    // It comes back with the same Request-URI (a loop): 482.
    let mut back = fwd.clone();
    back.prepend_via("SIP/2.0/UDP 198.51.100.21:5060;branch=z9hG4bKdown1")
        .unwrap();
    let evs = s.feed(back, Sim::udp_source(BOB1));
    assert!(evs.is_empty());
    assert!(responses(&s.sent()).contains(&482));
    // With a different Request-URI it is a spiral: accepted.
    let mut spiral = fwd;
    spiral.set_request_uri("sip:bob-desk@example.com").unwrap();
    spiral
        .prepend_via("SIP/2.0/UDP 198.51.100.21:5060;branch=z9hG4bKdown2")
        .unwrap();
    assert_eq!(s.feed(spiral, Sim::udp_source(BOB1)).len(), 1);
}

// ---- §16.6 forwarding -----------------------------------------------------------------------

#[test]
fn forwarded_request_gets_uri_max_forwards_via_and_record_route() {
    let mut s = Sim::new(ProxyConfig::default());
    let sent = s.decide(
        invite(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![target("sip:bob@198.51.100.21:5060;ob", BOB1, 1000)]),
    );
    let fwd = requests_to(&sent, BOB1);
    assert_eq!(fwd.len(), 1);
    let f = &fwd[0];
    assert_eq!(
        f.request_uri_bytes().unwrap(),
        b"sip:bob@198.51.100.21:5060;ob"
    );
    assert_eq!(f.max_forwards().unwrap().unwrap(), 69);
    let vias = hv(f, HeaderName::Via);
    assert!(
        vias[0].starts_with("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcfx"),
        "{vias:?}"
    );
    assert!(vias[1].contains("z9hG4bKa1"));
    // One Record-Route (same transport both ways) carrying the caller's flow token.
    let rr = hv(f, HeaderName::RecordRoute);
    assert_eq!(rr.len(), 1);
    assert!(
        rr[0].starts_with("<sip:") && rr[0].ends_with("@192.0.2.1:5060;lr>"),
        "{rr:?}"
    );
    // Unedited headers are byte-exact.
    assert_eq!(
        hv(f, HeaderName::Contact),
        [format!("<sip:alice@{ALICE}>").as_str()]
    );
}

#[test]
fn bridging_transports_doubles_record_route() {
    let mut s = Sim::new(ProxyConfig::default());
    let mut t = Target::new("sip:bob@198.51.100.21:5070;transport=tcp");
    t.hop = Some(Hop::over_flow(
        SipTransport::Tcp,
        addr("198.51.100.21:5070"),
        FlowId::Connection { id: 77 },
    ));
    let sent = s.decide(
        invite(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![t]),
    );
    let (hop, f) = sent.iter().find(|(_, m)| m.is_request()).unwrap();
    assert_eq!(hop.flow, Some(FlowId::Connection { id: 77 }));
    assert!(hv(f, HeaderName::Via)[0].starts_with("SIP/2.0/TCP "));
    let rr = hv(f, HeaderName::RecordRoute);
    assert_eq!(rr.len(), 2, "{rr:?}");
    assert!(rr[0].ends_with(";transport=tcp;lr;r2=on>"), "{rr:?}");
    assert!(rr[1].ends_with("@192.0.2.1:5060;lr;r2=on>"), "{rr:?}");

    // An in-dialog BYE from the callee over TCP with that route set goes back to the caller
    // over the caller's UDP flow, whatever its Contact says.
    let bye = parse(&format!(
        "BYE sip:alice@10.0.0.99:5060 SIP/2.0\n\
         Via: SIP/2.0/TCP 198.51.100.21:5070;branch=z9hG4bKbye\n\
         From: <sip:bob@example.com>;tag=bt\nTo: <sip:alice@example.com>;tag=at\n\
         Call-ID: call-1@alice\nCSeq: 1 BYE\nMax-Forwards: 70\n\
         Route: {}\nRoute: {}\nContent-Length: 0\n\n",
        rr[0], rr[1]
    ));
    let evs = s.feed(bye, Sim::tcp_source("198.51.100.21:5070", 77));
    let (tx, ctx) = evs.into_iter().next().unwrap();
    assert!(ctx.in_dialog && ctx.own_route && !ctx.routed);
    let back = ctx.route_flow.clone().expect("flow from the Record-Route");
    assert_eq!(
        back.flow,
        Some(FlowId::Datagram {
            listener: 0,
            remote: addr(ALICE)
        })
    );
    let mut target = Target::new("sip:alice@10.0.0.99:5060");
    target.hop = Some(back);
    s.proxy
        .handle_outcome(s.now, tx, *ctx, Outcome::Forward(vec![target]));
    let sent = s.sent();
    let f = requests_to(&sent, ALICE);
    assert_eq!(f.len(), 1);
    assert!(!f[0].contains(HeaderName::Route));
    assert!(!f[0].contains(HeaderName::RecordRoute));
}

#[test]
fn pai_is_asserted_to_trusted_and_removed_toward_untrusted() {
    for trusted in [true, false] {
        let mut s = Sim::new(ProxyConfig::default());
        let evs = s.feed(
            invite("P-Asserted-Identity: <sip:someone@example.com>\n"),
            Sim::udp_source(ALICE),
        );
        let (tx, mut ctx) = evs.into_iter().next().unwrap();
        ctx.asserted_identity = Some("<sip:alice@example.com>".into());
        let mut t = target("sip:gw@198.51.100.21", BOB1, 1000);
        t.trusted = trusted;
        s.proxy
            .handle_outcome(s.now, tx, *ctx, Outcome::Forward(vec![t]));
        let f = requests_to(&s.sent(), BOB1).remove(0);
        let want: Vec<&str> = if trusted {
            vec!["<sip:alice@example.com>"]
        } else {
            vec![]
        };
        assert_eq!(
            hv(&f, HeaderName::PAssertedIdentity),
            want,
            "trusted={trusted}"
        );
    }
}

// ---- forking and §16.7 response selection --------------------------------------------------

#[test]
fn parallel_fork_2xx_wins_and_cancels_the_other_branch() {
    let mut s = Sim::new(ProxyConfig::default());
    let sent = s.decide(
        invite(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![
            target("sip:bob@198.51.100.21", BOB1, 1000),
            target("sip:bob@198.51.100.22:5062", BOB2, 1000),
        ]),
    );
    let (b1, b2) = (
        requests_to(&sent, BOB1).remove(0),
        requests_to(&sent, BOB2).remove(0),
    );
    let br = |m: &Message| hv(m, HeaderName::Via)[0].to_owned();
    assert_ne!(br(&b1), br(&b2), "each branch has its own Via branch");
    // Ringing from both: forwarded upstream (100 is not).
    s.feed(reply_from(&b1, 100, "x"), Sim::udp_source(BOB1));
    s.feed(reply_from(&b1, 180, "b1"), Sim::udp_source(BOB1));
    s.feed(reply_from(&b2, 180, "b2"), Sim::udp_source(BOB2));
    let up = s.sent();
    assert_eq!(responses(&up), [180, 180]);
    assert!(up.iter().all(|(h, _)| h.remote == addr(ALICE)));
    // Our Via is gone from what goes upstream.
    assert_eq!(hv(&up[0].1, HeaderName::Via).len(), 1);
    // bob1 answers: 200 upstream, CANCEL to bob2.
    s.feed(reply_from(&b1, 200, "b1"), Sim::udp_source(BOB1));
    let out = s.sent();
    assert_eq!(responses(&out), [200]);
    let cancels = requests_to(&out, BOB2);
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].method().unwrap().as_str(), "CANCEL");
    // bob2's 487 is not forwarded.
    s.feed(reply_from(&cancels[0], 200, "b2"), Sim::udp_source(BOB2));
    s.feed(reply_from(&b2, 487, "b2"), Sim::udp_source(BOB2));
    let out = s.sent();
    assert!(responses(&out).is_empty(), "{:?}", responses(&out));
    // The ACK for bob2's 487 is hop-by-hop.
    assert_eq!(requests_to(&out, BOB2)[0].method().unwrap().as_str(), "ACK");
}

#[test]
fn q_groups_are_tried_in_series() {
    let mut s = Sim::new(ProxyConfig::default());
    let sent = s.decide(
        message_req(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![
            target("sip:bob@198.51.100.22:5062", BOB2, 500),
            target("sip:bob@198.51.100.21", BOB1, 1000),
        ]),
    );
    let first = requests_to(&sent, BOB1);
    assert_eq!(first.len(), 1);
    assert!(requests_to(&sent, BOB2).is_empty(), "lower q waits");
    s.feed(reply_from(&first[0], 486, "b1"), Sim::udp_source(BOB1));
    let sent = s.sent();
    assert!(responses(&sent).is_empty());
    let second = requests_to(&sent, BOB2);
    assert_eq!(second.len(), 1);
    s.feed(reply_from(&second[0], 404, "b2"), Sim::udp_source(BOB2));
    // Both 4xx: the lowest class; within it the first kept by rank (404 < 486).
    assert_eq!(responses(&s.sent()), [404]);
}

#[track_caller]
fn best_of(codes: &[u16], want: u16) {
    let mut s = Sim::new(ProxyConfig::default());
    let hops = [
        "198.51.100.31:5060",
        "198.51.100.32:5060",
        "198.51.100.33:5060",
    ];
    let targets = codes
        .iter()
        .zip(hops)
        .map(|(_, h)| target(&format!("sip:bob@{h}"), h, 1000))
        .collect();
    let sent = s.decide(
        invite(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(targets),
    );
    let mut up = Vec::new();
    for (code, h) in codes.iter().zip(hops) {
        let req = requests_to(&sent, h).remove(0);
        let mut r = reply_from(&req, *code, "t");
        if *code == 401 {
            r.push_header(
                HeaderName::WwwAuthenticate,
                &format!("Digest realm=\"{h}\", nonce=\"n\""),
            )
            .unwrap();
        }
        s.feed(r, Sim::udp_source(h));
        up.extend(s.sent());
    }
    let finals: Vec<&Message> = up
        .iter()
        .filter(|(_, m)| m.is_response() && status(m) >= 200)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(finals.len(), 1, "{codes:?}");
    assert_eq!(status(finals[0]), want, "{codes:?}");
    if want == 401 {
        let n = codes.iter().filter(|c| **c == 401).count();
        assert_eq!(
            hv(finals[0], HeaderName::WwwAuthenticate).len(),
            n,
            "challenges merged"
        );
    }
}

#[test]
fn best_response_selection() {
    best_of(&[486, 404], 404);
    best_of(&[486, 603], 603);
    best_of(&[503], 500);
    best_of(&[503, 480], 480);
    best_of(&[302, 486], 302);
    best_of(&[401, 401, 500], 401);
}

#[test]
fn non_invite_fork_forwards_the_first_2xx_only() {
    let mut s = Sim::new(ProxyConfig::default());
    let sent = s.decide(
        message_req(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![
            target("sip:bob@198.51.100.21", BOB1, 1000),
            target("sip:bob@198.51.100.22:5062", BOB2, 1000),
        ]),
    );
    let (b1, b2) = (
        requests_to(&sent, BOB1).remove(0),
        requests_to(&sent, BOB2).remove(0),
    );
    assert_eq!(b1.body(), b"hi");
    s.feed(reply_from(&b2, 200, "b2"), Sim::udp_source(BOB2));
    s.feed(reply_from(&b1, 200, "b1"), Sim::udp_source(BOB1));
    assert_eq!(responses(&s.sent()), [200]);
}

#[test]
fn recursion_on_3xx_is_configurable() {
    for recurse in [false, true] {
        let mut s = Sim::new(config(|c| c.recurse_on_3xx = recurse));
        let sent = s.decide(
            invite(""),
            Sim::udp_source(ALICE),
            Outcome::Forward(vec![target("sip:bob@198.51.100.21", BOB1, 1000)]),
        );
        let req = requests_to(&sent, BOB1).remove(0);
        let mut r = reply_from(&req, 302, "b1");
        r.push_header(HeaderName::Contact, "<sip:bob@198.51.100.40:5060>")
            .unwrap();
        s.feed(r, Sim::udp_source(BOB1));
        let out = s.sent();
        if recurse {
            assert!(responses(&out).is_empty());
            let next = requests_to(&out, "198.51.100.40:5060");
            assert_eq!(
                next[0].request_uri_bytes().unwrap(),
                b"sip:bob@198.51.100.40:5060"
            );
        } else {
            assert_eq!(responses(&out), [302]);
        }
    }
}

#[test]
fn empty_target_set_is_480_and_reply_gets_a_to_tag() {
    let mut s = Sim::new(ProxyConfig::default());
    let sent = s.decide(
        message_req(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![]),
    );
    assert_eq!(responses(&sent), [480]);
    let to = sent[0].1.to().unwrap().unwrap();
    assert!(to.tag().is_some());
    let other = parse(
        &String::from_utf8(message_req("").to_bytes().to_vec())
            .unwrap()
            .replace("z9hG4bKm1", "z9hG4bKm2")
            .replace("\r\n", "\n"),
    );
    let sent = s.decide(
        other,
        Sim::udp_source(ALICE),
        Outcome::Respond(Reply::with_reason(403, "Relaying denied").header("Retry-After", "5")),
    );
    assert_eq!(responses(&sent), [403]);
    assert_eq!(sent[0].1.reason().unwrap(), b"Relaying denied");
    assert_eq!(hv(&sent[0].1, HeaderName::RetryAfter), ["5"]);
}

// ---- Timer C, CANCEL --------------------------------------------------------------------------

#[test]
fn timer_c_cancels_a_ringing_branch_and_times_out_a_silent_one() {
    let mut s = Sim::new(ProxyConfig::default());
    let sent = s.decide(
        invite(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![target("sip:bob@198.51.100.21", BOB1, 1000)]),
    );
    let req = requests_to(&sent, BOB1).remove(0);
    s.feed(reply_from(&req, 180, "b1"), Sim::udp_source(BOB1));
    s.sent();
    // Provisional responses reset Timer C.
    s.advance(Duration::from_secs(100));
    s.feed(reply_from(&req, 183, "b1"), Sim::udp_source(BOB1));
    s.sent();
    s.advance(Duration::from_secs(184));
    assert!(
        requests_to(&s.sent(), BOB1)
            .iter()
            .all(|m| m.method().unwrap().as_str() == "INVITE")
    );
    s.advance(Duration::from_secs(2));
    let out = s.sent();
    let cancels: Vec<_> = requests_to(&out, BOB1)
        .into_iter()
        .filter(|m| m.method().unwrap().as_str() == "CANCEL")
        .collect();
    assert!(!cancels.is_empty(), "Timer C sent CANCEL");
    let branches: Vec<&str> = cancels.iter().map(|c| hv(c, HeaderName::Via)[0]).collect();
    assert!(
        branches.windows(2).all(|w| w[0] == w[1]),
        "one CANCEL, maybe retransmitted"
    );
    s.feed(reply_from(&req, 487, "b1"), Sim::udp_source(BOB1));
    assert_eq!(responses(&s.sent()), [487]);

    // A branch that never answers: with T1 = 5 s Timer B (64·T1 = 320 s) is later than
    // Timer C, so Timer C ends the branch "as if a 408 had arrived" (§16.8).
    let mut s = Sim::with_t1(ProxyConfig::default(), Duration::from_secs(5));
    let mut t = Target::new("sip:bob@198.51.100.21:5070;transport=tcp");
    t.hop = Some(Hop::to_addr(SipTransport::Tcp, addr("198.51.100.21:5070")));
    s.decide(
        invite(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![t]),
    );
    s.advance(Duration::from_secs(184));
    assert!(responses(&s.sent()).is_empty());
    s.advance(Duration::from_secs(2));
    let out = s.sent();
    assert_eq!(responses(&out), [408]);
}

#[test]
fn cancel_from_upstream_cancels_branches_and_487_goes_back() {
    let mut s = Sim::new(ProxyConfig::default());
    let inv = invite("");
    let sent = s.decide(
        inv.clone(),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![target("sip:bob@198.51.100.21", BOB1, 1000)]),
    );
    let req = requests_to(&sent, BOB1).remove(0);
    s.feed(reply_from(&req, 180, "b1"), Sim::udp_source(BOB1));
    s.sent();
    let cancel = parse(&format!(
        "CANCEL sip:bob@example.com SIP/2.0\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bKa1;rport=5060;received=198.51.100.10\n\
         From: <sip:alice@example.com>;tag=at\nTo: <sip:bob@example.com>\n\
         Call-ID: call-1@alice\nCSeq: 1 CANCEL\nMax-Forwards: 70\nContent-Length: 0\n\n"
    ));
    assert!(s.feed(cancel, Sim::udp_source(ALICE)).is_empty());
    let out = s.sent();
    assert_eq!(responses(&out), [200], "CANCEL answered");
    let down = requests_to(&out, BOB1);
    assert_eq!(down[0].method().unwrap().as_str(), "CANCEL");
    s.feed(reply_from(&req, 487, "b1"), Sim::udp_source(BOB1));
    assert_eq!(responses(&s.sent()), [487]);
}

#[test]
fn cancel_while_in_the_chain_answers_487_and_drops_the_outcome() {
    let mut s = Sim::new(ProxyConfig::default());
    let evs = s.feed(invite(""), Sim::udp_source(ALICE));
    let (tx, ctx) = evs.into_iter().next().unwrap();
    let cancel = parse(&format!(
        "CANCEL sip:bob@example.com SIP/2.0\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bKa1;rport=5060;received=198.51.100.10\n\
         From: <sip:alice@example.com>;tag=at\nTo: <sip:bob@example.com>\n\
         Call-ID: call-1@alice\nCSeq: 1 CANCEL\nMax-Forwards: 70\nContent-Length: 0\n\n"
    ));
    s.feed(cancel, Sim::udp_source(ALICE));
    let mut codes = responses(&s.sent());
    codes.sort_unstable();
    assert_eq!(codes, [200, 487]);
    s.proxy.handle_outcome(
        s.now,
        tx,
        *ctx,
        Outcome::Forward(vec![target("sip:bob@198.51.100.21", BOB1, 1000)]),
    );
    assert!(s.sent().is_empty(), "nothing forwarded after the CANCEL");
    assert_eq!(s.proxy.pending(), 0);
}

// ---- ACK and stray 2xx --------------------------------------------------------------------------

#[test]
fn ack_for_2xx_follows_the_route_statelessly() {
    let mut s = Sim::new(ProxyConfig::default());
    let mut t = Target::new("sip:bob@198.51.100.21");
    t.hop = Some(Hop::over_flow(
        SipTransport::Udp,
        addr(BOB1),
        FlowId::Datagram {
            listener: 0,
            remote: addr(BOB1),
        },
    ));
    let sent = s.decide(
        invite(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![t]),
    );
    let req = requests_to(&sent, BOB1).remove(0);
    let rr = hv(&req, HeaderName::RecordRoute)[0].to_owned();
    let mut ok = reply_from(&req, 200, "b1");
    ok.push_header(HeaderName::RecordRoute, &rr).unwrap();
    s.feed(ok, Sim::udp_source(BOB1));
    assert_eq!(responses(&s.sent()), [200]);
    // Alice ACKs with the route set from the 200, to bob's Contact (a private address).
    let ack = parse(&format!(
        "ACK sip:bob@10.1.1.1:5060 SIP/2.0\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bKack1\n\
         From: <sip:alice@example.com>;tag=at\nTo: <sip:bob@example.com>;tag=b1\n\
         Call-ID: call-1@alice\nCSeq: 1 ACK\nMax-Forwards: 70\nRoute: {rr}\nContent-Length: 0\n\n"
    ));
    assert!(s.feed(ack, Sim::udp_source(ALICE)).is_empty());
    let out = s.sent();
    let acks = requests_to(&out, BOB1);
    assert_eq!(acks.len(), 1, "ACK went over bob's flow, not to 10.1.1.1");
    assert_eq!(acks[0].max_forwards().unwrap().unwrap(), 69);
    assert_eq!(hv(&acks[0], HeaderName::Via).len(), 2);
    assert_eq!(s.proxy.stats().stateless, 1);
}

#[test]
fn stray_2xx_is_forwarded_upstream() {
    let mut s = Sim::new(ProxyConfig::default());
    let sent = s.decide(
        invite(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![target("sip:bob@198.51.100.21", BOB1, 1000)]),
    );
    let req = requests_to(&sent, BOB1).remove(0);
    s.feed(reply_from(&req, 200, "b1"), Sim::udp_source(BOB1));
    assert_eq!(responses(&s.sent()), [200]);
    // Long after every transaction ended, a retransmitted 200 still reaches Alice.
    s.advance(Duration::from_secs(60));
    s.sent();
    assert_eq!(s.proxy.transactions(), 0);
    s.feed(reply_from(&req, 200, "b1"), Sim::udp_source(BOB1));
    let out = s.sent();
    assert_eq!(responses(&out), [200]);
    assert_eq!(out[0].0.remote, addr(ALICE));
    assert_eq!(hv(&out[0].1, HeaderName::Via).len(), 1);
}

#[test]
fn state_is_released() {
    let mut s = Sim::new(ProxyConfig::default());
    let sent = s.decide(
        message_req(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![target("sip:bob@198.51.100.21", BOB1, 1000)]),
    );
    let req = requests_to(&sent, BOB1).remove(0);
    s.feed(reply_from(&req, 200, "b1"), Sim::udp_source(BOB1));
    s.sent();
    s.advance(Duration::from_secs(40));
    assert_eq!(s.proxy.pending(), 0);
    assert_eq!(s.proxy.transactions(), 0);
}

// ---- the dialog observer (RFC 4235 feed) --------------------------------------------------

#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl confab_core::DialogObserver for Recorder {
    fn invite_forwarded(&self, invite: &Message) {
        self.0
            .lock()
            .unwrap()
            .push(format!("invite {}", invite.call_id().unwrap().unwrap()));
    }
    fn invite_response(&self, _invite: &Message, response: &Message) {
        let tag = response
            .to()
            .and_then(Result::ok)
            .and_then(|t| t.tag().map(str::to_owned))
            .unwrap_or_default();
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {tag}", status(response)));
    }
    fn bye_forwarded(&self, bye: &Message) {
        self.0
            .lock()
            .unwrap()
            .push(format!("bye {}", bye.call_id().unwrap().unwrap()));
    }
}

impl Sim {
    /// Like `decide`, with `observer` attached to the request's context by the chain.
    fn decide_observed(
        &mut self,
        msg: Message,
        source: Source,
        outcome: Outcome,
        observer: &std::sync::Arc<Recorder>,
    ) -> Vec<(Hop, Message)> {
        let evs = self.feed(msg, source);
        let (tx, mut ctx) = evs.into_iter().next().expect("one request for the chain");
        ctx.dialog_observer = Some(observer.clone());
        self.proxy.handle_outcome(self.now, tx, *ctx, outcome);
        self.sent()
    }
}

#[test]
fn the_dialog_observer_hears_forwarded_invites_their_responses_and_byes() {
    let mut s = Sim::new(ProxyConfig::default());
    let rec = std::sync::Arc::new(Recorder::default());
    let log = |r: &Recorder| std::mem::take(&mut *r.0.lock().unwrap());
    // A forked INVITE: both 180s, the 200 of one branch; bob2's 487 stays here.
    let sent = s.decide_observed(
        invite(""),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![
            target("sip:bob@198.51.100.21", BOB1, 1000),
            target("sip:bob@198.51.100.22:5062", BOB2, 1000),
        ]),
        &rec,
    );
    let (b1, b2) = (
        requests_to(&sent, BOB1).remove(0),
        requests_to(&sent, BOB2).remove(0),
    );
    s.feed(reply_from(&b1, 100, "x"), Sim::udp_source(BOB1));
    s.feed(reply_from(&b1, 180, "b1"), Sim::udp_source(BOB1));
    s.feed(reply_from(&b2, 180, "b2"), Sim::udp_source(BOB2));
    s.feed(reply_from(&b1, 200, "b1"), Sim::udp_source(BOB1));
    let out = s.sent();
    let cancel = requests_to(&out, BOB2).remove(0);
    s.feed(reply_from(&cancel, 200, "b2"), Sim::udp_source(BOB2));
    s.feed(reply_from(&b2, 487, "b2"), Sim::udp_source(BOB2));
    assert_eq!(
        log(&rec),
        ["invite call-1@alice", "180 b1", "180 b2", "200 b1"],
        "100 and the absorbed 487 are not reported"
    );
    // The BYE in the dialog (routed by the dialog step): reported once forwarded.
    let bye = parse(&format!(
        "BYE sip:bob@198.51.100.21 SIP/2.0\n\
         Via: SIP/2.0/UDP {ALICE};branch=z9hG4bKbye1\n\
         From: <sip:alice@example.com>;tag=at\nTo: <sip:bob@example.com>;tag=b1\n\
         Call-ID: call-1@alice\nCSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n"
    ));
    s.decide_observed(
        bye,
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![target("sip:bob@198.51.100.21", BOB1, 1000)]),
        &rec,
    );
    assert_eq!(log(&rec), ["bye call-1@alice"]);
    // A rejected call: the final error is reported; an INVITE the chain answers is not.
    let inv2 = String::from_utf8(invite("").to_bytes().to_vec())
        .unwrap()
        .replace("\r\n", "\n")
        .replace("call-1@alice", "call-2@alice")
        .replace("z9hG4bKa1", "z9hG4bKa2");
    let sent = s.decide_observed(
        parse(&inv2),
        Sim::udp_source(ALICE),
        Outcome::Forward(vec![target("sip:bob@198.51.100.21", BOB1, 1000)]),
        &rec,
    );
    let b = requests_to(&sent, BOB1).remove(0);
    s.feed(reply_from(&b, 486, "busy"), Sim::udp_source(BOB1));
    assert_eq!(responses(&s.sent()), [486]);
    assert_eq!(log(&rec), ["invite call-2@alice", "486 busy"]);
    let inv3 = inv2
        .replace("call-2@alice", "call-3@alice")
        .replace("z9hG4bKa2", "z9hG4bKa3");
    s.decide_observed(
        parse(&inv3),
        Sim::udp_source(ALICE),
        Outcome::Respond(Reply::new(480)),
        &rec,
    );
    assert!(
        log(&rec).is_empty(),
        "an INVITE the chain answered is not a dialog"
    );
}
