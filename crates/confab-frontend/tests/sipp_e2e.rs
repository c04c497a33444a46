//! End to end with a real peer nobody on the team wrote: SIPp registers two users with
//! digest through the running Front End (transport, workers, chain, registrar, SQLite),
//! then one SIPp sends a MESSAGE and an OPTIONS to the other, which a SIPp UAS registered
//! as the callee answers.
//!
//! SIPp puts `sip:<server address>` in the digest `uri` unless told otherwise; the server
//! checks it against the Request-URI (RFC 2617 §3.2.2.5), so the scenarios pass
//! `-auth_uri` with the Request-URI they send (SIPp adds the `sip:`).
//!
//! Needs `/usr/bin/sipp` (Debian `sip-tester`). Without it the test says so and passes,
//! unless `CONFAB_REQUIRE_PEERS=1` (CI sets it), where it fails.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use confab_core::{Address, RegistrationStore, Timestamp};
use confab_frontend::FrontendSettings;
use confab_frontend::testing::TestServer;
use confab_transport::TransportKind;

const SIPP: &str = "/usr/bin/sipp";

fn peers_available() -> bool {
    if Path::new(SIPP).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CONFAB_REQUIRE_PEERS").is_none(),
        "CONFAB_REQUIRE_PEERS is set but {SIPP} is missing (install sip-tester)"
    );
    eprintln!("skipping: {SIPP} not installed");
    false
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SIPp over UDP against `server`, one call, bounded in time; returns its exit status and
/// output for the assertion message.
fn sipp(server: SocketAddr, scenario_file: &str, args: &[&str]) -> Command {
    let mut c = Command::new(SIPP);
    c.arg(server.to_string())
        .arg("-sf")
        .arg(scenario(scenario_file))
        .args(["-i", "127.0.0.1", "-t", "u1", "-nostdin", "-timeout", "20s"])
        .args(["-timeout_error", "-max_recv_loops", "1000"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

async fn run(mut c: Command, what: &str) {
    let out = tokio::task::spawn_blocking(move || c.output().expect("sipp runs"))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: sipp exited with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_registers_with_digest_and_reaches_a_registered_uas() {
    if !peers_available() {
        return;
    }
    let mut settings = FrontendSettings::new("test-node", &["example.com".into()]);
    // SIPp 3.6.1 answers only MD5 and reads the first challenge: offer MD5 first.
    settings.auth.algorithms = vec!["MD5".into(), "SHA-256".into()];
    let server = TestServer::builder()
        .user("alice@example.com", "alice-pw")
        .user("bob@example.com", "bob-pw")
        .settings(settings)
        .start()
        .await;
    let udp = server.addr(TransportKind::Udp);

    // bob's phone: a SIPp UAS answering one MESSAGE and one OPTIONS.
    let uas_port = free_udp_port().to_string();
    let mut uas = sipp(udp, "uas.xml", &["-p", &uas_port, "-m", "2"]);
    let uas = tokio::task::spawn_blocking(move || uas.output().expect("sipp uas runs"));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // bob registers the UAS's address; alice registers her own.
    let register = |user: &'static str, pw: &'static str, contact_port: &str| {
        sipp(
            udp,
            "register.xml",
            &[
                "-m",
                "1",
                "-s",
                user,
                "-au",
                user,
                "-ap",
                pw,
                "-key",
                "domain",
                "example.com",
                "-key",
                "contact_host",
                "127.0.0.1",
                "-key",
                "contact_port",
                contact_port,
                "-key",
                "expires",
                "300",
                "-auth_uri",
                "example.com",
            ],
        )
    };
    run(register("bob", "bob-pw", &uas_port), "bob REGISTER").await;
    run(register("alice", "alice-pw", "5999"), "alice REGISTER").await;

    let now = Timestamp::from_system(std::time::SystemTime::now());
    let bob = Address::parse("bob@example.com").unwrap();
    let bindings = server.store.lookup(&bob, now).await.unwrap();
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    assert_eq!(
        bindings[0].contact,
        format!("sip:bob@127.0.0.1:{uas_port};transport=UDP")
    );
    assert_eq!(bindings[0].user_agent.as_deref(), Some("SIPp register"));

    // alice → bob: MESSAGE and OPTIONS, each challenged with 407 and then relayed.
    let to_bob = |file: &str| {
        sipp(
            udp,
            file,
            &[
                "-m",
                "1",
                "-s",
                "bob",
                "-au",
                "alice",
                "-ap",
                "alice-pw",
                "-key",
                "domain",
                "example.com",
                "-key",
                "from_user",
                "alice",
                "-auth_uri",
                "bob@example.com",
            ],
        )
    };
    run(to_bob("message.xml"), "alice MESSAGE").await;
    run(to_bob("options.xml"), "alice OPTIONS").await;

    let out = uas.await.unwrap();
    assert!(
        out.status.success(),
        "bob's UAS: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    server.stop().await;
}
