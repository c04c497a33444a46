//! The `dialog` and `router` chain steps against in-memory stores.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use confab_core::chain::{
    Addressed, FlowId, Hop, Identity, IdentityProof, Outcome, Reply, RequestContext,
    RequestHandler, Source, Target,
};
use confab_core::{
    Address, Binding, BindingPlan, FlowInfo, Ha1Set, ImportOutcome, ImportRow, NewUser, Page,
    PageRequest, PhoneNumber, QValue, RegistrationStore, Role, SipTransport, StoreError, Timestamp,
    UpdateOutcome, User, UserChanges, UserStore,
};
use confab_proxy::{DialogRouter, FlowResolver, Gruu, GruuResolver, Router, uses_flow};
use confab_sip::{Limits, Message};

// ---- fakes ----------------------------------------------------------------------------------

#[derive(Default)]
struct Regs {
    map: Mutex<HashMap<Address, Vec<Binding>>>,
    down: Mutex<bool>,
}

fn nope() -> StoreError {
    StoreError::unavailable("not in this fake")
}

#[async_trait]
impl RegistrationStore for Regs {
    async fn update_bindings(
        &self,
        _: &Address,
        _: BindingPlan,
    ) -> Result<UpdateOutcome, StoreError> {
        Err(nope())
    }
    async fn lookup(&self, aor: &Address, now: Timestamp) -> Result<Vec<Binding>, StoreError> {
        if *self.down.lock().unwrap() {
            return Err(StoreError::unavailable("down"));
        }
        Ok(self
            .map
            .lock()
            .unwrap()
            .get(aor)
            .map(|v| v.iter().filter(|b| !b.is_expired(now)).cloned().collect())
            .unwrap_or_default())
    }
    async fn lookup_temp_gruu(&self, _: u64, _: Timestamp) -> Result<Option<Binding>, StoreError> {
        Err(nope())
    }
    async fn list_bindings(&self, _: PageRequest) -> Result<Page<Binding>, StoreError> {
        Err(nope())
    }
    async fn remove_expired(&self, _: Timestamp, _: u32) -> Result<Vec<Binding>, StoreError> {
        Err(nope())
    }
    async fn remove_flow(&self, _: &str, _: &str, _: bool) -> Result<Vec<Binding>, StoreError> {
        Err(nope())
    }
    async fn count_bindings(&self) -> Result<u64, StoreError> {
        Err(nope())
    }
}

#[derive(Default)]
struct Users(Vec<Address>);

#[async_trait]
impl UserStore for Users {
    async fn add_user(&self, _: NewUser) -> Result<User, StoreError> {
        Err(nope())
    }
    async fn modify_user(&self, _: &Address, _: UserChanges) -> Result<User, StoreError> {
        Err(nope())
    }
    async fn set_password(&self, _: &Address, _: Ha1Set) -> Result<(), StoreError> {
        Err(nope())
    }
    async fn remove_user(&self, _: &Address) -> Result<(), StoreError> {
        Err(nope())
    }
    async fn get_user(&self, a: &Address) -> Result<Option<User>, StoreError> {
        Ok(self.0.contains(a).then(|| User {
            address: a.clone(),
            display_name: None,
            phone: None,
            role: Role::User,
            credentials: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }))
    }
    async fn find_user_by_phone(&self, _: &PhoneNumber) -> Result<Option<User>, StoreError> {
        Err(nope())
    }
    async fn list_users(&self, _: PageRequest) -> Result<Page<User>, StoreError> {
        Err(nope())
    }
    async fn count_users(&self) -> Result<u64, StoreError> {
        Err(nope())
    }
    async fn import_users(
        &self,
        _: Vec<ImportRow>,
    ) -> Result<Vec<Result<ImportOutcome, StoreError>>, StoreError> {
        Err(nope())
    }
}

/// This node holds flows of node "n1"; 198.51.100.0/24 is trusted.
#[derive(Debug)]
struct Flows;

impl FlowResolver for Flows {
    fn hop_for(&self, f: &FlowInfo) -> Option<Hop> {
        (f.node == "n1").then(|| {
            Hop::over_flow(
                f.transport,
                f.source,
                FlowId::Datagram {
                    listener: 0,
                    remote: f.source,
                },
            )
        })
    }
    fn is_trusted(&self, hop: &Hop) -> bool {
        hop.remote.to_string().starts_with("198.51.100.")
    }
}

#[derive(Debug)]
struct OneGruu(Binding);

#[async_trait]
impl GruuResolver for OneGruu {
    async fn resolve(&self, uri: &str, _: Timestamp) -> Result<Gruu, StoreError> {
        Ok(if uri.contains("tgruu.good") {
            Gruu::Binding(Box::new(self.0.clone()))
        } else if uri.contains("tgruu.") {
            Gruu::Unknown
        } else {
            Gruu::NotGruu
        })
    }
}

// ---- helpers ----------------------------------------------------------------------------------

const NOW_MS: u64 = 1_700_000_000_000;

fn binding(aor: &str, contact: &str, transport: SipTransport, source: &str) -> Binding {
    Binding {
        aor: Address::parse(aor).unwrap(),
        contact: contact.into(),
        params: String::new(),
        q: None,
        expires_at: Timestamp(NOW_MS as i64 + 3_600_000),
        call_id: "c".into(),
        cseq: 1,
        instance: None,
        reg_id: None,
        flow: FlowInfo {
            token: "t".into(),
            transport,
            source: source.parse().unwrap(),
            node: "n1".into(),
        },
        path: vec![],
        user_agent: None,
        registered_at: Timestamp(0),
        updated_at: Timestamp(0),
        temp_gruu: None,
    }
}

fn msg(method: &str, ruri: &str, to_tag: bool) -> Message {
    let tag = if to_tag { ";tag=tt" } else { "" };
    let text = format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.1;branch=z9hG4bK1\r\n\
         From: <sip:alice@example.com>;tag=ft\r\nTo: <sip:bob@example.com>{tag}\r\n\
         Call-ID: c1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    confab_sip::parse_datagram(text.into(), &Limits::DEFAULT).unwrap()
}

fn ctx(method: &str, ruri: &str, addressed: Addressed) -> RequestContext {
    let remote: SocketAddr = "203.0.113.1:5060".parse().unwrap();
    let source = Source {
        hop: Hop::over_flow(
            SipTransport::Udp,
            remote,
            FlowId::Datagram {
                listener: 0,
                remote,
            },
        ),
        local: "192.0.2.1:5060".parse().unwrap(),
        tls_names: None,
    };
    RequestContext::new(msg(method, ruri, false), source, addressed, NOW_MS)
}

fn local(a: &str) -> Addressed {
    Addressed::LocalUser(Address::parse(a).unwrap())
}

struct Fixture {
    router: Router,
    regs: Arc<Regs>,
}

fn fixture(bindings: Vec<Binding>) -> Fixture {
    let regs = Arc::new(Regs::default());
    for b in bindings {
        regs.map
            .lock()
            .unwrap()
            .entry(b.aor.clone())
            .or_default()
            .push(b);
    }
    let users = Arc::new(Users(vec![
        Address::parse("bob@example.com").unwrap(),
        Address::parse("carol@example.com").unwrap(),
    ]));
    Fixture {
        router: Router::new(regs.clone(), users, Arc::new(Flows)),
        regs,
    }
}

fn run(h: &dyn RequestHandler, c: &mut RequestContext) -> Outcome {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(h.handle(c))
}

#[track_caller]
fn check(f: &Fixture, mut c: RequestContext, want: Outcome) {
    assert_eq!(run(&f.router, &mut c), want);
}

// ---- tests --------------------------------------------------------------------------------------

#[test]
fn register_options_and_other_domains() {
    let f = fixture(vec![]);
    check(
        &f,
        ctx("REGISTER", "sip:example.com", Addressed::Server),
        Outcome::Register,
    );
    check(
        &f,
        ctx("REGISTER", "sip:elsewhere.example", Addressed::Other),
        Outcome::Respond(Reply::with_reason(403, "Relaying denied")),
    );
    let Outcome::Respond(r) = run(
        &f.router,
        &mut ctx("OPTIONS", "sip:example.com", Addressed::Server),
    ) else {
        panic!("OPTIONS answered")
    };
    assert_eq!(r.status, 200);
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Allow", "Accept", "Supported"]);
    let Outcome::Respond(r) = run(
        &f.router,
        &mut ctx("INVITE", "sip:example.com", Addressed::Server),
    ) else {
        panic!("INVITE to the server answered")
    };
    assert_eq!((r.status, r.headers[0].0.as_str()), (405, "Allow"));
    check(
        &f,
        ctx("INVITE", "sip:dave@elsewhere.example", Addressed::Other),
        Outcome::Respond(Reply::with_reason(403, "Relaying denied")),
    );
    check(
        &f,
        ctx("INVITE", "tel:+15551234", Addressed::Other),
        Outcome::Respond(Reply::with_reason(404, "No route to this number")),
    );
    // A pre-loaded route from an authenticated user is followed.
    let mut c = ctx("INVITE", "sip:dave@elsewhere.example", Addressed::Other);
    c.routed = true;
    c.identity = Some(Identity {
        address: Address::parse("alice@example.com").unwrap(),
        proof: IdentityProof::Digest,
    });
    check(
        &f,
        c,
        Outcome::Forward(vec![Target::new("sip:dave@elsewhere.example")]),
    );
}

#[test]
fn local_users_404_480_and_forks() {
    let mut pub_udp = binding(
        "bob@example.com",
        "sip:bob@203.0.113.7:5060",
        SipTransport::Udp,
        "203.0.113.7:5060",
    );
    pub_udp.q = QValue::from_thousandths(500);
    pub_udp.path = vec!["<sip:edge.example.net;lr>".into()];
    let natted = binding(
        "bob@example.com",
        "sip:bob@10.0.0.5:5060",
        SipTransport::Udp,
        "203.0.113.8:40000",
    );
    let tcp = binding(
        "bob@example.com",
        "sip:bob@10.0.0.6:5060;transport=tcp",
        SipTransport::Tcp,
        "198.51.100.9:50000",
    );
    let f = fixture(vec![pub_udp, natted, tcp]);
    let Outcome::Forward(ts) = run(
        &f.router,
        &mut ctx("INVITE", "sip:bob@example.com", local("bob@example.com")),
    ) else {
        panic!("forward expected")
    };
    assert_eq!(ts.len(), 3);
    // Public UDP contact: sent to the Contact, with its Path and q.
    assert_eq!(ts[0].uri, "sip:bob@203.0.113.7:5060");
    assert_eq!(ts[0].hop, None);
    assert_eq!(ts[0].route, ["<sip:edge.example.net;lr>"]);
    assert_eq!(ts[0].q, 500);
    // Private contact behind NAT: over the REGISTER's flow.
    assert_eq!(
        ts[1].hop.as_ref().unwrap().remote,
        "203.0.113.8:40000".parse().unwrap()
    );
    assert_eq!(ts[1].q, 1000);
    // TCP: over the connection; a trusted next hop keeps PAI.
    assert_eq!(ts[2].hop.as_ref().unwrap().transport, SipTransport::Tcp);
    assert!(ts[2].trusted && !ts[1].trusted);

    check(
        &f,
        ctx(
            "MESSAGE",
            "sip:carol@example.com",
            local("carol@example.com"),
        ),
        Outcome::Respond(Reply::new(480)),
    );
    check(
        &f,
        ctx(
            "MESSAGE",
            "sip:nobody@example.com",
            local("nobody@example.com"),
        ),
        Outcome::Respond(Reply::new(404)),
    );
    check(
        &f,
        ctx("MESSAGE", "sip:b%40d@example.com", Addressed::LocalInvalid),
        Outcome::Respond(Reply::new(404)),
    );
    *f.regs.down.lock().unwrap() = true;
    let Outcome::Respond(r) = run(
        &f.router,
        &mut ctx("INVITE", "sip:bob@example.com", local("bob@example.com")),
    ) else {
        panic!("503 expected")
    };
    assert_eq!((r.status, r.headers[0].0.as_str()), (503, "Retry-After"));
}

#[test]
fn gruus_reach_one_binding() {
    let mut a = binding(
        "bob@example.com",
        "sip:bob@203.0.113.7",
        SipTransport::Udp,
        "203.0.113.7:5060",
    );
    a.instance = Some("<urn:uuid:aaaa>".into());
    let mut b = binding(
        "bob@example.com",
        "sip:bob@203.0.113.9",
        SipTransport::Udp,
        "203.0.113.9:5060",
    );
    b.instance = Some("<urn:uuid:bbbb>".into());
    // Without a resolver: public GRUUs by instance.
    let f = fixture(vec![a.clone(), b.clone()]);
    let Outcome::Forward(ts) = run(
        &f.router,
        &mut ctx(
            "INVITE",
            "sip:bob@example.com;gr=urn:uuid:bbbb",
            local("bob@example.com"),
        ),
    ) else {
        panic!("forward expected")
    };
    assert_eq!(
        ts.iter().map(|t| t.uri.as_str()).collect::<Vec<_>>(),
        ["sip:bob@203.0.113.9"]
    );
    // With the registrar's resolver: temporary GRUUs too.
    let f = Fixture {
        router: fixture(vec![a.clone(), b])
            .router
            .with_gruu(Arc::new(OneGruu(a))),
        regs: Arc::new(Regs::default()),
    };
    let Outcome::Forward(ts) = run(
        &f.router,
        &mut ctx(
            "INVITE",
            "sip:tgruu.good@example.com;gr",
            local("tgruu.good@example.com"),
        ),
    ) else {
        panic!("forward expected")
    };
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].uri, "sip:bob@203.0.113.7");
    check(
        &f,
        ctx(
            "INVITE",
            "sip:tgruu.gone@example.com;gr",
            local("tgruu.gone@example.com"),
        ),
        Outcome::Respond(Reply::new(480)),
    );
}

#[test]
fn dialog_step_forwards_only_in_dialog_requests_on_our_route() {
    let d = DialogRouter::new(Arc::new(Flows));
    let mut c = ctx("BYE", "sip:alice@10.0.0.1:5060", Addressed::Other);
    assert_eq!(run(&d, &mut c), Outcome::Continue, "not in a dialog");
    let remote: SocketAddr = "198.51.100.3:5060".parse().unwrap();
    let back = Hop::over_flow(
        SipTransport::Udp,
        remote,
        FlowId::Datagram {
            listener: 0,
            remote,
        },
    );
    let mut c = RequestContext::new(
        msg("BYE", "sip:alice@10.0.0.1:5060", true),
        ctx("BYE", "x:y", Addressed::Other).source,
        Addressed::Other,
        NOW_MS,
    );
    assert_eq!(
        run(&d, &mut c),
        Outcome::Continue,
        "in a dialog but not on our route"
    );
    c.own_route = true;
    c.route_flow = Some(back.clone());
    let mut want = Target::new("sip:alice@10.0.0.1:5060");
    want.hop = Some(back);
    want.trusted = true;
    assert_eq!(run(&d, &mut c), Outcome::Forward(vec![want]));
}

#[test]
fn flow_or_contact() {
    let case = |contact: &str, t: SipTransport, src: &str, outbound: bool| {
        let mut b = binding("bob@example.com", contact, t, src);
        if outbound {
            b.instance = Some("<urn:uuid:1>".into());
            b.reg_id = Some(1);
        }
        uses_flow(&b)
    };
    use SipTransport::*;
    assert!(!case(
        "sip:b@203.0.113.1:5060",
        Udp,
        "203.0.113.1:5060",
        false
    ));
    assert!(!case("sip:b@127.0.0.1:6000", Udp, "127.0.0.1:5060", false));
    assert!(case(
        "sip:b@192.168.1.2:5060",
        Udp,
        "203.0.113.1:4000",
        false
    ));
    assert!(!case(
        "sip:b@192.168.1.2:5060",
        Udp,
        "192.168.1.2:5060",
        false
    ));
    assert!(case("sip:b@100.64.0.9", Udp, "203.0.113.1:4000", false));
    assert!(case("sip:b@[fd00::1]", Udp, "[2001:db8::1]:5060", false));
    assert!(case(
        "sip:b@abc.invalid;transport=ws",
        Ws,
        "203.0.113.1:4000",
        false
    ));
    assert!(case(
        "sip:b@203.0.113.1:5060",
        Tcp,
        "203.0.113.1:5060",
        false
    ));
    assert!(case(
        "sip:b@203.0.113.1:5060",
        Udp,
        "203.0.113.1:5060",
        true
    ));
}

/// Bindings an earlier step looked up for the same AOR (`RequestContext::located`) are used
/// without a second lookup; ones for another AOR are ignored.
#[test]
fn bindings_located_earlier_in_the_chain_are_reused() {
    let bob = binding(
        "bob@example.com",
        "sip:bob@203.0.113.7:5060",
        SipTransport::Udp,
        "203.0.113.7:5060",
    );
    let f = fixture(vec![bob.clone()]);
    // The store is down: only the located bindings can route the request.
    *f.regs.down.lock().unwrap() = true;
    let mut c = ctx("MESSAGE", "sip:bob@example.com", local("bob@example.com"));
    c.located = Some((bob.aor.clone(), vec![bob.clone()]));
    let Outcome::Forward(ts) = run(&f.router, &mut c) else {
        panic!("not forwarded")
    };
    assert_eq!(ts.len(), 1);
    assert!(c.located.is_none(), "taken");
    // Located for carol, routing bob: asks the store (down: 503).
    let mut c = ctx("MESSAGE", "sip:bob@example.com", local("bob@example.com"));
    c.located = Some((Address::parse("carol@example.com").unwrap(), vec![bob]));
    let Outcome::Respond(r) = run(&f.router, &mut c) else {
        panic!("not answered")
    };
    assert_eq!(r.status, 503);
}
