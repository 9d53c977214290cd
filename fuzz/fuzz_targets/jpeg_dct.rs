//! libFuzzer entry point for the `jpeg_dct` target (see `fusion_fuzz::targets`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fusion_fuzz::libfuzzer::run("jpeg_dct", data));
