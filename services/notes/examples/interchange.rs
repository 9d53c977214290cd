//! Decodes every file under a folder of interchange samples and prints, per
//! file, what was accepted or why it was refused.
//!
//! ```text
//! cargo run -p fusion-notes --example interchange [-- DIR]
//! ```
//!
//! DIR defaults to `/work/shared/data/notes/interchange`. The media type is
//! chosen by extension: `.json` → `application/fhir+json`, `.hl7` →
//! `application/hl7-v2`, anything else → `text/plain`.

use std::path::{Path, PathBuf};

use fusion_notes::intake::{DecodeOptions, decode};

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).map_or_else(
        || PathBuf::from("/work/shared/data/notes/interchange"),
        PathBuf::from,
    );
    let mut paths = Vec::new();
    files(&dir, &mut paths)?;
    paths.sort();
    let options = DecodeOptions::default();
    let (mut accepted, mut refused) = (0, 0);
    for path in &paths {
        let content_type = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => "application/fhir+json",
            Some("hl7") => "application/hl7-v2",
            _ => "text/plain",
        };
        let body = std::fs::read(path)?;
        let name = path.strip_prefix(&dir).unwrap_or(path).display();
        match decode(content_type, &body, &options) {
            Ok(note) => {
                accepted += 1;
                let show = |v: Option<&str>| v.unwrap_or("-").to_owned();
                let text = match (&note.text, &note.no_text_reason) {
                    (Some(t), _) => {
                        let head: String = t.chars().take(60).collect();
                        format!("{} chars, {:?}", t.chars().count(), head)
                    }
                    (None, reason) => format!("no text: {}", serde_json::to_string(reason)?),
                };
                println!(
                    "ACCEPTED {name}\n  format={} patient={} accession={} study={} type={} authored={} source_id={}\n  text: {text}",
                    serde_json::to_string(&note.source_format)?,
                    show(note.patient_id.as_ref().map(|p| p.as_str())),
                    show(note.accession_number.as_ref().map(|a| a.as_str())),
                    show(note.study_instance_uid.as_ref().map(|s| s.as_str())),
                    show(note.note_type.as_ref().and_then(|t| t.code.as_deref())),
                    note.authored_at
                        .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339()),
                    show(note.source_id.as_deref()),
                );
            }
            Err(err) => {
                refused += 1;
                println!("REFUSED  {name}\n  {}: {err}", err.code());
            }
        }
    }
    println!(
        "{accepted} accepted, {refused} refused, {} files",
        paths.len()
    );
    Ok(())
}
