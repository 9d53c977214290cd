//! all-MiniLM-L6-v2 in candle against float64 numpy reference vectors
//! (models/convert/minilm_reference.py), and the crate's own forward pass
//! (`fusion_models::minilm`) against candle-transformers' `BertModel`. Needs
//! `scripts/fetch-models --text-only`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use candle_core::Device;
use candle_nn::VarBuilder;
use fusion_models::ModelPackage;
use fusion_models::minilm::{Config, MiniLm};
use fusion_models::text_encoder::{EMBEDDING_DIM, ForwardPass, TextEncoder, cosine};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    model_sha256: String,
    tokenizer_sha256: String,
    sentences: Vec<Sentence>,
}

#[derive(Deserialize)]
struct Sentence {
    text: String,
    token_ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(common::fixture("minilm_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn encoder() -> TextEncoder {
    TextEncoder::load(common::fetched_package("minilm-l6-v2"), &Device::Cpu).unwrap()
}

#[test]
fn reference_fixture_matches_the_pinned_files() {
    let r = reference();
    let pkg = fusion_models::ModelPackage::read_manifest(
        fusion_models::package::default_packages_dir().join("minilm-l6-v2"),
    )
    .unwrap();
    assert_eq!(
        pkg.file("model.safetensors").unwrap().sha256,
        r.model_sha256
    );
    assert_eq!(
        pkg.file("tokenizer.json").unwrap().sha256,
        r.tokenizer_sha256
    );
}

#[test]
fn matches_numpy_reference_and_tokenizer() {
    let enc = encoder();
    let r = reference();
    let texts: Vec<&str> = r.sentences.iter().map(|s| s.text.as_str()).collect();
    // One batch with all sentences: exercises padding and the mask.
    let got = enc.embed(&texts).unwrap();
    for (s, e) in r.sentences.iter().zip(&got) {
        let seqs = enc.sequences(&s.text).unwrap();
        assert_eq!(
            seqs,
            vec![s.token_ids.clone()],
            "token ids for {:?}",
            s.text
        );
        let cos = cosine(e, &s.embedding);
        let norm: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        eprintln!(
            "1 - cosine {:.1e}  norm {norm:.6}  {} tokens  {:?}",
            1.0 - cos,
            s.token_ids.len(),
            s.text
        );
        assert!(cos >= 0.9999, "cosine {cos} for {:?}", s.text);
        assert!((norm - 1.0).abs() < 1e-5);
    }
    // Batched and one-at-a-time agree (padding does not leak into the mean).
    for (text, batched) in texts.iter().zip(&got) {
        let single = enc.embed(&[text]).unwrap();
        assert!(cosine(&single[0], batched) > 0.999_999, "{text:?}");
    }
}

#[test]
fn first_values_of_the_known_sentence() {
    let e = encoder()
        .embed(&["No acute cardiopulmonary process."])
        .unwrap();
    let want = [
        0.079_408_1,
        0.037_743_5,
        -0.054_969_3,
        0.050_545_1,
        -0.038_995_1,
    ];
    for (g, w) in e[0].iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{g} vs {w}");
    }
    assert_eq!(e[0].len(), EMBEDDING_DIM);
}

/// A run-on text is embedded as at most `MAX_WINDOWS_PER_TEXT` windows,
/// evenly spaced from its first word piece to its last, so its cost is
/// bounded (a 2,000-byte run-on sentence was ten windows).
#[test]
fn a_run_on_text_is_embedded_as_a_bounded_number_of_windows() {
    let enc = encoder();
    let r = reference();
    let long = [r.sentences[5].text.as_str(); 12].join(" ");
    let pieces = enc.word_pieces(&long).unwrap();
    assert!(pieces.len() > 1500, "{} word pieces", pieces.len());
    let seqs = enc.sequences(&long).unwrap();
    assert_eq!(seqs.len(), fusion_models::MAX_WINDOWS_PER_TEXT);
    assert!(seqs.iter().all(|s| s.len() == 256));
    assert_eq!(seqs[0][1..255], pieces[..254]);
    let last = &seqs[seqs.len() - 1];
    assert_eq!(last[1..255], pieces[pieces.len() - 254..]);
    // Evenly spaced: the second window starts a third of the way.
    let second = (pieces.len() - 254) / 3;
    assert_eq!(seqs[1][1..255], pieces[second..second + 254]);
    // A text of three windows keeps every natural window.
    let three = [r.sentences[5].text.as_str(); 3].join(" ");
    assert!(enc.sequences(&three).unwrap().len() <= fusion_models::MAX_WINDOWS_PER_TEXT);
}

#[test]
fn long_text_is_chunked_not_truncated() {
    let enc = encoder();
    let r = reference();
    // ~ 3 × 158 word pieces: more than 256 tokens.
    let long = [r.sentences[5].text.as_str(); 3].join(" ");
    let pieces = enc.word_pieces(&long).unwrap();
    assert!(pieces.len() > 400, "{} word pieces", pieces.len());
    let seqs = enc.sequences(&long).unwrap();
    assert!(seqs.len() >= 2);
    assert!(seqs.iter().all(|s| s.len() <= 256));
    // Windows of 254 word pieces every 192: overlapping, covering the end.
    assert_eq!(seqs[0][1..255], pieces[..254]);
    assert_eq!(seqs[1][1..=62], pieces[192..254]);
    assert_eq!(
        seqs.last().unwrap()[seqs.last().unwrap().len() - 2],
        *pieces.last().unwrap()
    );

    let whole = enc.embed(&[long.as_str()]).unwrap()[0];
    // The text's embedding is the re-normalised mean of its chunks' embeddings.
    let mut mean = [0.0_f32; EMBEDDING_DIM];
    for s in &seqs {
        let e = embed_ids(&enc, s);
        for (m, v) in mean.iter_mut().zip(e) {
            *m += v;
        }
    }
    assert!(cosine(&whole, &mean) > 0.999_999);
    // And it differs from the first window alone (nothing was dropped).
    let first = embed_ids(&enc, &seqs[0]);
    assert!(cosine(&whole, &first) < 0.999_9);
    let norm: f32 = whole.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
}

#[test]
fn empty_and_mixed_batches() {
    let enc = encoder();
    let out = enc.embed(&[]).unwrap();
    assert!(out.is_empty());
    let e = enc.embed(&["", "Right pneumothorax."]).unwrap();
    assert_eq!(e.len(), 2);
    assert!(e.iter().all(|v| v.iter().all(|x| x.is_finite())));
    let t = enc.embed_tensor(&["a", "b", "c"]).unwrap();
    assert_eq!(t.dims(), &[3, EMBEDDING_DIM]);
}

#[test]
fn similar_findings_are_closer_than_unrelated_ones() {
    let e = encoder()
        .embed(&[
            "Large right pleural effusion.",
            "There is a sizable pleural effusion on the right.",
            "The endotracheal tube is in good position.",
        ])
        .unwrap();
    assert!(cosine(&e[0], &e[1]) > cosine(&e[0], &e[2]) + 0.2);
}

fn embed_ids(enc: &TextEncoder, seq: &[u32]) -> [f32; EMBEDDING_DIM] {
    enc.embed_sequences(&[seq.to_vec()]).unwrap()[0]
}

fn encoder_with(pass: ForwardPass) -> TextEncoder {
    let pkg = ModelPackage::load(common::fetched_package("minilm-l6-v2")).unwrap();
    TextEncoder::from_package_with(&pkg, &Device::Cpu, pass).unwrap()
}

#[test]
fn the_cpu_runs_the_minilm_pass() {
    assert_eq!(encoder().forward_pass(), ForwardPass::MiniLm);
    assert_eq!(ForwardPass::default_for(&Device::Cpu), ForwardPass::MiniLm);
}

/// The parity test of issue #16: the crate's own forward pass and
/// `BertModel` embed the same texts to cosine >= 1 - 1e-6, in the batches
/// the benchmark and the service use (32 texts, one text), over the
/// reference fixture, a fifth of the shipped benchmark sentences (every
/// length class), a chunked long text, an empty text and raw id sequences
/// up to `max_tokens`.
#[test]
fn minilm_pass_matches_bert_model() {
    let fast = encoder_with(ForwardPass::MiniLm);
    let reference = encoder_with(ForwardPass::BertReference);
    assert_eq!(reference.forward_pass(), ForwardPass::BertReference);
    let bench =
        std::fs::read_to_string(common::repo_root().join("models/bench/sentences.txt")).unwrap();
    let r = reference_fixture_texts();
    let long = [r[5].as_str(); 3].join(" ");
    let mut texts: Vec<&str> = r.iter().map(String::as_str).collect();
    texts.extend(bench.lines().step_by(5));
    texts.push(&long);
    texts.push("");
    assert!(texts.len() > 200);

    let mut worst = 1.0_f64;
    for batch in texts.chunks(32) {
        let a = fast.embed(batch).unwrap();
        let b = reference.embed(batch).unwrap();
        for ((text, x), y) in batch.iter().zip(&a).zip(&b) {
            let cos = cosine(x, y);
            worst = worst.min(cos);
            assert!(cos >= 1.0 - 1e-6, "cosine {cos} for {text:?}");
        }
    }
    for text in texts.iter().step_by(10) {
        let cos = cosine(
            &fast.embed(&[text]).unwrap()[0],
            &reference.embed(&[text]).unwrap()[0],
        );
        worst = worst.min(cos);
        assert!(cos >= 1.0 - 1e-6, "cosine {cos} for {text:?} alone");
    }
    // Raw sequences, unsorted, up to the longest the package allows.
    let pieces = fast.word_pieces(&long).unwrap();
    let seqs: Vec<Vec<u32>> = [254_usize, 3, 100, 0, 17]
        .iter()
        .map(|&n| {
            let mut s = vec![101];
            s.extend_from_slice(&pieces[..n]);
            s.push(102);
            s
        })
        .collect();
    let a = fast.embed_sequences(&seqs).unwrap();
    let b = reference.embed_sequences(&seqs).unwrap();
    for (x, y) in a.iter().zip(&b) {
        let cos = cosine(x, y);
        worst = worst.min(cos);
        assert!(cos >= 1.0 - 1e-6, "cosine {cos} for a raw sequence");
    }
    eprintln!(
        "MiniLm vs BertModel over {} texts: worst 1 - cosine {:.1e}",
        texts.len(),
        1.0 - worst
    );
}

/// A pass cut into runs side by side (`MiniLm::forward`) gives every
/// sequence bitwise the hidden states it gets in one run, whatever the
/// number of runs: each run is its own packed batch, a product's row depends
/// on its own row only, and gemm blocks the inner dimension the same way
/// for any number of rows.
#[test]
fn runs_side_by_side_give_the_states_of_one_run() {
    let pkg = ModelPackage::load(common::fetched_package("minilm-l6-v2")).unwrap();
    let config: Config =
        serde_json::from_slice(&pkg.read_verified("config.json").unwrap()).unwrap();
    let vb = VarBuilder::from_buffered_safetensors(
        pkg.read_weights().unwrap(),
        candle_core::DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let model = MiniLm::load(&vb, &config).unwrap();
    let enc = encoder();
    let bench =
        std::fs::read_to_string(common::repo_root().join("models/bench/sentences.txt")).unwrap();
    let mut seqs: Vec<Vec<u32>> = bench
        .lines()
        .step_by(31)
        .flat_map(|line| enc.sequences(line).unwrap())
        .collect();
    seqs.push(vec![101, 102]);
    seqs.sort_by_key(Vec::len);
    let seqs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    assert!(seqs.len() > 30);
    let states = |parts: usize| {
        model
            .forward_in_parts(&seqs, parts)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let one = states(1);
    let tokens: usize = seqs.iter().map(|s| s.len()).sum();
    assert_eq!(one.len(), tokens * EMBEDDING_DIM);
    let default = model
        .forward(&seqs)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for (parts, cut) in [
        ("2 runs", states(2)),
        ("5 runs", states(5)),
        ("a run per sequence", states(64)),
        ("forward's default", default),
    ] {
        assert_eq!(cut.len(), one.len(), "{parts}");
        let differing = one
            .iter()
            .zip(&cut)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differing, 0, "{parts}: {differing} values differ");
    }
    assert!(one.iter().all(|v| v.is_finite()));
    // Bad input is refused before any run starts.
    let long = vec![101_u32; config.max_position_embeddings + 1];
    assert!(model.forward_in_parts(&[&[101, 102], &long], 2).is_err());
    assert!(model.forward_in_parts(&[&[101, 102], &[]], 2).is_err());
    assert!(model.forward_in_parts(&[&[101, 102], &[101]], 2).is_err());
    assert!(enc.embed_sequences(&[vec![101]]).is_err());
    let bert = encoder_with(ForwardPass::BertReference);
    assert!(bert.embed_sequences(&[vec![101, 102], vec![101]]).is_err());
    assert!(model.forward_in_parts(&[&[101, 999_999, 102]], 2).is_err());
}

fn reference_fixture_texts() -> Vec<String> {
    reference().sentences.into_iter().map(|s| s.text).collect()
}
