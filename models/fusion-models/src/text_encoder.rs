//! Sentence embeddings of clinical text with all-MiniLM-L6-v2: a 6-layer,
//! 384-wide BERT distilled by MiniLM (Wang et al., NeurIPS 2020) and trained
//! as a Sentence-BERT bi-encoder (Reimers & Gurevych, EMNLP 2019).
//!
//! The encoder runs the model on word pieces from the package's
//! `tokenizer.json`, mean-pools the last hidden states over each sequence's
//! own tokens and L2-normalises, as the package's `1_Pooling/config.json`
//! says. On the CPU the model is this crate's own forward pass
//! ([`crate::minilm::MiniLm`]: packed tokens, runs side by side, fused CPU
//! kernels; 2.2–2.6× `BertModel` and 1.5–1.7× sentence-transformers in
//! `models/README.md`); candle-transformers' `BertModel` is
//! the parity reference ([`ForwardPass::BertReference`]) and runs on a GPU.
//!
//! The shipped tokenizer pads and truncates at 128 tokens; both are
//! switched off here and sequences are built by hand, so padding never
//! enters the mean and nothing is silently cut: a text longer than
//! `max_tokens` (256) is split into overlapping windows whose embeddings are
//! averaged and re-normalised.

use rayon::prelude::*;
use std::path::Path;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Tokenizer;

use crate::minilm::{self, MIN_SEQUENCE_TOKENS, MiniLm};
use crate::package::{
    Architecture, EmbeddingOutput, InputSpec, ModelPackage, OutputSpec, PackageError, TextInput,
};

/// Most windows one text is embedded as ([`TextEncoder::sequences`]).
pub const MAX_WINDOWS_PER_TEXT: usize = 4;

/// Width of an all-MiniLM-L6-v2 embedding.
pub const EMBEDDING_DIM: usize = 384;

/// One sentence embedding: 384 values with Euclidean norm 1 (cosine
/// similarity is the dot product).
pub type Embedding = [f32; EMBEDDING_DIM];

/// Sequences per forward pass; chunks are sorted by length first so a batch
/// carries little padding.
pub const BATCH_SIZE: usize = 32;

/// Why the encoder could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum TextEncoderError {
    /// The package failed to load or verify.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The package is not a BERT sentence encoder of the expected shape.
    #[error("package `{name}` is not a {EMBEDDING_DIM}-d BERT sentence encoder: {reason}")]
    WrongPackage {
        /// The package's name.
        name: String,
        /// What does not fit.
        reason: String,
    },
    /// `config.json` could not be parsed.
    #[error("{file}: {message}")]
    Config {
        /// The config file, relative to the package.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// The tokenizer could not be loaded or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A tensor operation failed (shape, device, or weights).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Which implementation computes the hidden states; both read the same
/// checkpoint and agree to cosine ≥ 1 − 1e-6 on the pooled embeddings
/// (tested).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardPass {
    /// [`crate::minilm::MiniLm`]: packed tokens, attention in length-sorted
    /// sub-batches, fused CPU kernels. The default on the CPU; CPU only.
    MiniLm,
    /// candle-transformers' `BertModel` on padded batches: the parity
    /// reference, and the pass on a GPU.
    BertReference,
}

impl ForwardPass {
    /// The pass [`TextEncoder::from_package`] uses on `device`:
    /// [`ForwardPass::MiniLm`] on the CPU, [`ForwardPass::BertReference`]
    /// elsewhere.
    #[must_use]
    pub fn default_for(device: &Device) -> Self {
        if device.is_cpu() {
            Self::MiniLm
        } else {
            Self::BertReference
        }
    }
}

enum Model {
    MiniLm(MiniLm),
    Bert(BertModel),
}

/// `config.json` as the chosen pass reads it.
enum PassConfig {
    MiniLm(minilm::Config),
    Bert(Config),
}

/// A loaded all-MiniLM-L6-v2 encoder. Build once at start-up
/// ([`TextEncoder::load`]) and share; `embed` takes `&self`.
pub struct TextEncoder {
    model: Model,
    tokenizer: Tokenizer,
    device: Device,
    cls_id: u32,
    sep_id: u32,
    pad_id: u32,
    max_tokens: usize,
    chunk_stride: usize,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder")
            .field("forward_pass", &self.forward_pass())
            .field("device", &self.device)
            .field("max_tokens", &self.max_tokens)
            .field("chunk_stride", &self.chunk_stride)
            .finish_non_exhaustive()
    }
}

impl TextEncoder {
    /// Loads and verifies the package in `dir` (see [`ModelPackage::load`])
    /// and builds the encoder on `device`.
    ///
    /// # Errors
    /// [`TextEncoderError::Package`] when the package is missing files (run
    /// `scripts/fetch-models`) or fails its checksums, and the errors of
    /// [`TextEncoder::from_package`].
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self, TextEncoderError> {
        Self::from_package(&ModelPackage::load(dir)?, device)
    }

    /// Builds the encoder from a loaded package with the default forward
    /// pass for `device` ([`ForwardPass::default_for`]); see
    /// [`TextEncoder::from_package_with`].
    ///
    /// # Errors
    /// As [`TextEncoder::from_package_with`].
    pub fn from_package(pkg: &ModelPackage, device: &Device) -> Result<Self, TextEncoderError> {
        Self::from_package_with(pkg, device, ForwardPass::default_for(device))
    }

    /// Builds the encoder from a loaded package with the given forward
    /// pass: weights, `config.json` and the tokenizer are read into memory
    /// and re-verified against the manifest's SHA-256 (no memory mapping,
    /// no `unsafe`).
    ///
    /// # Errors
    /// [`TextEncoderError::WrongPackage`] unless the manifest describes a
    /// BERT text encoder with a 384-d mean-pooled, normalised output;
    /// [`TextEncoderError::Config`], [`TextEncoderError::Tokenizer`] or
    /// [`TextEncoderError::Candle`] when a file does not parse, the
    /// weights do not fit the config, or [`ForwardPass::MiniLm`] is asked
    /// for on a device other than the CPU.
    pub fn from_package_with(
        pkg: &ModelPackage,
        device: &Device,
        pass: ForwardPass,
    ) -> Result<Self, TextEncoderError> {
        let m = pkg.manifest();
        let wrong = |reason: String| TextEncoderError::WrongPackage {
            name: m.name.clone(),
            reason,
        };
        if m.architecture != Architecture::Bert {
            return Err(wrong(format!("architecture is {:?}", m.architecture)));
        }
        let InputSpec::Text(TextInput {
            tokenizer,
            max_tokens,
            chunk_stride,
        }) = &m.input
        else {
            return Err(wrong("input is not text".to_owned()));
        };
        match m.output {
            OutputSpec::Embedding(EmbeddingOutput {
                dimension: EMBEDDING_DIM,
                normalize: true,
                ..
            }) => {}
            _ => {
                return Err(wrong(format!(
                    "output must be a normalised {EMBEDDING_DIM}-d embedding"
                )));
            }
        }
        let config_bytes = pkg.read_verified("config.json")?;
        let parse_error = |e: serde_json::Error| TextEncoderError::Config {
            file: "config.json".to_owned(),
            message: e.to_string(),
        };
        // Each pass reads config.json into its own Config.
        let config = match pass {
            ForwardPass::MiniLm => {
                PassConfig::MiniLm(serde_json::from_slice(&config_bytes).map_err(parse_error)?)
            }
            ForwardPass::BertReference => {
                PassConfig::Bert(serde_json::from_slice(&config_bytes).map_err(parse_error)?)
            }
        };
        let (hidden_size, max_positions) = match &config {
            PassConfig::MiniLm(c) => (c.hidden_size, c.max_position_embeddings),
            PassConfig::Bert(c) => (c.hidden_size, c.max_position_embeddings),
        };
        if hidden_size != EMBEDDING_DIM {
            return Err(wrong(format!("config.json hidden_size {hidden_size}")));
        }
        if *max_tokens > max_positions {
            return Err(wrong(format!(
                "max_tokens {max_tokens} exceeds max_position_embeddings {max_positions}"
            )));
        }
        let vb = VarBuilder::from_buffered_safetensors(pkg.read_weights()?, DType::F32, device)?;
        let model = match config {
            PassConfig::MiniLm(c) => Model::MiniLm(MiniLm::load(&vb, &c)?),
            PassConfig::Bert(c) => Model::Bert(BertModel::load(vb, &c)?),
        };

        let mut tok = Tokenizer::from_bytes(pkg.read_verified(tokenizer)?)
            .map_err(|e| TextEncoderError::Tokenizer(e.to_string()))?;
        // The shipped tokenizer.json pads to 128 and truncates at 128; we
        // build padded, windowed sequences ourselves.
        tok.with_padding(None);
        tok.with_truncation(None)
            .map_err(|e| TextEncoderError::Tokenizer(e.to_string()))?;
        let id = |t: &str| {
            tok.token_to_id(t).ok_or_else(|| {
                TextEncoderError::Tokenizer(format!("no {t} token in the vocabulary"))
            })
        };
        let (cls_id, sep_id, pad_id) = (id("[CLS]")?, id("[SEP]")?, id("[PAD]")?);
        Ok(Self {
            model,
            tokenizer: tok,
            device: device.clone(),
            cls_id,
            sep_id,
            pad_id,
            max_tokens: *max_tokens,
            chunk_stride: *chunk_stride,
        })
    }

    /// The device the model runs on.
    #[must_use]
    pub const fn device(&self) -> &Device {
        &self.device
    }

    /// The forward pass this encoder runs.
    #[must_use]
    pub const fn forward_pass(&self) -> ForwardPass {
        match self.model {
            Model::MiniLm(_) => ForwardPass::MiniLm,
            Model::Bert(_) => ForwardPass::BertReference,
        }
    }

    /// Word-piece ids of `text` without special tokens, no truncation.
    ///
    /// # Errors
    /// [`TextEncoderError::Tokenizer`] if the tokenizer fails.
    pub fn word_pieces(&self, text: &str) -> Result<Vec<u32>, TextEncoderError> {
        Ok(self
            .tokenizer
            .encode(text, false)
            .map_err(|e| TextEncoderError::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec())
    }

    /// The token sequences `text` is encoded as, each `[CLS] … [SEP]` and at
    /// most `max_tokens` long: one for a short text; for a longer one,
    /// windows of `max_tokens − 2` word pieces starting every `chunk_stride`
    /// word pieces, the last ending at the text's end. A text that would
    /// need more than [`MAX_WINDOWS_PER_TEXT`] windows (over about 830 word
    /// pieces with the shipped 256/192) gets that many, evenly spaced from
    /// its start to its end, so one run-on sentence cannot stall the worker
    /// (a sentence is at most 2,000 bytes; the longest in the Open-i
    /// reports fits one window).
    ///
    /// # Errors
    /// [`TextEncoderError::Tokenizer`] if the tokenizer fails.
    pub fn sequences(&self, text: &str) -> Result<Vec<Vec<u32>>, TextEncoderError> {
        let pieces = self.word_pieces(text)?;
        let window = self.max_tokens - 2;
        let wrap = |chunk: &[u32]| {
            let mut seq = Vec::with_capacity(chunk.len() + 2);
            seq.push(self.cls_id);
            seq.extend_from_slice(chunk);
            seq.push(self.sep_id);
            seq
        };
        let mut starts = vec![0];
        while starts.last().is_some_and(|s| s + window < pieces.len()) {
            starts.push(starts.last().map_or(0, |s| s + self.chunk_stride));
        }
        if starts.len() > MAX_WINDOWS_PER_TEXT {
            // Evenly spaced windows, the first at the start and the last
            // ending at the end: the cost of one text stays bounded.
            let last = pieces.len() - window;
            starts = (0..MAX_WINDOWS_PER_TEXT)
                .map(|k| k * last / (MAX_WINDOWS_PER_TEXT - 1))
                .collect();
        }
        Ok(starts
            .into_iter()
            .map(|start| wrap(&pieces[start..(start + window).min(pieces.len())]))
            .collect())
    }

    /// Embeds each text: `[N]` texts → N unit-length 384-d vectors, in order.
    /// Texts over `max_tokens` are chunked (see [`TextEncoder::sequences`]);
    /// their chunk embeddings are averaged and re-normalised. An empty text
    /// embeds `[CLS] [SEP]`.
    ///
    /// # Errors
    /// [`TextEncoderError::Tokenizer`] or [`TextEncoderError::Candle`].
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>, TextEncoderError> {
        // (text index, sequence) for every chunk of every text, tokenised
        // on the Rayon pool.
        let per_text: Vec<Vec<Vec<u32>>> = texts
            .par_iter()
            .map(|text| self.sequences(text))
            .collect::<Result<_, _>>()?;
        let mut seqs: Vec<(usize, Vec<u32>)> = per_text
            .into_iter()
            .enumerate()
            .flat_map(|(i, chunks)| chunks.into_iter().map(move |s| (i, s)))
            .collect();
        seqs.sort_by_key(|(_, s)| s.len());
        let pooled =
            self.encode_sequences(&seqs.iter().map(|(_, s)| s.as_slice()).collect::<Vec<_>>())?;
        let mut sums = vec![[0.0_f32; EMBEDDING_DIM]; texts.len()];
        for ((text, _), row) in seqs.iter().zip(pooled) {
            for (acc, v) in sums[*text].iter_mut().zip(row) {
                *acc += v;
            }
        }
        // A chunk's embedding already has norm 1; the mean of several is
        // shorter, so normalise again. A single chunk is unchanged.
        for sum in &mut sums {
            normalise(sum);
        }
        Ok(sums)
    }

    /// Embeds prepared token sequences (e.g. from [`TextEncoder::sequences`]),
    /// each on its own: mean-pooled and L2-normalised, no chunk averaging.
    /// Sequences longer than `max_tokens` or shorter than `[CLS] [SEP]` are
    /// refused, whichever the forward pass.
    ///
    /// # Errors
    /// [`TextEncoderError::Tokenizer`] for an over-long or one-token sequence,
    /// [`TextEncoderError::Candle`] for an id outside the vocabulary.
    pub fn embed_sequences(&self, seqs: &[Vec<u32>]) -> Result<Vec<Embedding>, TextEncoderError> {
        if let Some(s) = seqs.iter().find(|s| s.len() > self.max_tokens) {
            return Err(TextEncoderError::Tokenizer(format!(
                "sequence of {} tokens exceeds max_tokens {}",
                s.len(),
                self.max_tokens
            )));
        }
        if let Some(s) = seqs.iter().find(|s| s.len() < MIN_SEQUENCE_TOKENS) {
            return Err(TextEncoderError::Tokenizer(format!(
                "sequence of {} tokens: at least {MIN_SEQUENCE_TOKENS} ([CLS] [SEP])",
                s.len()
            )));
        }
        self.encode_sequences(&seqs.iter().map(Vec::as_slice).collect::<Vec<_>>())
    }

    /// As [`TextEncoder::embed`], as a tensor `[N, 384]` on the encoder's
    /// device.
    ///
    /// # Errors
    /// As [`TextEncoder::embed`].
    pub fn embed_tensor(&self, texts: &[&str]) -> Result<Tensor, TextEncoderError> {
        let rows = self.embed(texts)?;
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Ok(Tensor::from_vec(
            flat,
            (texts.len(), EMBEDDING_DIM),
            &self.device,
        )?)
    }

    /// Mean-pooled, L2-normalised embedding of each `[CLS] … [SEP]`
    /// sequence, in order; sequences sorted by length run fastest.
    fn encode_sequences(&self, seqs: &[&[u32]]) -> Result<Vec<Embedding>, TextEncoderError> {
        match &self.model {
            // One pass of up to BATCH_SIZE sequences at a time; the pass
            // cuts itself into runs that go through the layers side by
            // side on the Rayon pool (MiniLm::forward).
            Model::MiniLm(model) => {
                let mut out = Vec::with_capacity(seqs.len());
                for pass in seqs.chunks(BATCH_SIZE) {
                    let hidden = model.forward(pass)?; // [Σ lens, 384]
                    let hidden = hidden.flatten_all()?.to_vec1::<f32>()?;
                    let mut rows = hidden.chunks_exact(EMBEDDING_DIM);
                    for seq in pass {
                        let mut mean = [0.0_f32; EMBEDDING_DIM];
                        for row in rows.by_ref().take(seq.len()) {
                            for (m, v) in mean.iter_mut().zip(row) {
                                *m += v;
                            }
                        }
                        #[allow(clippy::cast_precision_loss)] // ≤ 512 tokens
                        let count = seq.len() as f32;
                        for m in &mut mean {
                            *m /= count;
                        }
                        normalise(&mut mean);
                        out.push(mean);
                    }
                }
                Ok(out)
            }
            // Passes run side by side on the Rayon pool: candle's matrix
            // products use every thread, but most of BertModel's
            // element-wise steps run on one; a pass per thread keeps every
            // core busy through both.
            Model::Bert(model) => {
                let pooled: Vec<Vec<Embedding>> = seqs
                    .par_chunks(pass_size(seqs.len()))
                    .map(|batch| self.encode_batch(model, batch.iter().copied()))
                    .collect::<Result<_, _>>()?;
                Ok(pooled.into_iter().flatten().collect())
            }
        }
    }

    /// Runs one padded batch of `[CLS] … [SEP]` sequences through
    /// `BertModel` and returns each sequence's mean-pooled, L2-normalised
    /// embedding.
    fn encode_batch<'a>(
        &self,
        model: &BertModel,
        seqs: impl ExactSizeIterator<Item = &'a [u32]> + Clone,
    ) -> Result<Vec<Embedding>, TextEncoderError> {
        let batch = seqs.len();
        let len = seqs.clone().map(<[u32]>::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch * len);
        let mut mask = Vec::with_capacity(batch * len);
        for seq in seqs {
            ids.extend_from_slice(seq);
            ids.extend(std::iter::repeat_n(self.pad_id, len - seq.len()));
            mask.extend(std::iter::repeat_n(1_u32, seq.len()));
            mask.extend(std::iter::repeat_n(0_u32, len - seq.len()));
        }
        let ids = Tensor::from_vec(ids, (batch, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (batch, len), &self.device)?;
        let token_types = ids.zeros_like()?;
        // [B, L, 384] last hidden states; padding positions are masked out of
        // attention by BertModel and out of the mean below.
        let hidden = model.forward(&ids, &token_types, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // [B, L, 1]
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // [B, 384]
        let counts = mask.sum(1)?; // [B, 1], ≥ 2 ([CLS] and [SEP])
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?; // [B, 1]
        let unit = mean.broadcast_div(&norms.clamp(1e-12, f32::INFINITY)?)?;
        unit.to_vec2::<f32>()?
            .into_iter()
            .map(|row| {
                <Embedding>::try_from(row.as_slice()).map_err(|_| {
                    TextEncoderError::Candle(candle_core::Error::Msg(format!(
                        "pooled width {} is not {EMBEDDING_DIM}",
                        row.len()
                    )))
                })
            })
            .collect()
    }
}

/// Sequences per forward pass for `n` sequences: at most [`BATCH_SIZE`],
/// and few enough that every thread of the Rayon pool gets a pass (32
/// sequences on two threads run as two passes of 16 side by side).
fn pass_size(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads().max(1))
        .clamp(1, BATCH_SIZE)
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v {
            *x /= norm;
        }
    }
}

/// Cosine similarity of two vectors of equal length, in [−1, 1] (0 when
/// either is zero); computed in f64.
#[must_use]
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0_f64, 0.0_f64, 0.0_f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}
