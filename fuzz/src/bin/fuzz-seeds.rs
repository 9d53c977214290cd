//! Writes a target's seed inputs and kept crash inputs into a folder, as
//! the starting corpus of a libFuzzer run (`scripts/fuzz`); with
//! `--mutants N SEED`, writes the bounded run's first N mutants of those
//! seeds instead (the set issue #14's figures were measured on).
//!
//! Usage: `fuzz-seeds TARGET DIR [--mutants N SEED]`

use std::process::ExitCode;

use fusion_fuzz::mutate::{Rng, mutate};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (name, dir, mutants) = match args.as_slice() {
        [name, dir] => (name, dir, None),
        [name, dir, flag, n, seed] if flag == "--mutants" => {
            match (n.parse::<usize>(), seed.parse::<u64>()) {
                (Ok(n), Ok(seed)) => (name, dir, Some((n, seed))),
                _ => return usage(),
            }
        }
        _ => return usage(),
    };
    if fusion_fuzz::target(name).is_none() {
        let names: Vec<_> = fusion_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("fuzz-seeds: no target {name}; targets: {}", names.join(" "));
        return ExitCode::from(2);
    }
    let mut inputs: Vec<(String, Vec<u8>)> = fusion_fuzz::seeds::seeds(name)
        .into_iter()
        .chain(fusion_fuzz::seeds::regressions(name))
        .collect();
    if let Some((n, seed)) = mutants {
        // As the bounded run draws them (fuzz/tests/bounded_run.rs).
        let seeds = fusion_fuzz::seeds::seeds(name);
        let mut rng = Rng::new(seed);
        inputs = (0..n)
            .map(|i| {
                let (from, bytes) = &seeds[rng.below(seeds.len())];
                (format!("{i:04} {from}"), mutate(bytes, &mut rng))
            })
            .collect();
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("fuzz-seeds: {dir}: {e}");
        return ExitCode::FAILURE;
    }
    for (i, (from, bytes)) in inputs.iter().enumerate() {
        let path = std::path::Path::new(dir).join(format!("{i:04}"));
        if let Err(e) = std::fs::write(&path, bytes) {
            eprintln!("fuzz-seeds: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        if mutants.is_some() {
            println!("{} {from}", path.display());
        }
    }
    eprintln!("{} inputs for {name} in {dir}", inputs.len());
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("usage: fuzz-seeds TARGET DIR [--mutants N SEED]");
    ExitCode::from(2)
}
