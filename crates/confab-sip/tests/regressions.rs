//! Runs on stable: every committed fuzz finding in `tests/regressions/` (named after the bug)
//! and the whole seed corpus (the RFC 4475/5118 messages in every form the fuzzers are
//! seeded with), through exactly the fuzz targets' assertions.

#[path = "common/fuzz_checks.rs"]
mod fuzz_checks;

use fuzz_checks::{check_parse, check_stream};
use sipx_testkit::{rfc4475, rfc5118};

#[test]
fn committed_regressions() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("tests/regressions exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let r = std::panic::catch_unwind(|| {
            check_parse(&data);
            check_stream(&data);
        });
        assert!(r.is_ok(), "regression {name} fails");
        n += 1;
    }
    assert!(n > 0, "no regression inputs found");
}

#[test]
fn seed_corpus() {
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for c in rfc4475::CASES {
        inputs.push(c.bytes.to_vec());
    }
    for c in rfc5118::CASES {
        inputs.push(c.bytes.to_vec());
        inputs.push(c.wire().to_vec());
        let mut crlf = Vec::new();
        for &b in c.bytes {
            if b == b'\n' {
                crlf.push(b'\r');
            }
            crlf.push(b);
        }
        inputs.push(crlf);
    }
    let mut two = rfc4475::case("wsinv").unwrap().bytes.to_vec();
    two.extend_from_slice(rfc4475::case("esc01").unwrap().bytes);
    inputs.push(two);
    inputs.push(b"\r\n\r\n".to_vec());
    for i in &inputs {
        check_parse(i);
        check_stream(i);
    }
    assert!(inputs.len() >= 87);
}
