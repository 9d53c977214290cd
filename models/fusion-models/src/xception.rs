//! Xception: Deep Learning with Depthwise Separable Convolutions (Chollet,
//! CVPR 2017), as built by `keras.applications.Xception(include_top=False)`,
//! with the classification head of `pneumonia-model-package` 0.3.0: global
//! average pooling → Dense(128, ReLU) → Dropout(0.3) → Dense(2).
//!
//! Layout is candle's NCHW. Weights come from `models/convert/convert_xception.py`
//! (Keras → safetensors: conv OIHW, depthwise `[C, 1, 3, 3]`, pointwise
//! `[O, C, 1, 1]`, dense `[out, in]`, batch norm weight/bias/running_mean/
//! running_var); the variable names below are the converted keys.
//!
//! Keras details that a port must reproduce:
//! * the two entry convolutions are unpadded ("valid"): 150 → 74 → 72;
//! * separable convolutions are a 3×3 depthwise convolution (one filter per
//!   channel, zero padding 1) then a 1×1 pointwise convolution, no bias;
//! * the stride-2 3×3 max-pools use TensorFlow "same" padding, which is
//!   asymmetric: total padding max((out − 1)·2 + 3 − in, 0) with the extra
//!   cell at the bottom/right (0/1 at widths 72, 36, 18; 1/1 at 9); padding is
//!   −∞ and added by hand, since candle's max-pool has none;
//! * the residual shortcuts are 1×1 stride-2 convolutions + batch norm
//!   ("same" padding is zero for a 1×1 kernel);
//! * batch norm runs in inference mode with ε = 1e-3; it is folded into the
//!   preceding convolution at load time (w' = w·γ/√(σ² + ε),
//!   b' = β − μ·γ/√(σ² + ε)), which changes the result only by f32 rounding.
//!
//! The backbone and the head are separate ([`XceptionClassifier::backbone_features`],
//! [`XceptionClassifier::head`]) so MC dropout can run the expensive backbone
//! once and sample the head's dropout T times.

use std::path::Path;

use candle_core::{D, DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;

use crate::package::{
    Architecture, ImageInput, InputSpec, ModelPackage, OutputSpec, PackageError, UncertaintyMethod,
};

/// Input height and width of the pneumonia model, pixels.
pub const INPUT_SIZE: usize = 150;
/// Width of the backbone's pooled feature vector.
pub const FEATURES: usize = 2048;
/// Width of the head's hidden Dense layer.
pub const HIDDEN: usize = 128;
/// Batch-norm ε used by Keras's Xception.
pub const BN_EPS: f64 = 1e-3;
/// Number of tensors in a converted checkpoint (backbone 234 + head 4).
pub const CHECKPOINT_TENSORS: usize = 238;

/// Why the model could not be built.
#[derive(Debug, thiserror::Error)]
pub enum XceptionError {
    /// The package failed to load or verify.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The package is not an Xception image classifier this module can run.
    #[error("package `{name}` is not a 150×150 Xception classifier: {reason}")]
    WrongPackage {
        /// The package's name.
        name: String,
        /// What does not fit.
        reason: String,
    },
    /// The checkpoint does not have the expected tensors.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A tensor operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// A convolution with batch norm folded in: weight `[O, I, kh, kw]`, bias `[O]`.
#[derive(Debug, Clone)]
struct ConvBn {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
}

/// Reads batch norm `{weight, bias, running_mean, running_var}` (each `[C]`)
/// and returns the per-channel (scale, shift) of y = x·scale + shift.
fn bn_scale_shift(vb: &VarBuilder, c: usize) -> candle_core::Result<(Tensor, Tensor)> {
    let gamma = vb.get(c, "weight")?;
    let beta = vb.get(c, "bias")?;
    let mean = vb.get(c, "running_mean")?;
    let var = vb.get(c, "running_var")?;
    let scale = gamma.broadcast_div(&(var + BN_EPS)?.sqrt()?)?;
    let shift = (beta - mean.mul(&scale)?)?;
    Ok((scale, shift))
}

impl ConvBn {
    /// `conv`: weight `[o, i, k, k]` under `vb_conv`; batch norm under `vb_bn`.
    fn new(
        vb_conv: VarBuilder,
        vb_bn: VarBuilder,
        (o, i, k): (usize, usize, usize),
        stride: usize,
    ) -> candle_core::Result<Self> {
        let w = vb_conv.get((o, i, k, k), "weight")?;
        let (scale, shift) = bn_scale_shift(&vb_bn, o)?;
        let weight = w.broadcast_mul(&scale.reshape((o, 1, 1, 1))?)?;
        Ok(Self {
            weight,
            bias: shift,
            stride,
        })
    }

    /// `[N, I, H, W]` → `[N, O, H', W']`, unpadded.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let o = self.weight.dim(0)?;
        let (_, _, kh, _) = self.weight.dims4()?;
        let y = if kh == 1 {
            // 1×1 kernel: subsample, then a matrix product per image.
            let x = if self.stride > 1 {
                subsample(x, self.stride)?
            } else {
                x.clone()
            };
            pointwise(&x, &self.weight.reshape((o, ()))?)?
        } else {
            x.conv2d(&self.weight, 0, self.stride, 1, 1)?
        };
        y.broadcast_add(&self.bias.reshape((1, o, 1, 1))?)
    }
}

/// Every `stride`-th row and column starting at 0: what a 1×1 stride-s
/// convolution with no padding reads.
fn subsample(x: &Tensor, stride: usize) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (ho, wo) = ((h - 1) / stride + 1, (w - 1) / stride + 1);
    // Pad to a multiple of the stride, split each spatial axis into
    // (out, stride) and keep phase 0.
    let x = x
        .pad_with_zeros(2, 0, ho * stride - h)?
        .pad_with_zeros(3, 0, wo * stride - w)?;
    x.reshape((n, c, ho, stride, wo, stride))?
        .i((.., .., .., 0, .., 0))?
        .contiguous()
}

/// 1×1 convolution as a matrix product: `[N, C, H, W]` with weight `[O, C]`
/// → `[N, O, H, W]`.
fn pointwise(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let o = w.dim(0)?;
    // [N, C, H·W]: each image's pixels as columns.
    let cols = x.reshape((n, c, h * wd))?;
    w.broadcast_left(n)?
        .matmul(&cols.contiguous()?)?
        .reshape((n, o, h, wd))
}

/// 3×3 depthwise convolution, zero padding 1, stride 1: `[N, C, H, W]` with
/// weight `[C, 1, 3, 3]` → `[N, C, H, W]`. Equivalent to
/// `x.conv2d(w, 1, 1, 1, C)` (groups = C), which candle runs one group at a
/// time (~65 ms for 128 channels at 72×72 on 2 cores). On the CPU with f32 a
/// direct row loop does it in about 1 ms; elsewhere nine shifted
/// multiply-adds of tensor views.
fn depthwise3x3(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32 {
        depthwise3x3_cpu(x, w)
    } else {
        depthwise3x3_shifted(x, w)
    }
}

fn depthwise3x3_cpu(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    if n * c * h * wd == 0 {
        return depthwise3x3_shifted(x, w);
    }
    let src = x.flatten_all()?.to_vec1::<f32>()?; // [N·C planes of H·W]
    let kernels = w.flatten_all()?.to_vec1::<f32>()?; // [C × 9], row-major 3×3
    let mut out = vec![0.0_f32; n * c * h * wd];
    for (plane, (input, output)) in src
        .chunks_exact(h * wd)
        .zip(out.chunks_exact_mut(h * wd))
        .enumerate()
    {
        let k = &kernels[(plane % c) * 9..(plane % c) * 9 + 9];
        for (y, row_out) in output.chunks_exact_mut(wd).enumerate() {
            for (dy, taps) in k.chunks_exact(3).enumerate() {
                // Input row y + dy − 1; rows outside the image are zero padding.
                let Some(iy) = (y + dy).checked_sub(1).filter(|&iy| iy < h) else {
                    continue;
                };
                let row_in = &input[iy * wd..(iy + 1) * wd];
                let (left, centre, right) = (taps[0], taps[1], taps[2]);
                for (o, i) in row_out.iter_mut().zip(row_in) {
                    *o += centre * i;
                }
                // Column x reads x − 1 (left tap) and x + 1 (right tap).
                for (o, i) in row_out[1..].iter_mut().zip(&row_in[..wd - 1]) {
                    *o += left * i;
                }
                for (o, i) in row_out[..wd - 1].iter_mut().zip(&row_in[1..]) {
                    *o += right * i;
                }
            }
        }
    }
    Tensor::from_vec(out, (n, c, h, wd), x.device())
}

fn depthwise3x3_shifted(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (_, c, h, wd) = x.dims4()?;
    let padded = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    let mut acc: Option<Tensor> = None;
    for dy in 0..3 {
        for dx in 0..3 {
            let k = w.i((.., 0, dy, dx))?.reshape((1, c, 1, 1))?;
            let term = padded
                .narrow(2, dy, h)?
                .narrow(3, dx, wd)?
                .broadcast_mul(&k)?;
            acc = Some(match acc {
                None => term,
                Some(a) => (a + term)?,
            });
        }
    }
    acc.ok_or_else(|| candle_core::Error::Msg("empty kernel".to_owned()))
}

/// Separable convolution + folded batch norm: depthwise 3×3 (pad 1), then
/// pointwise 1×1 with the norm's scale and shift.
#[derive(Debug, Clone)]
struct SepConvBn {
    depthwise: Tensor,
    pointwise: Tensor,
    bias: Tensor,
}

impl SepConvBn {
    /// `vb` at `…sepconvK`, `vb_bn` at `…sepconvK_bn`.
    fn new(vb: VarBuilder, vb_bn: VarBuilder, c: usize, o: usize) -> candle_core::Result<Self> {
        let depthwise = vb.pp("depthwise").get((c, 1, 3, 3), "weight")?;
        let pw = vb
            .pp("pointwise")
            .get((o, c, 1, 1), "weight")?
            .reshape((o, c))?;
        let (scale, shift) = bn_scale_shift(&vb_bn, o)?;
        let pointwise = pw.broadcast_mul(&scale.reshape((o, 1))?)?;
        Ok(Self {
            depthwise,
            pointwise,
            bias: shift,
        })
    }

    /// `[N, C, H, W]` → `[N, O, H, W]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let o = self.pointwise.dim(0)?;
        let y = depthwise3x3(x, &self.depthwise)?;
        pointwise(&y, &self.pointwise)?.broadcast_add(&self.bias.reshape((1, o, 1, 1))?)
    }
}

/// 3×3 stride-2 max-pool with TensorFlow "same" padding (−∞), see the module
/// docs: `[N, C, H, W]` → `[N, C, ⌈H/2⌉, ⌈W/2⌉]`.
fn max_pool_same(x: &Tensor) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let pad = |len: usize| {
        let out = len.div_ceil(2);
        let total = ((out - 1) * 2 + 3).saturating_sub(len);
        (total / 2, total - total / 2)
    };
    let (top, bottom) = pad(h);
    let (left, right) = pad(w);
    let ninf = |shape: (usize, usize, usize, usize)| {
        Tensor::full(f32::NEG_INFINITY, shape, x.device())?.to_dtype(x.dtype())
    };
    let mut rows = Vec::new();
    if top > 0 {
        rows.push(ninf((n, c, top, w))?);
    }
    rows.push(x.clone());
    if bottom > 0 {
        rows.push(ninf((n, c, bottom, w))?);
    }
    let x = Tensor::cat(&rows, 2)?;
    let hp = h + top + bottom;
    let mut cols = Vec::new();
    if left > 0 {
        cols.push(ninf((n, c, hp, left))?);
    }
    cols.push(x);
    if right > 0 {
        cols.push(ninf((n, c, hp, right))?);
    }
    Tensor::cat(&cols, 3)?.max_pool2d_with_stride((3, 3), (2, 2))
}

/// Entry/exit block with a strided shortcut (blocks 2, 3, 4 and 13):
/// [ReLU] → SepConv → BN → ReLU → SepConv → BN → MaxPool(3, 2, same), plus
/// Conv1×1(stride 2) → BN of the input.
#[derive(Debug, Clone)]
struct DownBlock {
    relu_first: bool,
    sep1: SepConvBn,
    sep2: SepConvBn,
    residual: ConvBn,
}

impl DownBlock {
    fn new(
        vb: VarBuilder,
        c_in: usize,
        c_mid: usize,
        c_out: usize,
        relu_first: bool,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            relu_first,
            sep1: SepConvBn::new(vb.pp("sepconv1"), vb.pp("sepconv1_bn"), c_in, c_mid)?,
            sep2: SepConvBn::new(vb.pp("sepconv2"), vb.pp("sepconv2_bn"), c_mid, c_out)?,
            residual: ConvBn::new(vb.pp("residual"), vb.pp("residual_bn"), (c_out, c_in, 1), 2)?,
        })
    }

    /// `[N, C_in, H, W]` → `[N, C_out, ⌈H/2⌉, ⌈W/2⌉]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let shortcut = self.residual.forward(x)?;
        let y = if self.relu_first {
            x.relu()?
        } else {
            x.clone()
        };
        let y = self.sep1.forward(&y)?.relu()?;
        let y = self.sep2.forward(&y)?;
        max_pool_same(&y)? + shortcut
    }
}

/// Middle-flow block (blocks 5–12): three × (ReLU → SepConv 728 → BN), plus
/// the identity.
#[derive(Debug, Clone)]
struct MiddleBlock {
    seps: [SepConvBn; 3],
}

impl MiddleBlock {
    fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        let sep = |k: usize| {
            SepConvBn::new(
                vb.pp(format!("sepconv{k}")),
                vb.pp(format!("sepconv{k}_bn")),
                728,
                728,
            )
        };
        Ok(Self {
            seps: [sep(1)?, sep(2)?, sep(3)?],
        })
    }

    /// `[N, 728, H, W]` → `[N, 728, H, W]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut y = x.clone();
        for sep in &self.seps {
            y = sep.forward(&y.relu()?)?;
        }
        y + x
    }
}

/// The Xception feature extractor (Keras `include_top=False`) followed by
/// global average pooling.
#[derive(Debug, Clone)]
pub struct Xception {
    conv1: ConvBn,
    conv2: ConvBn,
    down: [DownBlock; 3],
    middle: Vec<MiddleBlock>,
    exit: DownBlock,
    sep14_1: SepConvBn,
    sep14_2: SepConvBn,
}

impl Xception {
    /// Builds the backbone from `vb` at the checkpoint's `xception` prefix.
    ///
    /// # Errors
    /// A candle error naming a missing tensor or a shape mismatch.
    pub fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        let b1 = vb.pp("block1");
        let middle = (5..=12)
            .map(|i| MiddleBlock::new(vb.pp(format!("block{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            conv1: ConvBn::new(b1.pp("conv1"), b1.pp("conv1_bn"), (32, 3, 3), 2)?,
            conv2: ConvBn::new(b1.pp("conv2"), b1.pp("conv2_bn"), (64, 32, 3), 1)?,
            down: [
                DownBlock::new(vb.pp("block2"), 64, 128, 128, false)?,
                DownBlock::new(vb.pp("block3"), 128, 256, 256, true)?,
                DownBlock::new(vb.pp("block4"), 256, 728, 728, true)?,
            ],
            middle,
            exit: DownBlock::new(vb.pp("block13"), 728, 728, 1024, true)?,
            sep14_1: SepConvBn::new(
                vb.pp("block14").pp("sepconv1"),
                vb.pp("block14").pp("sepconv1_bn"),
                1024,
                1536,
            )?,
            sep14_2: SepConvBn::new(
                vb.pp("block14").pp("sepconv2"),
                vb.pp("block14").pp("sepconv2_bn"),
                1536,
                2048,
            )?,
        })
    }

    /// `[N, 3, H, W]` (H, W ≥ 71; 150 for this package), values in [−1, 1]
    /// → pooled features `[N, 2048]` (≥ 0: the last layer is a ReLU).
    ///
    /// # Errors
    /// A candle error for a wrong shape.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_n, c, h, w) = x.dims4()?;
        if c != 3 || h < 71 || w < 71 {
            candle_core::bail!("Xception needs [N, 3, H ≥ 71, W ≥ 71], got {:?}", x.dims());
        }
        let x = self.conv1.forward(x)?.relu()?; // [N, 32, 74, 74]
        let mut x = self.conv2.forward(&x)?.relu()?; // [N, 64, 72, 72]
        for block in &self.down {
            x = block.forward(&x)?; // 36 → 18 → 9
        }
        for block in &self.middle {
            x = block.forward(&x)?; // [N, 728, 9, 9]
        }
        let x = self.exit.forward(&x)?; // [N, 1024, 5, 5]
        let x = self.sep14_1.forward(&x)?.relu()?; // [N, 1536, 5, 5]
        let x = self.sep14_2.forward(&x)?.relu()?; // [N, 2048, 5, 5]
        x.mean(D::Minus1)?.mean(D::Minus1) // global average pool: [N, 2048]
    }
}

/// The classification head: Dense(2048 → 128, ReLU) → Dropout(p) →
/// Dense(128 → K) logits.
#[derive(Debug, Clone)]
pub struct Head {
    fc1: candle_nn::Linear,
    fc2: candle_nn::Linear,
}

impl Head {
    /// Builds the head from `vb` at the checkpoint's `head` prefix
    /// (`fc1`, `fc2`, each `weight [out, in]` and `bias [out]`).
    ///
    /// # Errors
    /// A candle error naming a missing tensor or a shape mismatch.
    pub fn new(vb: VarBuilder, classes: usize) -> candle_core::Result<Self> {
        Ok(Self {
            fc1: candle_nn::linear(FEATURES, HIDDEN, vb.pp("fc1"))?,
            fc2: candle_nn::linear(HIDDEN, classes, vb.pp("fc2"))?,
        })
    }

    /// Hidden activations before dropout: `[N, 2048]` → `[N, 128]`, ≥ 0.
    ///
    /// # Errors
    /// A candle error for a wrong shape.
    pub fn hidden(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::Module::forward(&self.fc1, features)?.relu()
    }

    /// Logits from (possibly dropped-out) hidden activations: `[M, 128]` →
    /// `[M, K]`.
    ///
    /// # Errors
    /// A candle error for a wrong shape.
    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::Module::forward(&self.fc2, hidden)
    }
}

/// Xception backbone + dense head, the pneumonia package's classifier.
#[derive(Debug, Clone)]
pub struct XceptionClassifier {
    backbone: Xception,
    head: Head,
    classes: usize,
    dropout_rate: f64,
    device: Device,
}

impl XceptionClassifier {
    /// Builds from a var builder holding the converted checkpoint (`xception.*`
    /// and `head.*`), with `classes` outputs and the head's dropout rate
    /// `dropout_rate` ∈ [0, 1).
    ///
    /// # Errors
    /// A candle error naming a missing tensor or a shape mismatch.
    pub fn new(vb: VarBuilder, classes: usize, dropout_rate: f64) -> candle_core::Result<Self> {
        if !(0.0..1.0).contains(&dropout_rate) {
            candle_core::bail!("dropout rate {dropout_rate} outside [0, 1)");
        }
        Ok(Self {
            backbone: Xception::new(vb.pp("xception"))?,
            head: Head::new(vb.pp("head"), classes)?,
            classes,
            dropout_rate,
            device: vb.device().clone(),
        })
    }

    /// Loads and verifies the package in `dir`, then builds the model on
    /// `device`.
    ///
    /// # Errors
    /// As [`ModelPackage::load`] and [`XceptionClassifier::from_package`].
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self, XceptionError> {
        Self::from_package(&ModelPackage::load(dir)?, device)
    }

    /// Builds the model from a loaded package; the weights are read into
    /// memory and re-verified against the manifest's SHA-256 (no memory
    /// mapping, no `unsafe`).
    ///
    /// # Errors
    /// [`XceptionError::WrongPackage`] unless the manifest describes a
    /// 150×150×3 Xception softmax classifier;
    /// [`XceptionError::Checkpoint`] unless the checkpoint holds exactly the
    /// 238 expected tensors; [`XceptionError::Candle`] on shape mismatches.
    pub fn from_package(pkg: &ModelPackage, device: &Device) -> Result<Self, XceptionError> {
        let m = pkg.manifest();
        let wrong = |reason: String| XceptionError::WrongPackage {
            name: m.name.clone(),
            reason,
        };
        if m.architecture != Architecture::Xception {
            return Err(wrong(format!("architecture is {:?}", m.architecture)));
        }
        match m.input {
            InputSpec::Image(ImageInput {
                width: INPUT_SIZE,
                height: INPUT_SIZE,
                channels: 3,
                ..
            }) => {}
            _ => return Err(wrong("input must be a 150×150×3 image".to_owned())),
        }
        let classes = match &m.output {
            OutputSpec::Softmax(c) => c.classes.len(),
            _ => return Err(wrong("output must be softmax class scores".to_owned())),
        };
        let rate = match m.uncertainty {
            UncertaintyMethod::McDropout(mc) => mc.rate,
            UncertaintyMethod::None(_) | UncertaintyMethod::Ensemble(_) => 0.0,
        };
        let bytes = pkg.read_weights()?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| XceptionError::Checkpoint(e.to_string()))?;
        if st.len() != CHECKPOINT_TENSORS {
            return Err(XceptionError::Checkpoint(format!(
                "{} tensors, expected {CHECKPOINT_TENSORS}",
                st.len()
            )));
        }
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)?;
        Ok(Self::new(vb, classes, rate)?)
    }

    /// The device the model runs on.
    #[must_use]
    pub const fn device(&self) -> &Device {
        &self.device
    }

    /// Number of output classes K.
    #[must_use]
    pub const fn classes(&self) -> usize {
        self.classes
    }

    /// The head's dropout rate p.
    #[must_use]
    pub const fn dropout_rate(&self) -> f64 {
        self.dropout_rate
    }

    /// The backbone: `[N, 3, 150, 150]` in [−1, 1] → pooled features
    /// `[N, 2048]`.
    ///
    /// # Errors
    /// A candle error for a wrong shape.
    pub fn backbone_features(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.backbone.forward(x)
    }

    /// The head's hidden activations `[N, 128]` (before dropout) from
    /// features `[N, 2048]`: the deterministic part, computed once per image
    /// for MC dropout.
    ///
    /// # Errors
    /// A candle error for a wrong shape.
    pub fn head_hidden(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        self.head.hidden(features)
    }

    /// Logits `[M, K]` from hidden activations `[M, 128]` after dropout.
    ///
    /// # Errors
    /// A candle error for a wrong shape.
    pub fn head_logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        self.head.logits(hidden)
    }

    /// The head: features `[N, 2048]` → logits `[N, K]`. With
    /// `dropout_mask = None` it runs in inference mode (Keras
    /// `training=False`: dropout is the identity). With a mask `[N, 128]` of
    /// 0 (dropped) and 1/(1 − p) (kept, inverted scaling as Keras does) it
    /// runs one stochastic pass; see [`crate::image_branch::dropout_masks`].
    ///
    /// # Errors
    /// A candle error for a wrong shape.
    pub fn head(
        &self,
        features: &Tensor,
        dropout_mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let hidden = self.head.hidden(features)?;
        let hidden = match dropout_mask {
            Some(mask) => hidden.mul(mask)?,
            None => hidden,
        };
        self.head.logits(&hidden)
    }

    /// Inference-mode logits: `[N, 3, 150, 150]` → `[N, K]`.
    ///
    /// # Errors
    /// A candle error for a wrong shape.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.head(&self.backbone_features(x)?, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        // Deterministic pseudo-random values in [−1, 1].
        let n: usize = shape.iter().product();
        let mut s = seed;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn depthwise_matches_grouped_conv() {
        let x = rand(&[2, 5, 7, 6], 1);
        let w = rand(&[5, 1, 3, 3], 2);
        let want = x.conv2d(&w, 1, 1, 1, 5).unwrap();
        for got in [
            depthwise3x3_cpu(&x, &w).unwrap(),
            depthwise3x3_shifted(&x, &w).unwrap(),
        ] {
            assert_eq!(got.dims(), want.dims());
            assert!(max_abs_diff(&got, &want) < 1e-5);
        }
    }

    #[test]
    fn pointwise_and_subsample_match_conv() {
        let x = rand(&[2, 4, 9, 9], 3);
        let w = rand(&[6, 4, 1, 1], 4);
        let want = x.conv2d(&w, 0, 2, 1, 1).unwrap();
        let got = pointwise(&subsample(&x, 2).unwrap(), &w.reshape((6, 4)).unwrap()).unwrap();
        assert_eq!(got.dims(), &[2, 6, 5, 5]);
        assert!(max_abs_diff(&got, &want) < 1e-5);
    }

    #[test]
    fn same_max_pool_pads_bottom_right_first() {
        for (len, out) in [(72, 36), (36, 18), (18, 9), (9, 5)] {
            let x = rand(&[1, 2, len, len], len as u64);
            let y = max_pool_same(&x).unwrap();
            assert_eq!(y.dims(), &[1, 2, out, out]);
        }
        // Width 4: TF pads 0 left, 1 right; windows [0..3) and [2..5).
        let x = Tensor::new(&[[[[1f32, 5., 2., 7.]]]], &Device::Cpu).unwrap();
        let x = x.broadcast_as((1, 1, 3, 4)).unwrap().contiguous().unwrap();
        let y = max_pool_same(&x).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![5., 7., 5., 7.]
        );
        // Width 9 → 5 pads 1/1: first window [−1..2) sees only cells 0 and 1.
        let v: Vec<f32> = (0..9)
            .map(|i| [3., 1., 9., 0., 0., 0., 0., 0., 4.][i])
            .collect();
        let x = Tensor::from_vec(v, (1, 1, 1, 9), &Device::Cpu).unwrap();
        let x = x.broadcast_as((1, 1, 3, 9)).unwrap().contiguous().unwrap();
        let y = max_pool_same(&x).unwrap();
        assert_eq!(
            y.i((0, 0, 0)).unwrap().to_vec1::<f32>().unwrap(),
            vec![3., 9., 0., 0., 4.]
        );
    }
}
