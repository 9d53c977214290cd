//! libFuzzer entry point for the `rendered` target (see `fusion_fuzz::targets`).
#![no_main]

fusion_fuzz::fuzz_main!("rendered");
