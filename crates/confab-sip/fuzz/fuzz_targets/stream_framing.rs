//! Stream framing as a connection would drive it (see `tests/common/fuzz_checks.rs`).
#![no_main]

#[path = "../../tests/common/fuzz_checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_stream(data));
