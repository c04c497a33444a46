//! Session-mode IM through the Front End with SIPp (item 3 of issue 9): an INVITE whose SDP
//! offers `message` media is routed to the registered callee (a SIPp UAS) and Record-Routed;
//! the MESSAGE inside the dialog and the BYE follow the route set like any in-dialog
//! request (the `dialog` step, no authentication, no store-and-forward).
//!
//! Needs `/usr/bin/sipp` (Debian `sip-tester`); fails naming it when
//! `CONFAB_REQUIRE_PEERS=1`, otherwise skips with a notice.

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
async fn sipp_session_mode_im_invite_with_message_media_and_in_dialog_message() {
    if !peers_available() {
        return;
    }
    let mut settings = FrontendSettings::new("test-node", &["example.com".into()]);
    settings.auth.algorithms = vec!["MD5".into(), "SHA-256".into()];
    let server = TestServer::builder()
        .user("alice@example.com", "alice-pw")
        .user("bob@example.com", "bob-pw")
        .settings(settings)
        .offline_messages(confab_im::ImConfig::default())
        .start()
        .await;
    let udp = server.addr(TransportKind::Udp);

    let uas_port = free_udp_port().to_string();
    let mut uas = sipp(udp, "im_session_uas.xml", &["-p", &uas_port, "-m", "1"]);
    let uas = tokio::task::spawn_blocking(move || uas.output().expect("sipp uas runs"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    run(
        sipp(
            udp,
            "register.xml",
            &[
                "-m",
                "1",
                "-s",
                "bob",
                "-au",
                "bob",
                "-ap",
                "bob-pw",
                "-key",
                "domain",
                "example.com",
                "-key",
                "contact_host",
                "127.0.0.1",
                "-key",
                "contact_port",
                &uas_port,
                "-key",
                "expires",
                "300",
                "-auth_uri",
                "example.com",
            ],
        ),
        "bob REGISTER",
    )
    .await;
    let now = Timestamp::from_system(std::time::SystemTime::now());
    let bob = Address::parse("bob@example.com").unwrap();
    assert_eq!(server.store.lookup(&bob, now).await.unwrap().len(), 1);

    run(
        sipp(
            udp,
            "im_session_uac.xml",
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
        ),
        "alice session-mode IM",
    )
    .await;
    let out = uas.await.unwrap();
    assert!(
        out.status.success(),
        "bob's UAS: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The in-dialog MESSAGE was routed, not stored.
    let q = confab_core::message_queue::MessageQueueStore::list_queued(
        server.store.as_ref(),
        None,
        confab_core::PageRequest::first(10),
    )
    .await
    .unwrap();
    assert!(q.items.is_empty(), "{q:?}");
    server.stop().await;
}
