//! Contact lists, stored access policies and the resource list server on the real binary:
//! `confab serve` with a test user agent over UDP (digest, NOTIFYs answered), the user API
//! over HTTPS with curl `--digest`, the admin API with a bearer token, and the CLI.
//!
//! - a policy change through either API re-notifies exactly the watchers it affects, with
//!   the newly filtered document (a blocked watcher sees offline);
//! - pending watchers (RFC 3857, `confirm_strangers`) are listed and allowed through the
//!   user API;
//! - a subscription to `sip:alice-contacts@example.com` (RFC 4662) gets 421 without
//!   `Supported: eventlist`, then multipart/related NOTIFYs: full state first, then only the
//!   changed contact, each part cut to the subscriber's level on that contact; a changed list
//!   gives full state again, and the list subscription survives a SIGKILL restart.

mod common;
mod presence_ua;

use std::path::Path;
use std::time::Duration;

use common::{Resp, Server, add_user, bearer, curl, edit_config, init_dir, run, token};
use confab_xml::Limits;
use confab_xml::multipart::Related;
use confab_xml::pidf::Presence;
use confab_xml::rlmi::{self, InstanceState};
use presence_ua::{Msg, Ua, pidf};

const T: Duration = Duration::from_secs(10);
const JSON: &str = "Content-Type: application/json";

fn start(d: &Path) -> (Server, String) {
    let srv = Server::start_with(
        d,
        "info,confab_presence=debug",
        &[],
        &[
            "http.admin.listen",
            "http.user.listen",
            "transport.listen[0]",
        ],
    );
    let udp = srv.addrs["transport.listen[0]"].clone();
    (srv, udp)
}

fn user_api(srv: &Server, d: &Path, userpass: &str, extra: &[&str]) -> Resp {
    let ca = d.join("tls/ca.crt");
    let mut args = vec![
        "--cacert".to_string(),
        ca.display().to_string(),
        "--resolve".to_string(),
        format!("example.com:{}:127.0.0.1", srv.user_port),
        "--digest".to_string(),
        "-u".to_string(),
        userpass.to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&refs)
}

fn user_url(srv: &Server, path: &str) -> String {
    format!("https://example.com:{}/api/user/v1/{path}", srv.user_port)
}

fn subscribe(ua: &mut Ua, target: &str, call_id: &str, extra: &[(&str, String)]) -> Msg {
    let mut cseq = 0;
    let mut h = vec![
        ("From", ua.from("wtag")),
        ("To", format!("<sip:{target}>")),
        ("Contact", ua.contact()),
        ("Event", "presence".to_owned()),
        ("Expires", "600".to_owned()),
    ];
    h.extend(extra.iter().cloned());
    ua.request(
        "SUBSCRIBE",
        &format!("sip:{target}"),
        call_id,
        &mut cseq,
        &h,
        None,
    )
}

fn publish(ua: &mut Ua, basic: &str, note: &str) -> Msg {
    let aor = format!("{}@{}", ua.user, ua.domain);
    let mut cseq = 0;
    let h = vec![
        ("From", ua.from("ptag")),
        ("To", format!("<sip:{aor}>")),
        ("Event", "presence".to_owned()),
        ("Expires", "600".to_owned()),
    ];
    let body = pidf(&aor, basic, Some(note));
    let call_id = format!("pub-{}-{}-{note}", ua.user, std::process::id());
    ua.request(
        "PUBLISH",
        &format!("sip:{aor}"),
        &call_id,
        &mut cseq,
        &h,
        Some(("application/pidf+xml", &body)),
    )
}

/// Receives NOTIFYs until one satisfies `f`; panics with the log otherwise.
#[track_caller]
fn notify_where(ua: &mut Ua, srv: &Server, what: &str, f: impl Fn(&Msg) -> bool) -> Msg {
    let deadline = std::time::Instant::now() + T;
    loop {
        let seen = ua.notifies.len();
        if let Some(m) = ua.notifies.iter().rev().find(|m| f(m)) {
            return m.clone();
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || ua.wait_notify(seen, left).is_none() {
            panic!(
                "{}: no NOTIFY {what}; got {:#?}\n{}",
                ua.user,
                ua.notifies,
                srv.log()
            );
        }
    }
}

#[test]
fn api_policy_changes_renotify_exactly_the_affected_watchers() {
    let dir = init_dir("example.com");
    let d = dir.path();
    for u in ["alice", "bob", "carol"] {
        add_user(d, &format!("{u}@example.com"), &format!("{u}-pw"));
    }
    let tok = token(d, "t");
    let (srv, udp) = start(d);
    let mut alice = Ua::new(&udp, "alice", "example.com", "alice-pw");
    let mut bob = Ua::new(&udp, "bob", "example.com", "bob-pw");
    let mut carol = Ua::new(&udp, "carol", "example.com", "carol-pw");

    assert_eq!(publish(&mut bob, "open", "at-my-desk").status(), Some(200));
    for (ua, cid) in [(&mut alice, "a1"), (&mut carol, "c1")] {
        let r = subscribe(ua, "bob@example.com", cid, &[]);
        assert_eq!(r.status(), Some(200), "{r:?}");
    }
    // Colleagues (same domain) see the note.
    for ua in [&mut alice, &mut carol] {
        notify_where(ua, &srv, "with the note", |m| m.body.contains("at-my-desk"));
    }
    alice.idle(Duration::from_millis(1200));
    carol.idle(Duration::from_millis(100));
    let (a0, c0) = (alice.notifies.len(), carol.notifies.len());

    // Bob blocks alice through the user API: alice sees offline, carol hears nothing.
    let r = user_api(
        &srv,
        d,
        "bob:bob-pw",
        &[
            "-X",
            "PUT",
            "-H",
            JSON,
            "-d",
            r#"{"level":"blocked"}"#,
            &user_url(&srv, "presence-policy/rules/alice@example.com"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["level"], "blocked");
    let n = alice.wait_notify(a0, T).expect("alice re-notified");
    assert!(n.body.contains("<basic>closed</basic>"), "{}", n.body);
    assert!(!n.body.contains("at-my-desk"), "{}", n.body);
    carol.idle(Duration::from_millis(2500));
    assert_eq!(
        carol.notifies.len(),
        c0,
        "carol is not affected: {:?}",
        carol.notifies
    );

    // The admin removes the rule: alice sees the note again; carol still nothing.
    let admin_rule = format!(
        "{}/api/admin/v1/users/bob@example.com/presence-policy/rules/alice@example.com",
        srv.admin
    );
    let r = curl(&["-X", "DELETE", "-H", &bearer(&tok), &admin_rule]);
    assert_eq!(r.status, 204, "{r:?}");
    let n = alice
        .wait_notify(a0 + 1, T)
        .expect("alice re-notified again");
    assert!(n.body.contains("at-my-desk"), "{}", n.body);
    let r = curl(&["-X", "DELETE", "-H", &bearer(&tok), &admin_rule]);
    assert_eq!(r.error(404).0, "not_found");

    // Bob makes carol a contact (admin API): personal, so carol is re-notified, alice not.
    let a1 = alice.notifies.len();
    alice.idle(Duration::from_millis(1100));
    let a1 = a1.max(alice.notifies.len());
    let contacts = format!("{}/api/admin/v1/users/bob@example.com/contacts", srv.admin);
    let r = curl(&[
        "-X",
        "POST",
        "-H",
        &bearer(&tok),
        "-H",
        JSON,
        "-d",
        r#"{"address":"carol@example.com","display_name":"Carol","group":"Team"}"#,
        &contacts,
    ]);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["groups"][0], "Team");
    carol
        .wait_notify(c0, T)
        .expect("carol re-notified as a contact");
    alice.idle(Duration::from_millis(2000));
    assert_eq!(alice.notifies.len(), a1, "alice is not affected");

    // Precise errors.
    let post = |body: &str| {
        curl(&[
            "-X",
            "POST",
            "-H",
            &bearer(&tok),
            "-H",
            JSON,
            "-d",
            body,
            &contacts,
        ])
    };
    assert_eq!(
        post(r#"{"address":"not an address"}"#)
            .error(400)
            .1
            .as_deref(),
        Some("address")
    );
    assert_eq!(
        post(r#"{"address":"bob@example.com"}"#)
            .error(400)
            .1
            .as_deref(),
        Some("address")
    );
    assert_eq!(
        post(r#"{"address":"x@y.org","group":""}"#)
            .error(400)
            .1
            .as_deref(),
        Some("group")
    );
    let r = curl(&[
        "-H",
        &bearer(&tok),
        &format!(
            "{}/api/admin/v1/users/nobody@example.com/contacts",
            srv.admin
        ),
    ]);
    assert_eq!(r.error(404).0, "not_found");
    let r = curl(&[
        "-H",
        &bearer(&tok),
        &format!(
            "{}/api/admin/v1/users/bob@elsewhere.org/contacts",
            srv.admin
        ),
    ]);
    assert_eq!(r.error(400).1.as_deref(), Some("address"));
    let r = user_api(
        &srv,
        d,
        "bob:bob-pw",
        &[
            "-X",
            "PUT",
            "-H",
            JSON,
            "-d",
            r#"{"level":"friend"}"#,
            &user_url(&srv, "presence-policy/rules/example.com"),
        ],
    );
    assert_eq!(r.error(400).1.as_deref(), Some("level"));

    // The user sees their list and policy (their own only).
    let r = user_api(&srv, d, "bob:bob-pw", &[&user_url(&srv, "contacts")]);
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["list_uri"], "sip:bob-contacts@example.com");
    assert_eq!(v["contacts"][0]["address"], "carol@example.com");
    let r = user_api(&srv, d, "alice:alice-pw", &[&user_url(&srv, "contacts")]);
    assert_eq!(r.json()["contacts"].as_array().unwrap().len(), 0);
}

#[test]
fn pending_watchers_are_listed_and_allowed() {
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "bob@example.com", "bob-pw");
    // The test agent's address is a trusted peer, so its P-Asserted-Identity (a watcher of
    // another domain, as a federation peer would vouch for) is believed.
    edit_config(d, "trusted_peers = []", "trusted_peers = [\"127.0.0.1\"]");
    let (srv, udp) = start(d);
    let r = user_api(
        &srv,
        d,
        "bob:bob-pw",
        &[
            "-X",
            "PATCH",
            "-H",
            JSON,
            "-d",
            r#"{"confirm_strangers":true}"#,
            &user_url(&srv, "presence-policy"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["confirm_strangers"], true);
    let mut eve = Ua::new(&udp, "eve", "other.org", "unused");
    let pai = ("P-Asserted-Identity", "<sip:eve@other.org>".to_owned());
    let r = subscribe(&mut eve, "bob@example.com", "e1", &[pai]);
    assert_eq!(r.status(), Some(200), "{r:?}");
    let n = eve.wait_notify(0, T).expect("first NOTIFY");
    assert!(
        n.header("Subscription-State")
            .unwrap()
            .starts_with("pending"),
        "{n:?}"
    );
    assert!(
        n.body.is_empty(),
        "a pending watcher sees no state: {}",
        n.body
    );

    let r = user_api(
        &srv,
        d,
        "bob:bob-pw",
        &[&user_url(&srv, "presence-policy/pending")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["watchers"][0]["watcher"], "eve@other.org", "{v}");
    assert_eq!(v["watchers"][0]["subscriptions"], 1);

    let decide = |body: &str| {
        user_api(
            &srv,
            d,
            "bob:bob-pw",
            &[
                "-X",
                "POST",
                "-H",
                JSON,
                "-d",
                body,
                &user_url(&srv, "presence-policy/pending/eve@other.org"),
            ],
        )
    };
    assert_eq!(
        decide(r#"{"decision":"maybe"}"#).error(400).1.as_deref(),
        Some("decision")
    );
    assert_eq!(
        decide(r#"{"decision":"allow","level":"blocked"}"#)
            .error(400)
            .1
            .as_deref(),
        Some("level")
    );
    let r = decide(r#"{"decision":"allow"}"#);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["level"], "public");
    let n = eve.wait_notify(1, T).expect("NOTIFY after approval");
    assert!(
        n.header("Subscription-State")
            .unwrap()
            .starts_with("active"),
        "{n:?}"
    );
    assert!(n.body.contains("<basic>closed</basic>"), "{}", n.body);
    let r = user_api(
        &srv,
        d,
        "bob:bob-pw",
        &[&user_url(&srv, "presence-policy/pending")],
    );
    assert_eq!(r.json()["watchers"].as_array().unwrap().len(), 0);
    // The decision is a stored rule.
    let r = user_api(&srv, d, "bob:bob-pw", &[&user_url(&srv, "presence-policy")]);
    assert_eq!(r.json()["rules"][0]["watcher"], "eve@other.org");
}

/// The RLMI root and the PIDF parts of a list NOTIFY.
fn list_body(n: &Msg) -> (rlmi::List, Related) {
    assert_eq!(n.header("Require"), Some("eventlist"), "{n:?}");
    let ct = n.header("Content-Type").expect("Content-Type");
    assert!(
        ct.starts_with("multipart/related") && ct.contains("type=\"application/rlmi+xml\""),
        "{ct}"
    );
    let related = Related::parse(ct, n.body.as_bytes()).expect("multipart/related body");
    let root = related.root().expect("root part");
    let list = rlmi::List::parse(&root.body, &Limits::LIST).expect("RLMI");
    (list, related)
}

fn part_of(related: &Related, list: &rlmi::List, uri: &str) -> Option<Presence> {
    let r = list.resources.iter().find(|r| r.uri == uri)?;
    let cid = r.instances[0].cid.as_deref()?;
    let part = related.part(cid).expect("the part the RLMI names");
    Some(Presence::parse(&part.body, &Limits::DOCUMENT).expect("PIDF part"))
}

#[test]
fn resource_list_subscription_full_then_partial_and_after_restart() {
    let dir = init_dir("example.com");
    let d = dir.path();
    for u in ["alice", "bob", "carol", "dave"] {
        add_user(d, &format!("{u}@example.com"), &format!("{u}-pw"));
    }
    // The list is set up with the CLI (the server is not running yet).
    for args in [
        &[
            "contacts",
            "add",
            "alice@example.com",
            "bob@example.com",
            "--group",
            "Team",
            "--name",
            "Bob",
        ][..],
        &["contacts", "add", "alice@example.com", "carol@example.com"],
        &["contacts", "add", "alice@example.com", "eve@other.org"],
    ] {
        let o = run(d, args);
        common::expect_code(&o, 0);
    }
    let o = run(d, &["contacts", "add", "alice@example.com", "bad address"]);
    common::expect_code(&o, 2);
    let o = run(d, &["contacts", "list", "alice@example.com", "--json"]);
    common::expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&common::stdout(&o)).unwrap();
    assert_eq!(v["contacts"].as_array().unwrap().len(), 3, "{v}");

    let (srv, udp) = start(d);
    let mut alice = Ua::new(&udp, "alice", "example.com", "alice-pw");
    let mut bob = Ua::new(&udp, "bob", "example.com", "bob-pw");
    let list = "alice-contacts@example.com";
    let eventlist = ("Supported", "eventlist".to_owned());

    // Negotiation and ownership.
    let r = subscribe(&mut alice, list, "l0", &[]);
    assert_eq!(r.status(), Some(421), "{r:?}");
    assert_eq!(r.header("Require"), Some("eventlist"));
    let r = subscribe(&mut bob, list, "l1", std::slice::from_ref(&eventlist));
    assert_eq!(r.status(), Some(403), "{r:?}");

    assert_eq!(publish(&mut bob, "open", "bob-note-1").status(), Some(200));
    let r = subscribe(&mut alice, list, "l2", std::slice::from_ref(&eventlist));
    assert_eq!(r.status(), Some(200), "{r:?}");
    assert_eq!(r.header("Require"), Some("eventlist"));

    // Full state first: every contact; bob with a part, eve (another domain) pending.
    let n = alice.wait_notify(0, T).expect("first list NOTIFY");
    let (l, rel) = list_body(&n);
    assert!(l.full_state);
    assert_eq!(l.uri, "sip:alice-contacts@example.com");
    let uris: Vec<&str> = l.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "sip:bob@example.com",
            "sip:carol@example.com",
            "sip:eve@other.org"
        ]
    );
    let eve = &l.resources[2].instances[0];
    assert_eq!(eve.state, InstanceState::Pending);
    assert!(eve.cid.is_none());
    assert_eq!(l.resources[0].names[0].text, "Bob");
    let b = part_of(&rel, &l, "sip:bob@example.com").expect("bob's part");
    assert!(
        String::from_utf8(b.to_bytes())
            .unwrap()
            .contains("bob-note-1")
    );

    // Bob publishes: a partial NOTIFY with bob only.
    alice.idle(Duration::from_millis(1100));
    let seen = alice.notifies.len();
    assert_eq!(publish(&mut bob, "open", "bob-note-2").status(), Some(200));
    let n = alice.wait_notify(seen, T).expect("partial NOTIFY");
    let (l, rel) = list_body(&n);
    assert!(!l.full_state, "{}", n.body);
    assert_eq!(l.resources.len(), 1);
    let b = part_of(&rel, &l, "sip:bob@example.com").expect("bob's part");
    assert!(
        String::from_utf8(b.to_bytes())
            .unwrap()
            .contains("bob-note-2")
    );

    // Bob blocks alice: her list shows bob offline (the part is filtered by bob's policy).
    alice.idle(Duration::from_millis(1100));
    let seen = alice.notifies.len();
    let r = user_api(
        &srv,
        d,
        "bob:bob-pw",
        &[
            "-X",
            "PUT",
            "-H",
            JSON,
            "-d",
            r#"{"level":"blocked"}"#,
            &user_url(&srv, "presence-policy/rules/alice@example.com"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let n = alice
        .wait_notify(seen, T)
        .expect("NOTIFY after bob's block");
    let (l, rel) = list_body(&n);
    assert!(!l.full_state);
    let b =
        String::from_utf8(part_of(&rel, &l, "sip:bob@example.com").unwrap().to_bytes()).unwrap();
    assert!(
        b.contains("<basic>closed</basic>") && !b.contains("bob-note-2"),
        "{b}"
    );

    // Alice adds dave through the user API: full state with four contacts.
    alice.idle(Duration::from_millis(1100));
    let seen = alice.notifies.len();
    let r = user_api(
        &srv,
        d,
        "alice:alice-pw",
        &[
            "-X",
            "POST",
            "-H",
            JSON,
            "-d",
            r#"{"address":"dave@example.com"}"#,
            &user_url(&srv, "contacts"),
        ],
    );
    assert_eq!(r.status, 201, "{r:?}");
    let n = alice
        .wait_notify(seen, T)
        .expect("NOTIFY after the list changed");
    let (l, _) = list_body(&n);
    assert!(l.full_state);
    assert_eq!(l.resources.len(), 4);

    // SIGKILL and restart: the stored list subscription gets full state at once.
    let mut srv = srv;
    srv.signal("KILL");
    let _ = srv.wait();
    drop(srv);
    let seen = alice.notifies.len();
    let (srv2, _) = start(d);
    let n = alice
        .wait_notify(seen, T)
        .unwrap_or_else(|| panic!("NOTIFY after restart\n{}", srv2.log()));
    let (l, _) = list_body(&n);
    assert!(l.full_state);
    assert_eq!(l.resources.len(), 4);
}
