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
//! planar data (Planar Configuration 1) is interleaved.

use std::panic::{AssertUnwindSafe, catch_unwind};

use dicom_core::Tag;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;

use crate::jpeg_dct;

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

/// Checks, before any codec allocates, that the pixel data can hold what
/// the attributes call for: native data has all its bytes (PS3.5 §8.1.1),
/// encapsulated data decodes to at most [`MAX_DECODE_RATIO`] times its
/// size or [`DECODE_ALLOWANCE`] (RLE: [`RLE_MAX_RATIO`] times), and no
/// frame's JPEG, JPEG-LS or
/// JPEG 2000 header declares a larger image than the attributes.
fn check_sizes(
    value: &Value<InMemDicomObject>,
    g: &Geometry,
    photometric: &str,
    ts: &str,
) -> Result<(), PixelError> {
    let samples = u64::from(g.frames)
        * u64::from(g.rows)
        * u64::from(g.columns)
        * u64::from(g.samples_per_pixel);
    match value {
        Value::PixelSequence(seq) => {
            let decoded = samples * u64::from(g.bits_allocated.div_ceil(8));
            let encoded: u64 = seq.fragments().iter().map(|f| f.len() as u64).sum();
            let (ratio, allowance) = if ts == RLE_LOSSLESS {
                (RLE_MAX_RATIO, 0)
            } else {
                (MAX_DECODE_RATIO, DECODE_ALLOWANCE)
            };
            let limit = encoded.saturating_mul(ratio).max(allowance);
            if decoded > limit {
                return Err(PixelError::DecodedSizeTooLarge {
                    decoded,
                    encoded,
                    limit,
                });
            }
            for (i, fragment) in seq.fragments().iter().enumerate() {
                let Some(h) = codestream_header(fragment) else {
                    continue;
                };
                if u64::from(h.width) * u64::from(h.height) * u64::from(h.components)
                    > u64::from(g.columns) * u64::from(g.rows) * u64::from(g.samples_per_pixel)
                {
                    return Err(PixelError::CodestreamLarger {
                        codec: h.codec,
                        frame: i + 1,
                        width: h.width,
                        height: h.height,
                        components: h.components,
                    });
                }
            }
        }
        Value::Primitive(p) => {
            // Native YBR_FULL_422 holds two samples per pixel.
            let samples = if photometric == "YBR_FULL_422" && g.samples_per_pixel == 3 {
                samples / 3 * 2
            } else {
                samples
            };
            let expected = (samples * u64::from(g.bits_allocated)).div_ceil(8);
            let actual = p.calculate_byte_len() as u64;
            if actual < expected {
                return Err(PixelError::Truncated {
                    expected: usize::try_from(expected).unwrap_or(usize::MAX),
                    actual: usize::try_from(actual).unwrap_or(usize::MAX),
                });
            }
        }
        Value::Sequence(_) => return Err(PixelError::InvalidAttribute { name: "PixelData" }),
    }
    Ok(())
}

/// The image size a codestream declares in its frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CodestreamHeader {
    pub(crate) codec: &'static str,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) components: u32,
}

/// The frame header of a JPEG (ISO/IEC 10918-1 §B.2.2 SOFn) or JPEG-LS
/// (ISO/IEC 14495-1 §C.2.2 SOF55) stream, or the SIZ marker segment of a
/// JPEG 2000 codestream (ISO/IEC 15444-1 §A.5.1), found by walking the
/// marker segments from the start; `None` when there is none.
pub(crate) fn codestream_header(data: &[u8]) -> Option<CodestreamHeader> {
    let be16 = |at: usize| {
        data.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let be32 = |at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match be16(0)? {
        // SOC then SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz.
        0xFF4F => {
            if be16(2)? != 0xFF51 {
                return None;
            }
            let (x, y) = (be32(8)?, be32(12)?);
            let (xo, yo) = (be32(16)?, be32(20)?);
            Some(CodestreamHeader {
                codec: "JPEG 2000",
                width: x.saturating_sub(xo),
                height: y.saturating_sub(yo),
                components: u32::from(be16(40)?),
            })
        }
        0xFFD8 => {
            let mut i = 2;
            loop {
                while data.get(i) == Some(&0xFF) && data.get(i + 1) == Some(&0xFF) {
                    i += 1;
                }
                if *data.get(i)? != 0xFF {
                    return None;
                }
                let marker = *data.get(i + 1)?;
                let sof = ((0xC0..=0xCF).contains(&marker)
                    && !matches!(marker, 0xC4 | 0xC8 | 0xCC))
                    || marker == 0xF7;
                if sof {
                    return Some(CodestreamHeader {
                        codec: if marker == 0xF7 { "JPEG-LS" } else { "JPEG" },
                        height: u32::from(be16(i + 5)?),
                        width: u32::from(be16(i + 7)?),
                        components: u32::from(*data.get(i + 9)?),
                    });
                }
                if marker == 0xD9 || marker == 0xDA {
                    return None;
                }
                i += 2 + usize::from(be16(i + 2)?);
            }
        }
        _ => None,
    }
}

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

/// Decodes each frame's fragment(s) with `decode_frame`, concatenating the
/// native-endian results.
fn decode_frames(
    value: &Value<InMemDicomObject>,
    g: &Geometry,
    decode_frame: fn(&[u8], &Geometry) -> FrameResult,
) -> Result<Vec<u8>, PixelError> {
    let Value::PixelSequence(seq) = value else {
        return Err(PixelError::InvalidAttribute { name: "PixelData" });
    };
    let fragments = seq.fragments();
    let frames: Vec<Vec<u8>> = if g.frames == 1 {
        vec![fragments.concat()]
    } else if fragments.len() == g.frames as usize {
        fragments.to_vec()
    } else {
        return Err(PixelError::FrameSplit {
            fragments: fragments.len(),
            frames: g.frames,
        });
    };
    let mut out = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let frame_number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let decoded = catch_unwind(|| decode_frame(frame, g))
            .map_err(|_| PixelError::CodecPanicked)?
            .map_err(|source| PixelError::Frame {
                frame: frame_number,
                source,
            })?;
        out.extend(decoded);
    }
    Ok(out)
}

type FrameResult = Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>;

/// One JPEG DCT frame to native-endian samples (8-bit: bytes; more: u16).
fn dct_frame(data: &[u8], g: &Geometry) -> FrameResult {
    let image = jpeg_dct::decode(data)?;
    if image.width != g.columns as usize
        || image.height != g.rows as usize
        || image.components != usize::from(g.samples_per_pixel)
    {
        return Err("JPEG frame size or components differ from the DICOM attributes".into());
    }
    Ok(if g.bits_allocated == 8 {
        image.data.iter().map(|&v| v.min(255) as u8).collect()
    } else {
        image.data.iter().flat_map(|v| v.to_ne_bytes()).collect()
    })
}

/// One RLE Lossless frame (PS3.5 Annex G) to native-endian interleaved
/// samples: segment `s × bytes + b` holds byte `b` (most significant first)
/// of sample `s`, each PackBits-encoded (§G.3.1).
fn rle_frame(data: &[u8], g: &Geometry) -> FrameResult {
    let word = |at: usize| -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let b = data.get(at..at + 4).ok_or("RLE header truncated")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let bytes = usize::from(g.bits_allocated / 8);
    let spp = usize::from(g.samples_per_pixel);
    let pixels = g.rows as usize * g.columns as usize;
    let segments = word(0)?;
    if segments != bytes * spp || segments > 15 {
        return Err("RLE segment count does not match the pixel attributes".into());
    }
    // Every segment must be able to hold its `pixels` bytes (a two-byte
    // replicate run yields at most 128) before the frame is allocated.
    let mut ranges = Vec::with_capacity(segments);
    for seg in 0..segments {
        let start = word(4 + 4 * seg)?;
        let end = if seg + 1 < segments {
            word(8 + 4 * seg)?
        } else {
            data.len()
        };
        let src = data
            .get(start..end)
            .ok_or("RLE segment offset out of range")?;
        if src.len().div_ceil(2).saturating_mul(128) < pixels {
            return Err(format!(
                "RLE segment {} of {} bytes cannot hold the {pixels} bytes of a frame",
                seg + 1,
                src.len()
            )
            .into());
        }
        ranges.push(src);
    }
    let mut out = vec![0u8; pixels * spp * bytes];
    for (seg, &src) in ranges.iter().enumerate() {
        let mut src = src;
        let (sample, byte) = (seg / bytes, seg % bytes);
        // Native-endian position of this byte within a sample.
        let shift = bytes - 1 - byte;
        let pos_in_sample = if cfg!(target_endian = "little") {
            shift
        } else {
            byte
        };
        let mut p = 0;
        while p < pixels {
            let Some((&n, rest)) = src.split_first() else {
                return Err("RLE segment ends early".into());
            };
            src = rest;
            let n = n as i8;
            let (run, literal) = match n {
                0..=127 => (usize::from(n as u8) + 1, true),
                -127..=-1 => (usize::from(n.unsigned_abs()) + 1, false),
                _ => continue,
            };
            for k in 0..run.min(pixels - p) {
                let v = if literal { src.get(k) } else { src.first() };
                let &v = v.ok_or("RLE segment ends early")?;
                out[((p + k) * spp + sample) * bytes + pos_in_sample] = v;
            }
            src = src.get(if literal { run } else { 1 }..).unwrap_or(&[]);
            p += run;
        }
    }
    Ok(out)
}

/// [`rle_frame`] for the fuzz target (`crate::fuzzing::rle_frame`).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_rle_frame(
    data: &[u8],
    rows: u16,
    columns: u16,
    samples_per_pixel: u16,
    bits_allocated: u16,
) -> Result<usize, String> {
    let g = Geometry {
        frames: 1,
        rows: u32::from(rows),
        columns: u32::from(columns),
        samples_per_pixel,
        bits_allocated,
        bits_stored: bits_allocated,
        signed: false,
    };
    let out = rle_frame(data, &g).map_err(|e| e.to_string())?;
    assert_eq!(
        out.len(),
        usize::from(rows)
            * usize::from(columns)
            * usize::from(samples_per_pixel)
            * usize::from(bits_allocated / 8),
        "an RLE frame decodes to rows × columns × samples × bytes"
    );
    Ok(out.len())
}

/// YBR_FULL to RGB in place, PS3.3 §C.7.6.3.1.2, rounded as pydicom does.
fn ybr_full_to_rgb(values: &mut [u8]) {
    for p in values.chunks_exact_mut(3) {
        let (y, cb, cr) = (
            f32::from(p[0]),
            f32::from(p[1]) - 128.0,
            f32::from(p[2]) - 128.0,
        );
        let rgb = [
            y + 1.402 * cr,
            y - (0.114 * 1.772 / 0.587) * cb - (0.299 * 1.402 / 0.587) * cr,
            y + 1.772 * cb,
        ];
        for (out, v) in p.iter_mut().zip(rgb) {
            *out = (v + 0.5).floor().clamp(0.0, 255.0) as u8;
        }
    }
}

/// Native-endian decoded bytes to typed stored values: masks to Bits Stored,
/// sign-extends, expands YBR_FULL_422 and interleaves planar data.
fn to_samples(
    bytes: &[u8],
    g: &Geometry,
    photometric: &str,
    planar: bool,
) -> Result<Samples, PixelError> {
    let pixels = g.rows as usize * g.columns as usize;
    let spp = usize::from(g.samples_per_pixel);
    let frame_samples = pixels * spp;
    let total = frame_samples * g.frames as usize;
    // Native YBR_FULL_422 holds two samples per pixel (Y Y Cb Cr per pair).
    let ybr422 = photometric == "YBR_FULL_422" && spp == 3;
    let stored_samples = if ybr422 {
        pixels * 2 * g.frames as usize
    } else {
        total
    };
    let raw: Vec<u32> = if g.bits_allocated == 1 {
        // dicom-pixeldata expands single bits to 0 or 255.
        let need = stored_samples;
        if bytes.len() < need {
            return Err(PixelError::Truncated {
                expected: need.div_ceil(8),
                actual: bytes.len() / 8,
            });
        }
        bytes[..need].iter().map(|&b| u32::from(b != 0)).collect()
    } else {
        let width = usize::from(g.bits_allocated / 8);
        let need = stored_samples * width;
        if bytes.len() < need {
            return Err(PixelError::Truncated {
                expected: need,
                actual: bytes.len(),
            });
        }
        bytes[..need]
            .chunks_exact(width)
            .map(|c| match c {
                [a] => u32::from(*a),
                [a, b] => u32::from(u16::from_ne_bytes([*a, *b])),
                [a, b, c, d] => u32::from_ne_bytes([*a, *b, *c, *d]),
                _ => 0,
            })
            .collect()
    };
    let raw = if ybr422 {
        raw.chunks_exact(4)
            .flat_map(|q| [q[0], q[2], q[3], q[1], q[2], q[3]])
            .collect()
    } else if planar && spp > 1 {
        raw.chunks_exact(frame_samples)
            .flat_map(|frame| {
                (0..pixels).flat_map(move |p| (0..spp).map(move |s| frame[s * pixels + p]))
            })
            .collect()
    } else {
        raw
    };
    let bits = u32::from(g.bits_stored);
    let mask = if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    };
    let signed_value = |v: u32| -> i32 {
        let v = v & mask;
        if bits < 32 && v & (1 << (bits - 1)) != 0 {
            (i64::from(v) - (1i64 << bits)) as i32
        } else {
            v as i32
        }
    };
    Ok(match (g.bits_allocated, g.signed) {
        (1 | 8, false) => Samples::U8(raw.iter().map(|&v| (v & mask) as u8).collect()),
        (16, false) => Samples::U16(raw.iter().map(|&v| (v & mask) as u16).collect()),
        (8 | 16, true) => Samples::I16(raw.iter().map(|&v| signed_value(v) as i16).collect()),
        (32, false) => Samples::U32(raw.iter().map(|&v| v & mask).collect()),
        (32, true) => Samples::I32(raw.iter().map(|&v| signed_value(v)).collect()),
        (other, _) => return Err(PixelError::UnsupportedBitsAllocated(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rle_segment_too_short_for_its_frame_is_refused_before_allocation() {
        let g = Geometry {
            frames: 1,
            rows: 65535,
            columns: 65535,
            samples_per_pixel: 1,
            bits_allocated: 8,
            bits_stored: 8,
            signed: false,
        };
        // One segment of two bytes (a run of 128 zeros) at offset 64.
        let mut frame = vec![0u8; 64];
        frame[0] = 1;
        frame[4] = 64;
        frame.extend([0x81, 0x00]);
        let err = rle_frame(&frame, &g).unwrap_err().to_string();
        assert_eq!(
            err,
            "RLE segment 1 of 2 bytes cannot hold the 4294836225 bytes of a frame"
        );
    }
}
