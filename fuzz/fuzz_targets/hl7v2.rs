//! libFuzzer entry point for the `hl7v2` target (see `fusion_fuzz::targets`).
#![no_main]

fusion_fuzz::fuzz_main!("hl7v2");
