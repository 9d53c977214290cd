//! libFuzzer entry point for the `fhir` target (see `fusion_fuzz::targets`).
#![no_main]

fusion_fuzz::fuzz_main!("fhir");
