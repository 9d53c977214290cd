//! libFuzzer entry point for the `charset` target (see `fusion_fuzz::targets`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fusion_fuzz::libfuzzer::run("charset", data));
