//! sipvicious `svwar` (Debian `sipvicious` 0.3.3), the SIP extension enumerator, finds no
//! account on a real `confab serve`: extensions 100..=119 are scanned, of which 100..=104
//! exist, with each of its methods (REGISTER, INVITE,
//! OPTIONS). Every extension, existing or not, gets the same answer, so svwar reports none.
//!
//! The test also checks that svwar did get answers (its `--debug` output prints each SIP
//! response received), so "nothing found" is not "nothing reachable".

mod common;
#[path = "peers/support.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use common::{add_user, init_dir};
use support::{UDP, output_within, port_of, require, serve};

#[test]
fn svwar_finds_no_account_with_any_method() {
    let Some(svwar) = require("svwar", "sipvicious") else {
        return;
    };
    let dir = init_dir("example.com");
    let d = dir.path();
    for ext in 100..=104 {
        add_user(d, &format!("{ext}@example.com"), &format!("pw-{ext}"));
    }
    let srv = serve(d, "info");
    let port = port_of(&srv.addrs[UDP]).to_string();

    for method in ["REGISTER", "INVITE", "OPTIONS"] {
        let mut c = Command::new(&svwar);
        c.args(["-e", "100-119", "-m", method, "--domain", "example.com"])
            .args(["-p", &port, "-b", "127.0.0.1", "--debug", "127.0.0.1"]);
        let out = output_within(c, Duration::from_secs(50), "svwar");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The result table has a row per extension found: `| 100 | reqauth |`.
        let found: Vec<&str> = text
            .lines()
            .filter(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                cells.len() >= 3 && cells[1].parse::<u32>().is_ok()
            })
            .collect();
        assert!(
            found.is_empty(),
            "svwar -m {method} enumerated accounts: {found:?}\n{text}"
        );
        let answers = text.matches("SIP/2.0 ").count();
        assert!(
            answers >= 20,
            "svwar -m {method} got {answers} SIP responses, expected one per extension:\n{text}"
        );
    }
    drop(srv);
}
