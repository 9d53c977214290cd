//! TEMPORARY (not committed): embeds every sentence of the labelled reports.
#![allow(missing_docs, clippy::unwrap_used)]
use fusion_notes::labelled::{LabelMap, read_reports};
use std::io::Write;
use std::path::Path;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let map = LabelMap::read(Path::new(&args[2])).unwrap();
    let reports = read_reports(Path::new(&args[1]), &map, None).unwrap();
    let mut uniq = std::collections::BTreeSet::new();
    for r in &reports {
        let a = fusion_notes::analyze(&r.text);
        for s in &a.sentences {
            uniq.insert(r.text[s.start..s.end].to_owned());
        }
        for s in fusion_notes::split_sentences(&r.text) {
            uniq.insert(r.text[s.start..s.end].to_owned());
        }
    }
    let uniq: Vec<String> = uniq.into_iter().collect();
    eprintln!("{} sentences", uniq.len());
    let enc = fusion_models::TextEncoder::load(
        Path::new("models/packages/minilm-l6-v2"),
        &fusion_models::select_device().unwrap(),
    )
    .unwrap();
    let mut out = std::fs::File::create(&args[3]).unwrap();
    let mut idx = std::fs::File::create(format!("{}.json", args[3])).unwrap();
    serde_json::to_writer(&mut idx, &uniq).unwrap();
    let t = std::time::Instant::now();
    for (k, chunk) in uniq.chunks(256).enumerate() {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        for e in enc.embed(&refs).unwrap() {
            for v in e {
                out.write_all(&v.to_le_bytes()).unwrap();
            }
        }
        eprintln!("{} / {} {:?}", (k + 1) * 256, uniq.len(), t.elapsed());
    }
}
