//! libFuzzer entry point for the `stow_multipart` target (see `fusion_fuzz::targets`).
#![no_main]

fusion_fuzz::fuzz_main!("stow_multipart");
