//! libFuzzer entry point for the `jpeg_dct` target (see `fusion_fuzz::targets`).
#![no_main]

fusion_fuzz::fuzz_main!("jpeg_dct");
