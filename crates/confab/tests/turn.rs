//! TURN credentials and usage records through the real `confab` binary:
//!
//! - `confab turn-credentials` prints credentials (text and JSON) whose password is
//!   recomputed here with Python's `hmac` (an implementation we did not write), and fails
//!   with a message naming the key or the argument at fault;
//! - the user API hands the same credentials to a user authenticated by `curl --digest`;
//! - end to end: coturn's `turnutils_uclient` (Debian `coturn`) relays to `turnutils_peer`
//!   over UDP and TCP through `confab serve --role front-end --role av-edge`, with the
//!   credentials printed by `confab turn-credentials`; the admin API then serves the usage
//!   records of those allocations, pages and compacts them;
//! - an edge-only node serves health, metrics and usage on its admin listener to the tokens
//!   listed by hash, and nothing else.
//!
//! Missing tools (`curl`, `python3`, `turnutils_uclient`, `turnutils_peer`) fail the tests
//! with the package to install.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const SECRET: &str = "fe-shared-secret";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn tool(name: &str, package: &str) -> std::path::PathBuf {
    which(name).unwrap_or_else(|| {
        panic!("`{name}` is not installed: this test needs it (Debian package `{package}`)")
    })
}

/// base64(HMAC-SHA1(key, msg)) computed by Python's standard library.
fn python_rest_password(key: &str, msg: &str) -> String {
    let out = Command::new(tool("python3", "python3"))
        .args([
            "-c",
            "import base64, hashlib, hmac, sys; \
             print(base64.b64encode(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha1).digest()).decode())",
            key,
            msg,
        ])
        .output()
        .unwrap();
    expect_code(&out, 0);
    stdout(&out).trim().to_string()
}

/// SHA-256 in hex, computed by Python.
fn python_sha256_hex(text: &str) -> String {
    let out = Command::new(tool("python3", "python3"))
        .args([
            "-c",
            "import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())",
            text,
        ])
        .output()
        .unwrap();
    expect_code(&out, 0);
    stdout(&out).trim().to_string()
}

fn append_config(dir: &Path, text: &str) {
    let cfg = dir.join("confab.toml");
    let mut t = std::fs::read_to_string(&cfg).unwrap();
    t.push_str(text);
    std::fs::write(&cfg, t).unwrap();
}

/// Checks credentials for `address` issued with [`SECRET`] between `before` and `after`.
#[track_caller]
fn check_credentials(
    username: &str,
    password: &str,
    address: &str,
    ttl: u64,
    (before, after): (u64, u64),
) {
    let (expiry, user) = username.split_once(':').expect("EXPIRY:USER");
    assert_eq!(user, address);
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (before + ttl..=after + ttl).contains(&expiry),
        "expiry {expiry} not within [{before}+{ttl}, {after}+{ttl}]"
    );
    assert_eq!(password, python_rest_password(SECRET, username));
}

const SECRETS: &str = "secrets = [\"fe-shared-secret\", \"previous-secret\"]";

/// Fills in the `[turn_credentials]` table of the template written by `confab init`, as for
/// a Front End whose A/V Edge runs on other nodes.
fn configure_front_end(dir: &Path) {
    edit_config(dir, "secrets = []", SECRETS);
    edit_config(
        dir,
        "uris = []",
        "uris = [\"turn:edge.example.com:3478?transport=udp\", \"turns:edge.example.com:5349?transport=tcp\"]",
    );
    edit_config(dir, "ttl_s = 86400", "ttl_s = 3600");
}

#[test]
fn turn_credentials_command_prints_verifiable_credentials() {
    let dir = init_dir("example.com");
    let d = dir.path();
    // The template written by `confab init` documents the table (and it parses as is).
    let template = std::fs::read_to_string(d.join("confab.toml")).unwrap();
    assert!(template.contains("\n[turn_credentials]\n"), "{template}");
    configure_front_end(d);
    add_user(d, "alice@example.com", "pw");

    let before = unix_now();
    let out = run(
        d,
        &[
            "turn-credentials",
            "alice@example.com",
            "--json",
            "--ttl-s",
            "600",
        ],
    );
    let after = unix_now();
    expect_code(&out, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["expires_at_unix", "password", "ttl", "uris", "username"]
    );
    let username = v["username"].as_str().unwrap();
    check_credentials(
        username,
        v["password"].as_str().unwrap(),
        "alice@example.com",
        600,
        (before, after),
    );
    assert_eq!(v["ttl"], 600);
    assert_eq!(
        v["expires_at_unix"].as_u64().unwrap().to_string(),
        username.split(':').next().unwrap()
    );
    assert_eq!(
        v["uris"],
        serde_json::json!([
            "turn:edge.example.com:3478?transport=udp",
            "turns:edge.example.com:5349?transport=tcp"
        ])
    );

    // Text output, with the configured ttl_s; a `sip:` prefix is accepted.
    let before = unix_now();
    let out = run(d, &["turn-credentials", "sip:alice@example.com"]);
    let after = unix_now();
    expect_code(&out, 0);
    let text = stdout(&out);
    let field = |name: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
            .collect()
    };
    check_credentials(
        &field("username")[0],
        &field("password")[0],
        "alice@example.com",
        3600,
        (before, after),
    );
    assert_eq!(field("ttl"), ["3600 s"]);
    assert_eq!(
        field("uri"),
        [
            "turn:edge.example.com:3478?transport=udp",
            "turns:edge.example.com:5349?transport=tcp"
        ]
    );
    let expires = &field("expires")[0];
    assert!(expires.ends_with('Z') && expires.len() == 24, "{expires}");
}

#[track_caller]
fn check_failure(dir: &Path, args: &[&str], code: i32, message: &str) {
    let out = run(dir, args);
    expect_code(&out, code);
    assert!(
        stderr(&out).contains(message),
        "{args:?}: `{message}` not in:\n{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

#[test]
fn turn_credentials_command_names_what_is_wrong() {
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "alice@example.com", "pw");
    // Fresh configuration: no secret anywhere.
    check_failure(
        d,
        &["turn-credentials", "alice@example.com"],
        2,
        "confab.toml: turn_credentials.secrets: no TURN shared secret is configured here",
    );

    configure_front_end(d);
    check_failure(
        d,
        &["turn-credentials", "bob@example.com"],
        1,
        "user bob@example.com not found",
    );
    check_failure(
        d,
        &["turn-credentials", "alice@other.example"],
        2,
        "address: domain `other.example` is not served by this server",
    );
    for ttl in ["0", "604801"] {
        check_failure(
            d,
            &["turn-credentials", "alice@example.com", "--ttl-s", ttl],
            2,
            &format!("--ttl-s {ttl}: must be from 1 to 604800 seconds"),
        );
    }
    check_failure(d, &["turn-credentials"], 2, "ADDRESS");

    // With a [turn] table on this node, its secrets are the only ones.
    append_config(
        d,
        "\n[turn]\nrealm = \"example.com\"\nlisten_udp = [\"127.0.0.1:3478\"]\nlisten_tcp = []\nstatic_users = [{ username = \"phone\", password = \"p\" }]\n",
    );
    check_failure(
        d,
        &["turn-credentials", "alice@example.com"],
        2,
        "turn_credentials.secrets: this node has a [turn] table",
    );
    edit_config(d, SECRETS, "secrets = []");
    check_failure(
        d,
        &["turn-credentials", "alice@example.com"],
        2,
        "confab.toml: turn.secrets: no TURN shared secret is configured here",
    );
    edit_config(d, "uris = [\"turn:", "uris = [\"stun:");
    check_failure(
        d,
        &["turn-credentials", "alice@example.com"],
        2,
        "turn_credentials.uris[0]: `stun:edge.example.com:3478?transport=udp` scheme `stun` is not `turn` or `turns` (RFC 7065)",
    );
}

/// curl arguments for the user API of `srv`: trust the init CA, digest with USER:PASS.
fn user_get(srv: &Server, dir: &Path, userpass: Option<&str>, path: &str) -> Resp {
    let ca = dir.join("tls/ca.crt").display().to_string();
    let resolve = format!("example.com:{}:127.0.0.1", srv.user_port);
    let url = format!("https://example.com:{}{path}", srv.user_port);
    let mut args = vec!["--cacert", &ca, "--resolve", &resolve];
    if let Some(up) = userpass {
        args.extend(["--digest", "-u", up]);
    }
    args.push(&url);
    curl(&args)
}

#[test]
fn user_api_issues_turn_credentials_to_digest_users() {
    let dir = init_dir("example.com");
    let d = dir.path();
    configure_front_end(d);
    add_user(d, "alice@example.com", "wonder land");
    let srv = Server::start(d, "info");

    let before = unix_now();
    let r = user_get(
        &srv,
        d,
        Some("alice:wonder land"),
        "/api/user/v1/turn-credentials",
    );
    let after = unix_now();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header_all("cache-control"), ["no-store"]);
    let v = r.json();
    check_credentials(
        v["username"].as_str().unwrap(),
        v["password"].as_str().unwrap(),
        "alice@example.com",
        3600,
        (before, after),
    );
    assert_eq!(v["ttl"], 3600);
    assert_eq!(v["uris"][0], "turn:edge.example.com:3478?transport=udp");

    // No credentials without authentication, nor with a wrong password.
    let r = user_get(&srv, d, None, "/api/user/v1/turn-credentials");
    assert_eq!(r.error(401).0, "unauthorized");
    let r = user_get(
        &srv,
        d,
        Some("alice:wrong"),
        "/api/user/v1/turn-credentials",
    );
    assert_eq!(r.error(401).0, "unauthorized");
    assert!(!r.body.contains("password\""), "{}", r.body);

    // A server with no secret says so.
    let bare = init_dir("example.com");
    add_user(bare.path(), "alice@example.com", "wonder land");
    let srv2 = Server::start(bare.path(), "info");
    let r = user_get(
        &srv2,
        bare.path(),
        Some("alice:wonder land"),
        "/api/user/v1/turn-credentials",
    );
    assert_eq!(r.error(404).0, "not_found");
}

/// `turnutils_peer` on 127.0.0.2 (the relay refuses its own address, 127.0.0.1, as a peer).
struct Peer(Child, u16);

impl Peer {
    fn start() -> Peer {
        let port = UdpSocket::bind("127.0.0.2:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(tool("turnutils_peer", "coturn"))
            .args(["-L", "127.0.0.2", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        Peer(child, port)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A number after `key` in `turnutils_uclient`'s report (its last occurrence).
fn report_number(text: &str, key: &str) -> Option<u64> {
    text.lines().rev().find_map(|line| {
        let rest = &line[line.find(key)? + key.len()..];
        rest.trim_start_matches([' ', ':', '='])
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

/// Runs `turnutils_uclient` (2 clients x 30 messages of 120 bytes, channels) against
/// 127.0.0.1:`port`; asserts it succeeded and lost at most 5 %.
fn uclient(flags: &[&str], port: u16, peer: &Peer, username: &str, password: &str) {
    let out = Command::new(tool("turnutils_uclient", "coturn"))
        .args(flags)
        .args(["-n", "30", "-m", "2", "-l", "120", "-z", "5", "-c", "-X"])
        .args(["-e", "127.0.0.2", "-r", &peer.1.to_string()])
        .args([
            "-p",
            &port.to_string(),
            "-u",
            username,
            "-w",
            password,
            "127.0.0.1",
        ])
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success(),
        "uclient {flags:?}: {}\n{text}",
        out.status
    );
    let sent = report_number(&text, "tot_send_msgs").unwrap_or(0);
    let received = report_number(&text, "tot_recv_msgs").unwrap_or(0);
    assert!(sent >= 60, "uclient {flags:?} sent {sent}:\n{text}");
    assert!(
        received * 100 >= sent * 95,
        "uclient {flags:?}: {received}/{sent}\n{text}"
    );
}

fn usage(srv: &Server, token: &str, query: &str) -> Resp {
    curl(&[
        "-H",
        &bearer(token),
        &format!("{}/api/admin/v1/turn/usage{query}", srv.admin),
    ])
}

fn compact(srv: &Server, token: &str, body: &str) -> Resp {
    curl(&[
        "-X",
        "POST",
        "-H",
        &bearer(token),
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        &format!("{}/api/admin/v1/turn/usage/compact", srv.admin),
    ])
}

#[test]
fn turnutils_relays_with_cli_credentials_and_the_admin_api_serves_usage() {
    let dir = init_dir("example.com");
    let d = dir.path();
    // One box: both roles, one [turn] table holding the secret the CLI mints with.
    append_config(
        d,
        &format!(
            "\n[turn]\nrealm = \"example.com\"\nlisten_udp = [\"127.0.0.1:0\"]\nlisten_tcp = [\"127.0.0.1:0\"]\n\
             secrets = [\"{SECRET}\"]\nallow_loopback_peers = true\nmin_port = 42100\nmax_port = 42199\n\
             workers = 1\nusage_spool = \"usage.jsonl\"\n"
        ),
    );
    add_user(d, "alice@example.com", "pw");
    let token = token(d, "collector");
    let srv = Server::start_with(
        d,
        "info",
        &["--role", "front-end", "--role", "av-edge"],
        &[
            "http.admin.listen",
            "http.user.listen",
            "turn.listen_udp",
            "turn.listen_tcp",
        ],
    );
    let port = |key: &str| -> u16 { srv.addrs[key].rsplit(':').next().unwrap().parse().unwrap() };

    // Nothing relayed yet.
    let r = usage(&srv, &token, "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json(),
        serde_json::json!({"records": [], "next_offset": 0})
    );

    // Credentials from the CLI (while the server runs), verified independently first.
    let before = unix_now();
    let out = run(d, &["turn-credentials", "alice@example.com", "--json"]);
    expect_code(&out, 0);
    let creds: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (username, password) = (
        creds["username"].as_str().unwrap(),
        creds["password"].as_str().unwrap(),
    );
    check_credentials(
        username,
        password,
        "alice@example.com",
        86_400,
        (before, unix_now()),
    );
    // URIs derived from the [turn] listeners at the first domain.
    assert_eq!(creds["uris"][0], "turn:example.com:0?transport=udp");

    let peer = Peer::start();
    uclient(&[], port("turn.listen_udp"), &peer, username, password);
    uclient(&["-t"], port("turn.listen_tcp"), &peer, username, password);

    // uclient deletes its busy allocations (2 per run), each having carried 30 x 120 bytes
    // each way. It also holds one idle allocation per client: over UDP those live on until
    // they expire; over TCP they end when uclient closes its connections.
    let summary = |recs: &[serde_json::Value]| -> Vec<(String, String, u64, u64)> {
        let mut v: Vec<_> = recs
            .iter()
            .map(|r| {
                (
                    r["transport"].as_str().unwrap().to_string(),
                    r["end"].as_str().unwrap().to_string(),
                    r["bytes_to_peers"].as_u64().unwrap(),
                    r["bytes_from_peers"].as_u64().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let t = |tr: &str, end: &str, b: u64| (tr.to_string(), end.to_string(), b, b);
    let expected = vec![
        t("tcp", "connection_closed", 0),
        t("tcp", "connection_closed", 0),
        t("tcp", "deleted", 3600),
        t("tcp", "deleted", 3600),
        t("udp", "deleted", 3600),
        t("udp", "deleted", 3600),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let records = loop {
        let v = usage(&srv, &token, "?max=1000").json();
        let recs = v["records"].as_array().unwrap().clone();
        if recs.len() >= expected.len() || Instant::now() > deadline {
            break recs;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(summary(&records), expected, "{records:?}");
    for r in &records {
        assert_eq!(r["user"], "alice@example.com", "{r}");
        assert_eq!(r["username"], username, "{r}");
        assert!(
            r["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{r}"
        );
        let relay_port: u16 = r["relays"][0]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((42100..=42199).contains(&relay_port), "{r}");
    }

    // The relay's counters reach /metrics (published once a second): 2 runs x 2 clients x
    // 30 packets each way.
    let relayed = |direction: &str| -> u64 {
        let m = curl(&[&format!("{}/metrics", srv.admin)]).body;
        let key = format!("confab_turn_relayed_packets_total{{direction=\"{direction}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while relayed("from_peers") < 120 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!((relayed("to_peers"), relayed("from_peers")), (120, 120));

    // Paging: one record at a time, in order.
    let first = usage(&srv, &token, "?max=1").json();
    assert_eq!(first["records"].as_array().unwrap().len(), 1);
    assert_eq!(first["records"][0], records[0]);
    let next = first["next_offset"].as_u64().unwrap();
    let second = usage(&srv, &token, &format!("?offset={next}&max=1")).json();
    assert_eq!(second["records"][0], records[1]);
    let after_two = second["next_offset"].as_u64().unwrap();

    // Offsets that do not start a record, bad numbers, and no token.
    for (query, field) in [
        (format!("?offset={}", next - 1), "offset"),
        ("?offset=999999999".to_string(), "offset"),
        ("?offset=-1".to_string(), "offset"),
        ("?max=0".to_string(), "max"),
        ("?max=1001".to_string(), "max"),
        ("?max=many".to_string(), "max"),
    ] {
        let r = usage(&srv, &token, &query);
        assert_eq!(
            r.error(400),
            ("invalid".to_string(), Some(field.to_string())),
            "{query}"
        );
    }
    let r = curl(&[&format!("{}/api/admin/v1/turn/usage", srv.admin)]);
    assert_eq!(r.error(401).0, "unauthorized");
    let r = compact(&srv, &token, &format!("{{\"upto\": {}}}", next + 1));
    assert_eq!(
        r.error(400),
        ("invalid".to_string(), Some("upto".to_string()))
    );
    for bad in ["-1", "12.5", "9007199254740992", "\"12\""] {
        let r = compact(&srv, &token, &format!("{{\"upto\": {bad}}}"));
        let (code, field) = r.error(400);
        assert_eq!(field.as_deref(), Some("upto"), "{bad}: {r:?}");
        assert!(code == "invalid" || code == "bad_json", "{bad}: {r:?}");
    }
    // JSON Schema integers may be written with a zero fraction.
    assert_eq!(compact(&srv, &token, "{\"upto\": 0.0}").status, 204);

    // Compacting the first two: the other two remain, offsets restart at 0.
    let r = compact(&srv, &token, &format!("{{\"upto\": {after_two}}}"));
    assert_eq!(r.status, 204, "{r:?}");
    let rest = usage(&srv, &token, "").json();
    assert_eq!(rest["records"].as_array().unwrap()[..], records[2..]);
    let end = rest["next_offset"].as_u64().unwrap();
    assert_eq!(
        compact(&srv, &token, &format!("{{\"upto\": {end}}}")).status,
        204
    );
    assert_eq!(
        usage(&srv, &token, "").json(),
        serde_json::json!({"records": [], "next_offset": 0})
    );
    assert!(!srv.log().contains("\"level\":\"ERROR\""), "{}", srv.log());
}

#[test]
fn an_edge_only_node_serves_health_metrics_and_usage_to_listed_tokens() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let token = format!("confab_{}", "Edge-collector-token_0123456789abcdefghijkl");
    assert_eq!(token.len(), 50);
    edit_config(
        d,
        "tokens_sha256 = []",
        &format!("tokens_sha256 = [\"{}\"]", python_sha256_hex(&token)),
    );
    append_config(
        d,
        &format!(
            "\n[turn]\nrealm = \"example.com\"\nlisten_udp = [\"127.0.0.1:0\"]\nlisten_tcp = []\n\
             secrets = [\"{SECRET}\"]\nmin_port = 42200\nmax_port = 42299\nworkers = 1\nusage_spool = \"usage.jsonl\"\n"
        ),
    );
    let mut srv = Server::start_with(
        d,
        "info",
        &["--role", "av-edge"],
        &["turn.listen_udp", "http.admin.listen"],
    );
    assert!(
        !srv.addrs.contains_key("http.user.listen"),
        "{:?}",
        srv.addrs
    );

    let a = &srv.admin;
    assert_eq!(curl(&[&format!("{a}/healthz")]).json()["status"], "ok");
    assert_eq!(curl(&[&format!("{a}/readyz")]).json()["status"], "ready");
    let m = curl(&[&format!("{a}/metrics")]);
    assert!(m.body.contains("confab_build_info"), "{}", m.body);
    // No database here: the user administration is not served.
    let r = curl(&["-H", &bearer(&token), &format!("{a}/api/admin/v1/users")]);
    assert_eq!(r.error(404).0, "not_found");

    let r = usage(&srv, &token, "");
    assert_eq!(
        r.json(),
        serde_json::json!({"records": [], "next_offset": 0})
    );
    let other = format!("confab_{}", "x".repeat(43));
    let r = usage(&srv, &other, "");
    assert_eq!(r.error(401).0, "unauthorized");
    assert!(
        r.header_all("www-authenticate")[0].contains("invalid_token"),
        "{r:?}"
    );
    let r = curl(&[&format!("{a}/api/admin/v1/turn/usage")]);
    assert_eq!(r.error(401).0, "unauthorized");
    assert_eq!(compact(&srv, &token, "{\"upto\": 0}").status, 204);
    assert_eq!(
        compact(&srv, &token, "{\"upto\": 5}")
            .error(400)
            .1
            .as_deref(),
        Some("upto")
    );

    srv.signal("TERM");
    assert_eq!(srv.wait(), Some(0), "{}", srv.log());
}
