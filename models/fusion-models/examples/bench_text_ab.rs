//! The MiniLM forward pass against candle-transformers' `BertModel`,
//! interleaved in one process: round after round, the whole file through
//! one pass, then through the other. On a shared machine the load slows
//! both alike, so the ratio of the two holds where absolute rates do not
//! (the comparison with PyTorch is `models/bench/text_encoder_vs_pytorch.py`).
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo run -p fusion-models --release --example bench_text_ab -- \
//!     models/bench/sentences.txt [BATCH=32] [--rounds N=5]
//! ```
//!
//! Sentences are sorted by character length, longest first, and embedded
//! `BATCH` per `TextEncoder::embed` call (tokenisation included), as
//! `bench_text` does. Prints each round's rates and ratio, then the medians
//! of each column (the median ratio is of the rounds' own ratios, so it need
//! not equal the ratio of the median rates).
#![allow(clippy::print_stdout)]

mod common;

use std::time::Instant;

use common::median;
use fusion_models::ModelPackage;
use fusion_models::package::default_packages_dir;
use fusion_models::text_encoder::{ForwardPass, TextEncoder};

const USAGE: &str = "usage: bench_text_ab SENTENCES.txt [BATCH=32] [--rounds N=5]";

/// Sentences per second of one pass over `batches`.
fn rate(encoder: &TextEncoder, batches: &[Vec<&str>]) -> Result<f64, Box<dyn std::error::Error>> {
    let t = Instant::now();
    let mut n = 0;
    for batch in batches {
        n += encoder.embed(batch)?.len();
    }
    #[allow(clippy::cast_precision_loss)]
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut positional = Vec::new();
    let mut rounds = 5_usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().ok_or(USAGE)?.parse()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => positional.push(a),
        }
    }
    let path = positional.first().ok_or(USAGE)?;
    let batch: usize = positional.get(1).map_or(Ok(32), |b| b.parse())?;
    if batch == 0 || rounds == 0 {
        return Err("BATCH and --rounds must be at least 1".into());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut sentences: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    sentences.sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
    let batches: Vec<Vec<&str>> = sentences.chunks(batch).map(<[&str]>::to_vec).collect();

    let device = candle_core::Device::Cpu;
    let package = ModelPackage::load(default_packages_dir().join("minilm-l6-v2"))
        .map_err(|e| format!("{e}\n(run scripts/fetch-models --text-only first)"))?;
    let minilm = TextEncoder::from_package_with(&package, &device, ForwardPass::MiniLm)?;
    let bert = TextEncoder::from_package_with(&package, &device, ForwardPass::BertReference)?;
    for encoder in [&minilm, &bert] {
        for b in batches.iter().take(2) {
            encoder.embed(b)?;
        }
    }
    println!(
        "{} sentences, batch {batch}, {} threads; sentences/s per round:",
        sentences.len(),
        candle_core::utils::get_num_threads()
    );
    let (mut ours, mut reference, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let a = rate(&minilm, &batches)?;
        let b = rate(&bert, &batches)?;
        println!(
            "round {round}: minilm {a:.1}, bert {b:.1}, ratio {:.3}",
            a / b
        );
        ours.push(a);
        reference.push(b);
        ratios.push(a / b);
    }
    println!(
        "medians over the rounds: minilm {:.1}, bert {:.1}; of the rounds' ratios {:.3}",
        median(ours),
        median(reference),
        median(ratios)
    );
    Ok(())
}
