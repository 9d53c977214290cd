//! libFuzzer entry point for the `fhir` target (see `fusion_fuzz::targets`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fusion_fuzz::libfuzzer::run("fhir", data));
