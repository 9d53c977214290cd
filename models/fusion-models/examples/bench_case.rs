//! One case end to end on the shipped packages: RG1_UNCR.dcm (decoded here
//! with dicom-object; the service decodes with the imaging crate) and a
//! realistic chest radiograph report through [`Pipeline::predict`]:
//! preprocessing, the Xception backbone, 20 MC-dropout head passes, MiniLM on
//! every report sentence, fusion.
//!
//! ```sh
//! scripts/fetch-models && scripts/fetch-test-data
//! cargo run -p fusion-models --release --example bench_case [-- ITERATIONS]
//! ```
//! Prints load time, a rough decode time, and median / p95 milliseconds per
//! step and in total.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::Instant;

use dicom_dictionary_std::tags;
use fusion_models::package::default_packages_dir;
use fusion_models::pipeline::{
    CaseInput, FrameValues, GateAttributes, ImageCandidate, NoteInput, Pipeline,
};

/// Invented, typical length (10 sentences).
const NOTE: &str = "EXAMINATION: Chest radiograph, PA and lateral views.\n\
    INDICATION: 64-year-old with cough and fever for three days.\n\
    COMPARISON: None.\n\
    FINDINGS: The heart size is normal. The mediastinal contours are unremarkable. \
    There is patchy opacity in the right lower lobe. No pleural effusion. \
    No pneumothorax. Degenerative changes of the thoracic spine.\n\
    IMPRESSION: Right lower lobe opacity, possibly pneumonia. Follow-up radiograph \
    after treatment is recommended.";

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args().nth(1).map_or(Ok(30), |a| a.parse())?;
    let t = Instant::now();
    let pipeline = Pipeline::load(&default_packages_dir());
    println!(
        "load {:.0} ms; threads {}; packages {:?}",
        t.elapsed().as_secs_f64() * 1e3,
        candle_core::utils::get_num_threads(),
        pipeline
            .packages()
            .iter()
            .map(|p| format!("{}@{} {:?}", p.name, p.version, p.status))
            .collect::<Vec<_>>()
    );

    let path = default_packages_dir()
        .join("../../.test-data/dicom/pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm");
    let t = Instant::now();
    let obj = dicom_object::open_file(&path)
        .map_err(|e| format!("{}: {e} (run scripts/fetch-test-data)", path.display()))?;
    let rows = obj.element(tags::ROWS)?.to_int::<u16>()?;
    let cols = obj.element(tags::COLUMNS)?.to_int::<u16>()?;
    let bytes = obj.element(tags::PIXEL_DATA)?.to_bytes()?;
    let n = usize::from(rows) * usize::from(cols);
    let values: Vec<f32> = bytes[..n * 2]
        .chunks_exact(2)
        .map(|b| f32::from(u16::from_le_bytes([b[0], b[1]])))
        .collect();
    println!(
        "decode (open + native pixels, {rows}×{cols}): {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let case = CaseInput {
        images: vec![ImageCandidate {
            sop_instance_uid: "1.2.3".into(),
            attributes: GateAttributes {
                modality: Some("CR".into()),
                body_part_examined: Some("CHEST".into()),
                view_position: Some("PA".into()),
                photometric_interpretation: Some("MONOCHROME1".into()),
                patient_age: Some("064Y".into()),
                ..GateAttributes::default()
            },
            pixels: Ok(FrameValues {
                rows: u32::from(rows),
                columns: u32::from(cols),
                values,
            }),
        }],
        notes: vec![NoteInput {
            note_id: "n1".into(),
            text: NOTE.into(),
            labels: [("lung_opacity", "positive"), ("pneumonia", "uncertain")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            excluded: None,
            analysis: None,
        }],
    };
    let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for i in 0..=iterations {
        let out = pipeline.predict(&case);
        if i == 0 {
            let p = &out.fused["pneumonia"];
            println!(
                "warm-up: image {:?}, text {:?}; pneumonia P = {:.3}, u = {:.3}, sources {:?}",
                out.branches.image.status,
                out.branches.text.status,
                p.opinion.projected_probability(),
                p.opinion.uncertainty(),
                p.sources
            );
            continue;
        }
        for (k, v) in out.timings_ms {
            steps.entry(k).or_default().push(v);
        }
    }
    for (k, mut v) in steps {
        v.sort_by(f64::total_cmp);
        println!(
            "{k:<13} median {:>7.1} ms   p95 {:>7.1} ms",
            percentile(&v, 0.5),
            percentile(&v, 0.95)
        );
    }
    Ok(())
}
