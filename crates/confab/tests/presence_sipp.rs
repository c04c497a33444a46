//! SIPp against `confab serve` for presence: one SIPp subscribes to bob's presence
//! (digest, first NOTIFY, a NOTIFY carrying what bob publishes, unsubscribe with the final
//! NOTIFY) while another SIPp publishes as bob (initial PUBLISH with SIP-ETag, a malformed
//! document answered 400, a refresh with SIP-If-Match).
//!
//! Needs `/usr/bin/sipp` (Debian `sip-tester`); without it the test says so and passes
//! unless `CONFAB_REQUIRE_PEERS=1`.

mod common;

use common::sipp::{self, ok};
use common::{Server, add_user, edit_config, init_dir};

fn run_sipp(server: &str, file: &str, args: &[&str]) -> std::process::Output {
    sipp::client(
        server,
        &sipp::scenario("confab/tests/sipp_presence", file),
        args,
    )
}

#[test]
fn sipp_subscribes_and_publishes_presence() {
    if !sipp::available() {
        return;
    }
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
    let srv = Server::start_with(
        d,
        "info",
        &[],
        &["http.admin.listen", "transport.listen[0]"],
    );
    let udp = srv.addrs["transport.listen[0]"].clone();
    let watcher = {
        let udp = udp.clone();
        std::thread::spawn(move || {
            run_sipp(
                &udp,
                "subscribe.xml",
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
    // Let the subscription start (its first NOTIFY shows bob offline).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let out = run_sipp(
        &udp,
        "publish.xml",
        &[
            "-s",
            "bob",
            "-au",
            "bob",
            "-ap",
            "bob-pw",
            "-auth_uri",
            "bob@example.com",
        ],
    );
    ok(&out, "publish.xml");
    let out = watcher.join().unwrap();
    if !out.status.success() {
        eprintln!("{}", srv.log());
    }
    ok(&out, "subscribe.xml");
}
