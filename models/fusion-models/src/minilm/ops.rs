//! The MiniLM pass's fused element-wise steps and attention layout, as
//! candle custom ops on CPU storage: bias + residual + LayerNorm
//! ([`AddNorm`]), bias + GELU ([`BiasGelu`]), the split into heads, the
//! masked softmax and the merge back to packed rows; their row kernels,
//! compiled once per instruction set and picked at run time through pulp
//! ([`simd`]); the vectorisable `erf` and `exp`; and the attention
//! sub-batches ([`attention_groups`]).

use std::ops::Range;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, InplaceOp1, InplaceOp2, Layout, Shape, Tensor, bail};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::vector;

/// Row-wise `y ← LayerNorm(y + bias + residual)·γ + β` over `[T, H]`
/// (Ba et al. 2016): the end of every BERT sub-layer, and of the embeddings
/// (where the "residual" is the position embedding and the bias the
/// token-type-0 embedding). Runs in place on `y`.
#[derive(Debug, Clone)]
pub struct AddNorm {
    bias: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl AddNorm {
    /// Loads `LayerNorm.weight`/`LayerNorm.bias` from `vb_norm` and the
    /// `[H]` bias added before it (a dense layer's, or a zero vector).
    pub(super) fn new(
        vb_norm: &VarBuilder,
        bias: Vec<f32>,
        width: usize,
        eps: f64,
    ) -> candle_core::Result<Self> {
        #[allow(clippy::cast_possible_truncation)] // ε = 1e-12 is representable in f32
        let eps = eps as f32;
        Ok(Self {
            bias,
            gamma: vector(vb_norm, "weight", width)?,
            beta: vector(vb_norm, "bias", width)?,
            eps,
        })
    }

    pub(super) fn apply(&self, y: &Tensor, residual: &Tensor) -> candle_core::Result<()> {
        y.inplace_op2(residual, self)
    }
}

impl AddNorm {
    /// The kernel on whole rows of `y` and `res` (inlined into [`simd`]).
    #[inline(always)]
    fn rows(&self, y: &mut [f32], res: &[f32]) {
        let width = self.gamma.len();
        #[allow(clippy::cast_precision_loss)] // H ≤ 2^24
        let inv_width = 1.0 / width as f32;
        for (y, r) in y.chunks_exact_mut(width).zip(res.chunks_exact(width)) {
            for ((y, r), b) in y.iter_mut().zip(r).zip(&self.bias) {
                *y += r + b;
            }
            let mean = sum(y) * inv_width;
            for v in y.iter_mut() {
                *v -= mean;
            }
            let var = sum_squares(y) * inv_width;
            let inv_std = 1.0 / (var + self.eps).sqrt();
            for ((v, g), b) in y.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *v = *v * inv_std * g + b;
            }
        }
    }
}

impl InplaceOp2 for AddNorm {
    fn name(&self) -> &'static str {
        "minilm-add-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let width = self.gamma.len();
        let y = f32_slice_mut(s1, l1, self.name())?;
        let res = f32_slice(s2, l2, self.name())?;
        if y.len() != res.len() || y.len() % width != 0 {
            bail!("{}: shapes {l1:?} and {l2:?}", self.name());
        }
        let rows_per_task = (ROWS_PER_TASK * 384 / width).max(1);
        y.par_chunks_mut(width * rows_per_task)
            .zip(res.par_chunks(width * rows_per_task))
            .for_each(|(y, res)| simd(AddNormRows { op: self, y, res }));
        Ok(())
    }
}

/// `x ← GELU(x + bias)` over `[T, I]`, in place, with the erf of
/// [`erf_f32`].
#[derive(Debug, Clone)]
pub struct BiasGelu {
    pub(super) bias: Vec<f32>,
}

impl BiasGelu {
    /// The kernel on whole rows of `x` (inlined into [`simd`]).
    #[inline(always)]
    fn rows(&self, x: &mut [f32]) {
        for row in x.chunks_exact_mut(self.bias.len()) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v = gelu_erf(*v + b);
            }
        }
    }
}

impl InplaceOp1 for BiasGelu {
    fn name(&self) -> &'static str {
        "minilm-bias-gelu"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let width = self.bias.len();
        let x = f32_slice_mut(storage, layout, self.name())?;
        if x.len() % width != 0 {
            bail!("{}: shape {layout:?}", self.name());
        }
        x.par_chunks_mut(width * ROWS_PER_TASK)
            .for_each(|x| simd(GeluRows { op: self, x }));
        Ok(())
    }
}

/// Runs `kernel` compiled for the best instruction set this CPU has
/// (AVX-512, AVX2 + FMA, or the x86-64 baseline) through pulp's safe
/// run-time dispatch: the plain loops of the kernel, inlined into one copy
/// per instruction set, auto-vectorise for it.
#[inline(always)]
fn simd<K: Kernel>(kernel: K) {
    pulp::Arch::new().dispatch(Dispatch(kernel));
}

/// An element-wise kernel for [`simd`]: `run` must be `#[inline(always)]`
/// so that each instruction set gets its own compiled copy.
trait Kernel {
    fn run(self);
}

struct Dispatch<K>(K);

impl<K: Kernel> pulp::WithSimd for Dispatch<K> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        self.0.run();
    }
}

struct AddNormRows<'a> {
    op: &'a AddNorm,
    y: &'a mut [f32],
    res: &'a [f32],
}

impl Kernel for AddNormRows<'_> {
    #[inline(always)]
    fn run(self) {
        self.op.rows(self.y, self.res);
    }
}

struct GeluRows<'a> {
    op: &'a BiasGelu,
    x: &'a mut [f32],
}

impl Kernel for GeluRows<'_> {
    #[inline(always)]
    fn run(self) {
        self.op.rows(self.x);
    }
}

struct SoftmaxRows<'a> {
    m: &'a mut [f32],
    l: usize,
    len: usize,
}

impl Kernel for SoftmaxRows<'_> {
    #[inline(always)]
    fn run(self) {
        softmax_rows(self.m, self.l, self.len);
    }
}

/// Rows per Rayon task in the element-wise ops: large enough to amortise
/// the task, small enough to balance two threads on a short pass.
const ROWS_PER_TASK: usize = 32;

/// The exact GELU, ½x(1 + erf(x/√2)), with [`erf_f32`].
#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf(x) in f32 as a rational function x·P(x²)/Q(x²) on x clamped to
/// [−4, 4] (beyond, erf is ±1 in f32): the approximation of Eigen's
/// `generic_fast_erf_float` and XLA's `EmitErfF32`, absolute error below
/// 1e-6 (a test checks it against candle's erf). Branch-free so the loops
/// that call it vectorise.
#[inline(always)]
#[must_use]
pub fn erf_f32(x: f32) -> f32 {
    const A: [f32; 7] = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ];
    const B: [f32; 5] = [
        -1.456_607_2e-5,
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329e-3,
        -1.426_474e-2,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = A[0];
    for a in &A[1..] {
        p = p * x2 + a;
    }
    let mut q = B[0];
    for b in &B[1..] {
        q = q * x2 + b;
    }
    x * p / q
}

/// eˣ in f32 for x ≤ 0 (softmax after subtracting the row maximum): Cody
/// and Waite range reduction x = n·ln 2 + r, |r| ≤ ½ln 2, Cephes' degree-6
/// polynomial for eʳ (relative error about 1e-7), 2ⁿ built in the exponent
/// bits. Inputs below −87 give e⁻⁸⁷ ≈ 1.6e-38 rather than a denormal.
/// Branch-free so the loops that call it vectorise.
#[inline(always)]
#[must_use]
pub fn exp_neg_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 0.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let r2 = r * r;
    let mut p = 1.987_569_1e-4_f32;
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = p * r + c;
    }
    let er = p * r2 + r + 1.0;
    // n ∈ [−126, 0]: a valid biased exponent.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    er * two_n
}

/// Sum of a slice with eight accumulators (vectorises; f32 addition is not
/// reassociated by the compiler otherwise).
#[inline(always)]
fn sum(v: &[f32]) -> f32 {
    let mut acc = [0.0_f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Maximum of a non-empty slice without NaNs, eight lanes at a time (as
/// [`sum`]).
#[inline(always)]
fn max(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a = if *x > *a { *x } else { *a };
        }
    }
    acc.iter()
        .chain(chunks.remainder())
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// Sum of squares, as [`sum`].
#[inline(always)]
fn sum_squares(v: &[f32]) -> f32 {
    let mut acc = [0.0_f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x * x;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().map(|x| x * x).sum::<f32>()
}

/// A sub-batch of attention: consecutive sequences of the pass, padded to
/// their longest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionGroup {
    /// The sequences (indices into the pass).
    pub seqs: Range<usize>,
    /// First packed row of the group.
    pub row: usize,
    /// Length of each sequence, tokens.
    pub lens: Vec<usize>,
    /// The longest length, L: the padded length of the group.
    pub max_len: usize,
}

impl AttentionGroup {
    /// Packed rows of the group, the sum of its lengths.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.lens.iter().sum()
    }
}

/// Most sequences in one attention sub-batch.
pub const GROUP_MAX_SEQS: usize = 8;
/// Most padding cells (sequences × L minus tokens) a sub-batch may carry,
/// as a share of its cells.
pub const GROUP_MAX_PADDING: f64 = 0.125;

/// Cuts consecutive sequences of lengths `lens` into attention sub-batches
/// of at most [`GROUP_MAX_SEQS`] sequences whose padding (to the group's
/// longest) stays within [`GROUP_MAX_PADDING`] of its cells. With `lens`
/// sorted, groups are runs of similar lengths; any order is correct.
#[must_use]
pub fn attention_groups(lens: &[usize]) -> Vec<AttentionGroup> {
    let mut groups: Vec<AttentionGroup> = Vec::new();
    let mut row = 0;
    for (i, &len) in lens.iter().enumerate() {
        let fits = groups.last().is_some_and(|g| {
            let n = g.lens.len() + 1;
            let max_len = g.max_len.max(len);
            let tokens = g.rows() + len;
            #[allow(clippy::cast_precision_loss)]
            let padding = (n * max_len - tokens) as f64 / (n * max_len) as f64;
            n <= GROUP_MAX_SEQS && padding <= GROUP_MAX_PADDING
        });
        match groups.last_mut() {
            Some(g) if fits => {
                g.seqs.end = i + 1;
                g.lens.push(len);
                g.max_len = g.max_len.max(len);
            }
            _ => groups.push(AttentionGroup {
                seqs: i..i + 1,
                row,
                lens: vec![len],
                max_len: len,
            }),
        }
        row += len;
    }
    groups
}

/// Packed Q/K/V `[T, 3H]` (bias not yet added) → one group's heads
/// `[3, n·heads, L·d]`: Q as `[n·heads, L, d]` scaled by 1/√d, K
/// transposed as `[n·heads, d, L]`, V as `[n·heads, L, d]`, bias added,
/// padding positions 0.
pub(super) struct SplitHeads<'a> {
    pub(super) group: &'a AttentionGroup,
    pub(super) bias: &'a [f32],
    pub(super) heads: usize,
    pub(super) head_dim: usize,
    pub(super) scale: f32,
}

impl CustomOp1 for SplitHeads<'_> {
    fn name(&self) -> &'static str {
        "minilm-split-heads"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let qkv = f32_slice(storage, layout, self.name())?;
        let (heads, d, g) = (self.heads, self.head_dim, self.group);
        let hidden = heads * d;
        let (n, l) = (g.lens.len(), g.max_len);
        if qkv.len() < (g.row + g.rows()) * 3 * hidden {
            bail!("{}: qkv {layout:?} too short for the group", self.name());
        }
        let mut out = vec![0.0_f32; 3 * n * heads * l * d];
        // One task per (q|k|v, sequence): each writes [heads, L, d] (q, v)
        // or [heads, d, L] (k).
        out.par_chunks_mut(heads * l * d)
            .enumerate()
            .for_each(|(task, dst)| {
                let (part, s) = (task / n, task % n);
                let scale = if part == 0 { self.scale } else { 1.0 };
                let first = g.row + g.lens[..s].iter().sum::<usize>();
                let bias = &self.bias[part * hidden..(part + 1) * hidden];
                for t in 0..g.lens[s] {
                    let src = &qkv[(first + t) * 3 * hidden + part * hidden..][..hidden];
                    for h in 0..heads {
                        let (src, bias) = (&src[h * d..(h + 1) * d], &bias[h * d..(h + 1) * d]);
                        if part == 1 {
                            for (c, (x, b)) in src.iter().zip(bias).enumerate() {
                                dst[(h * d + c) * l + t] = x + b;
                            }
                        } else {
                            let dst = &mut dst[(h * l + t) * d..][..d];
                            for ((o, x), b) in dst.iter_mut().zip(src).zip(bias) {
                                *o = (x + b) * scale;
                            }
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((3, n * heads, l * d))))
    }
}

/// Attention scores `[n·heads, L, L]` (Q already scaled) → probabilities,
/// in place: softmax over the keys of each row, keys at or past the
/// sequence's length set to 0 (HF BERT's additive −∞ mask), rows past it
/// set to 0.
pub(super) struct MaskedSoftmax<'a> {
    pub(super) group: &'a AttentionGroup,
    pub(super) heads: usize,
}

impl InplaceOp1 for MaskedSoftmax<'_> {
    fn name(&self) -> &'static str {
        "minilm-masked-softmax"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let l = self.group.max_len;
        let scores = f32_slice_mut(storage, layout, self.name())?;
        if scores.len() != self.group.lens.len() * self.heads * l * l {
            bail!("{}: shape {layout:?}", self.name());
        }
        scores
            .par_chunks_mut(l * l)
            .enumerate()
            .for_each(|(bh, m)| {
                let len = self.group.lens[bh / self.heads];
                simd(SoftmaxRows { m, l, len });
            });
        Ok(())
    }
}

/// Masked softmax of the `L × L` score matrix `m` of one head of a
/// sequence of `len` tokens (inlined into [`simd`]).
#[inline(always)]
fn softmax_rows(m: &mut [f32], l: usize, len: usize) {
    for (i, row) in m.chunks_exact_mut(l).enumerate() {
        let (keys, pad) = row.split_at_mut(len);
        pad.fill(0.0);
        if i >= len {
            keys.fill(0.0);
            continue;
        }
        let top = max(keys);
        for v in keys.iter_mut() {
            *v = exp_neg_f32(*v - top);
        }
        let inv = 1.0 / sum(keys);
        for v in keys.iter_mut() {
            *v *= inv;
        }
    }
}

/// A group's context `[n·heads, L, d]` → packed rows `[Σ lens, H]`
/// (heads side by side, padding rows dropped).
pub(super) struct MergeHeads<'a> {
    pub(super) group: &'a AttentionGroup,
    pub(super) heads: usize,
    pub(super) head_dim: usize,
}

impl CustomOp1 for MergeHeads<'_> {
    fn name(&self) -> &'static str {
        "minilm-merge-heads"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let ctx = f32_slice(storage, layout, self.name())?;
        let (heads, d, g) = (self.heads, self.head_dim, self.group);
        let (l, hidden) = (g.max_len, heads * d);
        if ctx.len() != g.lens.len() * heads * l * d {
            bail!("{}: shape {layout:?}", self.name());
        }
        let rows = g.rows();
        let mut out = vec![0.0_f32; rows * hidden];
        let mut first = 0;
        for (s, &len) in g.lens.iter().enumerate() {
            for t in 0..len {
                let dst = &mut out[(first + t) * hidden..][..hidden];
                for h in 0..heads {
                    let src = &ctx[((s * heads + h) * l + t) * d..][..d];
                    dst[h * d..(h + 1) * d].copy_from_slice(src);
                }
            }
            first += len;
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, hidden))))
    }
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{op}: expected f32, got {:?}", s.dtype())
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        bail!("{op}: input is not contiguous ({l:?})")
    };
    Ok(&v[start..end])
}

fn f32_slice_mut<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a mut [f32]> {
    let dtype = s.dtype();
    let CpuStorage::F32(v) = s else {
        bail!("{op}: expected f32, got {dtype:?}")
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        bail!("{op}: input is not contiguous ({l:?})")
    };
    Ok(&mut v[start..end])
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;

    #[test]
    fn erf_matches_candle_to_1e_6() {
        let xs: Vec<f32> = (-6000..=6000_i16).map(|i| f32::from(i) * 1e-3).collect();
        let want = Tensor::new(xs.as_slice(), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .erf()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let worst = xs
            .iter()
            .zip(&want)
            .map(|(&x, &w)| (f64::from(erf_f32(x)) - w).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-6, "max |erf error| {worst:e}");
    }

    #[test]
    fn exp_has_relative_error_below_1e_6() {
        for i in 0..=87_000 {
            let x = -f64::from(i) * 1e-3;
            #[allow(clippy::cast_possible_truncation)]
            let got = f64::from(exp_neg_f32(x as f32));
            let want = (f64::from(x as f32)).exp();
            assert!(
                ((got - want) / want).abs() < 1e-6,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert!(exp_neg_f32(-1000.0) < 1e-37);
        assert!((exp_neg_f32(0.0) - 1.0).abs() < f32::EPSILON);
    }

    #[test]
    fn groups_pad_little_and_cover_every_sequence() {
        let lens = [5, 5, 6, 6, 6, 7, 9, 20, 21, 22, 60, 200];
        let groups = attention_groups(&lens);
        let mut row = 0;
        let mut next = 0;
        for g in &groups {
            assert_eq!(g.seqs.start, next);
            assert_eq!(g.row, row);
            assert_eq!(g.lens, lens[g.seqs.clone()]);
            assert_eq!(g.max_len, *g.lens.iter().max().unwrap());
            assert!(g.lens.len() <= GROUP_MAX_SEQS);
            next = g.seqs.end;
            row += g.rows();
        }
        assert_eq!(next, lens.len());
        assert_eq!(groups.last().unwrap().lens, vec![200]);
        assert!(attention_groups(&[]).is_empty());
    }
}
