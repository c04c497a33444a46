//! The real binary as a SIP server: `confab init`, two users added with the CLI, `confab
//! serve`, then SIPp registers both with digest and relays a MESSAGE and an OPTIONS to a
//! SIPp UAS registered as the callee; `confab registrations` lists the binding and SIGTERM
//! drains and exits 0.
//!
//! Needs `/usr/bin/sipp` (Debian `sip-tester`); without it the test says so and passes
//! unless `CONFAB_REQUIRE_PEERS=1`.

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::sipp;
use common::{Server, add_user, edit_config, expect_code, init_dir, run, stdout};

fn scenario(name: &str) -> PathBuf {
    sipp::scenario("confab-frontend/tests/sipp", name)
}

fn run_sipp(server: &str, file: &str, args: &[&str]) {
    sipp::ok(&sipp::client(server, &scenario(file), args), file);
}

#[test]
fn sipp_registers_and_messages_through_confab_serve() {
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
    let mut srv = Server::start_with(
        d,
        "info",
        &[],
        &["http.admin.listen", "transport.listen[0]"],
    );
    let udp = srv.addrs["transport.listen[0]"].clone();

    let uas_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let uas = {
        let udp = udp.clone();
        let port = uas_port.clone();
        std::thread::spawn(move || {
            Command::new(sipp::SIPP)
                .arg(&udp)
                .arg("-sf")
                .arg(scenario("uas.xml"))
                .args(["-i", "127.0.0.1", "-p", &port, "-t", "u1", "-nostdin"])
                .args(["-timeout", "30s", "-timeout_error", "-m", "2"])
                .stdin(Stdio::null())
                .output()
                .expect("sipp uas runs")
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (user, pw, port) in [
        ("bob", "bob-pw", uas_port.as_str()),
        ("alice", "alice-pw", "5999"),
    ] {
        run_sipp(
            &udp,
            "register.xml",
            &[
                "-s",
                user,
                "-au",
                user,
                "-ap",
                pw,
                "-key",
                "contact_host",
                "127.0.0.1",
                "-key",
                "contact_port",
                port,
                "-key",
                "expires",
                "300",
                "-auth_uri",
                "example.com",
            ],
        );
    }
    let listed = run(d, &["registrations", "bob@example.com"]);
    expect_code(&listed, 0);
    assert!(
        stdout(&listed).contains(&format!("sip:bob@127.0.0.1:{uas_port}")),
        "{}",
        stdout(&listed)
    );
    for file in ["message.xml", "options.xml"] {
        run_sipp(
            &udp,
            file,
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
        );
    }
    let out = uas.join().unwrap();
    assert!(
        out.status.success(),
        "bob's UAS: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    srv.signal("TERM");
    assert_eq!(srv.wait(), Some(0), "{}", srv.log());
    assert!(srv.log().contains("\"message\":\"stopped\""));
}
