//! all-MiniLM-L6-v2's forward pass on candle-core, written for the CPU: a
//! BERT encoder (Devlin et al., NAACL 2019) of 6 layers, 384 wide, 12 heads,
//! distilled by MiniLM (Wang et al., NeurIPS 2020) and trained as a
//! Sentence-BERT bi-encoder (Reimers & Gurevych, EMNLP 2019).
//!
//! The arithmetic is BERT's, as Hugging Face `modeling_bert.py` and
//! candle-transformers' `BertModel` compute it (post-LayerNorm layers, exact
//! erf GELU, absolute position embeddings); `BertModel` stays in the crate
//! as the parity reference ([`crate::text_encoder::ForwardPass`]) and a test
//! holds the two to cosine ≥ 1 − 1e-6. What differs is how the work is laid
//! out:
//!
//! * **Packed tokens.** The sequences of a pass are concatenated into one
//!   `[T, 384]` matrix (T = the sum of their lengths); every linear layer
//!   runs on it, so no padding row is ever multiplied.
//! * **Runs side by side.** [`MiniLm::forward`] cuts a pass into
//!   [`PARTS_PER_THREAD`] runs of consecutive sequences per Rayon thread,
//!   of about equal tokens ([`token_parts`]), and each run goes through all
//!   six layers on its own, side by side on the pool. A run's products and
//!   kernels still split their work over the pool, but a thread that would
//!   wait at the end of one of them (some 50 such joins a pass) takes work
//!   of another run instead: 1.06–1.27× one run for the whole pass on 2
//!   threads (`examples/bench_text_parts.rs`), hidden states bitwise
//!   equal.
//! * **Attention in sub-batches.** Only attention needs a rectangular
//!   layout: consecutive sequences (callers sort them by length) are grouped
//!   into sub-batches padded to their own longest member
//!   ([`attention_groups`]) and the groups run side by side on the Rayon
//!   pool.
//! * **One Q/K/V product.** The query, key and value weights are stacked
//!   into one `[384, 1152]` matrix at load time.
//! * **Fused element-wise steps**, as candle custom ops on CPU storage: the
//!   Q/K/V bias, the 1/√d scaling and the split into heads (`SplitHeads`,
//!   which writes K already transposed); the key-padding mask and softmax,
//!   with a vectorisable `exp` (`MaskedSoftmax`, [`exp_neg_f32`]); bias +
//!   GELU with a vectorisable `erf` ([`BiasGelu`], [`erf_f32`]); bias +
//!   residual + LayerNorm ([`AddNorm`]). Their loops are compiled once per
//!   instruction set and picked at run time (AVX-512, AVX2 + FMA, baseline)
//!   through `pulp`'s safe dispatch.
//! * **AVX-512 matrix products.** The crate switches on the `x86-v4`
//!   feature of `gemm`, candle's pure-Rust matrix-product crate, which then
//!   uses its AVX-512 kernels where the CPU has them (AVX2 + FMA otherwise).
//!   This speeds `BertModel` up as well.
//!
//! Where the time goes (perf, 1,000 sentences at batch 32, 2 threads, an
//! AVX2 machine): 77 % in gemm's micro-kernel, 4.6 % in gemm packing its
//! operands, 3.9 % zeroing the products' output buffers (inside candle), 7 %
//! in the fused kernels above (memory bound: their loads dominate), the rest
//! in splitting and merging heads, copies and tokenisation.
//!
//! Weights are the checkpoint's (`model.safetensors`, no `bert.` prefix);
//! the `vb.pp` names below are its keys. Linear weights are stored
//! transposed (`[in, out]`) so every product is a plain row-major GEMM.
//!
//! CPU only: the custom ops have no GPU kernels, and [`MiniLm::load`]
//! refuses another device (the text encoder runs `BertModel` there).
mod ops;

use std::ops::Range;

use candle_core::{DType, Device, IndexOp, Tensor, bail};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::Deserialize;

pub use ops::{
    AddNorm, AttentionGroup, BiasGelu, GROUP_MAX_PADDING, GROUP_MAX_SEQS, attention_groups,
    erf_f32, exp_neg_f32,
};
use ops::{MaskedSoftmax, MergeHeads, SplitHeads};

/// The activation between the two feed-forward products (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HiddenAct {
    /// The exact GELU, x·Φ(x) = ½x(1 + erf(x/√2)) (Hendrycks & Gimpel 2016).
    Gelu,
}

/// How positions are embedded (`position_embedding_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PositionEmbeddingType {
    /// A learned vector per position (BERT's).
    #[default]
    Absolute,
}

/// The checkpoint's `config.json`, the fields inference reads (dropout
/// probabilities and the other training-only fields are ignored). For
/// all-MiniLM-L6-v2: vocabulary 30 522, hidden 384, 6 layers, 12 heads of
/// 32, intermediate 1 536, 512 positions, 2 token types, ε 1e-12.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Config {
    /// Word-piece vocabulary size.
    pub vocab_size: usize,
    /// Width of every hidden state, H.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer; H must divide by it.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer, I.
    pub intermediate_size: usize,
    /// The feed-forward activation.
    pub hidden_act: HiddenAct,
    /// Number of learned positions: the longest sequence the model takes.
    pub max_position_embeddings: usize,
    /// Number of token types (segment A/B); only type 0 is used.
    pub type_vocab_size: usize,
    /// LayerNorm ε.
    pub layer_norm_eps: f64,
    /// The padding token's id.
    pub pad_token_id: usize,
    /// How positions are embedded.
    #[serde(default)]
    pub position_embedding_type: PositionEmbeddingType,
}

impl Config {
    /// Width of one attention head, H / heads.
    #[must_use]
    pub const fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}
/// One encoder layer: self-attention, then the feed-forward block, each
/// closed by bias + residual + LayerNorm (`encoder.layer.{i}`).
#[derive(Debug, Clone)]
struct Layer {
    /// `attention.self.{query,key,value}.weight` stacked and transposed:
    /// `[H, 3H]`.
    qkv_weight: Tensor,
    /// The matching biases, `[3H]`.
    qkv_bias: Vec<f32>,
    /// `attention.output.dense.weight` transposed, `[H, H]`.
    attn_out_weight: Tensor,
    /// `attention.output.dense.bias` + `attention.output.LayerNorm`.
    attn_norm: AddNorm,
    /// `intermediate.dense.weight` transposed, `[H, I]`.
    inter_weight: Tensor,
    /// `intermediate.dense.bias` and the GELU.
    inter_act: BiasGelu,
    /// `output.dense.weight` transposed, `[I, H]`.
    out_weight: Tensor,
    /// `output.dense.bias` + `output.LayerNorm`.
    out_norm: AddNorm,
    heads: usize,
    head_dim: usize,
}

impl Layer {
    fn new(vb: &VarBuilder, c: &Config) -> candle_core::Result<Self> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let attn = vb.pp("attention");
        let this = attn.pp("self");
        let (q, k, v) = (this.pp("query"), this.pp("key"), this.pp("value"));
        let qkv_weight = Tensor::cat(
            &[
                q.get((h, h), "weight")?,
                k.get((h, h), "weight")?,
                v.get((h, h), "weight")?,
            ],
            0,
        )?; // [3H, H], rows q | k | v
        let mut qkv_bias = vector(&q, "bias", h)?;
        qkv_bias.extend(vector(&k, "bias", h)?);
        qkv_bias.extend(vector(&v, "bias", h)?);
        let out = attn.pp("output");
        let inter = vb.pp("intermediate").pp("dense");
        let output = vb.pp("output");
        Ok(Self {
            qkv_weight: transposed(&qkv_weight)?,
            qkv_bias,
            attn_out_weight: transposed(&out.pp("dense").get((h, h), "weight")?)?,
            attn_norm: AddNorm::new(
                &out.pp("LayerNorm"),
                vector(&out.pp("dense"), "bias", h)?,
                h,
                c.layer_norm_eps,
            )?,
            inter_weight: transposed(&inter.get((i, h), "weight")?)?,
            inter_act: BiasGelu {
                bias: vector(&inter, "bias", i)?,
            },
            out_weight: transposed(&output.pp("dense").get((h, i), "weight")?)?,
            out_norm: AddNorm::new(
                &output.pp("LayerNorm"),
                vector(&output.pp("dense"), "bias", h)?,
                h,
                c.layer_norm_eps,
            )?,
            heads: c.num_attention_heads,
            head_dim: c.head_dim(),
        })
    }

    /// `x` `[T, H]` packed → `[T, H]` packed.
    fn forward(&self, x: &Tensor, groups: &[AttentionGroup]) -> candle_core::Result<Tensor> {
        let qkv = x.matmul(&self.qkv_weight)?; // [T, 3H], bias added per head below
        let ctx = self.attention(&qkv, groups)?; // [T, H]
        let attn = ctx.matmul(&self.attn_out_weight)?; // [T, H]
        self.attn_norm.apply(&attn, x)?;
        self.feed_forward(&attn) // [T, H]
    }

    /// The feed-forward block on rows `x` `[R, H]` → `[R, H]`.
    fn feed_forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let inter = x.matmul(&self.inter_weight)?; // [R, I]
        inter.inplace_op1(&self.inter_act)?;
        let out = inter.matmul(&self.out_weight)?; // [R, H]
        self.out_norm.apply(&out, x)?;
        Ok(out)
    }

    /// Scaled dot-product attention (Vaswani et al. 2017), each group on
    /// its own: `qkv` `[T, 3H]` → context `[T, H]`.
    fn attention(&self, qkv: &Tensor, groups: &[AttentionGroup]) -> candle_core::Result<Tensor> {
        #[allow(clippy::cast_precision_loss)]
        let scale = 1.0 / (self.head_dim as f32).sqrt();
        let parts = groups
            .par_iter()
            .map(|group| {
                let heads = qkv.apply_op1_no_bwd(&SplitHeads {
                    group,
                    bias: &self.qkv_bias,
                    heads: self.heads,
                    head_dim: self.head_dim,
                    scale,
                })?; // [3, n·heads, L·d]
                let (nh, l, d) = (group.lens.len() * self.heads, group.max_len, self.head_dim);
                let q = heads.i(0)?.reshape((nh, l, d))?;
                let k_t = heads.i(1)?.reshape((nh, d, l))?;
                let v = heads.i(2)?.reshape((nh, l, d))?;
                let scores = q.matmul(&k_t)?; // [n·heads, L, L]
                scores.inplace_op1(&MaskedSoftmax {
                    group,
                    heads: self.heads,
                })?;
                let ctx = scores.matmul(&v)?; // [n·heads, L, d]
                ctx.apply_op1_no_bwd(&MergeHeads {
                    group,
                    heads: self.heads,
                    head_dim: self.head_dim,
                }) // [Σ lens, H]
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&parts, 0)
    }
}

/// The embedding block (`embeddings.*`): word + position + token type 0,
/// then LayerNorm.
#[derive(Debug, Clone)]
struct Embeddings {
    /// `word_embeddings.weight`, `[vocab, H]`.
    word: Tensor,
    /// `position_embeddings.weight`, `[positions, H]`.
    position: Tensor,
    /// `token_type_embeddings.weight` row 0 as the bias + `LayerNorm`.
    norm: AddNorm,
}

impl Embeddings {
    fn new(vb: &VarBuilder, c: &Config) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let token_type = vb
            .pp("token_type_embeddings")
            .get((c.type_vocab_size, h), "weight")?
            .i(0)?
            .to_vec1::<f32>()?;
        Ok(Self {
            word: vb.pp("word_embeddings").get((c.vocab_size, h), "weight")?,
            position: vb
                .pp("position_embeddings")
                .get((c.max_position_embeddings, h), "weight")?,
            norm: AddNorm::new(&vb.pp("LayerNorm"), token_type, h, c.layer_norm_eps)?,
        })
    }

    /// Packed ids and positions, each `[T]` u32 → `[T, H]`.
    fn forward(&self, ids: &Tensor, positions: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.word.index_select(ids, 0)?; // [T, H]
        let pos = self.position.index_select(positions, 0)?; // [T, H]
        self.norm.apply(&x, &pos)?;
        Ok(x)
    }
}

/// all-MiniLM-L6-v2 (any post-LN BERT encoder with GELU, in fact) on packed
/// token sequences. Build once ([`MiniLm::load`]) and share: `forward`
/// takes `&self` and is `Send + Sync`.
#[derive(Debug, Clone)]
pub struct MiniLm {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    config: Config,
    device: Device,
}

impl MiniLm {
    /// Builds the model from the checkpoint behind `vb` (keys
    /// `embeddings.*`, `encoder.layer.{i}.*`; a `bert.` prefix is accepted),
    /// on the CPU.
    ///
    /// # Errors
    /// A candle error when a tensor is missing or of the wrong shape, when
    /// `hidden_size` is 0 or not a multiple of `num_attention_heads`, when
    /// `intermediate_size` is 0, or when
    /// `vb` is on another device than the CPU.
    pub fn load(vb: &VarBuilder, config: &Config) -> candle_core::Result<Self> {
        if !vb.device().is_cpu() {
            bail!(
                "the MiniLM forward pass runs on the CPU only (use BertModel on {:?})",
                vb.device()
            );
        }
        if config.intermediate_size == 0 {
            bail!("intermediate_size is 0");
        }
        if config.num_attention_heads == 0
            || config.hidden_size == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            bail!(
                "hidden_size {} does not split into {} heads",
                config.hidden_size,
                config.num_attention_heads
            );
        }
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb.clone()
        };
        let embeddings = Embeddings::new(&vb.pp("embeddings"), config)?;
        let encoder = vb.pp("encoder").pp("layer");
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::new(&encoder.pp(i.to_string()), config))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            embeddings,
            layers,
            config: config.clone(),
            device: vb.device().clone(),
        })
    }

    /// The model's configuration.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Runs the encoder on token sequences (each `[CLS] … [SEP]`, so at
    /// least 2 tokens, ids below `vocab_size`, at most
    /// `max_position_embeddings` long; sort them by
    /// length for the least attention padding) and returns the last hidden
    /// states packed: `[T, H]` with T = Σ lengths, sequence after sequence in
    /// input order. Every token attends to the tokens of its own sequence
    /// only, as BERT with an attention mask does.
    ///
    /// # Errors
    /// A candle error for a sequence of fewer than 2 tokens, one longer
    /// than `max_position_embeddings`, or an id outside the vocabulary.
    pub fn forward(&self, seqs: &[&[u32]]) -> candle_core::Result<Tensor> {
        self.forward_in_parts(seqs, PARTS_PER_THREAD * rayon::current_num_threads())
    }

    /// As [`MiniLm::forward`], with the sequences cut into at most `parts`
    /// runs of consecutive sequences of about equal tokens
    /// ([`token_parts`]) that go through the encoder side by side on the
    /// Rayon pool, each with its own products and attention; the runs'
    /// states are concatenated in input order. Every sequence's states are
    /// bitwise the same whatever `parts` is: a row of a product depends on
    /// its own row only, gemm blocks the inner dimension by its length and
    /// the caches, never by the rows, and attention's padding adds exact
    /// zeros. (A run of a single row would take gemm's matrix-vector path,
    /// which sums in another order; sequences of at least 2 tokens rule it
    /// out.) `parts` 0 counts as 1.
    ///
    /// # Errors
    /// As [`MiniLm::forward`].
    pub fn forward_in_parts(&self, seqs: &[&[u32]], parts: usize) -> candle_core::Result<Tensor> {
        self.check(seqs)?;
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let runs = token_parts(&lens, parts);
        if runs.len() <= 1 {
            return self.forward_packed(seqs);
        }
        let states = runs
            .par_iter()
            .map(|run| self.forward_packed(&seqs[run.clone()]))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&states, 0)
    }

    /// Refuses a sequence of fewer than [`MIN_SEQUENCE_TOKENS`], one over
    /// `max_position_embeddings`, or an id outside the vocabulary.
    fn check(&self, seqs: &[&[u32]]) -> candle_core::Result<()> {
        if let Some(len) = seqs
            .iter()
            .map(|s| s.len())
            .find(|&n| n < MIN_SEQUENCE_TOKENS || n > self.config.max_position_embeddings)
        {
            bail!(
                "sequence of {len} tokens: must be {MIN_SEQUENCE_TOKENS} ([CLS] [SEP]) to {}",
                self.config.max_position_embeddings
            );
        }
        if let Some(&id) = seqs
            .iter()
            .flat_map(|s| s.iter())
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            bail!(
                "token id {id} outside the vocabulary of {}",
                self.config.vocab_size
            );
        }
        Ok(())
    }

    /// One run of checked sequences through the encoder, every product on
    /// the run's packed `[Σ lens, H]` rows.
    fn forward_packed(&self, seqs: &[&[u32]]) -> candle_core::Result<Tensor> {
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let ids: Vec<u32> = seqs.iter().flat_map(|s| s.iter().copied()).collect();
        // Positions restart at 0 for every sequence; each is < 512 (checked).
        #[allow(clippy::cast_possible_truncation)]
        let positions: Vec<u32> = lens.iter().flat_map(|&n| 0..n as u32).collect();
        let t = ids.len();
        let ids = Tensor::from_vec(ids, t, &self.device)?; // [T]
        let positions = Tensor::from_vec(positions, t, &self.device)?; // [T]
        let groups = attention_groups(&lens);
        let mut x = self.embeddings.forward(&ids, &positions)?; // [T, H]
        for layer in &self.layers {
            x = layer.forward(&x, &groups)?;
        }
        Ok(x)
    }
}

/// `[out, in]` → `[in, out]`, contiguous.
fn transposed(w: &Tensor) -> candle_core::Result<Tensor> {
    w.t()?.contiguous()
}

/// A `[n]` f32 tensor `name` under `vb` as a vector.
fn vector(vb: &VarBuilder, name: &str, n: usize) -> candle_core::Result<Vec<f32>> {
    vb.get(n, name)?.to_dtype(DType::F32)?.to_vec1::<f32>()
}

/// The shortest sequence the pass takes: `[CLS] [SEP]`.
pub const MIN_SEQUENCE_TOKENS: usize = 2;

/// Runs per Rayon thread that [`MiniLm::forward`] cuts a pass into: two,
/// so a thread that finishes its first run early takes another rather than
/// waiting (measured on 2 threads: 1 run per thread 0.87–1.03× of 2, 4 runs
/// per thread 0.89–1.02×, most rounds slower; see `models/README.md`).
pub const PARTS_PER_THREAD: usize = 2;

/// Cuts sequences of lengths `lens` into at most `parts` runs of
/// consecutive sequences: run k ends at the first sequence whose running
/// token count reaches k·Σ lens / parts, so runs are of about equal tokens
/// when no sequence is long against the share, and a long one makes its
/// run larger and the runs fewer (`[1, 1, 1, 100]` in 2 is one run). None
/// is empty; no more runs than sequences. Empty `lens` gives no run.
#[must_use]
pub fn token_parts(lens: &[usize], parts: usize) -> Vec<Range<usize>> {
    let total: usize = lens.iter().sum();
    let parts = parts.clamp(1, lens.len().max(1));
    let mut runs = Vec::with_capacity(parts);
    let (mut start, mut tokens) = (0, 0);
    for (i, &n) in lens.iter().enumerate() {
        tokens += n;
        let k = runs.len() + 1;
        if k < parts && tokens * parts >= total * k {
            runs.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < lens.len() {
        runs.push(start..lens.len());
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs cover every sequence once, in order, none empty, at most
    /// `parts` and at most one per sequence.
    fn assert_runs_cover(lens: &[usize], parts: usize, runs: &[Range<usize>]) {
        assert!(runs.len() <= parts.max(1) && runs.len() <= lens.len());
        let mut next = 0;
        for run in runs {
            assert_eq!(run.start, next, "{runs:?}");
            assert!(run.end > run.start, "{runs:?}");
            next = run.end;
        }
        assert_eq!(next, lens.len());
    }

    #[test]
    fn token_parts_cut_equal_tokens_in_order() {
        // 8 sequences of 10 tokens into 4 runs: 20 tokens each.
        let lens = [10; 8];
        assert_eq!(token_parts(&lens, 4), vec![0..2, 2..4, 4..6, 6..8]);
        // Sorted lengths 1..=8 (36 tokens) into 2: the first run ends at the
        // first sequence reaching 18 tokens (1+…+6 = 21).
        let lens: Vec<usize> = (1..=8).collect();
        assert_eq!(token_parts(&lens, 2), vec![0..6, 6..8]);
        // One long sequence takes a run of its own.
        assert_eq!(token_parts(&[200, 5, 5, 5], 2), vec![0..1, 1..4]);
        for (lens, parts) in [
            (vec![7_usize, 9, 30, 31, 60, 200], 4),
            (vec![3, 3], 8),
            (vec![50], 4),
            (vec![5; 33], 4),
        ] {
            assert_runs_cover(&lens, parts, &token_parts(&lens, parts));
        }
        // Fewer sequences than parts: a run each; 0 parts is one run.
        assert_eq!(token_parts(&[3, 3], 8), vec![0..1, 1..2]);
        assert_eq!(token_parts(&[3, 4, 5], 0), vec![0..3]);
        assert!(token_parts(&[], 4).is_empty());
    }
}
