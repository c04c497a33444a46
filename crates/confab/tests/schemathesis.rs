//! Fuzzes the admin API against `openapi/confab.yaml` with schemathesis (PyPI), started as
//! a real binary on free ports in a temporary folder with a fresh token. Every schemathesis
//! check runs except those `tests/schemathesis.toml` turns off (with its reasons). The node
//! also runs the A/V Edge role with a usage spool, so the TURN usage operations are reached.
//!
//! Fails, naming the tool, when schemathesis is not installed (`pip install schemathesis`;
//! `.ci/run` installs it).

mod common;

use std::process::Command;

use common::*;

#[test]
fn schemathesis_finds_no_failure_in_the_admin_api() {
    let st = which("schemathesis").or_else(|| which("st")).unwrap_or_else(|| {
        panic!(
            "schemathesis is not installed: this test needs it (`python3 -m pip install schemathesis`)"
        )
    });
    let dir = init_dir("example.com");
    let d = dir.path();
    let t = token(d, "schemathesis");
    let cfg = d.join("confab.toml");
    let turn = "\n[turn]\nrealm = \"example.com\"\nlisten_udp = [\"127.0.0.1:0\"]\nlisten_tcp = []\nsecrets = [\"s\"]\nmin_port = 42300\nmax_port = 42309\nworkers = 1\nusage_spool = \"usage.jsonl\"\n";
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap() + turn).unwrap();
    let roles = ["--role", "front-end", "--role", "av-edge"];
    let srv = Server::start_with(
        d,
        "info",
        &roles,
        &["http.admin.listen", "http.user.listen"],
    );
    let manifest = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(st)
        .current_dir(d)
        .arg("--config-file")
        .arg(format!("{manifest}/tests/schemathesis.toml"))
        .arg("run")
        .arg(format!("{manifest}/../../openapi/confab.yaml"))
        .args(["--url", &srv.admin])
        .args(["-H", &bearer(&t)])
        .args(["--include-tag", "admin"])
        .args(["--max-examples", "40", "--seed", "1", "--workers", "1"])
        .args(["--report", "junit", "--report-dir"])
        .arg(d.join("report"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success(),
        "schemathesis failed:\n{text}\nserver log:\n{}",
        srv.log()
    );
    assert!(text.contains("passed"), "{text}");
    assert!(!srv.log().contains("\"level\":\"ERROR\""), "{}", srv.log());
}
