//! SIPp against `confab serve` for stored policies and resource lists:
//!
//! - SIPp (alice) watches bob's presence; bob publishes (the note reaches SIPp), then bob
//!   blocks alice through the user API and SIPp's next NOTIFY shows bob offline
//!   (`policy_watch.xml`);
//! - SIPp (alice) subscribes to her contact list `sip:alice-contacts@example.com` with
//!   `Supported: eventlist` and gets a full-state multipart/related NOTIFY, then a partial
//!   one carrying bob's PUBLISH, then one showing bob offline after bob blocked her through
//!   the admin API (`list_subscribe.xml`).
//!
//! Needs `/usr/bin/sipp` (Debian `sip-tester`); without it the test says so and passes
//! unless `CONFAB_REQUIRE_PEERS=1`.

mod common;
mod presence_ua;

use std::time::Duration;

use common::sipp::{self, ok};
use common::{Server, add_user, bearer, curl, edit_config, init_dir, run, token};
use presence_ua::{Ua, pidf};

fn run_sipp(server: &str, file: &str, args: &[&str]) -> std::process::Output {
    sipp::client(
        server,
        &sipp::scenario("confab/tests/sipp_presence", file),
        args,
    )
}

fn setup() -> (tempfile::TempDir, Server, String, String) {
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "alice@example.com", "alice-pw");
    add_user(d, "bob@example.com", "bob-pw");
    // SIPp 3.6.1 answers MD5 only and reads the first challenge.
    edit_config(
        d,
        "algorithms = [\"SHA-256\", \"MD5\"]",
        "algorithms = [\"MD5\", \"SHA-256\"]",
    );
    let tok = token(d, "t");
    let srv = Server::start_with(
        d,
        "info",
        &[],
        &["http.admin.listen", "transport.listen[0]"],
    );
    let udp = srv.addrs["transport.listen[0]"].clone();
    (dir, srv, udp, tok)
}

fn bob_publishes(udp: &str, note: &str) {
    let mut bob = Ua::new(udp, "bob", "example.com", "bob-pw");
    let mut cseq = 0;
    let body = pidf("bob@example.com", "open", Some(note));
    let r = bob.request(
        "PUBLISH",
        "sip:bob@example.com",
        &format!("pub-{note}-{}", std::process::id()),
        &mut cseq,
        &[
            ("From", bob.from("ptag")),
            ("To", "<sip:bob@example.com>".to_owned()),
            ("Event", "presence".to_owned()),
            ("Expires", "600".to_owned()),
        ],
        Some(("application/pidf+xml", &body)),
    );
    assert_eq!(r.status(), Some(200), "{r:?}");
}

fn block_alice(srv: &Server, tok: &str) {
    let r = curl(&[
        "-X",
        "PUT",
        "-H",
        &bearer(tok),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"level":"blocked"}"#,
        &format!(
            "{}/api/admin/v1/users/bob@example.com/presence-policy/rules/alice@example.com",
            srv.admin
        ),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn sipp_watcher_sees_a_policy_change() {
    if !sipp::available() {
        return;
    }
    let (_dir, srv, udp, tok) = setup();
    let watcher = {
        let udp = udp.clone();
        std::thread::spawn(move || {
            run_sipp(
                &udp,
                "policy_watch.xml",
                &[
                    "-s",
                    "bob",
                    "-au",
                    "alice",
                    "-ap",
                    "alice-pw",
                    "-key",
                    "from_user",
                    "alice",
                    "-auth_uri",
                    "bob@example.com",
                ],
            )
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    bob_publishes(&udp, "sipp-publish");
    // Past the one-NOTIFY-per-second throttle, so the two changes are two NOTIFYs.
    std::thread::sleep(Duration::from_millis(1500));
    block_alice(&srv, &tok);
    let out = watcher.join().unwrap();
    if !out.status.success() {
        eprintln!("{}", srv.log());
    }
    ok(&out, "policy_watch.xml");
}

#[test]
fn sipp_subscribes_to_a_contact_list() {
    if !sipp::available() {
        return;
    }
    let (dir, srv, udp, tok) = setup();
    let o = run(
        dir.path(),
        &["contacts", "add", "alice@example.com", "bob@example.com"],
    );
    common::expect_code(&o, 0);
    let watcher = {
        let udp = udp.clone();
        std::thread::spawn(move || {
            run_sipp(
                &udp,
                "list_subscribe.xml",
                &[
                    "-s",
                    "bob",
                    "-au",
                    "alice",
                    "-ap",
                    "alice-pw",
                    "-key",
                    "from_user",
                    "alice",
                    "-auth_uri",
                    "alice-contacts@example.com",
                ],
            )
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    bob_publishes(&udp, "sipp-list-note");
    std::thread::sleep(Duration::from_millis(1500));
    block_alice(&srv, &tok);
    let out = watcher.join().unwrap();
    if !out.status.success() {
        eprintln!("{}", srv.log());
    }
    ok(&out, "list_subscribe.xml");
}
