//! Secrets never reach the log, even at `trace` level: a run that adds users (CLI and API),
//! creates a token, authenticates with HTTP Digest (curl and a computed MD5 answer) and
//! changes a password is grepped for every password, HA1 value, token, nonce, digest
//! response and request body it handled.

mod common;

use common::*;
use confab_digest::{Ha1Set, HashKind};

#[test]
fn no_secret_is_ever_logged() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let trace = [("CONFAB_LOG", "trace")];
    let mut logs = String::new();

    let alice_pw = "Alice-Secret-Pw-1";
    let o = run_with_stdin(
        d,
        &["user", "add", "alice@example.com", "--password-stdin"],
        alice_pw,
        &trace,
    );
    expect_code(&o, 0);
    logs.push_str(&stderr(&o));
    let o = run_with_stdin(d, &["token", "create", "--name", "logtest"], "", &trace);
    expect_code(&o, 0);
    let token = stdout(&o).trim().to_string();
    logs.push_str(&stderr(&o));

    let srv = Server::start(d, "trace");
    let json = "Content-Type: application/json";
    let bob_pw = "Bob-Secret-Pw-2";
    let body_marker = "Body-Marker-Display-Name";
    let r = curl(&[
        "-H",
        &bearer(&token),
        "-H",
        json,
        "-d",
        &format!(
            r#"{{"address":"bob@example.com","password":"{bob_pw}","display_name":"{body_marker}"}}"#
        ),
        &format!("{}/api/admin/v1/users", srv.admin),
    ]);
    assert_eq!(r.status, 201, "{r:?}");

    let ca = d.join("tls/ca.crt").display().to_string();
    let resolve = format!("example.com:{}:127.0.0.1", srv.user_port);
    let me = format!("https://example.com:{}/api/user/v1/me", srv.user_port);
    let r = curl(&[
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "--digest",
        "-u",
        &format!("alice:{alice_pw}"),
        &me,
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    // A challenge whose nonce we keep, answered with a response we know.
    let r = curl(&["--cacert", &ca, "--resolve", &resolve, &me]);
    let challenge = r.header_all("www-authenticate")[1].to_string();
    let c = confab_digest::Challenge::parse(&challenge).unwrap();
    let nonce = c.nonce.to_string();
    let creds = confab_digest::answer_challenge(
        &c,
        &confab_digest::Answer {
            username: "alice",
            password: alice_pw,
            method: "GET",
            uri: "/api/user/v1/me",
            cnonce: "c0ffee42",
            nc: 1,
            body: b"",
        },
    )
    .unwrap();
    let response = creds.response.to_string();
    let r = curl(&[
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "-H",
        &format!("Authorization: {creds}"),
        &me,
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    let new_pw = "Alice-New-Pw-3";
    let r = curl(&[
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "--digest",
        "-u",
        &format!("alice:{alice_pw}"),
        "-X",
        "PUT",
        "-H",
        json,
        "-d",
        &format!(r#"{{"password":"{new_pw}"}}"#),
        &format!("{me}/password"),
    ]);
    assert_eq!(r.status, 204, "{r:?}");
    // A failed login too.
    let r = curl(&[
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "--digest",
        "-u",
        "alice:Wrong-Pw-4",
        &me,
    ]);
    assert_eq!(r.status, 401);

    logs.push_str(&srv.log());
    assert!(
        logs.contains("\"message\":\"http request\""),
        "trace logging ran"
    );

    let mut secrets: Vec<(String, String)> = vec![
        ("alice's password".into(), alice_pw.into()),
        ("bob's password".into(), bob_pw.into()),
        ("new password".into(), new_pw.into()),
        ("wrong password".into(), "Wrong-Pw-4".into()),
        ("token".into(), token.clone()),
        ("token body".into(), token["confab_".len()..].to_string()),
        ("nonce".into(), nonce),
        ("digest response".into(), response),
        ("request body".into(), body_marker.into()),
    ];
    for (who, user, pw) in [
        ("alice", "alice", alice_pw),
        ("alice new", "alice", new_pw),
        ("bob", "bob", bob_pw),
    ] {
        let set = Ha1Set::compute(user, "example.com", pw);
        for kind in HashKind::ALL {
            secrets.push((
                format!("{who} HA1 {kind:?}"),
                set.get(kind).to_hex().to_string(),
            ));
        }
    }
    for (what, secret) in &secrets {
        assert!(
            !logs
                .to_ascii_lowercase()
                .contains(&secret.to_ascii_lowercase()),
            "the log contains the {what}"
        );
    }
}
