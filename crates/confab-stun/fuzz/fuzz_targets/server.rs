//! The sans-IO TURN server fed arbitrary client, peer and clock inputs after a real
//! allocation with a channel is in place.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    confab_stun::fuzz_support::server_input(data, std::time::Instant::now());
});
