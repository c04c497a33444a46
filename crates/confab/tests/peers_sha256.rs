//! SHA-256 digest (RFC 8760) with a real client: pjsua2 (PyPI `pjsua2-python`, PJSIP 2.15)
//! registers over UDP and TCP with a `confab serve` that offers only SHA-256. (SIPp 3.6.1,
//! baresip 1.0.0 and JsSIP only do MD5; the PyPI build of PJSIP refuses SHA-512-256 with
//! PJ_ENOTSUP, so SHA-512/256 has no real-client test.)
//!
//! The proof that the algorithm was used, from both ends: the server offers nothing else
//! (so a 200 could not come from an MD5 answer), PJSIP's own wire log shows the
//! `Authorization` header it sent with `algorithm=SHA-256`, and the binding is listed with
//! PJSIP's User-Agent.
//!
//! Over TCP PJSIP registers as an RFC 5626 outbound client (`+sip.instance`, `reg-id`): when
//! the script exits and its connection closes, the registrar removes that binding (flow
//! failure), which the test checks too; the UDP binding (no reg-id) stays. A wrong password with the same client is refused (403 after the
//! retry), so the 200 is not an accident of a lax check.

mod common;
#[path = "peers/support.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use common::{add_user, expect_code, init_dir, run, stdout};
use support::{TCP, UDP, output_within, peers_file, require_python_module, serve, set_algorithms};

fn pjsua2_register(
    py: &std::path::Path,
    server: &str,
    transport: &str,
    user: &str,
    password: &str,
) -> (bool, String) {
    let mut c = Command::new(py);
    c.arg(peers_file("pjsua2/register.py")).args([
        server,
        transport,
        user,
        password,
        "example.com",
    ]);
    let out = output_within(c, Duration::from_secs(40), "pjsua2 register.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("REGISTERED 200"),
        text,
    )
}

fn authorization_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.starts_with("Authorization:"))
        .collect()
}

fn registers_with(algorithm: &str) {
    let Some(py) = require_python_module("pjsua2", "pjsua2-python") else {
        return;
    };
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "carol@example.com", "carol-pw");
    set_algorithms(d, &[algorithm]);
    let srv = serve(d, "info");

    for (key, transport) in [(UDP, "udp"), (TCP, "tcp")] {
        let addr = srv.addrs[key].clone();
        let (ok, log) = pjsua2_register(&py, &addr, transport, "carol", "carol-pw");
        assert!(ok, "pjsua2 over {transport} with {algorithm}:\n{log}");
        let auth = authorization_lines(&log);
        assert!(
            !auth.is_empty(),
            "no Authorization header in PJSIP's log:\n{log}"
        );
        assert!(
            auth.iter()
                .all(|l| l.contains(&format!("algorithm={algorithm}"))),
            "{auth:?}"
        );
        if transport == "tcp" {
            // The 200 listed the outbound binding (instance and reg-id) while it was up.
            assert!(
                log.lines().any(|l| l.starts_with("Contact:")
                    && l.contains("transport=TCP")
                    && l.contains("reg-id=1")
                    && l.contains(";expires=")),
                "{log}"
            );
        }
        // The challenge PJSIP answered offered only this algorithm.
        assert!(
            log.lines()
                .filter(|l| l.starts_with("WWW-Authenticate:"))
                .all(|l| l.contains(&format!("algorithm={algorithm}"))),
            "{log}"
        );
    }
    // The UDP binding stays; the TCP outbound binding went with its connection.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let list = loop {
        let o = run(d, &["registrations", "carol@example.com", "--json"]);
        expect_code(&o, 0);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let list = v.as_array().unwrap().clone();
        if list.len() == 1 || std::time::Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["transport"], "udp", "{list:?}");
    assert_eq!(list[0]["user_agent"], "pjsua2-confab-test", "{list:?}");

    // The same client with a wrong password is refused.
    let (ok, log) = pjsua2_register(&py, &srv.addrs[UDP], "udp", "carol", "wrong-pw");
    assert!(!ok, "a wrong password registered:\n{log}");
    assert!(log.contains("FAILED"), "{log}");
    drop(srv);
}

#[test]
fn pjsua2_registers_with_sha256_digest() {
    registers_with("SHA-256");
}
