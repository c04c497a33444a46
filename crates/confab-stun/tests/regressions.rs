//! Replays the fuzz seed corpus and every fuzzer finding (named after the bug) through the
//! same checks the fuzz targets run, on stable Rust.

use std::path::Path;
use std::time::Instant;

use confab_stun::fuzz_support;

fn replay(dir: &str, run: impl Fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.extension().is_some_and(|e| e == "bin") {
            let data = std::fs::read(&path).unwrap();
            eprintln!("replaying {}", path.display());
            run(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn decoder_seed_corpus_and_regressions() {
    let n = replay("fuzz/corpus/decode", fuzz_support::decode_roundtrip);
    assert!(n >= 5, "seed corpus present ({n} files)");
    replay("tests/regressions/decode", fuzz_support::decode_roundtrip);
}

#[test]
fn server_seed_corpus_and_regressions() {
    let n = replay("fuzz/corpus/server", |d| {
        fuzz_support::server_input(d, Instant::now())
    });
    assert!(n >= 3, "seed corpus present ({n} files)");
    replay("tests/regressions/server", |d| {
        fuzz_support::server_input(d, Instant::now())
    });
}
