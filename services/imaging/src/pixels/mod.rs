//! Pixel data decoding (PS3.5 §8 and Annex A; PS3.3 §C.7.6.3 Image Pixel
//! Module) into stored values `[frames, rows, columns, samples]`.
//!
//! Decoding goes through `dicom-pixeldata` (native, deflate, RLE, JPEG
//! baseline/lossless, JPEG-LS via CharLS, JPEG 2000 via OpenJPEG), except
//! 12-bit JPEG Extended (PS3.5 §A.4.1, 1.2.840.10008.1.2.4.51), which the
//! `jpeg-decoder` crate refuses, JPEG labelled RGB (which it would colour
//! transform) and 32-bit RLE, which this crate decodes itself.
//!
//! Values are stored values: no modality LUT, VOI LUT or palette applied.
//! Bits above Bits Stored are masked off and signed values sign-extended from
//! Bits Stored (PS3.5 §8.1.1). Colour comes out RGB: JPEG-family decoders
//! return YBR data as RGB, native 8-bit YBR_FULL and YBR_FULL_422 (expanded
//! to one triplet per pixel) are converted per PS3.3 §C.7.6.3.1.2, and native
//! planar data (Planar Configuration 1) is interleaved.//!
//! Here: the attributes and the order of decoders; [`limits`] bounds the
//! decoded size before any codec allocates, [`codecs`] holds the decoders
//! of this crate's own (12-bit JPEG, RLE of 32-bit samples), [`samples`]
//! turns decoded bytes into typed stored values.

mod codecs;
mod limits;
mod samples;

use std::panic::{AssertUnwindSafe, catch_unwind};

use dicom_core::Tag;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;

use crate::jpeg_dct;

#[cfg(feature = "fuzzing")]
pub(crate) use codecs::fuzz_rle_frame;
use codecs::{dct_frame, decode_frames, rle_frame};
use limits::check_sizes;
pub(crate) use limits::codestream_header;
use samples::{to_samples, ybr_full_to_rgb};

/// The most decoded bytes per encoded byte of encapsulated pixel data
/// (PS3.5 §8.2) accepted before decoding, beyond [`DECODE_ALLOWANCE`]. The
/// catalogue's lossy JPEG 2000 test image decodes to 2,097 × its 250
/// encoded bytes, and real images to at most 160 ×; without a bound, a few
/// bytes with inflated Rows, Columns or Number of Frames would claim
/// gigabytes.
pub const MAX_DECODE_RATIO: u64 = 512;

/// Decoded bytes accepted whatever the compression: 16 MiB, a
/// 4096 × 2048 frame of 16-bit samples.
pub const DECODE_ALLOWANCE: u64 = 16 << 20;

/// The most decoded bytes per encoded byte of RLE Lossless (PS3.5 Annex G):
/// a PackBits replicate run of two bytes yields at most 128.
pub const RLE_MAX_RATIO: u64 = 64;

const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// Why pixel data could not be decoded. An instance that fails here is still
/// stored and indexed; the image model reports it as unusable.
#[derive(Debug, thiserror::Error)]
pub enum PixelError {
    /// The instance has no Pixel Data (7FE0,0010), e.g. an SR or RT plan.
    #[error("the instance has no pixel data")]
    NoPixelData,
    /// Float or Double Float Pixel Data (7FE0,0008/0009), not decoded here.
    #[error("float pixel data is not supported")]
    FloatPixelData,
    /// A required Image Pixel Module attribute is missing (PS3.3 §C.7.6.3).
    #[error("required attribute {name} is missing")]
    MissingAttribute {
        /// Attribute keyword.
        name: &'static str,
    },
    /// An Image Pixel Module attribute has a value that cannot be used.
    #[error("attribute {name} has an invalid value")]
    InvalidAttribute {
        /// Attribute keyword.
        name: &'static str,
    },
    /// Bits Allocated is not 1, 8, 16 or 32.
    #[error("unsupported Bits Allocated {0}")]
    UnsupportedBitsAllocated(u16),
    /// The codec failed on the encoded pixel data.
    #[error("cannot decode the pixel data")]
    Decode(#[source] dicom_pixeldata::Error),
    /// The transfer syntax's codec is not in this build: JPEG-LS
    /// (1.2.840.10008.1.2.4.80/81) needs the `jpeg-ls` feature, which
    /// builds CharLS with cmake and a C++ compiler. The instance is stored
    /// and served as stored; only decoding (rendering, uncompressed frames,
    /// transcoding, the image model) is refused.
    #[error(
        "{codec} decoding is not in this build: build the service with `--features fusion-imaging/jpeg-ls` (needs cmake and a C++ compiler)"
    )]
    CodecNotBuilt {
        /// "JPEG-LS".
        codec: &'static str,
    },
    /// This crate's own JPEG DCT or 32-bit RLE decoder failed on a frame.
    #[error("cannot decode frame {frame}")]
    Frame {
        /// 1-based frame number.
        frame: u32,
        /// What was wrong with the encoded frame.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The encapsulated pixel data cannot be split into the declared frames.
    #[error("encapsulated pixel data has {fragments} fragments for {frames} frames")]
    FrameSplit {
        /// Fragments found.
        fragments: usize,
        /// Number of Frames declared.
        frames: u32,
    },
    /// A codec panicked on damaged data; the panic was contained.
    #[error("the pixel data codec failed unexpectedly")]
    CodecPanicked,
    /// The pixel attributes call for more decoded bytes than the encoded
    /// pixel data can hold: more than [`MAX_DECODE_RATIO`] times the
    /// encapsulated bytes and more than [`DECODE_ALLOWANCE`] ([`RLE_MAX_RATIO`]
    /// times, for RLE).
    #[error(
        "the pixel attributes call for {decoded} decoded bytes, more than the {encoded} encoded bytes may decode to ({limit})"
    )]
    DecodedSizeTooLarge {
        /// Frames × rows × columns × samples × bytes per sample.
        decoded: u64,
        /// Bytes of all fragments.
        encoded: u64,
        /// The most they may decode to, bytes.
        limit: u64,
    },
    /// A frame's codestream header declares a larger image than the
    /// DICOM attributes (the codec would size its buffers by it).
    #[error(
        "the {codec} header of frame {frame} declares {width} × {height} × {components}, larger than Columns × Rows × Samples per Pixel"
    )]
    CodestreamLarger {
        /// "JPEG", "JPEG-LS" or "JPEG 2000".
        codec: &'static str,
        /// 1-based fragment number.
        frame: usize,
        /// Declared width, pixels.
        width: u32,
        /// Declared height, pixels.
        height: u32,
        /// Declared components.
        components: u32,
    },
    /// Fewer pixel data bytes than the attributes require.
    #[error("pixel data is truncated: {actual} bytes, {expected} expected")]
    Truncated {
        /// Bytes the attributes call for.
        expected: usize,
        /// Bytes decoded.
        actual: usize,
    },
}

/// Decoded stored values, row-major and interleaved:
/// `[frames, rows, columns, samples]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// Unsigned, Bits Allocated 1 (as 0 or 1) or 8.
    U8(Vec<u8>),
    /// Unsigned, Bits Allocated 16.
    U16(Vec<u16>),
    /// Signed, Bits Allocated 8 or 16.
    I16(Vec<i16>),
    /// Unsigned, Bits Allocated 32.
    U32(Vec<u32>),
    /// Signed, Bits Allocated 32.
    I32(Vec<i32>),
}

impl Samples {
    /// Number of samples (frames × rows × columns × samples per pixel).
    pub fn len(&self) -> usize {
        match self {
            Self::U8(v) => v.len(),
            Self::U16(v) => v.len(),
            Self::I16(v) => v.len(),
            Self::U32(v) => v.len(),
            Self::I32(v) => v.len(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sample at a flat index, exactly representable as `f64`.
    pub fn get(&self, index: usize) -> Option<f64> {
        match self {
            Self::U8(v) => v.get(index).map(|&x| f64::from(x)),
            Self::U16(v) => v.get(index).map(|&x| f64::from(x)),
            Self::I16(v) => v.get(index).map(|&x| f64::from(x)),
            Self::U32(v) => v.get(index).map(|&x| f64::from(x)),
            Self::I32(v) => v.get(index).map(|&x| f64::from(x)),
        }
    }

    /// Samples in `range` as `f64` (exact: all variants fit in 53 bits).
    pub fn to_f64(&self, range: std::ops::Range<usize>) -> Vec<f64> {
        match self {
            Self::U8(v) => v[range].iter().map(|&x| f64::from(x)).collect(),
            Self::U16(v) => v[range].iter().map(|&x| f64::from(x)).collect(),
            Self::I16(v) => v[range].iter().map(|&x| f64::from(x)).collect(),
            Self::U32(v) => v[range].iter().map(|&x| f64::from(x)).collect(),
            Self::I32(v) => v[range].iter().map(|&x| f64::from(x)).collect(),
        }
    }
}

/// Decoded pixel data with the attributes needed to interpret it.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelArray {
    /// Number of Frames (0028,0008), 1 when absent.
    pub frames: u32,
    /// Rows (0028,0010), pixels.
    pub rows: u32,
    /// Columns (0028,0011), pixels.
    pub columns: u32,
    /// Samples per Pixel (0028,0002): 1 or 3.
    pub samples_per_pixel: u16,
    /// Bits Allocated (0028,0100).
    pub bits_allocated: u16,
    /// Bits Stored (0028,0101).
    pub bits_stored: u16,
    /// Pixel Representation (0028,0103) is 1 (two's complement).
    pub signed: bool,
    /// Photometric Interpretation of `samples`: as stored, except "RGB" for
    /// YBR data converted while decoding.
    pub photometric: String,
    /// The values, `[frames, rows, columns, samples]`.
    pub samples: Samples,
}

impl PixelArray {
    /// Samples in one frame: rows × columns × samples per pixel.
    pub fn frame_len(&self) -> usize {
        self.rows as usize * self.columns as usize * usize::from(self.samples_per_pixel)
    }

    /// Flat index range of a frame given by its 1-based number (PS3.18
    /// §8.3.5.1 frame numbering), or `None` outside `1..=frames`.
    pub fn frame_range(&self, frame_number: u32) -> Option<std::ops::Range<usize>> {
        if frame_number == 0 || frame_number > self.frames {
            return None;
        }
        let start = (frame_number as usize - 1) * self.frame_len();
        Some(start..start + self.frame_len())
    }
}

/// Reads an unsigned integer attribute (US, or IS as text).
pub(crate) fn uint(obj: &InMemDicomObject, tag: Tag) -> Option<u32> {
    match obj.get(tag)?.value() {
        Value::Primitive(PrimitiveValue::U16(v)) => v.first().map(|&x| u32::from(x)),
        Value::Primitive(PrimitiveValue::U32(v)) => v.first().copied(),
        Value::Primitive(p) => p.to_str().trim_matches([' ', '\0']).parse().ok(),
        _ => None,
    }
}

/// Reads a code string attribute, trimmed.
pub(crate) fn code(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    match obj.get(tag)?.value() {
        Value::Primitive(p) => Some(p.to_str().trim_matches([' ', '\0']).to_owned()),
        _ => None,
    }
}

fn required(obj: &InMemDicomObject, tag: Tag, name: &'static str) -> Result<u32, PixelError> {
    if obj.get(tag).is_none() {
        return Err(PixelError::MissingAttribute { name });
    }
    uint(obj, tag).ok_or(PixelError::InvalidAttribute { name })
}

/// Decodes all frames of an object's pixel data to stored values. Pass
/// [`crate::DicomInstance::object`], or an object from [`crate::read`].
///
/// CPU-bound and synchronous (run it in `spawn_blocking`); memory is about
/// twice the decoded size while converting.
///
/// # Errors
///
/// [`PixelError`] naming the failing step; never panics on damaged data (a
/// codec panic is caught and reported as [`PixelError::CodecPanicked`]).
pub fn decode_pixels(object: &DefaultDicomObject) -> Result<PixelArray, PixelError> {
    let obj: &InMemDicomObject = object;
    let Some(pixel_data) = obj.get(tags::PIXEL_DATA) else {
        if obj.get(tags::FLOAT_PIXEL_DATA).is_some()
            || obj.get(tags::DOUBLE_FLOAT_PIXEL_DATA).is_some()
        {
            return Err(PixelError::FloatPixelData);
        }
        return Err(PixelError::NoPixelData);
    };
    let rows = required(obj, tags::ROWS, "Rows")?;
    let columns = required(obj, tags::COLUMNS, "Columns")?;
    let bits_allocated = required(obj, tags::BITS_ALLOCATED, "BitsAllocated")?;
    let bits_allocated = u16::try_from(bits_allocated)
        .map_err(|_| PixelError::UnsupportedBitsAllocated(u16::MAX))?;
    if !matches!(bits_allocated, 1 | 8 | 16 | 32) {
        return Err(PixelError::UnsupportedBitsAllocated(bits_allocated));
    }
    let bits_stored = match obj.get(tags::BITS_STORED) {
        Some(_) => required(obj, tags::BITS_STORED, "BitsStored")?,
        None => u32::from(bits_allocated),
    };
    let bits_stored = u16::try_from(bits_stored)
        .ok()
        .filter(|b| (1..=bits_allocated).contains(b))
        .ok_or(PixelError::InvalidAttribute { name: "BitsStored" })?;
    let samples_per_pixel = match obj.get(tags::SAMPLES_PER_PIXEL) {
        Some(_) => required(obj, tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")?,
        None => 1,
    };
    let samples_per_pixel = u16::try_from(samples_per_pixel)
        .ok()
        .filter(|s| matches!(s, 1 | 3))
        .ok_or(PixelError::InvalidAttribute {
            name: "SamplesPerPixel",
        })?;
    let frames = match obj.get(tags::NUMBER_OF_FRAMES) {
        Some(_) => required(obj, tags::NUMBER_OF_FRAMES, "NumberOfFrames")?.max(1),
        None => 1,
    };
    if rows == 0 || columns == 0 {
        return Err(PixelError::InvalidAttribute { name: "Rows" });
    }
    let signed = uint(obj, tags::PIXEL_REPRESENTATION) == Some(1);
    let photometric =
        code(obj, tags::PHOTOMETRIC_INTERPRETATION).ok_or(PixelError::MissingAttribute {
            name: "PhotometricInterpretation",
        })?;
    let planar = uint(obj, tags::PLANAR_CONFIGURATION) == Some(1);
    let ts = object.meta().transfer_syntax();
    if !cfg!(feature = "jpeg-ls")
        && matches!(
            ts.trim_end_matches(['\0', ' ']),
            "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81"
        )
    {
        return Err(PixelError::CodecNotBuilt { codec: "JPEG-LS" });
    }

    let geometry = Geometry {
        frames,
        rows,
        columns,
        samples_per_pixel,
        bits_allocated,
        bits_stored,
        signed,
    };
    let encapsulated = matches!(pixel_data.value(), Value::PixelSequence(_));
    check_sizes(pixel_data.value(), &geometry, &photometric, ts)?;
    let own_dct = matches!(ts, JPEG_BASELINE | JPEG_EXTENDED)
        && (photometric == "RGB"
            || first_fragment(pixel_data.value())
                .and_then(jpeg_dct::sof_precision)
                .is_some_and(|p| p > 8));
    let (bytes, photometric, planar) = if own_dct {
        // RGB stays RGB: no colour transform (PS3.5 §8.2.1).
        (
            decode_frames(pixel_data.value(), &geometry, dct_frame)?,
            photometric,
            false,
        )
    } else if ts == RLE_LOSSLESS && bits_allocated == 32 {
        // dicom-rs' RLE decoder stops at 16 bits.
        (
            decode_frames(pixel_data.value(), &geometry, rle_frame)?,
            photometric,
            false,
        )
    } else {
        let decoded = catch_unwind(AssertUnwindSafe(|| obj_decode(object)))
            .map_err(|_| PixelError::CodecPanicked)??;
        let photometric = if encapsulated && samples_per_pixel == 3 && ts != RLE_LOSSLESS {
            // JPEG-family codecs return YBR data as RGB.
            "RGB".to_owned()
        } else {
            photometric
        };
        (decoded, photometric, planar && !encapsulated)
    };
    let mut samples = to_samples(&bytes, &geometry, &photometric, planar)?;
    let photometric = match (photometric.as_str(), &mut samples) {
        ("YBR_FULL" | "YBR_FULL_422", Samples::U8(values)) => {
            ybr_full_to_rgb(values);
            "RGB".to_owned()
        }
        ("YBR_FULL_422", _) => "YBR_FULL".to_owned(),
        _ => photometric,
    };
    Ok(PixelArray {
        frames,
        rows,
        columns,
        samples_per_pixel,
        bits_allocated,
        bits_stored,
        signed,
        photometric,
        samples,
    })
}

const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// The pixel attributes of an object, parsed and checked.
struct Geometry {
    frames: u32,
    rows: u32,
    columns: u32,
    samples_per_pixel: u16,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
}

fn obj_decode(object: &DefaultDicomObject) -> Result<Vec<u8>, PixelError> {
    let decoded = object.decode_pixel_data().map_err(PixelError::Decode)?;
    Ok(decoded.into_data())
}

fn first_fragment(value: &Value<InMemDicomObject>) -> Option<&[u8]> {
    match value {
        Value::PixelSequence(seq) => seq.fragments().first().map(Vec::as_slice),
        _ => None,
    }
}
