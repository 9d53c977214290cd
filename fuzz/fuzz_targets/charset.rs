//! libFuzzer entry point for the `charset` target (see `fusion_fuzz::targets`).
#![no_main]

fusion_fuzz::fuzz_main!("charset");
