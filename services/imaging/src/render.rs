//! The display pipeline (PS3.4 Annex N grayscale and colour transformations)
//! for WADO-RS `/rendered` (PS3.18 §8.3.5.1) and the image model.
//!
//! Grey: stored values → Modality LUT (Modality LUT Sequence or Rescale
//! Slope/Intercept, PS3.3 §C.11.1) → VOI (an explicit window, else the VOI
//! LUT Sequence, else Window Center/Width with VOI LUT Function, PS3.3
//! §C.11.2, else the min/max of the frame's modality values) → MONOCHROME1
//! inversion → 8 bits. Colour: PALETTE COLOR lookup (PS3.3 §C.7.6.3.1.5),
//! RGB scaled to 8 bits ([`crate::pixels`] already turned YBR into RGB). Enhanced
//! multi-frame objects take rescale and window from the Per-frame or Shared
//! Functional Groups (PS3.3 §C.7.6.16) when the top level has none.

use dicom_core::Tag;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use fusion_schemas::FrameValues;

use crate::pixels::{PixelArray, code};

/// Why a frame could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The requested frame number is not in `1..=frames`.
    #[error("frame {frame} is out of range 1..={frames}")]
    FrameOutOfRange {
        /// The 1-based frame number asked for.
        frame: u32,
        /// Number of frames of the instance.
        frames: u32,
    },
    /// A window width below 1 (PS3.3 §C.11.2.1.2 requires ≥ 1).
    #[error("window width must be at least 1")]
    InvalidWindow,
    /// A photometric interpretation this pipeline does not render.
    #[error("photometric interpretation {0} is not supported")]
    UnsupportedPhotometric(String),
    /// A LUT (modality, VOI or palette) whose descriptor or data is unusable.
    #[error("the {0} is malformed")]
    BadLut(&'static str),
    /// Segmented palette data (PS3.3 §C.7.9.2) that cannot be expanded.
    #[error("the segmented palette color lookup table is malformed")]
    SegmentedPalette(#[source] crate::palette::SegmentedError),
    /// Modality values were asked of a colour image.
    #[error("modality values exist for monochrome images only")]
    NotMonochrome,
    /// PNG encoding failed.
    #[error("cannot encode PNG")]
    Png(#[source] png::EncodingError),
    /// JPEG encoding failed.
    #[error("cannot encode JPEG")]
    Jpeg(#[source] jpeg_encoder::EncodingError),
    /// GIF encoding failed.
    #[error("cannot encode GIF")]
    Gif(#[source] gif::EncodingError),
    /// JPEG and GIF hold at most 65,535 pixels a side.
    #[error("a {columns} × {rows} image is too large for JPEG or GIF (65,535 a side)")]
    TooLargeToEncode {
        /// Columns, pixels.
        columns: u32,
        /// Rows, pixels.
        rows: u32,
    },
}

/// A VOI window in modality units (PS3.3 §C.11.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Window Center (0028,1050).
    pub center: f64,
    /// Window Width (0028,1051), at least 1.
    pub width: f64,
}

/// What to render.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RenderOptions {
    /// 1-based frame number (PS3.18 §8.3.5.1); 0 is taken as 1.
    pub frame: u32,
    /// A window that replaces the file's VOI transformation, as the
    /// `window=center,width,function` query parameter of PS3.18 §8.3.5.1.2.
    pub window: Option<Window>,
}

/// An 8-bit frame ready for display: `[rows, columns, channels]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedFrame {
    /// Rows, pixels.
    pub rows: u32,
    /// Columns, pixels.
    pub columns: u32,
    /// 1 (grey) or 3 (RGB).
    pub channels: u8,
    /// The samples, `rows × columns × channels` bytes.
    pub data: Vec<u8>,
}

impl RenderedFrame {
    /// Encodes the frame as PNG (8-bit greyscale or RGB).
    ///
    /// # Errors
    ///
    /// [`RenderError::Png`] if the encoder fails.
    pub fn to_png(&self) -> Result<Vec<u8>, RenderError> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.columns, self.rows);
        encoder.set_color(if self.channels == 3 {
            png::ColorType::Rgb
        } else {
            png::ColorType::Grayscale
        });
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(RenderError::Png)?;
        writer
            .write_image_data(&self.data)
            .map_err(RenderError::Png)?;
        writer.finish().map_err(RenderError::Png)?;
        Ok(out)
    }

    /// Encodes the frame as baseline JPEG (ISO/IEC 10918-1, JFIF), 8-bit
    /// greyscale or YCbCr, at `quality` 1–100 (the `quality` parameter of
    /// PS3.18 §8.3.5.1.4; values outside are clamped).
    ///
    /// # Errors
    ///
    /// [`RenderError::TooLargeToEncode`] for a side over 65,535 pixels,
    /// [`RenderError::Jpeg`] when the encoder fails.
    pub fn to_jpeg(&self, quality: u8) -> Result<Vec<u8>, RenderError> {
        let (w, h) = self.sides()?;
        let mut out = Vec::new();
        let color = if self.channels == 3 {
            jpeg_encoder::ColorType::Rgb
        } else {
            jpeg_encoder::ColorType::Luma
        };
        jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100))
            .encode(&self.data, w, h, color)
            .map_err(RenderError::Jpeg)?;
        Ok(out)
    }

    /// Encodes the frame as GIF89a, one image: greyscale exactly, as 256
    /// grey levels; RGB exactly when it holds at most 256 colours, else
    /// quantised to 256 (NeuQuant, the `gif` crate's `from_rgb_speed` at
    /// speed 10). PS3.18 Table 8.7.4-1 requires `image/gif` for
    /// single-frame images.
    ///
    /// # Errors
    ///
    /// [`RenderError::TooLargeToEncode`] for a side over 65,535 pixels,
    /// [`RenderError::Gif`] when the encoder fails.
    pub fn to_gif(&self) -> Result<Vec<u8>, RenderError> {
        let (w, h) = self.sides()?;
        let frame = if self.channels == 3 {
            gif::Frame::from_rgb_speed(w, h, &self.data, 10)
        } else {
            let grey: Vec<u8> = (0..=255u8).flat_map(|v| [v, v, v]).collect();
            gif::Frame::from_palette_pixels(w, h, self.data.clone(), grey, None)
        };
        let mut out = Vec::new();
        {
            let mut encoder = gif::Encoder::new(&mut out, w, h, &[]).map_err(RenderError::Gif)?;
            encoder.write_frame(&frame).map_err(RenderError::Gif)?;
        }
        Ok(out)
    }

    /// Columns and rows as the 16-bit sizes of JPEG and GIF headers.
    fn sides(&self) -> Result<(u16, u16), RenderError> {
        let too_large = || RenderError::TooLargeToEncode {
            columns: self.columns,
            rows: self.rows,
        };
        Ok((
            u16::try_from(self.columns).map_err(|_| too_large())?,
            u16::try_from(self.rows).map_err(|_| too_large())?,
        ))
    }
}

/// Applies the Modality LUT to a frame (1-based `frame`; 0 is taken as 1) of
/// `pixels`, decoded from `object`.
///
/// # Errors
///
/// [`RenderError::FrameOutOfRange`], [`RenderError::NotMonochrome`], or
/// [`RenderError::BadLut`] for an unusable Modality LUT Sequence.
pub fn modality_values(
    object: &DefaultDicomObject,
    pixels: &PixelArray,
    frame: u32,
) -> Result<FrameValues, RenderError> {
    if !pixels.photometric.starts_with("MONOCHROME") || pixels.samples_per_pixel != 1 {
        return Err(RenderError::NotMonochrome);
    }
    let (index, stored) = frame_samples(pixels, frame)?;
    let values = modality(object, index, &stored)?;
    Ok(FrameValues {
        rows: pixels.rows,
        columns: pixels.columns,
        values: values.iter().map(|&v| v as f32).collect(),
    })
}

/// Renders one frame of `pixels`, decoded from `object`, to 8-bit grey or RGB.
///
/// # Errors
///
/// [`RenderError`] naming what is out of range or malformed.
pub fn render_frame(
    object: &DefaultDicomObject,
    pixels: &PixelArray,
    options: &RenderOptions,
) -> Result<RenderedFrame, RenderError> {
    let obj: &InMemDicomObject = object;
    let (index, stored) = frame_samples(pixels, options.frame)?;
    let (channels, data) = match pixels.photometric.as_str() {
        "MONOCHROME1" | "MONOCHROME2" if pixels.samples_per_pixel == 1 => {
            let values = modality(obj, index, &stored)?;
            let mut out = voi(obj, index, &values, options.window)?;
            if pixels.photometric == "MONOCHROME1" {
                out.iter_mut().for_each(|v| *v = 255 - *v);
            }
            (1, out)
        }
        "PALETTE COLOR" => (3, palette(obj, &stored)?),
        "RGB" if pixels.samples_per_pixel == 3 => {
            let shift = pixels.bits_stored.saturating_sub(8);
            (
                3,
                stored
                    .iter()
                    .map(|&v| clamp8(v / f64::from(1u32 << shift)))
                    .collect(),
            )
        }
        other => return Err(RenderError::UnsupportedPhotometric(other.to_owned())),
    };
    Ok(RenderedFrame {
        rows: pixels.rows,
        columns: pixels.columns,
        channels,
        data,
    })
}

/// The 0-based frame index and its stored values.
fn frame_samples(pixels: &PixelArray, frame: u32) -> Result<(usize, Vec<f64>), RenderError> {
    let frame = frame.max(1);
    let range = pixels
        .frame_range(frame)
        .ok_or(RenderError::FrameOutOfRange {
            frame,
            frames: pixels.frames,
        })?;
    Ok((frame as usize - 1, pixels.samples.to_f64(range)))
}

fn clamp8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// An attribute at top level, else in the frame's Per-frame Functional
/// Groups item, else in the Shared Functional Groups, under the functional
/// group macro sequence `group` (PS3.3 §C.7.6.16).
fn lookup<'a>(
    obj: &'a InMemDicomObject,
    frame_index: usize,
    group: Tag,
    tag: Tag,
) -> Option<&'a InMemElement> {
    if let Some(e) = obj.get(tag) {
        return Some(e);
    }
    let in_groups = |seq_tag: Tag, item_index: usize| -> Option<&'a InMemElement> {
        let item = obj.get(seq_tag)?.value().items()?.get(item_index)?;
        item.get(group)?.value().items()?.first()?.get(tag)
    };
    in_groups(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, frame_index)
        .or_else(|| in_groups(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, 0))
}

fn floats(elem: &InMemElement) -> Vec<f64> {
    match elem.value() {
        Value::Primitive(PrimitiveValue::F64(v)) => v.to_vec(),
        Value::Primitive(PrimitiveValue::F32(v)) => v.iter().map(|&x| f64::from(x)).collect(),
        Value::Primitive(p) => p
            .to_multi_str()
            .iter()
            .filter_map(|s| s.trim_matches([' ', '\0']).parse().ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// LUT Descriptor values (US or SS, PS3.3 §C.11.1.1.1): entries (0 means
/// 65536), first mapped value, bits per entry.
fn descriptor(elem: &InMemElement) -> Option<(usize, i64, u32)> {
    let values: Vec<i64> = match elem.value() {
        Value::Primitive(PrimitiveValue::U16(v)) => v.iter().map(|&x| i64::from(x)).collect(),
        Value::Primitive(PrimitiveValue::I16(v)) => v.iter().map(|&x| i64::from(x)).collect(),
        Value::Primitive(p) => p
            .to_bytes()
            .chunks_exact(2)
            .map(|c| i64::from(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        _ => return None,
    };
    let entries = match *values.first()? {
        0 => 65536,
        n => usize::try_from(n & 0xFFFF).ok()?,
    };
    // The first mapped value is SS or US depending on the pixel representation.
    let first = *values.get(1)?;
    let bits = u32::try_from(*values.get(2)?).ok()?;
    Some((entries, first, bits))
}

/// LUT Data as 16-bit entries (OW or US); 8-bit data sent as OB is widened.
fn lut_data(elem: &InMemElement, bits: u32) -> Vec<u32> {
    match elem.value() {
        Value::Primitive(PrimitiveValue::U16(v)) => v.iter().map(|&x| u32::from(x)).collect(),
        Value::Primitive(PrimitiveValue::I16(v)) => {
            v.iter().map(|&x| u32::from(x as u16)).collect()
        }
        Value::Primitive(PrimitiveValue::U8(v)) if bits <= 8 => {
            v.iter().map(|&x| u32::from(x)).collect()
        }
        Value::Primitive(p) => p
            .to_bytes()
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        _ => Vec::new(),
    }
}

struct Lut {
    first: i64,
    bits: u32,
    data: Vec<u32>,
}

impl Lut {
    fn from_item(item: &InMemDicomObject, name: &'static str) -> Result<Self, RenderError> {
        let (entries, first, bits) = item
            .get(tags::LUT_DESCRIPTOR)
            .and_then(descriptor)
            .ok_or(RenderError::BadLut(name))?;
        let data = item
            .get(tags::LUT_DATA)
            .map(|e| lut_data(e, bits))
            .ok_or(RenderError::BadLut(name))?;
        if data.is_empty() || data.len() < entries.min(data.len()) || !(1..=16).contains(&bits) {
            return Err(RenderError::BadLut(name));
        }
        Ok(Self { first, bits, data })
    }

    /// Values below the first mapped value take the first entry, above the
    /// last take the last (PS3.3 §C.11.1.1.1).
    fn apply(&self, v: f64) -> u32 {
        let i = (v.floor() as i64 - self.first).clamp(0, self.data.len() as i64 - 1);
        self.data[i as usize]
    }
}

fn modality(obj: &InMemDicomObject, frame: usize, stored: &[f64]) -> Result<Vec<f64>, RenderError> {
    if let Some(item) = obj
        .get(tags::MODALITY_LUT_SEQUENCE)
        .and_then(|e| e.value().items())
        .and_then(|items| items.first())
    {
        let lut = Lut::from_item(item, "Modality LUT Sequence")?;
        return Ok(stored.iter().map(|&v| f64::from(lut.apply(v))).collect());
    }
    let group = tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE;
    let slope = lookup(obj, frame, group, tags::RESCALE_SLOPE)
        .and_then(|e| floats(e).first().copied())
        .filter(|s| s.is_finite() && *s != 0.0)
        .unwrap_or(1.0);
    let intercept = lookup(obj, frame, group, tags::RESCALE_INTERCEPT)
        .and_then(|e| floats(e).first().copied())
        .filter(|s| s.is_finite())
        .unwrap_or(0.0);
    Ok(stored.iter().map(|&v| v * slope + intercept).collect())
}

/// VOI LUT Function (0028,1056).
#[derive(Clone, Copy)]
enum VoiFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

/// PS3.3 §C.11.2.1.2.1 (LINEAR), §C.11.2.1.3.2 (LINEAR_EXACT) and
/// §C.11.2.1.3.1 (SIGMOID), with output range 0..=255.
fn window_value(x: f64, w: Window, function: VoiFunction) -> u8 {
    let (c, width) = (w.center, w.width);
    let y = match function {
        VoiFunction::Linear => {
            if x <= c - 0.5 - (width - 1.0) / 2.0 {
                0.0
            } else if x > c - 0.5 + (width - 1.0) / 2.0 {
                255.0
            } else {
                ((x - (c - 0.5)) / (width - 1.0) + 0.5) * 255.0
            }
        }
        VoiFunction::LinearExact => {
            if x <= c - width / 2.0 {
                0.0
            } else if x > c + width / 2.0 {
                255.0
            } else {
                (x - c) / width * 255.0 + 127.5
            }
        }
        VoiFunction::Sigmoid => 255.0 / (1.0 + (-4.0 * (x - c) / width).exp()),
    };
    clamp8(y)
}

fn voi(
    obj: &InMemDicomObject,
    frame: usize,
    values: &[f64],
    explicit: Option<Window>,
) -> Result<Vec<u8>, RenderError> {
    if let Some(w) = explicit {
        if w.width < 1.0 || !w.width.is_finite() || !w.center.is_finite() {
            return Err(RenderError::InvalidWindow);
        }
        return Ok(values
            .iter()
            .map(|&v| window_value(v, w, VoiFunction::Linear))
            .collect());
    }
    if let Some(item) = obj
        .get(tags::VOILUT_SEQUENCE)
        .and_then(|e| e.value().items())
        .and_then(|items| items.first())
    {
        let lut = Lut::from_item(item, "VOI LUT Sequence")?;
        // Some writers declare 16 bits for 12-bit tables: scale by the
        // larger of the declared range and the largest entry.
        let declared = f64::from((1u32 << lut.bits) - 1);
        let top = lut
            .data
            .iter()
            .copied()
            .max()
            .map_or(declared, f64::from)
            .min(declared);
        let top = if top > 0.0 { top } else { declared };
        return Ok(values
            .iter()
            .map(|&v| clamp8(f64::from(lut.apply(v)) * 255.0 / top))
            .collect());
    }
    let group = tags::FRAME_VOILUT_SEQUENCE;
    let center =
        lookup(obj, frame, group, tags::WINDOW_CENTER).and_then(|e| floats(e).first().copied());
    let width =
        lookup(obj, frame, group, tags::WINDOW_WIDTH).and_then(|e| floats(e).first().copied());
    if let (Some(center), Some(width)) = (center, width)
        && width >= 1.0
        && center.is_finite()
        && width.is_finite()
    {
        let function = match code(obj, tags::VOILUT_FUNCTION).as_deref() {
            Some("LINEAR_EXACT") => VoiFunction::LinearExact,
            Some("SIGMOID") => VoiFunction::Sigmoid,
            _ => VoiFunction::Linear,
        };
        let w = Window { center, width };
        return Ok(values
            .iter()
            .map(|&v| window_value(v, w, function))
            .collect());
    }
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater) {
        return Ok(vec![0; values.len()]);
    }
    Ok(values
        .iter()
        .map(|&v| clamp8((v - min) / (max - min) * 255.0))
        .collect())
}

/// PALETTE COLOR (PS3.3 §C.7.6.3.1.5): each stored value through the
/// red, green and blue tables, given whole (§C.7.6.3.1.6) or segmented
/// (§C.7.9.2, expanded by [`crate::palette`]).
fn palette(obj: &InMemDicomObject, stored: &[f64]) -> Result<Vec<u8>, RenderError> {
    let segmented = obj
        .get(tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA)
        .is_some();
    let channel = |desc: Tag, data: Tag, segmented_data: Tag| -> Result<Lut, RenderError> {
        let name = "Palette Color Lookup Table";
        let (entries, first, bits) = obj
            .get(desc)
            .and_then(descriptor)
            .ok_or(RenderError::BadLut(name))?;
        let data = if segmented {
            let Some(Value::Primitive(p)) = obj.get(segmented_data).map(InMemElement::value) else {
                return Err(RenderError::BadLut(name));
            };
            // 8-bit tables hold an entry per byte (as pydicom reads them),
            // 16-bit ones a little endian word per entry.
            let raw = p.to_bytes();
            let words: Vec<u16> = if bits <= 8 {
                raw.iter().map(|&b| u16::from(b)).collect()
            } else {
                raw.chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect()
            };
            crate::palette::expand_segmented(&words, entries, bits <= 8)
                .map_err(RenderError::SegmentedPalette)?
                .into_iter()
                .map(u32::from)
                .collect()
        } else {
            obj.get(data)
                .map(|e| lut_data(e, bits))
                .ok_or(RenderError::BadLut(name))?
        };
        if data.is_empty() {
            return Err(RenderError::BadLut(name));
        }
        Ok(Lut { first, bits, data })
    };
    let luts = [
        channel(
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        )?,
        channel(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        )?,
        channel(
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        )?,
    ];
    Ok(stored
        .iter()
        .flat_map(|&v| {
            luts.iter().map(move |lut| {
                let e = lut.apply(v);
                // 16-bit entries keep their high byte; 8-bit ones their low.
                if lut.bits > 8 {
                    (e >> 8) as u8
                } else {
                    (e & 0xFF) as u8
                }
            })
        })
        .collect())
}
