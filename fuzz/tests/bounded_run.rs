//! The bounded fuzz run CI does: every target on its seeds, its kept crash
//! inputs (`fuzz/regressions/<target>/`) and a fixed number of seeded
//! mutants, each input's peak allocation checked against the target's
//! bound and every panic counted.
//!
//! `FUZZ_MUTANTS` (default 300 per target) and `FUZZ_SEED` (default 14)
//! change the run; a failure names the seed input and mutant number that
//! reproduce it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::Instant;

use fusion_fuzz::mutate::{Rng, mutate};
use fusion_fuzz::{TARGETS, Target, seeds};
use peak_alloc::PeakAlloc;

#[global_allocator]
static PEAK: PeakAlloc = PeakAlloc;

/// The allocator counts the whole process: one input at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Default)]
struct Tally {
    inputs: usize,
    panics: Vec<String>,
    over_bound: Vec<String>,
    peak: usize,
    peak_ratio: f64,
}

fn run_one(target: &Target, name: &str, input: &[u8], tally: &mut Tally) {
    PEAK.reset_peak_usage();
    let before = PEAK.current_usage();
    let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    let peak = PEAK.peak_usage().saturating_sub(before);
    tally.inputs += 1;
    tally.peak = tally.peak.max(peak);
    tally.peak_ratio = tally
        .peak_ratio
        .max(peak as f64 / input.len().max(1) as f64);
    let bound = (target.memory_bound)(input.len());
    if outcome.is_err() || peak > bound {
        keep(target, input);
    }
    if outcome.is_err() {
        tally.panics.push(name.to_owned());
    }
    if peak > bound {
        tally
            .over_bound
            .push(format!("{name}: peak {peak} bytes, bound {bound}"));
    }
}

/// Keeps a failing input under the test's temporary folder, named by its
/// content, to be copied into `fuzz/regressions/<target>/` once fixed.
fn keep(target: &Target, input: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-failures")
        .join(target.name);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    if std::fs::create_dir_all(&dir).is_ok() {
        let path = dir.join(format!("{hash:016x}"));
        if std::fs::write(&path, input).is_ok() {
            eprintln!("kept {}", path.display());
        }
    }
}

#[test]
fn every_target_holds_on_seeds_regressions_and_mutants() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Panics are counted, not printed one by one.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mutants = env_number("FUZZ_MUTANTS", 300);
    let seed = env_number("FUZZ_SEED", 14);
    let mut failures = Vec::new();
    eprintln!(
        "target: inputs, panics, over the bound, peak allocation (most per input byte), time"
    );
    for target in TARGETS {
        let started = Instant::now();
        let mut tally = Tally::default();
        let seed_inputs = seeds::seeds(target.name);
        assert!(!seed_inputs.is_empty(), "{}: no seeds", target.name);
        for (name, input) in seed_inputs.iter().chain(&seeds::regressions(target.name)) {
            run_one(target, name, input, &mut tally);
        }
        let mut rng = Rng::new(seed);
        for i in 0..mutants {
            let (name, input) = &seed_inputs[rng.below(seed_inputs.len())];
            let mutant = mutate(input, &mut rng);
            run_one(
                target,
                &format!("{name}, mutant {i} of seed {seed}"),
                &mutant,
                &mut tally,
            );
        }
        eprintln!(
            "{}: {}, {}, {}, {} bytes ({:.0} ×), {:.1} s",
            target.name,
            tally.inputs,
            tally.panics.len(),
            tally.over_bound.len(),
            tally.peak,
            tally.peak_ratio,
            started.elapsed().as_secs_f64()
        );
        for p in &tally.panics {
            failures.push(format!("{}: panic on {p}", target.name));
        }
        for o in &tally.over_bound {
            failures.push(format!("{}: over the memory bound: {o}", target.name));
        }
    }
    std::panic::set_hook(hook);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every crash input found so far, with panic messages shown: each was a
/// failure once and is a regression test now.
#[test]
fn kept_crash_inputs_no_longer_fail() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for target in TARGETS {
        for (name, input) in seeds::regressions(target.name) {
            let mut tally = Tally::default();
            run_one(target, &name, &input, &mut tally);
            assert!(
                tally.panics.is_empty() && tally.over_bound.is_empty(),
                "{}: {name}: {tally:?}",
                target.name
            );
        }
    }
}
