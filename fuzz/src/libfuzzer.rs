//! What the libFuzzer binaries share: the allocator that turns going past
//! a target's memory bound into a crash libFuzzer records (an allocation
//! over the cap fails, and Rust aborts on it), and a panic hook that lets
//! the service's own containment work.
//!
//! libfuzzer-sys aborts on every panic, even one the code under test
//! catches; the pixel decoder catches codec panics on purpose (a damaged
//! frame in a dependency's codec must not take the service down) and
//! reports them as `PixelError::CodecPanicked`. So the hook here prints the
//! panic on one line and returns: a panic the code contains is no finding,
//! one that escapes the target still aborts (libfuzzer-sys catches it at
//! the target's edge and aborts).

use std::alloc::System;
use std::sync::Once;

pub use cap::Cap;

/// A libFuzzer binary for target `$name`: the capped global allocator and
/// the entry point. (The allocator lives in each binary, not in this
/// library, whose tests count allocations with their own.)
#[macro_export]
macro_rules! fuzz_main {
    ($name:literal) => {
        #[global_allocator]
        static ALLOCATOR: $crate::libfuzzer::Cap<std::alloc::System> =
            $crate::libfuzzer::Cap::new(std::alloc::System, usize::MAX);

        libfuzzer_sys::fuzz_target!(|data: &[u8]| $crate::libfuzzer::run(&ALLOCATOR, $name, data));
    };
}

/// Runs target `name` on `data` with `allocator`'s allocations capped at
/// the target's bound.
///
/// # Panics
///
/// When `name` is not a target (a bug in the binary), and when the target
/// itself panics (a finding).
pub fn run(allocator: &Cap<System>, name: &str, data: &[u8]) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    });
    let Some(target) = crate::target(name) else {
        panic!("no fuzz target {name}");
    };
    let limit = allocator
        .allocated()
        .saturating_add((target.memory_bound)(data.len()));
    // set_limit fails only below what is already allocated, which `limit`
    // never is.
    let _ = allocator.set_limit(limit);
    (target.run)(data);
    let _ = allocator.set_limit(usize::MAX);
}
