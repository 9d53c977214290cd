//! Radiograph preprocessing for the image model, reproducing the pipeline the
//! pneumonia package's weights expect, bit for bit: stored pixel values →
//! percentile clip-scale to [0, 1] → MONOCHROME1 inversion → 8 bits → Pillow
//! NEAREST resize → grey replicated to 3 channels → (x − mean)/std.
//!
//! The model is very sensitive to this: a bilinear resize or a missed
//! inversion flips its prediction on the same film (see the package's
//! MODEL_CARD.md), so every step follows the Python reference
//! (`models/convert/convert_xception.py --fixture`) exactly, including numpy's
//! percentile interpolation, numpy's round-half-to-even and Pillow's
//! accumulated nearest-neighbour source coordinates.

use candle_core::{Device, Tensor};

use crate::package::{ImageInput, ImagePreprocessing, InputSpec, Interpolation, Normalisation};

/// Why an image could not be preprocessed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PreprocessError {
    /// `pixels.len()` is not `rows × cols`, or the image is empty.
    #[error("pixel buffer of {len} values does not match {rows}×{cols}")]
    Shape {
        /// Rows given.
        rows: usize,
        /// Columns given.
        cols: usize,
        /// Values given.
        len: usize,
    },
    /// A pixel value is NaN or infinite.
    #[error("pixel {index} is not finite")]
    NonFinite {
        /// Row-major index of the first bad value.
        index: usize,
    },
    /// The manifest asks for something this module does not implement.
    #[error("unsupported preprocessing: {0}")]
    Unsupported(String),
    /// Building the tensor failed.
    #[error("candle: {0}")]
    Candle(String),
}

/// How stored values map to brightness (DICOM Photometric Interpretation,
/// (0028,0004)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Photometric {
    /// Low values are bright (inverted before the model).
    Monochrome1,
    /// Low values are dark.
    Monochrome2,
}

/// A preprocessed radiograph: the 8-bit image the model sees, and the window
/// that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct RadiographInput {
    /// Resized 8-bit grey image, row-major `[height, width]`.
    pub image: Vec<u8>,
    /// Width of `image`, pixels.
    pub width: usize,
    /// Height of `image`, pixels.
    pub height: usize,
    /// Stored value at the lower percentile (maps to 0 before inversion).
    pub low: f64,
    /// Stored value at the upper percentile (maps to 1 before inversion).
    pub high: f64,
    /// Whether the image was inverted.
    pub inverted: bool,
}

/// The q-th percentile (q ∈ [0, 100]) of `values` with numpy's default
/// "linear" method: virtual index v = (n − 1)·q/100, result
/// lerp(x₍⌊v⌋₎, x₍⌊v⌋+1₎, v − ⌊v⌋) over the sorted values, with numpy's
/// two-sided lerp (from b when the weight is ≥ 0.5) so results are identical.
/// Reorders `values` (partial selection, O(n)). `None` for an empty slice or a
/// NaN.
#[must_use]
pub fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    let n = values.len();
    if n == 0 || values.iter().any(|v| v.is_nan()) || !(0.0..=100.0).contains(&q) {
        return None;
    }
    let virtual_index = (n - 1) as f64 * (q / 100.0);
    if virtual_index >= (n - 1) as f64 {
        return values.iter().copied().reduce(f64::max);
    }
    let prev = virtual_index.floor() as usize;
    let gamma = virtual_index - prev as f64;
    let (_, &mut a, rest) = values.select_nth_unstable_by(prev, f64::total_cmp);
    let b = rest.iter().copied().reduce(f64::min).unwrap_or(a);
    let diff = b - a;
    Some(if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    })
}

/// Stored values `[rows, cols]` (row-major) → 8-bit image of the same size:
/// y = clip((x − lo)/(hi − lo), 0, 1) with lo, hi the `lower` and `upper`
/// percentiles; y ← 1 − y when `invert`; round(255·y) half to even (numpy's
/// `np.round`). Arithmetic in f64 like the numpy reference. A flat image
/// (hi = lo) becomes all 0 (all 255 inverted).
///
/// # Errors
/// [`PreprocessError::Shape`] or [`PreprocessError::NonFinite`].
pub fn window_to_u8(
    pixels: &[f32],
    rows: usize,
    cols: usize,
    lower: f64,
    upper: f64,
    invert: bool,
) -> Result<(Vec<u8>, f64, f64), PreprocessError> {
    if rows == 0 || cols == 0 || pixels.len() != rows * cols {
        return Err(PreprocessError::Shape {
            rows,
            cols,
            len: pixels.len(),
        });
    }
    if let Some(index) = pixels.iter().position(|v| !v.is_finite()) {
        return Err(PreprocessError::NonFinite { index });
    }
    let mut scratch: Vec<f64> = pixels.iter().map(|&v| f64::from(v)).collect();
    let lo = percentile(&mut scratch, lower).unwrap_or(0.0);
    let hi = percentile(&mut scratch, upper).unwrap_or(0.0);
    let range = hi - lo;
    let out = pixels
        .iter()
        .map(|&v| {
            let y = if range > 0.0 {
                ((f64::from(v) - lo) / range).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let y = if invert { 1.0 - y } else { y };
            // y ∈ [0, 1], so the rounded value is in [0, 255] and the cast
            // is exact.
            (y * 255.0).round_ties_even() as u8
        })
        .collect();
    Ok((out, lo, hi))
}

/// Pillow's `Image.resize(size, Image.NEAREST)` of an 8-bit grey image
/// `[h, w]` → `[out_h, out_w]`. Pillow (`ImagingScaleAffine`) starts at
/// ½·(w/out_w) and adds w/out_w per output pixel in f64, truncating to the
/// source index; the accumulation is reproduced rather than computing
/// ⌊(x + ½)·w/out_w⌋, which can differ at exact boundaries.
#[must_use]
pub fn resize_nearest(src: &[u8], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    let positions = |len_in: usize, len_out: usize| -> Vec<usize> {
        let step = len_in as f64 / len_out as f64;
        let mut pos = step * 0.5;
        (0..len_out)
            .map(|_| {
                // pos ≥ 0; Pillow casts to int (truncation) and clips to the
                // image.
                let i = (pos as usize).min(len_in.saturating_sub(1));
                pos += step;
                i
            })
            .collect()
    };
    let xs = positions(w, out_w);
    let ys = positions(h, out_h);
    let mut out = Vec::with_capacity(out_w * out_h);
    for &y in &ys {
        let row = &src[y * w..(y + 1) * w];
        out.extend(xs.iter().map(|&x| row[x]));
    }
    out
}

/// An 8-bit grey image `[h, w]` → model input `[1, channels, h, w]` f32 with
/// each value (x − mean)/std (computed as x/std − mean/std when
/// mean = std, i.e. Keras's `x/127.5 − 1` in f32, so values match).
///
/// # Errors
/// [`PreprocessError::Candle`] if the tensor cannot be built.
pub fn to_tensor(
    image: &[u8],
    w: usize,
    h: usize,
    channels: usize,
    norm: Normalisation,
    device: &Device,
) -> Result<Tensor, PreprocessError> {
    let plane: Vec<f32> = image
        .iter()
        .map(|&v| {
            let x = f32::from(v);
            if norm.mean == norm.std {
                x / norm.std - 1.0
            } else {
                (x - norm.mean) / norm.std
            }
        })
        .collect();
    let data: Vec<f32> = std::iter::repeat_n(plane, channels).flatten().collect();
    Tensor::from_vec(data, (1, channels, h, w), device)
        .map_err(|e| PreprocessError::Candle(e.to_string()))
}

/// The full pipeline for one radiograph as the package's manifest describes
/// it: stored values `[rows, cols]` (row-major, e.g. from the imaging crate)
/// → ([`RadiographInput`], tensor `[1, C, H, W]`).
///
/// # Errors
/// [`PreprocessError::Unsupported`] for an image input with bilinear
/// interpolation or a text input; the errors of [`window_to_u8`].
pub fn preprocess_radiograph(
    pixels: &[f32],
    rows: usize,
    cols: usize,
    photometric: Photometric,
    spec: &ImagePreprocessing,
    input: &InputSpec,
    device: &Device,
) -> Result<(RadiographInput, Tensor), PreprocessError> {
    let InputSpec::Image(ImageInput {
        width,
        height,
        channels,
        interpolation,
        normalisation,
    }) = *input
    else {
        return Err(PreprocessError::Unsupported("a text input spec".to_owned()));
    };
    if interpolation != Interpolation::Nearest {
        return Err(PreprocessError::Unsupported(format!(
            "{interpolation:?} interpolation"
        )));
    }
    if channels != 3 && channels != 1 || (channels == 3 && !spec.grey_to_rgb) {
        return Err(PreprocessError::Unsupported(format!(
            "{channels} channels (grey_to_rgb = {})",
            spec.grey_to_rgb
        )));
    }
    let invert = spec.invert_monochrome1 && photometric == Photometric::Monochrome1;
    let (full, low, high) = window_to_u8(
        pixels,
        rows,
        cols,
        spec.lower_percentile,
        spec.upper_percentile,
        invert,
    )?;
    let image = resize_nearest(&full, cols, rows, width, height);
    let tensor = to_tensor(&image, width, height, channels, normalisation, device)?;
    Ok((
        RadiographInput {
            image,
            width,
            height,
            low,
            high,
            inverted: invert,
        },
        tensor,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        // np.percentile([1, 2, 3, 4], [0, 25, 50, 90, 100]) = 1, 1.75, 2.5, 3.7, 4
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        for (q, want) in [
            (0.0, 1.0),
            (25.0, 1.75),
            (50.0, 2.5),
            (90.0, 3.7),
            (100.0, 4.0),
        ] {
            let got = percentile(&mut v, q).unwrap();
            assert!((got - want).abs() < 1e-12, "q {q}: {got}");
        }
        assert_eq!(percentile(&mut [], 50.0), None);
        assert_eq!(percentile(&mut [1.0, f64::NAN], 50.0), None);
        assert_eq!(percentile(&mut [7.0], 0.5), Some(7.0));
    }

    #[test]
    fn window_rounds_half_to_even_and_inverts() {
        // lo = 0, hi = 2 (percentiles 0 and 100): 0 → 0, 1 → 127.5 → 128, 2 → 255.
        let (u, lo, hi) = window_to_u8(&[0.0, 1.0, 2.0, 2.0], 2, 2, 0.0, 100.0, false).unwrap();
        assert_eq!((lo, hi), (0.0, 2.0));
        assert_eq!(u, vec![0, 128, 255, 255]);
        let (u, ..) = window_to_u8(&[0.0, 1.0, 2.0, 2.0], 2, 2, 0.0, 100.0, true).unwrap();
        assert_eq!(u, vec![255, 128, 0, 0]);
        assert!(matches!(
            window_to_u8(&[0.0; 3], 2, 2, 0.0, 100.0, false),
            Err(PreprocessError::Shape { .. })
        ));
        assert!(matches!(
            window_to_u8(&[0.0, f32::NAN], 1, 2, 0.0, 100.0, false),
            Err(PreprocessError::NonFinite { index: 1 })
        ));
    }

    #[test]
    fn nearest_resize_matches_pillow_positions() {
        // Pillow: Image.new("L", (5, 1)) with values 0..5 resized to 2 wide
        // reads source x = ⌊1.25⌋ = 1 and ⌊3.75⌋ = 3.
        let src: Vec<u8> = (0..5).collect();
        assert_eq!(resize_nearest(&src, 5, 1, 2, 1), vec![1, 3]);
        // Upscaling repeats pixels.
        assert_eq!(resize_nearest(&[10, 20], 2, 1, 4, 1), vec![10, 10, 20, 20]);
    }

    #[test]
    fn tensor_is_keras_xception_scaling() {
        let t = to_tensor(
            &[0, 255, 127, 128],
            2,
            2,
            3,
            Normalisation {
                mean: 127.5,
                std: 127.5,
            },
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(t.dims(), &[1, 3, 2, 2]);
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(
            v[..4],
            [-1.0, 1.0, 127.0 / 127.5 - 1.0, 128.0 / 127.5 - 1.0]
        );
        assert_eq!(v[4..8], v[..4]);
    }
}
