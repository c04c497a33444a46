//! SIPp (Debian `sip-tester`) for the integration tests: one client call of a scenario
//! file against a running server, the check that it passed, and the rule that a missing
//! SIPp skips a test locally but fails it when `CONFAB_REQUIRE_PEERS` is set (CI).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where Debian installs SIPp.
pub const SIPP: &str = "/usr/bin/sipp";

/// Whether SIPp can run here: `false` (with a notice) skips the calling test, a missing
/// SIPp under `CONFAB_REQUIRE_PEERS` fails it.
pub fn available() -> bool {
    if Path::new(SIPP).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CONFAB_REQUIRE_PEERS").is_none(),
        "CONFAB_REQUIRE_PEERS is set but {SIPP} (Debian sip-tester) is missing"
    );
    eprintln!("skipping: {SIPP} (Debian sip-tester) not installed");
    false
}

/// A scenario file in `crates/<dir>` (`confab/tests/sipp`, `confab-frontend/tests/sipp`).
pub fn scenario(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir)
        .join(name)
}

/// One call of the scenario `file` from 127.0.0.1 (a port the system picks) over UDP to
/// `server`, in the domain
/// example.com, with extra SIPp `args`; 20 s at most.
pub fn client(server: &str, file: &Path, args: &[&str]) -> Output {
    Command::new(SIPP)
        .arg(server)
        .arg("-sf")
        .arg(file)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-t",
            "u1",
            "-nostdin",
            "-timeout",
            "20s",
        ])
        .args(["-timeout_error", "-m", "1", "-key", "domain", "example.com"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("sipp runs")
}

/// Asserts that a SIPp run passed, showing its output otherwise.
#[track_caller]
pub fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "sipp {what}: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
