//! The running server: admin API with bearer tokens, the one error shape, the user HTTPS
//! API with HTTP Digest (curl `--digest` as the client, which also proves interop), admin
//! commands beside a running server, SIGHUP reload, SIGTERM drain, kill -9 durability.

mod common;

use common::*;

#[test]
fn admin_api_with_bearer_token() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let t = token(d, "test");
    let srv = Server::start(d, "info");
    let a = &srv.admin;
    let auth = bearer(&t);

    // Health, readiness and metrics need no token.
    let r = curl(&[&format!("{a}/healthz")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    let r = curl(&[&format!("{a}/readyz")]);
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (200, Some("ready"))
    );

    // The API needs one.
    let users = format!("{a}/api/admin/v1/users");
    let r = curl(&[&users]);
    assert_eq!(r.error(401).0, "unauthorized");
    assert_eq!(
        r.header_all("www-authenticate"),
        ["Bearer realm=\"confab-admin\""]
    );
    let r = curl(&[
        "-H",
        "Authorization: Bearer confab_nottherightlengthatall",
        &users,
    ]);
    assert_eq!(r.error(401).0, "unauthorized");
    assert!(r.header_all("www-authenticate")[0].contains("invalid_token"));
    let other = format!("Authorization: Bearer confab_{}", "A".repeat(43));
    assert_eq!(curl(&["-H", &other, &users]).status, 401);

    // Create, read, modify, set password, remove.
    let json = "Content-Type: application/json";
    let r = curl(&[
        "-H",
        &auth,
        "-H",
        json,
        "-d",
        r#"{"address":"sip:alice@example.com","password":"pw","display_name":"Alice","phone":"+15551234567"}"#,
        &users,
    ]);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.header_all("location"),
        ["/api/admin/v1/users/alice@example.com"]
    );
    let v = r.json();
    assert_eq!(v["address"], "alice@example.com");
    assert_eq!(v["has_password"], true);
    assert!(v.get("credentials").is_none() && !r.body.contains("ha1"));

    let r = curl(&[
        "-H",
        &auth,
        "-H",
        json,
        "-d",
        r#"{"address":"alice@example.com","password":"x"}"#,
        &users,
    ]);
    assert_eq!(r.error(409), ("conflict".into(), Some("address".into())));
    let r = curl(&[
        "-H",
        &auth,
        "-H",
        json,
        "-d",
        r#"{"address":"bob@example.com","password":"x","phone":"+15551234567"}"#,
        &users,
    ]);
    assert_eq!(r.error(409), ("conflict".into(), Some("phone".into())));
    let r = curl(&[
        "-H",
        &auth,
        "-H",
        json,
        "-d",
        r#"{"address":"bob@example.com","password":"x","phone":"12"}"#,
        &users,
    ]);
    assert_eq!(r.error(400), ("invalid".into(), Some("phone".into())));
    let r = curl(&[
        "-H",
        &auth,
        "-H",
        json,
        "-d",
        r#"{"address":"bob@example.com","password":""}"#,
        &users,
    ]);
    assert_eq!(r.error(400), ("invalid".into(), Some("password".into())));
    let r = curl(&[
        "-H",
        &auth,
        "-H",
        json,
        "-d",
        r#"{"address":"bob@example.com","password":"x","role":"root"}"#,
        &users,
    ]);
    assert_eq!(r.error(400), ("invalid".into(), Some("role".into())));
    let r = curl(&[
        "-H",
        &auth,
        "-H",
        json,
        "-d",
        r#"{"address":"bob@example.com","password":"x","extra":1}"#,
        &users,
    ]);
    assert_eq!(r.error(400), ("bad_json".into(), Some("extra".into())));
    let r = curl(&[
        "-H",
        &auth,
        "-H",
        json,
        "-d",
        r#"{"address":"bob@example.com","password":5}"#,
        &users,
    ]);
    assert_eq!(r.error(400), ("bad_json".into(), Some("password".into())));
    let r = curl(&["-H", &auth, "-H", json, "-d", "{not json", &users]);
    assert_eq!(r.error(400).0, "bad_json");
    let r = curl(&["-H", &auth, "-H", json, "-d", "[null]", &users]);
    assert_eq!(r.error(400).0, "bad_json");
    let r = curl(&[
        "-H",
        &auth,
        "-H",
        "Content-Type: text/plain",
        "-d",
        "{}",
        &users,
    ]);
    assert_eq!(r.error(415).0, "unsupported_media_type");
    let big = format!(
        r#"{{"address":"{}@example.com","password":"x"}}"#,
        "a".repeat(70_000)
    );
    let r = curl(&["-H", &auth, "-H", json, "--data-binary", &big, &users]);
    assert_eq!(r.error(413).0, "payload_too_large");

    let alice = format!("{users}/alice@example.com");
    let r = curl(&["-H", &auth, &alice]);
    assert_eq!(
        (r.status, r.json()["display_name"].as_str()),
        (200, Some("Alice"))
    );
    let r = curl(&[
        "-H",
        &auth,
        "-H",
        json,
        "-X",
        "PATCH",
        "-d",
        r#"{"display_name":null,"role":"admin"}"#,
        &alice,
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["display_name"], serde_json::Value::Null);
    assert_eq!(r.json()["role"], "admin");
    assert_eq!(r.json()["phone"], "+15551234567", "absent fields are kept");
    let r = curl(&[
        "-H",
        &auth,
        "-H",
        json,
        "-X",
        "PUT",
        "-d",
        r#"{"password":"new"}"#,
        &format!("{alice}/password"),
    ]);
    assert_eq!(r.status, 204, "{r:?}");

    // Paging.
    for i in 0..3 {
        let body = format!(r#"{{"address":"p{i}@example.com","password":"x"}}"#);
        assert_eq!(
            curl(&["-H", &auth, "-H", json, "-d", &body, &users]).status,
            201
        );
    }
    let r = curl(&["-H", &auth, &format!("{users}?limit=3")]);
    let page = r.json();
    assert_eq!(page["users"].as_array().unwrap().len(), 3);
    let next = page["next"].as_str().unwrap().to_string();
    let r = curl(&[
        "-H",
        &auth,
        "-G",
        "--data-urlencode",
        &format!("after={next}"),
        &users,
    ]);
    assert_eq!(r.json()["users"].as_array().unwrap().len(), 1);
    assert_eq!(r.json()["next"], serde_json::Value::Null);
    let r = curl(&["-H", &auth, &format!("{users}?limit=0")]);
    assert_eq!(r.error(400), ("invalid".into(), Some("limit".into())));

    let r = curl(&["-H", &auth, "-X", "DELETE", &alice]);
    assert_eq!(r.status, 204);
    let r = curl(&["-H", &auth, &alice]);
    assert_eq!(r.error(404).0, "not_found");
    let r = curl(&["-H", &auth, "-X", "DELETE", &alice]);
    assert_eq!(r.error(404).0, "not_found");
    let r = curl(&["-H", &auth, &format!("{users}/nobody@other.org")]);
    assert_eq!(r.error(404), ("not_found".into(), Some("address".into())));

    // Unknown routes and methods use the same error shape.
    let r = curl(&[&format!("{a}/nope")]);
    assert_eq!(r.error(404).0, "not_found");
    let r = curl(&["-X", "DELETE", &format!("{a}/healthz")]);
    assert_eq!(r.error(405).0, "method_not_allowed");
    assert_eq!(r.header_all("allow"), ["GET,HEAD"]);

    // Metrics count the requests above.
    let r = curl(&[&format!("{a}/metrics")]);
    assert_eq!(r.status, 200);
    assert!(r.body.contains(r#"confab_http_requests_total{listener="admin",method="POST",route="/api/admin/v1/users",status="201"}"#), "{}", r.body);
}

/// curl arguments for the user API: trust the init CA, digest with USER:PASS.
fn user_curl(srv: &Server, dir: &std::path::Path, userpass: &str, extra: &[&str]) -> Resp {
    let ca = dir.join("tls/ca.crt");
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

#[test]
fn user_api_with_digest_authentication() {
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "alice@example.com", "wonder land");
    let srv = Server::start(d, "info");
    let me = format!("https://example.com:{}/api/user/v1/me", srv.user_port);

    // curl answers the challenge (interop); the TLS certificate verifies against the CA.
    let r = user_curl(&srv, d, "alice:wonder land", &[&me]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["address"], "alice@example.com");

    // Wrong password and unknown user look the same.
    let wrong = user_curl(&srv, d, "alice:nope", &[&me]);
    let unknown = user_curl(&srv, d, "mallory:nope", &[&me]);
    assert_eq!(wrong.error(401), unknown.error(401));
    let challenges = wrong.header_all("www-authenticate");
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(
        challenges[0].starts_with("Digest realm=\"example.com\"")
            && challenges[0].contains("algorithm=SHA-256")
    );
    assert!(challenges[1].contains("algorithm=MD5") && challenges[1].contains("qop=\"auth\""));

    // A user changes their display name and password; the old password stops working.
    let json = "Content-Type: application/json";
    let r = user_curl(
        &srv,
        d,
        "alice:wonder land",
        &[
            "-X",
            "PATCH",
            "-H",
            json,
            "-d",
            r#"{"display_name":"Alice"}"#,
            &me,
        ],
    );
    assert_eq!(r.json()["display_name"], "Alice");
    let r = user_curl(
        &srv,
        d,
        "alice:wonder land",
        &["-X", "PATCH", "-H", json, "-d", r#"{"role":"admin"}"#, &me],
    );
    assert_eq!(r.error(400).0, "bad_json");
    let pw = format!("{me}/password");
    let r = user_curl(
        &srv,
        d,
        "alice:wonder land",
        &[
            "-X",
            "PUT",
            "-H",
            json,
            "-d",
            r#"{"password":"looking glass"}"#,
            &pw,
        ],
    );
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(user_curl(&srv, d, "alice:wonder land", &[&me]).status, 401);
    assert_eq!(
        user_curl(&srv, d, "alice:looking glass", &[&me]).status,
        200
    );

    // A password set by the CLI while the server runs is used within the user cache's
    // documented 2 s (the server notices another process's commit and drops its cache).
    let o = run(
        d,
        &["user", "passwd", "alice@example.com", "--password", "third"],
    );
    expect_code(&o, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
    loop {
        let status = user_curl(&srv, d, "alice:third", &[&me]).status;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the CLI's new password is still refused ({status}) after 4 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // Without credentials: a challenge; with Basic: a challenge too.
    let ca = d.join("tls/ca.crt").display().to_string();
    let resolve = format!("example.com:{}:127.0.0.1", srv.user_port);
    let r = curl(&["--cacert", &ca, "--resolve", &resolve, &me]);
    assert_eq!(r.error(401).0, "unauthorized");
    let r = curl(&[
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "-u",
        "alice:third",
        "--basic",
        &me,
    ]);
    assert_eq!(r.status, 401);
}

/// Computes an Authorization header for `challenge` with confab-digest's client side, to
/// test what curl cannot be told to do (pick MD5, replay a nonce count).
fn answer(challenge: &str, user: &str, password: &str, uri: &str, nc: u32) -> String {
    let c = confab_digest::Challenge::parse(challenge).unwrap();
    let creds = confab_digest::answer_challenge(
        &c,
        &confab_digest::Answer {
            username: user,
            password,
            method: "GET",
            uri,
            cnonce: "0a4f113b",
            nc,
            body: b"",
        },
    )
    .unwrap();
    creds.to_string()
}

#[test]
fn digest_md5_replay_and_stale_nonces() {
    let dir = init_dir("example.com");
    let d = dir.path();
    edit_config(d, "nonce_lifetime_s = 300", "nonce_lifetime_s = 1");
    add_user(d, "bob@example.com", "builder");
    let srv = Server::start(d, "info");
    let ca = d.join("tls/ca.crt").display().to_string();
    let resolve = format!("example.com:{}:127.0.0.1", srv.user_port);
    let uri = "/api/user/v1/me";
    let url = format!("https://example.com:{}{uri}", srv.user_port);
    let get = |auth: Option<&str>| {
        let mut args = vec!["--cacert", &ca, "--resolve", &resolve];
        let h;
        if let Some(a) = auth {
            h = format!("Authorization: {a}");
            args.extend(["-H", &h]);
        }
        args.push(&url);
        curl(&args)
    };
    let r = get(None);
    let md5 = r
        .header_all("www-authenticate")
        .into_iter()
        .find(|c| c.contains("algorithm=MD5"))
        .unwrap()
        .to_string();
    let auth1 = answer(&md5, "bob", "builder", uri, 1);
    assert_eq!(get(Some(&auth1)).status, 200, "MD5 works");
    // The same nonce count again is a replay.
    assert_eq!(get(Some(&auth1)).status, 401);
    // The next count is fine.
    assert_eq!(
        get(Some(&answer(&md5, "bob", "builder", uri, 2))).status,
        200
    );
    // A digest for another URI is refused.
    let other = answer(&md5, "bob", "builder", "/api/user/v1/other", 3);
    assert_eq!(get(Some(&other)).error(400).0, "bad_authorization");
    // After the nonce expires the challenge says stale=true. (A nonce minted in the
    // server's first second lives up to one second longer: this run's nonces must expire
    // after every nonce of an earlier run.)
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let r = get(Some(&answer(&md5, "bob", "builder", uri, 4)));
    assert_eq!(r.status, 401);
    assert!(
        r.header_all("www-authenticate")
            .iter()
            .all(|c| c.contains("stale=true")),
        "{r:?}"
    );
    // A nonce this server never minted is not stale, just wrong.
    let forged = md5.replace("nonce=\"", "nonce=\"x");
    let r = get(Some(&answer(&forged, "bob", "builder", uri, 1)));
    assert_eq!(r.status, 401);
    assert!(
        !r.header_all("www-authenticate")[0].contains("stale"),
        "{r:?}"
    );
}

#[test]
fn sighup_reloads_and_sigterm_drains() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let mut srv = Server::start(d, "");
    // A reload with a changed level and a changed listener: the level applies, the
    // listener change is reported as needing a restart.
    edit_config(d, "level = \"info\"", "level = \"debug\"");
    edit_config(d, "\"udp:127.0.0.1:0\"", "\"udp:127.0.0.1:5070\"");
    srv.signal("HUP");
    srv.wait_for_log("log level applied");
    srv.wait_for_log("TLS certificate reloaded");
    srv.wait_for_log("take effect after a restart");
    let r = curl(&[&format!("{}/healthz", srv.admin)]);
    assert_eq!(r.status, 200);
    srv.wait_for_log("\"message\":\"http request\"");
    // A broken file is reported and the server keeps running.
    edit_config(d, "[log]", "[log]\nbogus = 1");
    srv.signal("HUP");
    srv.wait_for_log("reload failed");
    assert_eq!(curl(&[&format!("{}/readyz", srv.admin)]).status, 200);

    srv.signal("TERM");
    assert_eq!(srv.wait(), Some(0), "{}", srv.log());
    let log = srv.log();
    assert!(
        log.contains("\"signal\":\"SIGTERM\"") && log.contains("\"message\":\"stopped\""),
        "{log}"
    );
}

#[test]
fn a_user_added_before_kill_9_is_still_there() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let t = token(d, "durability");
    let mut srv = Server::start(d, "info");
    let users = format!("{}/api/admin/v1/users", srv.admin);
    let r = curl(&[
        "-H",
        &bearer(&t),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"address":"durable@example.com","password":"pw"}"#,
        &users,
    ]);
    assert_eq!(r.status, 201, "{r:?}");
    // The 201 was sent: the write is committed. Kill without any chance to flush.
    srv.signal("KILL");
    assert_eq!(srv.wait(), None, "killed by a signal");
    drop(srv);

    let srv = Server::start(d, "info");
    let r = curl(&[
        "-H",
        &bearer(&t),
        &format!("{}/api/admin/v1/users/durable@example.com", srv.admin),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["has_password"], true);
}

#[test]
fn admin_commands_work_while_the_server_runs() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let t = token(d, "live");
    let srv = Server::start(d, "info");
    add_user(d, "cli@example.com", "pw");
    let r = curl(&[
        "-H",
        &bearer(&t),
        &format!("{}/api/admin/v1/users/cli@example.com", srv.admin),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    // A token created now works at once.
    let t2 = token(d, "later");
    let r = curl(&[
        "-H",
        &bearer(&t2),
        &format!("{}/api/admin/v1/users", srv.admin),
    ]);
    assert_eq!(r.status, 200);
    // Backup and restore beside the running server.
    expect_code(&run(d, &["backup", "live.db"]), 0);
    let r = curl(&[
        "-H",
        &bearer(&t),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"address":"gone@example.com","password":"pw"}"#,
        &format!("{}/api/admin/v1/users", srv.admin),
    ]);
    assert_eq!(r.status, 201);
    expect_code(&run(d, &["restore", "live.db"]), 0);
    let r = curl(&[
        "-H",
        &bearer(&t),
        &format!("{}/api/admin/v1/users/gone@example.com", srv.admin),
    ]);
    assert_eq!(
        r.status, 404,
        "the running server sees the restored content"
    );
}

#[test]
fn a_nonce_from_before_a_restart_is_stale_not_wrong() {
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "bob@example.com", "builder");
    let ca = d.join("tls/ca.crt").display().to_string();
    let uri = "/api/user/v1/me";
    let get = |srv: &Server, auth: Option<&str>| {
        let resolve = format!("example.com:{}:127.0.0.1", srv.user_port);
        let url = format!("https://example.com:{}{uri}", srv.user_port);
        let mut args = vec!["--cacert", &ca, "--resolve", &resolve];
        let h;
        if let Some(a) = auth {
            h = format!("Authorization: {a}");
            args.extend(["-H", &h]);
        }
        args.push(&url);
        curl(&args)
    };
    let mut srv = Server::start(d, "info");
    let md5 = get(&srv, None)
        .header_all("www-authenticate")
        .into_iter()
        .find(|c| c.contains("algorithm=MD5"))
        .unwrap()
        .to_string();
    assert_eq!(
        get(&srv, Some(&answer(&md5, "bob", "builder", uri, 1))).status,
        200
    );
    srv.signal("TERM");
    assert_eq!(srv.wait(), Some(0));
    // The key is kept beside the database, readable by the owner only.
    let key = d.join("nonce.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", key.display());

    // The restarted server knows its own old nonce (same key) but has no nonce-count record
    // for it: stale=true, so the client retries with a fresh nonce without asking its user.
    let srv = Server::start(d, "info");
    let r = get(&srv, Some(&answer(&md5, "bob", "builder", uri, 2)));
    assert_eq!(r.status, 401, "{r:?}");
    assert!(
        r.header_all("www-authenticate")
            .iter()
            .all(|c| c.contains("stale=true")),
        "{r:?}"
    );
}
