//! libFuzzer entry point for the `dicom_parse` target (see `fusion_fuzz::targets`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fusion_fuzz::libfuzzer::run("dicom_parse", data));
