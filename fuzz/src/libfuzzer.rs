//! What the libFuzzer binaries share: the allocator that turns going past
//! a target's memory bound into a crash libFuzzer records (an allocation
//! over the cap fails, and Rust aborts on it).

use std::alloc::System;

use cap::Cap;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Runs target `name` on `data` with allocations capped at its bound.
///
/// # Panics
///
/// When `name` is not a target (a bug in the binary), and when the target
/// itself panics (a finding).
pub fn run(name: &str, data: &[u8]) {
    let Some(target) = crate::target(name) else {
        panic!("no fuzz target {name}");
    };
    let limit = ALLOCATOR
        .allocated()
        .saturating_add((target.memory_bound)(data.len()));
    // set_limit fails only below what is already allocated, which `limit`
    // never is.
    let _ = ALLOCATOR.set_limit(limit);
    (target.run)(data);
    let _ = ALLOCATOR.set_limit(usize::MAX);
}
