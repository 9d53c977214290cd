//! `fusion models list [DIR]` and `fusion models verify <DIR>`: the model
//! packages on disk and whether every pinned file matches its SHA-256.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use fusion_models::package::{self, ModelPackage, default_packages_dir};

/// Model package commands (read files only; no settings or database).
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// One line per package under DIR: name, version, modality, status
    /// (`ok`, verified, or `failed: <why>`).
    List {
        /// Folder of packages [default: models/packages].
        dir: Option<PathBuf>,
    },
    /// Verify the package in DIR, or every package under DIR: exit 0 with a
    /// summary line, or 1 naming the failing file and both hashes.
    Verify {
        /// A package folder, or a folder of packages.
        dir: PathBuf,
    },
}

/// Runs a models command.
///
/// # Errors
/// When DIR cannot be listed.
pub fn run(cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCommand::List { dir } => list(&dir.unwrap_or_else(default_dir)),
        ModelsCommand::Verify { dir } => verify(&dir),
    }
}

fn default_dir() -> PathBuf {
    let relative = PathBuf::from("models/packages");
    if relative.is_dir() {
        relative
    } else {
        default_packages_dir()
    }
}

fn list(dir: &Path) -> anyhow::Result<ExitCode> {
    let listing = package::list(dir)?;
    if listing.is_empty() {
        println!("no packages under {}", dir.display());
    }
    for entry in listing {
        let folder = entry.dir.display().to_string();
        match entry.manifest {
            Err(e) => println!("{folder}\t-\t-\tfailed: {e}"),
            Ok(m) => {
                let status = match ModelPackage::load(&entry.dir) {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => format!("failed: {e}"),
                };
                println!("{}\t{}\t{}\t{status}", m.name, m.version, m.modality);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(dir: &Path) -> anyhow::Result<ExitCode> {
    let dirs: Vec<PathBuf> = if dir.join(package::MANIFEST_FILE).is_file() {
        vec![dir.to_path_buf()]
    } else {
        package::list(dir)?.into_iter().map(|l| l.dir).collect()
    };
    if dirs.is_empty() {
        eprintln!("fusion: no model package in {}", dir.display());
        return Ok(ExitCode::FAILURE);
    }
    let (mut files, mut bytes, mut failed) = (0_usize, 0_u64, 0_usize);
    for d in &dirs {
        match ModelPackage::load(d) {
            Ok(pkg) => {
                files += pkg.files().len();
                bytes += pkg.files().iter().map(|f| f.size).sum::<u64>();
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    if failed == 0 {
        println!(
            "verified {} package(s), {files} file(s), {bytes} bytes: every SHA-256 matches",
            dirs.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{failed} of {} package(s) failed verification", dirs.len());
        Ok(ExitCode::FAILURE)
    }
}
