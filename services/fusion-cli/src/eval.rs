//! `fusion eval`: offline evaluations of the service's components on public
//! test kits. They read files only: no settings, database or network.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

/// The NegEx test kit as fetched into the shared data folder, relative to
/// the current directory (the repository root of a checkout beside it).
pub(crate) const DEFAULT_NEGEX_KIT: &str =
    "../shared/data/notes/negex/rsAnnotations-1-120-random.txt";

#[derive(Debug, Subcommand)]
pub(crate) enum EvalCommand {
    /// Scores the note negation detector on the NegEx test kit (Chapman et
    /// al. 2001) and prints it beside the published figures.
    Negex {
        /// The kit's annotation file (tab-separated, with a header line).
        #[arg(value_name = "PATH", default_value = DEFAULT_NEGEX_KIT)]
        path: PathBuf,
    },
    /// Scores the labeller, the text branch and the fused probability on a
    /// site's labelled reports (a CSV and its label map).
    Reports(crate::reports::eval::EvalReportsArgs),
}

/// Runs an evaluation and prints its report on standard output.
///
/// # Errors
///
/// The evaluation's error, e.g. a file that cannot be read: one line.
pub(crate) fn eval(cmd: EvalCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EvalCommand::Negex { path } => {
            let report = fusion_notes::eval::negex_eval(&path)?;
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        EvalCommand::Reports(args) => {
            let dir = crate::reports::models_dir(args.models.as_deref());
            crate::reports::eval::run(&args, &dir)
        }
    }
}
