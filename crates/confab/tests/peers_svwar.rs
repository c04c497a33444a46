//! sipvicious `svwar` (Debian `sipvicious` 0.3.3), the SIP extension enumerator, finds no
//! account on a real `confab serve`: extensions 100..=119 are scanned, of which 100..=104
//! exist, with each of its methods (REGISTER, INVITE,
//! OPTIONS). Every extension, existing or not, gets the same answer, so svwar reports none.
//!
//! svwar refuses to scan a server that challenges an unknown extension unless `--force`d;
//! forced, it stops at the first extension whose answer equals the unknown one's. The test
//! checks from its `--debug` output (every SIP response received) that it did get an answer
//! for the existing extension 100 with the same status as for its random extension, so
//! "nothing found" is not "nothing reachable".

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
        c.args([
            "-e",
            "100-119",
            "-m",
            method,
            "--domain",
            "example.com",
            "--force",
        ])
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
        // svwar first asks for a random extension to learn the "no such user" answer, then
        // walks the range; a first answer identical to that one makes it stop ("unknown
        // response"), since it can tell nothing apart. The existing extension 100 must have
        // been answered, with the same status line as the random one.
        let responses: Vec<&str> = text
            .split("b'SIP/2.0 ")
            .skip(1)
            .chain(text.split("'SIP/2.0 ").skip(1))
            .collect();
        let status = |r: &str| r.get(..3).unwrap_or("").to_string();
        let to_100 = responses
            .iter()
            .find(|r| r.contains("<sip:100@example.com>"))
            .unwrap_or_else(|| panic!("svwar -m {method}: no answer for extension 100:\n{text}"));
        let random = responses
            .iter()
            .find(|r| !(100..=119).any(|e| r.contains(&format!("<sip:{e}@example.com>"))))
            .unwrap_or_else(|| {
                panic!("svwar -m {method}: no answer for its random extension:\n{text}")
            });
        assert_eq!(
            status(to_100),
            status(random),
            "svwar -m {method}: an existing and a random extension are answered differently:\n{text}"
        );
    }
    drop(srv);
}
