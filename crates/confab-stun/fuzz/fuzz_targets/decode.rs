//! STUN/ChannelData decoding: never panics; decode, re-encode, re-decode gives the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    confab_stun::fuzz_support::decode_roundtrip(data);
});
