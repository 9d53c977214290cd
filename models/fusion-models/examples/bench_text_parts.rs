//! The MiniLM pass cut into runs side by side (`MiniLm::forward`, what the
//! service runs) against the same pass as one run
//! (`MiniLm::forward_in_parts(…, 1)`), interleaved in one process: round
//! after round, the whole file through one, then through the other, so a
//! shared machine's load slows both alike and the ratio holds where
//! absolute rates do not.
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo run -p fusion-models --release --example bench_text_parts -- \
//!     models/bench/sentences.txt [BATCH=32] [--rounds N=5] [--parts N]
//! ```
//!
//! Sentences are sorted by character length, longest first, cut into
//! batches of `BATCH` and tokenised once up front (as `TextEncoder` would:
//! `[CLS] … [SEP]`, a sentence over 256 word pieces in windows); each round
//! times the forward passes alone, batch by batch. `--parts` sets the runs
//! of the cut side (default `PARTS_PER_THREAD` × threads). Counts the hidden
//! states that differ bit for bit between the two (0 expected), prints each
//! round's rates and ratio, then the medians of each column (the median ratio
//! is of the rounds' own ratios, so it need not equal the ratio of the median
//! rates).
#![allow(clippy::print_stdout)]

mod common;

use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use common::median;
use fusion_models::ModelPackage;
use fusion_models::minilm::{Config, MiniLm, PARTS_PER_THREAD};
use fusion_models::package::default_packages_dir;
use fusion_models::text_encoder::TextEncoder;

const USAGE: &str = "usage: bench_text_parts SENTENCES.txt [BATCH=32] [--rounds N=5] [--parts N]";

type Batch = Vec<Vec<u32>>;

/// Sentences per second of one pass over `batches` with `parts` runs.
fn rate(model: &MiniLm, batches: &[Batch], parts: usize) -> Result<f64, candle_core::Error> {
    let t = Instant::now();
    let mut n = 0;
    for batch in batches {
        let seqs: Vec<&[u32]> = batch.iter().map(Vec::as_slice).collect();
        model.forward_in_parts(&seqs, parts)?;
        n += seqs.len();
    }
    #[allow(clippy::cast_precision_loss)]
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// `value` of `name` as a count, or an error naming it.
fn number(name: &str, value: Option<String>) -> Result<usize, String> {
    let value = value.ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?;
    value
        .parse()
        .map_err(|e| format!("{name} {value:?}: {e} (a whole number)"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut positional = Vec::new();
    let mut rounds = 5_usize;
    let mut parts = PARTS_PER_THREAD * rayon::current_num_threads();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = number(&a, args.next())?,
            "--parts" => parts = number(&a, args.next())?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            flag if flag.starts_with('-') => {
                return Err(format!("unknown flag {flag}\n{USAGE}").into());
            }
            _ => positional.push(a),
        }
    }
    if positional.len() > 2 {
        return Err(format!("unexpected argument {}\n{USAGE}", positional[2]).into());
    }
    let path = positional.first().ok_or(USAGE)?;
    let batch: usize = match positional.get(1) {
        Some(b) => number("BATCH", Some(b.clone()))?,
        None => 32,
    };
    if batch == 0 || rounds == 0 || parts == 0 {
        return Err("BATCH, --rounds and --parts must be at least 1".into());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut sentences: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if sentences.is_empty() {
        return Err(format!("{path}: no sentences (one per line)").into());
    }
    sentences.sort_by_key(|s| std::cmp::Reverse(s.chars().count()));

    let package = ModelPackage::load(default_packages_dir().join("minilm-l6-v2"))
        .map_err(|e| format!("{e}\n(run scripts/fetch-models --text-only first)"))?;
    let encoder = TextEncoder::from_package(&package, &Device::Cpu)?;
    let config: Config = serde_json::from_slice(&package.read_verified("config.json")?)?;
    let vb =
        VarBuilder::from_buffered_safetensors(package.read_weights()?, DType::F32, &Device::Cpu)?;
    let model = MiniLm::load(&vb, &config)?;

    let mut batches: Vec<Batch> = Vec::new();
    for chunk in sentences.chunks(batch) {
        let mut seqs = Vec::new();
        for s in chunk {
            seqs.extend(encoder.sequences(s)?);
        }
        seqs.sort_by_key(Vec::len);
        batches.push(seqs);
    }
    // Bit for bit: NaN or -0.0 against 0.0 count as differences too.
    let (mut values, mut differing) = (0, 0);
    for b in &batches {
        let seqs: Vec<&[u32]> = b.iter().map(Vec::as_slice).collect();
        let one = model
            .forward_in_parts(&seqs, 1)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let cut = model
            .forward_in_parts(&seqs, parts)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        if one.len() != cut.len() {
            return Err(format!("{} states in one run, {} cut", one.len(), cut.len()).into());
        }
        values += one.len();
        differing += one
            .iter()
            .zip(&cut)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
    }
    println!(
        "{} sentences, batch {batch}, {} threads, {parts} runs; hidden states differing bit for bit: {differing} of {values}",
        sentences.len(),
        rayon::current_num_threads()
    );
    let (mut cut, mut one, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let a = rate(&model, &batches, parts)?;
        let b = rate(&model, &batches, 1)?;
        println!(
            "round {round}: {parts} runs {a:.1}, one run {b:.1}, ratio {:.3}",
            a / b
        );
        cut.push(a);
        one.push(b);
        ratios.push(a / b);
    }
    println!(
        "medians over the rounds: {parts} runs {:.1}, one run {:.1}; of the rounds' ratios {:.3}",
        median(cut),
        median(one),
        median(ratios)
    );
    Ok(())
}
