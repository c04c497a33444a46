//! The administrator's side of issue 9 through the real binary: `confab im-filter`,
//! `confab client-filter` (with `test`), `confab messages`, and the same through the admin
//! API, with precise refusals.

mod common;

use common::{Server, bearer, curl, expect_code, init_dir, run, stderr, stdout, token};

#[test]
fn im_filter_cli_shows_sets_and_refuses_with_the_field() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let o = run(d, &["im-filter", "show", "--json"]);
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["version"], 0);
    assert_eq!(v["policy"]["urls"]["action"], "allow");

    let o = run(
        d,
        &[
            "im-filter",
            "set",
            "--urls",
            "disable_links",
            "--prefix",
            "LINK_",
            "--url-scope",
            "external",
            "--block-extensions",
            ".EXE,bat",
            "--json",
        ],
    );
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["policy"]["urls"]["action"], "disable_links");
    assert_eq!(v["policy"]["urls"]["scope"], "external");
    assert_eq!(
        v["policy"]["files"]["extensions"],
        serde_json::json!(["bat", "exe"])
    );

    // Refusals name the option or field; nothing is written.
    let o = run(d, &["im-filter", "set", "--urls", "maybe"]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("--urls: 'maybe'"), "{}", stderr(&o));
    let o = run(d, &["im-filter", "set", "--prefix", "a<b"]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("urls.prefix"), "{}", stderr(&o));
    let o = run(d, &["im-filter", "show"]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("version:        1"), "{}", stdout(&o));
    assert!(stdout(&o).contains("LINK_"), "{}", stdout(&o));
}

#[test]
fn client_filter_cli_adds_lists_tests_and_removes_rules() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let o = run(
        d,
        &[
            "client-filter",
            "add",
            "--product",
            "Linphone",
            "--version",
            "< 5.0",
            "--action",
            "block",
            "--reason",
            "Please upgrade Linphone",
        ],
    );
    expect_code(&o, 0);
    let o = run(
        d,
        &[
            "client-filter",
            "add",
            "--product",
            "Zoiper*",
            "--version",
            "*",
            "--action",
            "block_with_url",
            "--url",
            "https://example.com/clients",
            "--position",
            "1",
        ],
    );
    expect_code(&o, 0);
    let o = run(d, &["client-filter", "list", "--json"]);
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["rules"][0]["product"], "Zoiper*");
    assert_eq!(v["rules"][1]["version"], "< 5.0");

    // test: the rule that decides and the response the client gets.
    let o = run(
        d,
        &[
            "client-filter",
            "test",
            "Linphone/4.5.1 (belle-sip/4.5.1)",
            "--json",
        ],
    );
    expect_code(&o, 0);
    let t: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(t["rule"], 2);
    assert_eq!(t["matched_product"], "Linphone/4.5.1");
    assert_eq!(t["status"], 403);
    assert_eq!(t["reason"], "Please upgrade Linphone");
    let o = run(d, &["client-filter", "test", "Zoiper rv2.10.19.4"]);
    expect_code(&o, 0);
    let text = stdout(&o);
    assert!(text.contains("rule 1: Zoiper* *"), "{text}");
    assert!(
        text.contains("response: 403 Client upgrade required"),
        "{text}"
    );
    assert!(
        text.contains("Warning: 399 example.com \"Client upgrade required: get a supported client at https://example.com/clients\""),
        "{text}"
    );
    let o = run(d, &["client-filter", "test", "Linphone/5.2.0"]);
    expect_code(&o, 0);
    assert!(
        stdout(&o).contains("no rule matches: default action"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("allowed"), "{}", stdout(&o));

    // Bad input: the rule number and the field.
    let o = run(
        d,
        &[
            "client-filter",
            "add",
            "--product",
            "X",
            "--version",
            "<< 2",
            "--action",
            "block",
        ],
    );
    expect_code(&o, 2);
    assert!(stderr(&o).contains("version: rule 3:"), "{}", stderr(&o));
    let o = run(
        d,
        &[
            "client-filter",
            "add",
            "--product",
            "X",
            "--version",
            "*",
            "--action",
            "allow",
            "--url",
            "https://x.example",
        ],
    );
    expect_code(&o, 2);
    assert!(stderr(&o).contains("--url:"), "{}", stderr(&o));
    let o = run(d, &["client-filter", "remove", "7"]);
    expect_code(&o, 2);
    let o = run(d, &["client-filter", "remove", "1"]);
    expect_code(&o, 0);
    assert!(
        stderr(&o).contains("removed rule 1: Zoiper*"),
        "{}",
        stderr(&o)
    );
    let o = run(d, &["client-filter", "list"]);
    assert!(!stdout(&o).contains("Zoiper"), "{}", stdout(&o));
}

#[test]
fn admin_api_manages_filters_and_lists_the_message_queue() {
    let dir = init_dir("example.com");
    let d = dir.path();
    let t = token(d, "ops");
    let srv = Server::start(d, "info");
    let auth = bearer(&t);
    let url = |p: &str| format!("{}/api/admin/v1/{p}", srv.admin);

    let r = curl(&["-H", &auth, &url("im-filter")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["policy"]["urls"]["action"], "allow");
    let r = curl(&[
        "-X",
        "PUT",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"urls":{"action":"block","reason":"No links please"}}"#,
        &url("im-filter"),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["version"], 1);
    assert_eq!(r.json()["policy"]["urls"]["reason"], "No links please");
    let r = curl(&[
        "-X",
        "PUT",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"urls":{"prefix":"bad>"}}"#,
        &url("im-filter"),
    ]);
    assert_eq!(r.error(400), ("invalid".into(), Some("urls.prefix".into())));
    let r = curl(&[
        "-X",
        "PUT",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"urls":{"action":"maybe"}}"#,
        &url("im-filter"),
    ]);
    assert_eq!(r.status, 400, "{r:?}");

    let r = curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"product":"OldPhone","version":"< 2","action":"block"}"#,
        &url("client-filter/rules"),
    ]);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["rules"][0]["product"], "OldPhone");
    let r = curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"product":"X","version":"*","action":"block_with_url"}"#,
        &url("client-filter/rules"),
    ]);
    assert_eq!(r.error(400), ("invalid".into(), Some("url".into())));
    let r = curl(&[
        "-H",
        &auth,
        &url("client-filter/test?user_agent=OldPhone%2F1.2"),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (r.json()["rule"].clone(), r.json()["status"].clone()),
        (1.into(), 403.into())
    );
    let r = curl(&["-X", "DELETE", "-H", &auth, &url("client-filter/rules/5")]);
    assert_eq!(r.error(404).0, "not_found");
    let r = curl(&["-X", "DELETE", "-H", &auth, &url("client-filter/rules/1")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["rules"], serde_json::json!([]));

    let r = curl(&["-H", &auth, &url("messages")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!({"messages": [], "next": null}));
    let r = curl(&[
        "-H",
        &auth,
        &url("messages?recipient=bob@elsewhere.example"),
    ]);
    assert_eq!(r.error(400).1.as_deref(), Some("recipient"));
    let r = curl(&["-X", "DELETE", "-H", &auth, &url("messages/99")]);
    assert_eq!(r.error(404).0, "not_found");
    // Without a token: 401.
    let r = curl(&[&url("im-filter")]);
    assert_eq!(r.error(401).0, "unauthorized");

    // The CLI sees what the API wrote.
    let o = run(d, &["im-filter", "show", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["policy"]["urls"]["action"], "block");
    let o = run(d, &["messages", "list", "--json"]);
    expect_code(&o, 0);
    assert_eq!(stdout(&o).trim(), "[]");
}
