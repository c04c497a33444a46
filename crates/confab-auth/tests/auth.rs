//! The `auth` chain step against a fake user store, with credentials computed by the
//! client side of `confab-digest`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use confab_auth::{AuthConfig, AuthHandler, Authenticator};
use confab_core::chain::{
    Addressed, FlowId, Hop, IdentityProof, Outcome, Reply, RequestContext, RequestHandler, Source,
};
use confab_core::{
    Address, Ha1Set, ImportOutcome, ImportRow, NewUser, Page, PageRequest, PhoneNumber, Role,
    SipTransport, StoreError, Timestamp, User, UserChanges, UserStore,
};
use confab_digest::{Answer, Challenge, answer_challenge};
use confab_sip::{HeaderName, Limits, Message};

// ---- a user store in memory --------------------------------------------------------------

#[derive(Default)]
struct Users {
    map: Mutex<HashMap<Address, User>>,
    down: Mutex<bool>,
}

impl Users {
    fn with(accounts: &[(&str, &str)]) -> Arc<Users> {
        let u = Users::default();
        for (addr, pw) in accounts {
            let a = Address::parse(addr).unwrap();
            let ha1 = Ha1Set::compute(a.user(), a.domain(), pw);
            u.map.lock().unwrap().insert(
                a.clone(),
                User {
                    address: a,
                    display_name: None,
                    phone: None,
                    role: Role::User,
                    credentials: Some(ha1),
                    created_at: Timestamp(0),
                    updated_at: Timestamp(0),
                },
            );
        }
        Arc::new(u)
    }
}

fn unsupported() -> StoreError {
    StoreError::unavailable("not in this fake")
}

#[async_trait]
impl UserStore for Users {
    async fn add_user(&self, _: NewUser) -> Result<User, StoreError> {
        Err(unsupported())
    }
    async fn modify_user(&self, _: &Address, _: UserChanges) -> Result<User, StoreError> {
        Err(unsupported())
    }
    async fn set_password(&self, _: &Address, _: Ha1Set) -> Result<(), StoreError> {
        Err(unsupported())
    }
    async fn remove_user(&self, _: &Address) -> Result<(), StoreError> {
        Err(unsupported())
    }
    async fn get_user(&self, a: &Address) -> Result<Option<User>, StoreError> {
        if *self.down.lock().unwrap() {
            return Err(StoreError::unavailable("disk on fire"));
        }
        Ok(self.map.lock().unwrap().get(a).cloned())
    }
    async fn find_user_by_phone(&self, _: &PhoneNumber) -> Result<Option<User>, StoreError> {
        Err(unsupported())
    }
    async fn list_users(&self, _: PageRequest) -> Result<Page<User>, StoreError> {
        Err(unsupported())
    }
    async fn count_users(&self) -> Result<u64, StoreError> {
        Err(unsupported())
    }
    async fn import_users(
        &self,
        _: Vec<ImportRow>,
    ) -> Result<Vec<Result<ImportOutcome, StoreError>>, StoreError> {
        Err(unsupported())
    }
}

// ---- helpers ------------------------------------------------------------------------------

const T0_MS: u64 = 1_700_000_000_000;

struct Fixture {
    handler: AuthHandler,
    users: Arc<Users>,
}

fn fixture(config: &str) -> Fixture {
    fixture_started_at(config, T0_MS / 1000 - 1000)
}

fn fixture_started_at(config: &str, start_s: u64) -> Fixture {
    let cfg: AuthConfig = toml::from_str(config).unwrap();
    let auth = Authenticator::new(
        &cfg,
        &["example.com".into(), "other.example".into()],
        "node-1",
        [7; 32],
        [9; 16],
        start_s,
    )
    .unwrap();
    let users = Users::with(&[
        ("alice@example.com", "secret-a"),
        ("bob@example.com", "secret-b"),
    ]);
    Fixture {
        handler: AuthHandler::new(Arc::new(auth), users.clone()),
        users,
    }
}

fn request(method: &str, ruri: &str, from: &str, to: &str, extra: &[String]) -> Message {
    let mut text = format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK77\r\n\
         From: <{from}>;tag=f1\r\nTo: <{to}>\r\nCall-ID: call-1\r\nCSeq: 1 {method}\r\n\
         Max-Forwards: 70\r\n"
    );
    for h in extra {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    confab_sip::parse_datagram(text.into(), &Limits::DEFAULT).unwrap()
}

fn ctx(msg: Message, from_ip: &str, addressed: Addressed, now_ms: u64) -> RequestContext {
    let remote: SocketAddr = format!("{from_ip}:5060").parse().unwrap();
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
    RequestContext::new(msg, source, addressed, now_ms)
}

fn run(f: &Fixture, c: &mut RequestContext) -> Outcome {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f.handler.handle(c))
}

fn reply(o: Outcome) -> Reply {
    match o {
        Outcome::Respond(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// Answers the challenge header at `index` of `r` for `user`/`pw`, as header `name`.
fn answer(
    r: &Reply,
    index: usize,
    user: &str,
    pw: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    let ch = Challenge::parse(&r.headers[index].1).unwrap();
    let creds = answer_challenge(
        &ch,
        &Answer {
            username: user,
            password: pw,
            method,
            uri,
            cnonce: "c0ffee",
            nc,
            body: b"",
        },
    )
    .unwrap();
    creds.to_string()
}

fn header_names(r: &Reply) -> Vec<&str> {
    r.headers.iter().map(|(n, _)| n.as_str()).collect()
}

/// A challenge with its nonce blanked, to compare two challenges.
fn shape(r: &Reply) -> (u16, Vec<String>) {
    let hs = r
        .headers
        .iter()
        .map(|(n, v)| {
            let mut c = Challenge::parse(v).unwrap();
            c.nonce = "".into();
            format!("{n}: {c}")
        })
        .collect();
    (r.status, hs)
}

const REG_URI: &str = "sip:example.com";

fn register(extra: &[String]) -> Message {
    request(
        "REGISTER",
        REG_URI,
        "sip:alice@example.com",
        "sip:alice@example.com",
        extra,
    )
}

// ---- tests ----------------------------------------------------------------------------------

#[test]
fn register_challenge_lists_algorithms_in_configured_order() {
    for (cfg, want) in [
        ("", vec!["SHA-256", "MD5"]),
        (r#"algorithms = ["MD5", "SHA-256"]"#, vec!["MD5", "SHA-256"]),
        (
            r#"algorithms = ["SHA-512-256", "SHA-256", "MD5"]"#,
            vec!["SHA-512-256", "SHA-256", "MD5"],
        ),
    ] {
        let f = fixture(cfg);
        let mut c = ctx(register(&[]), "192.0.2.10", Addressed::Server, T0_MS);
        let r = reply(run(&f, &mut c));
        assert_eq!(r.status, 401, "{cfg}");
        assert!(header_names(&r).iter().all(|n| *n == "WWW-Authenticate"));
        let algs: Vec<String> = r
            .headers
            .iter()
            .map(|(_, v)| {
                let c = Challenge::parse(v).unwrap();
                assert_eq!(c.realm, "example.com");
                assert!(c.qop.auth && !c.stale);
                c.effective_algorithm().to_string()
            })
            .collect();
        assert_eq!(algs, want, "{cfg}");
        // One nonce for all algorithms.
        let nonces: Vec<String> = r
            .headers
            .iter()
            .map(|(_, v)| Challenge::parse(v).unwrap().nonce.into_owned())
            .collect();
        assert!(nonces.windows(2).all(|w| w[0] == w[1]));
    }
}

#[test]
fn register_with_each_algorithm_authenticates() {
    let f = fixture(r#"algorithms = ["SHA-512-256", "SHA-256", "MD5"]"#);
    for index in 0..3 {
        let mut c = ctx(register(&[]), "192.0.2.10", Addressed::Server, T0_MS);
        let ch = reply(run(&f, &mut c));
        let auth = answer(&ch, index, "alice", "secret-a", "REGISTER", REG_URI, 1);
        let mut c = ctx(
            register(&[format!("Authorization: {auth}")]),
            "192.0.2.10",
            Addressed::Server,
            T0_MS + 10,
        );
        assert_eq!(run(&f, &mut c), Outcome::Continue, "algorithm #{index}");
        let id = c.identity.expect("identity set");
        assert_eq!(id.address.as_str(), "alice@example.com");
        assert_eq!(id.proof, IdentityProof::Digest);
        assert_eq!(
            c.asserted_identity.as_deref(),
            Some("<sip:alice@example.com>")
        );
    }
}

#[test]
fn unknown_account_and_wrong_password_get_the_same_challenge() {
    let f = fixture("");
    let mut c = ctx(register(&[]), "192.0.2.10", Addressed::Server, T0_MS);
    let ch = reply(run(&f, &mut c));
    let mut outcomes = Vec::new();
    for (user, pw) in [
        ("alice", "wrong"),
        ("nobody", "whatever"),
        ("alice@example.com", "wrong"),
    ] {
        let auth = answer(&ch, 0, user, pw, "REGISTER", REG_URI, 1);
        let mut c = ctx(
            register(&[format!("Authorization: {auth}")]),
            "192.0.2.10",
            Addressed::Server,
            T0_MS + 10,
        );
        let r = reply(run(&f, &mut c));
        assert!(c.identity.is_none());
        outcomes.push(shape(&r));
    }
    assert_eq!(outcomes[0].0, 401);
    assert!(outcomes.windows(2).all(|w| w[0] == w[1]), "{outcomes:#?}");
}

#[test]
fn replayed_nonce_count_is_refused() {
    let f = fixture("");
    let mut c = ctx(register(&[]), "192.0.2.10", Addressed::Server, T0_MS);
    let ch = reply(run(&f, &mut c));
    let auth = answer(&ch, 1, "alice", "secret-a", "REGISTER", REG_URI, 1);
    let mk = || {
        ctx(
            register(&[format!("Authorization: {auth}")]),
            "192.0.2.10",
            Addressed::Server,
            T0_MS + 10,
        )
    };
    assert_eq!(run(&f, &mut mk()), Outcome::Continue);
    let r = reply(run(&f, &mut mk()));
    assert_eq!(r.status, 401);
    assert!(!Challenge::parse(&r.headers[0].1).unwrap().stale);
    // The next count with the same nonce is fine.
    let auth2 = answer(&ch, 1, "alice", "secret-a", "REGISTER", REG_URI, 2);
    let mut c = ctx(
        register(&[format!("Authorization: {auth2}")]),
        "192.0.2.10",
        Addressed::Server,
        T0_MS + 20,
    );
    assert_eq!(run(&f, &mut c), Outcome::Continue);
}

#[test]
fn expired_nonce_is_stale_only_with_the_right_password() {
    let f = fixture("nonce_ttl_s = 30");
    let mut c = ctx(register(&[]), "192.0.2.10", Addressed::Server, T0_MS);
    let ch = reply(run(&f, &mut c));
    let later = T0_MS + 31_000 + 999;
    for (pw, want_stale) in [("secret-a", true), ("wrong", false)] {
        let auth = answer(&ch, 0, "alice", pw, "REGISTER", REG_URI, 1);
        let mut c = ctx(
            register(&[format!("Authorization: {auth}")]),
            "192.0.2.10",
            Addressed::Server,
            later,
        );
        let r = reply(run(&f, &mut c));
        assert_eq!(r.status, 401);
        assert_eq!(
            Challenge::parse(&r.headers[0].1).unwrap().stale,
            want_stale,
            "{pw}"
        );
    }
}

#[test]
fn a_nonce_minted_in_the_first_second_works_and_one_from_a_previous_run_is_stale() {
    let cfg = r#"nonce_secret = "00112233445566778899aabbccddeeff""#;
    let start_s = T0_MS / 1000;
    // The previous run, 10 s earlier, with the same key.
    let old = fixture_started_at(cfg, start_s - 10);
    let mut c = ctx(
        register(&[]),
        "192.0.2.10",
        Addressed::Server,
        T0_MS - 10_000,
    );
    let old_ch = reply(run(&old, &mut c));
    // This run starts now and challenges at once.
    let f = fixture_started_at(cfg, start_s);
    let mut c = ctx(register(&[]), "192.0.2.10", Addressed::Server, T0_MS);
    let ch = reply(run(&f, &mut c));
    for (challenge, want_stale) in [(&ch, None), (&old_ch, Some(true))] {
        let auth = answer(challenge, 0, "alice", "secret-a", "REGISTER", REG_URI, 1);
        let mut c = ctx(
            register(&[format!("Authorization: {auth}")]),
            "192.0.2.10",
            Addressed::Server,
            T0_MS + 500,
        );
        match (run(&f, &mut c), want_stale) {
            (Outcome::Continue, None) => {}
            (Outcome::Respond(r), Some(stale)) => {
                assert_eq!(r.status, 401);
                assert_eq!(Challenge::parse(&r.headers[0].1).unwrap().stale, stale);
            }
            (other, want) => panic!("{other:?}, wanted stale={want:?}"),
        }
    }
}

#[test]
fn nonce_from_another_key_gets_a_fresh_challenge() {
    let f = fixture("");
    let other = fixture(r#"nonce_secret = "00112233445566778899aabbccddeeff""#);
    let mut c = ctx(register(&[]), "192.0.2.10", Addressed::Server, T0_MS);
    let ch = reply(run(&other, &mut c));
    let auth = answer(&ch, 0, "alice", "secret-a", "REGISTER", REG_URI, 1);
    let mut c = ctx(
        register(&[format!("Authorization: {auth}")]),
        "192.0.2.10",
        Addressed::Server,
        T0_MS,
    );
    let r = reply(run(&f, &mut c));
    assert_eq!(r.status, 401);
    assert!(!Challenge::parse(&r.headers[0].1).unwrap().stale);
}

#[test]
fn a_pool_shares_nonces_through_the_configured_key() {
    let cfg = r#"nonce_secret = "00112233445566778899aabbccddeeff""#;
    let (a, b) = (fixture(cfg), fixture(cfg));
    let mut c = ctx(register(&[]), "192.0.2.10", Addressed::Server, T0_MS);
    let ch = reply(run(&a, &mut c));
    let auth = answer(&ch, 0, "alice", "secret-a", "REGISTER", REG_URI, 1);
    let mut c = ctx(
        register(&[format!("Authorization: {auth}")]),
        "192.0.2.10",
        Addressed::Server,
        T0_MS,
    );
    assert_eq!(run(&b, &mut c), Outcome::Continue);
}

fn message(from: &str, extra: &[String]) -> Message {
    request(
        "MESSAGE",
        "sip:bob@example.com",
        from,
        "sip:bob@example.com",
        extra,
    )
}

#[test]
fn proxied_request_gets_407_and_from_must_match() {
    let f = fixture("");
    let addressed = Addressed::LocalUser(Address::parse("bob@example.com").unwrap());
    let mut c = ctx(
        message("sip:alice@example.com", &[]),
        "192.0.2.10",
        addressed.clone(),
        T0_MS,
    );
    let ch = reply(run(&f, &mut c));
    assert_eq!(ch.status, 407);
    assert!(header_names(&ch).iter().all(|n| *n == "Proxy-Authenticate"));
    let uri = "sip:bob@example.com";
    let good = answer(&ch, 0, "alice", "secret-a", "MESSAGE", uri, 1);
    let mut c = ctx(
        message(
            "sip:alice@example.com",
            &[format!("Proxy-Authorization: {good}")],
        ),
        "192.0.2.10",
        addressed.clone(),
        T0_MS,
    );
    assert_eq!(run(&f, &mut c), Outcome::Continue);
    // bob's credentials on a request From alice: 403.
    let bobs = answer(&ch, 0, "bob", "secret-b", "MESSAGE", uri, 2);
    let mut c = ctx(
        message(
            "sip:alice@example.com",
            &[format!("Proxy-Authorization: {bobs}")],
        ),
        "192.0.2.10",
        addressed,
        T0_MS,
    );
    let r = reply(run(&f, &mut c));
    assert_eq!(
        (r.status, r.reason.as_deref()),
        (403, Some("From does not match the authenticated identity"))
    );
}

#[test]
fn options_to_the_server_gets_401() {
    let f = fixture("");
    let m = request(
        "OPTIONS",
        "sip:example.com",
        "sip:alice@example.com",
        "sip:example.com",
        &[],
    );
    let mut c = ctx(m, "192.0.2.10", Addressed::Server, T0_MS);
    assert_eq!(reply(run(&f, &mut c)).status, 401);
}

#[test]
fn foreign_sender_is_challenged_like_an_unknown_user() {
    // No federation peer in between: a From of another domain proves nothing, and letting
    // it through would tell known users (480/forwarded) from unknown ones (404).
    let f = fixture("");
    let answers: Vec<Outcome> = ["bob@example.com", "nobody@example.com"]
        .into_iter()
        .map(|target| {
            let m = message(
                "sip:carol@elsewhere.example",
                &["P-Asserted-Identity: <sip:alice@example.com>".into()],
            );
            let mut c = ctx(
                m,
                "198.51.100.1",
                Addressed::LocalUser(Address::parse(target).unwrap()),
                T0_MS,
            );
            let out = run(&f, &mut c);
            assert!(c.identity.is_none() && !c.trusted);
            out
        })
        .collect();
    for a in &answers {
        let r = reply(a.clone());
        assert_eq!(r.status, 407, "{r:?}");
        let c = Challenge::parse(&r.headers[0].1).unwrap();
        assert_eq!(c.realm, "example.com", "the default realm");
    }
}

#[test]
fn foreign_sender_passes_unauthenticated_when_allowed_without_its_asserted_identity() {
    let f = fixture("allow_foreign_unauthenticated = true");
    let m = message(
        "sip:carol@elsewhere.example",
        &["P-Asserted-Identity: <sip:alice@example.com>".into()],
    );
    let mut c = ctx(
        m,
        "198.51.100.1",
        Addressed::LocalUser(Address::parse("bob@example.com").unwrap()),
        T0_MS,
    );
    assert_eq!(run(&f, &mut c), Outcome::Continue);
    assert!(c.identity.is_none() && !c.trusted);
    assert!(!c.request.contains(HeaderName::PAssertedIdentity));
}

#[test]
fn trusted_peer_is_exempt_and_its_assertion_is_believed() {
    let f = fixture(r#"trusted_peers = ["198.51.100.0/24", "cert:gw.example.net"]"#);
    let m = message(
        "sip:alice@example.com",
        &["P-Asserted-Identity: \"Alice\" <sip:alice@example.com>".into()],
    );
    let mut c = ctx(m, "198.51.100.7", Addressed::Server, T0_MS);
    assert_eq!(run(&f, &mut c), Outcome::Continue);
    assert!(c.trusted);
    let id = c.identity.expect("asserted identity");
    assert_eq!(
        (id.address.as_str(), id.proof),
        ("alice@example.com", IdentityProof::Asserted)
    );
    assert!(c.request.contains(HeaderName::PAssertedIdentity));
    // By certificate name, from any address.
    let mut c = ctx(
        message("sip:alice@example.com", &[]),
        "203.0.113.5",
        Addressed::Server,
        T0_MS,
    );
    c.source.tls_names = Some(Arc::from(vec!["GW.example.net".to_owned()]));
    assert_eq!(run(&f, &mut c), Outcome::Continue);
    assert!(c.trusted);
    // An untrusted local sender's PAI is removed even after it authenticates.
    let mut c = ctx(
        message(
            "sip:alice@example.com",
            &["P-Asserted-Identity: <sip:boss@example.com>".into()],
        ),
        "203.0.113.5",
        Addressed::Server,
        T0_MS,
    );
    let ch = reply(run(&f, &mut c));
    let good = answer(
        &ch,
        0,
        "alice",
        "secret-a",
        "MESSAGE",
        "sip:bob@example.com",
        1,
    );
    let mut c = ctx(
        message(
            "sip:alice@example.com",
            &[
                "P-Asserted-Identity: <sip:boss@example.com>".into(),
                format!("Authorization: {good}"),
            ],
        ),
        "203.0.113.5",
        Addressed::Server,
        T0_MS,
    );
    assert_eq!(run(&f, &mut c), Outcome::Continue);
    assert!(!c.request.contains(HeaderName::PAssertedIdentity));
    assert_eq!(
        c.asserted_identity.as_deref(),
        Some("<sip:alice@example.com>")
    );
}

#[test]
fn failures_lock_only_the_source_account_pair() {
    let f = fixture("max_failures_per_minute = 3\nlockout_s = 120");
    let mut c = ctx(register(&[]), "203.0.113.66", Addressed::Server, T0_MS);
    let ch = reply(run(&f, &mut c));
    let attempt = |ip: &str, pw: &str, nc: u32, t: u64| {
        let auth = answer(&ch, 0, "alice", pw, "REGISTER", REG_URI, nc);
        let mut c = ctx(
            register(&[format!("Authorization: {auth}")]),
            ip,
            Addressed::Server,
            t,
        );
        run(&f, &mut c)
    };
    assert_eq!(reply(attempt("203.0.113.66", "x1", 1, T0_MS)).status, 401);
    assert_eq!(reply(attempt("203.0.113.66", "x2", 2, T0_MS)).status, 401);
    let locked = reply(attempt("203.0.113.66", "x3", 3, T0_MS));
    assert_eq!(locked.status, 403);
    assert_eq!(header_names(&locked), ["Retry-After"]);
    assert_eq!(locked.headers[0].1, "120");
    // Even the right password from that pair is refused while locked.
    assert_eq!(
        reply(attempt("203.0.113.66", "secret-a", 4, T0_MS + 1000)).status,
        403
    );
    // The real user elsewhere is not locked out.
    assert_eq!(
        attempt("192.0.2.10", "secret-a", 5, T0_MS + 1000),
        Outcome::Continue
    );
}

#[test]
fn store_outage_malformed_credentials_and_uri_mismatch() {
    let f = fixture("");
    let mut c = ctx(register(&[]), "192.0.2.10", Addressed::Server, T0_MS);
    let ch = reply(run(&f, &mut c));

    let auth = answer(
        &ch,
        0,
        "alice",
        "secret-a",
        "REGISTER",
        "sip:elsewhere.example",
        1,
    );
    let mut c = ctx(
        register(&[format!("Authorization: {auth}")]),
        "192.0.2.10",
        Addressed::Server,
        T0_MS,
    );
    assert_eq!(
        reply(run(&f, &mut c)),
        Reply::with_reason(400, "Digest uri does not match the Request-URI")
    );

    let mut c = ctx(
        register(&["Authorization: Digest username=\"alice\", realm=\"example.com\"".into()]),
        "192.0.2.10",
        Addressed::Server,
        T0_MS,
    );
    let r = reply(run(&f, &mut c));
    assert_eq!(r.status, 400);
    assert!(r.reason.unwrap().starts_with("Malformed credentials"));

    // An unknown scheme (RFC 4475 §3.3.7 regaut01, found by sending it to `confab serve`,
    // which answered 400): ignored, the sender is challenged.
    for other in [
        "NoOneKnowsThisScheme opaque-data=here",
        "Bearer abc.def.ghi",
        "Basic YWxpY2U6c2VjcmV0",
    ] {
        let mut c = ctx(
            register(&[format!("Authorization: {other}")]),
            "192.0.2.10",
            Addressed::Server,
            T0_MS,
        );
        let r = reply(run(&f, &mut c));
        assert_eq!(r.status, 401, "{other}");
        assert!(
            header_names(&r).iter().all(|h| *h == "WWW-Authenticate"),
            "{other}"
        );
    }

    *f.users.down.lock().unwrap() = true;
    let auth = answer(&ch, 0, "alice", "secret-a", "REGISTER", REG_URI, 1);
    let mut c = ctx(
        register(&[format!("Authorization: {auth}")]),
        "192.0.2.10",
        Addressed::Server,
        T0_MS,
    );
    let r = reply(run(&f, &mut c));
    assert_eq!(r.status, 503);
    assert_eq!(header_names(&r), ["Retry-After"]);
}
