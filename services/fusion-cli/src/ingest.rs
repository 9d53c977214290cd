//! `fusion ingest <folder>`: imports every file under a folder through the
//! same pipeline as STOW-RS (parse, validate, store durably, index, audit),
//! with a progress bar and a summary of what was stored, what was already
//! there, and what failed and why.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use fusion_app::Settings;
use fusion_app::admin::Operator;
use fusion_app::ingest::{InstanceOutcome, Submitter, store_instance};

pub(crate) async fn run(settings: &Settings, folder: &Path) -> anyhow::Result<ExitCode> {
    if !folder.is_dir() {
        anyhow::bail!("{} is not a folder", folder.display());
    }
    let state = fusion_app::connect_storage(settings).await?;
    let files: Vec<_> = walkdir::WalkDir::new(folder)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect();
    let op = Operator::current();
    let submitter = Submitter {
        audit_subtype: "stow-rs",
        actor: fusion_app::Actor::new(op.agent()),
        id: format!("operator:{}", op.name),
    };
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files, {per_sec}, eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut stored, mut duplicate) = (0u64, 0u64);
    let mut studies = Vec::new();
    let mut failed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in &files {
        let shown = path
            .strip_prefix(folder)
            .unwrap_or(path)
            .display()
            .to_string();
        match std::fs::read(path) {
            Err(e) => failed
                .entry(format!("unreadable: {}", e.kind()))
                .or_default()
                .push(shown),
            Ok(bytes) => match store_instance(&state, bytes.into(), None, &submitter).await {
                InstanceOutcome::Stored(i) => {
                    stored += 1;
                    studies.push(fusion_app::ingest::TouchedStudy::from(&i));
                }
                InstanceOutcome::Duplicate(i) => {
                    duplicate += 1;
                    studies.push(fusion_app::ingest::TouchedStudy::from(&i));
                }
                InstanceOutcome::Failed(f) => failed
                    .entry(format!("{:#06X} {}", f.reason.code(), f.detail))
                    .or_default()
                    .push(shown),
            },
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Each study, duplicates included, is linked to its case once.
    fusion_app::ingest::link_studies(&state, studies, &submitter).await;
    let n_failed: usize = failed.values().map(Vec::len).sum();
    println!(
        "fusion: ingest of {}: {} files, {stored} stored, {duplicate} duplicate, {n_failed} failed",
        folder.display(),
        files.len()
    );
    for (reason, files) in &failed {
        println!("  failed ({}): {reason}", files.len());
        for f in files {
            println!("    {f}");
        }
    }
    Ok(if n_failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
