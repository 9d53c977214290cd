//! libFuzzer entry point for the `rle` target (see `fusion_fuzz::targets`).
#![no_main]

fusion_fuzz::fuzz_main!("rle");
