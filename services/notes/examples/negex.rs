//! Scores the negation detector on the NegEx test kit.
//!
//! `cargo run -p fusion-notes --release --example negex -- PATH_TO_KIT`

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: negex PATH_TO_rsAnnotations-1-120-random.txt");
        return ExitCode::FAILURE;
    };
    match fusion_notes::eval::negex_eval(&path) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
