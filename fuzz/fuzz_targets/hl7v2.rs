//! libFuzzer entry point for the `hl7v2` target (see `fusion_fuzz::targets`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fusion_fuzz::libfuzzer::run("hl7v2", data));
