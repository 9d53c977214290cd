//! Text-encoder throughput: sentences per second for all-MiniLM-L6-v2 on
//! candle, measured the way sentence-transformers' `encode` works so the two
//! can be compared (`models/bench/text_encoder_vs_pytorch.py`).
//!
//! ```sh
//! scripts/fetch-models --text-only
//! cargo run -p fusion-models --release --example bench_text -- \
//!     models/bench/sentences.txt [BATCH=32] [--rounds N] [--pass minilm|bert] \
//!     [--single N] [--json PATH]
//! ```
//!
//! `--pass` picks the forward pass: `minilm` (the crate's own, the
//! service's default on the CPU) or `bert` (candle-transformers'
//! `BertModel`, the parity reference). Run each in its own process so the
//! peak resident memory (`VmHWM`) is that pass's alone.
//!
//! Like `SentenceTransformer.encode`, the sentences are sorted by character
//! length, longest first, and cut into batches of `BATCH` in that order; each
//! batch is one `TextEncoder::embed` call (tokenisation included in the time),
//! so a batch is padded to its own longest sentence. The encoder itself runs
//! at most `text_encoder::BATCH_SIZE` (32) sequences per forward pass, so a
//! `BATCH` above 32 is split further. The model is loaded once, warmed up on
//! the first 64 sentences, then the whole file is embedded `--rounds` times
//! (default 3); the median round gives sentences/s.
//!
//! Then the service's case: `--single` sentences (default all, file order)
//! embedded one call each, giving single-sentence latency (p50, p95) and
//! batch-1 throughput.
//!
//! Writes the embeddings of the first 10 sentences (file order) and the
//! figures to `--json` (default `$TMPDIR/bench_text_candle.json`) for the
//! cross-check against PyTorch.
#![allow(clippy::print_stdout)]

mod common;

use std::path::PathBuf;
use std::time::Instant;

use fusion_models::ModelPackage;
use fusion_models::package::default_packages_dir;
use fusion_models::text_encoder::{BATCH_SIZE, Embedding, ForwardPass, TextEncoder};

const USAGE: &str = "usage: bench_text SENTENCES.txt [BATCH=32] [--rounds N=3] \
                     [--pass minilm|bert] [--single N] [--json PATH]";

struct Args {
    sentences: PathBuf,
    batch: usize,
    rounds: usize,
    pass: ForwardPass,
    single: Option<usize>,
    json: PathBuf,
}

fn parse_args() -> Result<Args, Box<dyn std::error::Error>> {
    let mut positional = Vec::new();
    let mut rounds = 3;
    let mut pass = ForwardPass::MiniLm;
    let mut single = None;
    let mut json = std::env::temp_dir().join("bench_text_candle.json");
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => rounds = it.next().ok_or("--rounds needs a value")?.parse()?,
            "--json" => json = it.next().ok_or("--json needs a path")?.into(),
            "--single" => single = Some(it.next().ok_or("--single needs a value")?.parse()?),
            "--pass" => {
                pass = match it.next().as_deref() {
                    Some("minilm") => ForwardPass::MiniLm,
                    Some("bert") => ForwardPass::BertReference,
                    _ => return Err("--pass takes minilm or bert".into()),
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => positional.push(a),
        }
    }
    let sentences = positional.first().ok_or(USAGE)?.into();
    let batch = positional.get(1).map_or(Ok(32), |b| b.parse())?;
    if batch == 0 || rounds == 0 {
        return Err("BATCH and --rounds must be at least 1".into());
    }
    Ok(Args {
        sentences,
        batch,
        rounds,
        pass,
        single,
        json,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let text = std::fs::read_to_string(&args.sentences)
        .map_err(|e| format!("{}: {e}", args.sentences.display()))?;
    let sentences: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if sentences.is_empty() {
        return Err(format!("{}: no sentences", args.sentences.display()).into());
    }

    let device = fusion_models::select_device()?;
    let t0 = Instant::now();
    let package = ModelPackage::load(default_packages_dir().join("minilm-l6-v2"))
        .map_err(|e| format!("{e}\n(run scripts/fetch-models --text-only first)"))?;
    let encoder = TextEncoder::from_package_with(&package, &device, args.pass)?;
    let load = t0.elapsed();
    let threads = candle_core::utils::get_num_threads();
    let mut tokens = Vec::with_capacity(sentences.len());
    for s in &sentences {
        tokens.push(encoder.word_pieces(s)?.len() + 2);
    }
    let chunked = sentences
        .iter()
        .map(|s| encoder.sequences(s).map(|v| v.len()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|&n| n > 1)
        .count();
    println!(
        "{:?} forward pass, device {device:?}, threads {threads}; load {:.0} ms; {} sentences, tokens min {} \
         mean {:.1} max {}{}",
        encoder.forward_pass(),
        load.as_secs_f64() * 1e3,
        sentences.len(),
        tokens.iter().min().unwrap_or(&0),
        tokens.iter().sum::<usize>() as f64 / tokens.len() as f64,
        tokens.iter().max().unwrap_or(&0),
        if chunked > 0 {
            format!(" ({chunked} over max_tokens, chunked)")
        } else {
            String::new()
        }
    );
    if args.batch > BATCH_SIZE {
        println!(
            "note: batch {} > the encoder's {BATCH_SIZE} sequences per forward pass; \
             each batch runs as several passes",
            args.batch
        );
    }

    // sentence-transformers: argsort(-len(text)), then consecutive batches.
    let mut order: Vec<usize> = (0..sentences.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sentences[i].chars().count()));

    let warm: Vec<&str> = sentences.iter().take(64).copied().collect();
    let t = Instant::now();
    for chunk in warm.chunks(args.batch) {
        encoder.embed(chunk)?;
    }
    println!(
        "warm-up ({} sentences) {:.0} ms",
        warm.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    let mut embeddings: Vec<Embedding> = vec![[0.0; 384]; sentences.len()];
    let mut rates = Vec::with_capacity(args.rounds);
    for round in 1..=args.rounds {
        let t = Instant::now();
        for idx in order.chunks(args.batch) {
            let batch: Vec<&str> = idx.iter().map(|&i| sentences[i]).collect();
            for (&i, e) in idx.iter().zip(encoder.embed(&batch)?) {
                embeddings[i] = e;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let rate = sentences.len() as f64 / secs;
        println!("round {round}: {secs:.3} s, {rate:.1} sentences/s");
        rates.push(rate);
    }
    let median = common::median(rates.clone());
    println!(
        "candle: {median:.1} sentences/s (median of {} rounds, batch {}, {threads} threads)",
        args.rounds, args.batch
    );

    // The service's case: one note per call.
    let single: Vec<&str> = sentences
        .iter()
        .take(args.single.unwrap_or(sentences.len()))
        .copied()
        .collect();
    let mut latencies = Vec::with_capacity(single.len());
    let t = Instant::now();
    for s in &single {
        let t = Instant::now();
        encoder.embed(&[s])?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let single_rate = single.len() as f64 / t.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let (p50, p95) = (percentile(&latencies, 0.50), percentile(&latencies, 0.95));
    println!(
        "single sentences ({}): p50 {p50:.2} ms, p95 {p95:.2} ms, batch-1 throughput \
         {single_rate:.1} sentences/s",
        single.len()
    );
    let peak_rss_mb = peak_rss_kib().map(|k| k as f64 / 1024.0);
    if let Some(mb) = peak_rss_mb {
        println!("peak resident memory (VmHWM): {mb:.0} MiB");
    }

    let first: Vec<_> = embeddings.iter().take(10).map(|e| e.to_vec()).collect();
    let report = serde_json::json!({
        "implementation": "candle",
        "pass": format!("{:?}", encoder.forward_pass()),
        "sentences_file": args.sentences,
        "sentences": sentences.len(),
        "batch": args.batch,
        "threads": threads,
        "rounds_sentences_per_s": rates,
        "sentences_per_s": median,
        "load_ms": load.as_secs_f64() * 1e3,
        "single_sentences": single.len(),
        "single_p50_ms": p50,
        "single_p95_ms": p95,
        "single_sentences_per_s": single_rate,
        "peak_rss_mb": peak_rss_mb,
        "first_sentences": sentences.iter().take(10).collect::<Vec<_>>(),
        "first_embeddings": first,
    });
    std::fs::write(&args.json, serde_json::to_string(&report)?)
        .map_err(|e| format!("{}: {e}", args.json.display()))?;
    println!("wrote {}", args.json.display());
    Ok(())
}

/// The `q` quantile of sorted values (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Peak resident set size of this process, KiB (`VmHWM` in
/// `/proc/self/status`; `None` where there is no procfs).
fn peak_rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
