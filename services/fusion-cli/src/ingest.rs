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

/// Files in a row refused because storage is unreachable before `fusion
/// ingest` stops.
const STOP_AFTER_UNAVAILABLE: usize = 3;

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
    // Storage gone: each further file would wait for the pool and fail the
    // same way (attack review). Stop after a few in a row and say how far.
    let mut unavailable_in_a_row = 0;
    let mut done = 0usize;
    for path in &files {
        if unavailable_in_a_row >= STOP_AFTER_UNAVAILABLE {
            break;
        }
        done += 1;
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
                InstanceOutcome::Failed(f) if f.storage_unavailable() => {
                    unavailable_in_a_row += 1;
                    failed
                        .entry(format!("{:#06X} {}", f.reason.code(), f.detail))
                        .or_default()
                        .push(shown);
                    bar.inc(1);
                    continue;
                }
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
        unavailable_in_a_row = 0;
        bar.inc(1);
    }
    bar.finish_and_clear();
    if done < files.len() {
        eprintln!(
            "fusion: storage unavailable for {STOP_AFTER_UNAVAILABLE} files in a row: stopped after \
             {done} of {} files; run the same command again once it is back (stored files \
             count as duplicates)",
            files.len()
        );
    }
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
