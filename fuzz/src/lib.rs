//! Fuzzing the project's own parsers and decoders (issues #13 and #14), as
//! dicom-rs keeps a fuzz target beside each of its parsing crates.
//!
//! - [`targets`]: one function per target, each with its memory bound.
//! - [`mutate`]: a seeded mutator for the bounded runs (CI and the STOW-RS
//!   mutation test in `tests/tests/stow_fuzz.rs`).
//! - [`seeds`]: seed inputs, and the crash inputs kept as regressions.
//!
//! Two ways to run them, both on the stable toolchain:
//!
//! - `cargo test -p fusion-fuzz`: the bounded run (`tests/bounded_run.rs`),
//!   every seed and regression input and a fixed number of mutants of each,
//!   with the peak allocation of every input checked against its bound.
//! - `scripts/fuzz TARGET SECONDS`: libFuzzer (the `fuzz_targets/`
//!   binaries, feature `libfuzzer`), coverage-guided, built with the
//!   SanitizerCoverage flags that stable rustc accepts.

#[cfg(feature = "libfuzzer")]
pub mod libfuzzer;
pub mod mutate;
pub mod seeds;
pub mod targets;

pub use targets::{TARGETS, Target, target};
