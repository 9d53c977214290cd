//! libFuzzer entry point for the `dicom_parse` target (see `fusion_fuzz::targets`).
#![no_main]

fusion_fuzz::fuzz_main!("dicom_parse");
