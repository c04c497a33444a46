//! The command line contract, run on the real binary: init, serve --check, config errors
//! naming file/line/key, user and token commands, import with bad rows, backup/restore,
//! exit codes (0 ok, 1 failure, 2 usage or configuration error).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_config_database_and_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let out = confab(dir.path())
        .args(["init", "--dir", "site", "--domain", "Example.COM"])
        .output()
        .unwrap();
    expect_code(&out, 0);
    let site = dir.path().join("site");
    for (f, m) in [
        ("confab.db", 0o600),
        ("tls/ca.key", 0o600),
        ("tls/server.key", 0o600),
        ("tls/ca.crt", 0o644),
        ("tls/server.crt", 0o644),
    ] {
        assert_eq!(mode(&site.join(f)), m, "{f}");
    }
    assert_eq!(mode(&site), 0o700);
    let text = std::fs::read_to_string(site.join("confab.toml")).unwrap();
    assert!(text.contains("domains = [\"example.com\"]"), "{text}");
    assert!(text.contains("\"wss:127.0.0.1:8443\""), "{text}");

    // Refuses to overwrite (failure), then --force rewrites and keeps the database.
    add_user(&site, "keep@example.com", "pw");
    let again = confab(dir.path())
        .args(["init", "--dir", "site"])
        .output()
        .unwrap();
    expect_code(&again, 1);
    assert!(
        stderr(&again).contains("already exists; use --force"),
        "{}",
        stderr(&again)
    );
    let forced = confab(dir.path())
        .args([
            "init",
            "--dir",
            "site",
            "--domain",
            "example.com",
            "--force",
        ])
        .output()
        .unwrap();
    expect_code(&forced, 0);
    let list = run(&site, &["user", "list", "--json"]);
    expect_code(&list, 0);
    assert!(stdout(&list).contains("keep@example.com"));

    let check = run(&site, &["serve", "--check"]);
    expect_code(&check, 0);
    assert!(
        stdout(&check).contains("configuration OK"),
        "{}",
        stdout(&check)
    );
}

#[test]
fn init_listen_replaces_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let out = confab(dir.path())
        .args(["init", "--dir", "."])
        .args([
            "--listen",
            "udp:[::1]:5070",
            "--listen",
            "tls:127.0.0.1:5071",
        ])
        .output()
        .unwrap();
    expect_code(&out, 0);
    let text = std::fs::read_to_string(dir.path().join("confab.toml")).unwrap();
    let start = text.find("listen = [").unwrap();
    let block = &text[start..];
    let end = block.find("\n]").unwrap();
    assert_eq!(
        &block[..end + 2],
        "listen = [\n  \"udp:[::1]:5070\",\n  \"tls:127.0.0.1:5071\",\n]"
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["init", "--listen", "sctp:127.0.0.1:5060"][..],
        &["init", "--listen", "udp:localhost:5060"],
        &["init", "--domain", "bad_domain"],
        &["user", "add"],
        &["frobnicate"],
    ] {
        let out = confab(dir.path()).args(args).output().unwrap();
        expect_code(&out, 2);
        assert!(!stderr(&out).is_empty(), "{args:?}");
    }
    // --help is not an error.
    expect_code(&confab(dir.path()).arg("--help").output().unwrap(), 0);
}

#[track_caller]
fn check_config_error(text_from: &str, text_to: &str, expected: &[&str]) {
    check_config_error_at(text_from, text_to, None, expected);
}

/// With `at = Some((needle, message))`, the error must also name the line of the edited
/// file that holds `needle` (counted here, not hard-coded: the generated file grows).
#[track_caller]
fn check_config_error_at(
    text_from: &str,
    text_to: &str,
    at: Option<(&str, &str)>,
    expected: &[&str],
) {
    let dir = init_dir("example.com");
    edit_config(dir.path(), text_from, text_to);
    let out = run(dir.path(), &["serve", "--check"]);
    expect_code(&out, 2);
    let err = stderr(&out);
    let file = dir.path().join("confab.toml");
    assert!(err.contains(&format!("{}:", file.display())), "{err}");
    for e in expected {
        assert!(err.contains(e), "`{e}` not in:\n{err}");
    }
    if let Some((needle, message)) = at {
        let text = std::fs::read_to_string(&file).unwrap();
        let line = 1 + text
            .lines()
            .position(|l| l.contains(needle))
            .expect("needle in the edited file");
        let want = format!(":{line}: {message}");
        assert!(err.contains(&want), "`{want}` not in:\n{err}");
    }
}

#[test]
fn config_errors_name_file_line_and_key() {
    check_config_error_at(
        "[http.admin]\n",
        "[http.admin]\nlisen = \"x\"\n",
        Some(("lisen = ", "http.admin.lisen: unknown field `lisen`")),
        &[],
    );
    check_config_error(
        "listen = \"127.0.0.1:0\"",
        "listen = \"localhost\"",
        &[": http.admin.listen: invalid socket address syntax"],
    );
    check_config_error_at(
        "\"udp:127.0.0.1:0\"",
        "\"udp:127.0.0.1:99999\"",
        Some((
            "udp:127.0.0.1:99999",
            "transport.listen[0]: listener `udp:127.0.0.1:99999`: bad port `99999`",
        )),
        &[],
    );
    check_config_error_at(
        "level = \"info\"",
        "level = \"chatty\"",
        Some((
            "level = \"chatty\"",
            "log.level: `chatty` is neither a level",
        )),
        &[],
    );
    check_config_error(
        "[store]\n",
        "[presense]\nenabled = true\n[store]\n",
        &[": presense: unknown field `presense`"],
    );
    check_config_error(
        "[presence.subscription]\n",
        "[presence.subscription]\nmin_expire = 30\n",
        &[": presence.subscription.min_expire: unknown field `min_expire`, expected one of"],
    );
    check_config_error(
        "max_contacts = 10",
        "max_contacts = 0",
        &[": registrar.max_contacts: must be between 1 and 100"],
    );
    check_config_error(
        "timer_c_s = 185",
        "timer_c_s = 30",
        &[": proxy.timer_c_s: 30 s is not more than 3 minutes"],
    );
    check_config_error(
        "read_connections = 4",
        "read_connections = 0",
        &[": store.read_connections: must be between 1 and 64"],
    );
    check_config_error(
        "cert_chain = \"tls/server.crt\"",
        "cert_chain = \"tls/missing.crt\"",
        &[": tls.certificates[0].cert_chain: cannot read `"],
    );
}

#[test]
fn a_missing_config_file_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["user", "list"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("confab.toml: cannot read the file"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("confab init"), "{}", stderr(&out));
    // CONFAB_CONFIG names the file too.
    let out = confab(dir.path())
        .env("CONFAB_CONFIG", dir.path().join("other.toml"))
        .args(["serve", "--check"])
        .output()
        .unwrap();
    expect_code(&out, 2);
    assert!(stderr(&out).contains("other.toml"), "{}", stderr(&out));
    // An explicit config is never created by serve.
    assert!(!dir.path().join("confab-data").exists());
}

#[test]
fn serve_check_initialises_the_default_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = confab(dir.path())
        .args(["serve", "--check"])
        .output()
        .unwrap();
    expect_code(&out, 0);
    let text = std::fs::read_to_string(dir.path().join("confab-data/confab.toml")).unwrap();
    for needle in [
        "domains = [\"localhost\"]",
        "\"udp:127.0.0.1:5060\"",
        "\"tcp:127.0.0.1:5060\"",
        "\"tls:127.0.0.1:5061\"",
        "\"ws:127.0.0.1:8080\"",
        "\"wss:127.0.0.1:8443\"",
        "listen = \"127.0.0.1:9090\"",
        "listen = \"127.0.0.1:9443\"",
    ] {
        assert!(text.contains(needle), "{needle}");
    }
    assert!(dir.path().join("confab-data/confab.db").exists());
}

#[test]
fn user_commands() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let o = run_with_stdin(
        d,
        &[
            "user",
            "add",
            "sip:alice@example.com",
            "--password-stdin",
            "--display-name",
            "Alice Liddell",
            "--phone",
            "+1(555)123-4567",
            "--role",
            "admin",
        ],
        "wonderland\n",
        &[],
    );
    expect_code(&o, 0);
    let o = run(
        d,
        &[
            "user",
            "add",
            "bob@example.com",
            "--password",
            "pw",
            "--phone",
            "tel:+15551234568;ext=12",
        ],
    );
    expect_code(&o, 0);

    // Adding an existing user fails; a taken phone number fails; bad input is usage.
    let o = run(d, &["user", "add", "alice@example.com", "--password", "x"]);
    expect_code(&o, 1);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = run(
        d,
        &[
            "user",
            "add",
            "carol@example.com",
            "--password",
            "x",
            "--phone",
            "+15551234567",
        ],
    );
    expect_code(&o, 1);
    let o = run(
        d,
        &[
            "user",
            "add",
            "carol@example.com",
            "--password",
            "x",
            "--phone",
            "555",
        ],
    );
    expect_code(&o, 2);
    assert!(stderr(&o).contains("phone"), "{}", stderr(&o));
    let o = run(d, &["user", "add", "carol@other.org", "--password", "x"]);
    expect_code(&o, 2);
    let o = run_with_stdin(
        d,
        &["user", "add", "carol@example.com", "--password-stdin"],
        "",
        &[],
    );
    expect_code(&o, 2);
    assert!(stderr(&o).contains("password is empty"), "{}", stderr(&o));

    let o = run(d, &["user", "list", "--json"]);
    expect_code(&o, 0);
    let list: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        list,
        serde_json::json!([
            {
                "address": "alice@example.com", "username": "alice", "domain": "example.com",
                "display_name": "Alice Liddell", "phone": "+15551234567", "role": "admin",
                "has_password": true,
                "created_at": list[0]["created_at"], "updated_at": list[0]["updated_at"],
            },
            {
                "address": "bob@example.com", "username": "bob", "domain": "example.com",
                "display_name": null, "phone": "+15551234568;ext=12", "role": "user",
                "has_password": true,
                "created_at": list[1]["created_at"], "updated_at": list[1]["updated_at"],
            },
        ])
    );
    assert!(list[0]["created_at"].as_str().unwrap().ends_with('Z'));

    let o = run(
        d,
        &[
            "user",
            "modify",
            "bob@example.com",
            "--display-name",
            "Bob",
            "--clear-phone",
            "--role",
            "admin",
        ],
    );
    expect_code(&o, 0);
    let o = run(d, &["user", "show", "bob@example.com", "--json"]);
    expect_code(&o, 0);
    let bob: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(bob["display_name"], "Bob");
    assert_eq!(bob["phone"], serde_json::Value::Null);
    assert_eq!(bob["role"], "admin");
    let o = run(d, &["user", "modify", "bob@example.com"]);
    expect_code(&o, 2);

    let o = run(
        d,
        &["user", "passwd", "bob@example.com", "--password", "new"],
    );
    expect_code(&o, 0);
    let o = run(d, &["user", "remove", "bob@example.com"]);
    expect_code(&o, 0);
    let o = run(d, &["user", "show", "bob@example.com"]);
    expect_code(&o, 1);
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    let o = run(d, &["user", "remove", "bob@example.com"]);
    expect_code(&o, 1);
    let o = run(d, &["user", "list"]);
    expect_code(&o, 0);
    assert!(stdout(&o).starts_with("ADDRESS"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("alice@example.com  admin"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn import_reports_bad_rows_by_line_and_keeps_the_good_ones() {
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "existing@example.com", "old");
    let csv = "address,password,display name,phone\n\
               u1@example.com,pw1,User One,+15550000001\n\
               not-an-address,pw2,,\n\
               u3@example.com,pw3,\"Three, Esq.\",\n\
               u4@other.org,pw4,,\n\
               u5@example.com,pw5,,+15550000001\n\
               u6@example.com,pw6,Six,12345\n\
               existing@example.com,,Renamed,\n\
               u8@example.com,pw8\n\
               \n\
               \"u9@example.com\",\"pw9\",\"Multi\nLine\",\n\
               u10@example.com,pw10,,+15550000010\n";
    std::fs::write(d.join("users.csv"), csv).unwrap();
    let o = run(d, &["user", "import", "users.csv"]);
    expect_code(&o, 1);
    let err = stderr(&o);
    let bad: Vec<&str> = err.lines().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(bad.len(), 6, "{err}");
    assert!(bad[0].starts_with("line 3: address:"), "{err}");
    assert!(
        bad[1].starts_with("line 5: address: domain `other.org` is not served"),
        "{err}"
    );
    assert!(bad[2].starts_with("line 7: phone"), "{err}");
    assert!(
        bad[3].starts_with("line 9: has 2 fields; the header has 4"),
        "{err}"
    );
    assert!(
        bad[4].starts_with("line 11: display_name: display name contains control character"),
        "{err}"
    );
    // Found by the store (phone of u1, in the same batch), reported with its line.
    assert!(
        bad[5].starts_with("line 6: ") && bad[5].contains("+15550000001"),
        "{err}"
    );
    assert!(
        stdout(&o).contains("imported 4 rows (3 added, 1 updated); 6 rows failed"),
        "{}",
        stdout(&o)
    );
    assert!(err.contains("6 of the rows"), "{err}");

    let o = run(d, &["user", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "existing@example.com",
            "u1@example.com",
            "u10@example.com",
            "u3@example.com"
        ]
    );
    assert_eq!(list[0]["display_name"], "Renamed");
    assert_eq!(list[0]["has_password"], true);
    assert_eq!(list[3]["display_name"], "Three, Esq.");

    // A file whose header is wrong is rejected before any row.
    std::fs::write(d.join("bad.csv"), "email,password\nx@example.com,p\n").unwrap();
    let o = run(d, &["user", "import", "bad.csv"]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("line 1: unknown column `email`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn tokens() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let t = token(d, "ci-deploy");
    assert!(t.starts_with("confab_") && t.len() == 50, "{t}");
    let o = run(d, &["token", "create", "--name", "ci-deploy"]);
    expect_code(&o, 1);
    let o = run(d, &["token", "create", "--name", "bad name"]);
    expect_code(&o, 2);
    let o = run(d, &["token", "list", "--json"]);
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["name"], "ci-deploy");
    assert!(!stdout(&o).contains(&t), "secrets are never shown again");
    let o = run(d, &["token", "revoke", "--name", "ci-deploy"]);
    expect_code(&o, 0);
    let o = run(d, &["token", "list", "--json"]);
    assert_eq!(stdout(&o).trim(), "[]");
}

#[test]
fn backup_and_restore() {
    let dir = init_dir("example.com");
    let d = dir.path();
    add_user(d, "before@example.com", "pw");
    let o = run(d, &["backup", "snap.db"]);
    expect_code(&o, 0);
    assert_eq!(mode(&d.join("snap.db")), 0o600);
    let o = run(d, &["backup", "snap.db"]);
    expect_code(&o, 2);
    add_user(d, "after@example.com", "pw");
    let o = run(d, &["restore", "snap.db"]);
    expect_code(&o, 0);
    let o = run(d, &["user", "list", "--json"]);
    let s = stdout(&o);
    assert!(
        s.contains("before@example.com") && !s.contains("after@example.com"),
        "{s}"
    );
    std::fs::write(d.join("junk.db"), "not a database").unwrap();
    let o = run(d, &["restore", "junk.db"]);
    expect_code(&o, 1);
    let o = run(d, &["restore", "missing.db"]);
    expect_code(&o, 2);
}
