//! Parse, read every typed header, serialize, re-parse, compare, edit (see
//! `tests/common/fuzz_checks.rs`, shared with the stable regression test).
#![no_main]

#[path = "../../tests/common/fuzz_checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_parse(data));
