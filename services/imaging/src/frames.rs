//! Frames and pixel data for WADO-RS (PS3.18 §10.4): the media type of each
//! transfer syntax (PS3.18 §8.7.3.3.2, Table 8.7.3-2), frames as stored
//! (encapsulated fragments split per PS3.5 §A.4, native bytes sliced per
//! PS3.5 §8.1.1), frames decoded to native little endian, and whole
//! instances transcoded to Explicit VR Little Endian (PS3.5 §A.2), the
//! default transfer syntax of `application/dicom` (PS3.18 §8.7.3.5.2).
//!
//! Decoding goes through [`crate::decode_pixels`], so what renders also
//! transcodes. Colour data that a JPEG-family codec returns as RGB is
//! re-labelled RGB in a transcoded instance (PS3.5 §8.2.1 note); frames
//! retrieved as `application/octet-stream` from such an instance are RGB
//! too, whatever its metadata says.

use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};

use crate::pixels::{PixelError, Samples, uint};

/// Explicit VR Little Endian (PS3.5 §A.2), the default transfer syntax of
/// `application/dicom` and the encoding of `application/octet-stream`
/// frames and bulk data (PS3.18 Table 8.7.3-2).
pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// Why frames or a transcoded instance cannot be produced.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The instance has no Pixel Data (7FE0,0010).
    #[error("the instance has no pixel data")]
    NoPixelData,
    /// A requested frame number is 0 or above Number of Frames
    /// (PS3.18 §10.4.1.1.4: frame numbers start at 1).
    #[error("frame {requested} does not exist: the instance has {frames} frames")]
    NoSuchFrame {
        /// The 1-based number asked for.
        requested: u32,
        /// Number of Frames (0028,0008), 1 when absent.
        frames: u32,
    },
    /// The encapsulated fragments cannot be grouped into the declared frames
    /// (no Basic Offset Table, and neither one fragment per frame nor one
    /// codestream start per frame).
    #[error("encapsulated pixel data has {fragments} fragments for {frames} frames")]
    FrameSplit {
        /// Fragments found.
        fragments: usize,
        /// Number of Frames declared.
        frames: u32,
    },
    /// Native pixel data is shorter than the attributes say.
    #[error("native pixel data is truncated")]
    Truncated,
    /// A required Image Pixel Module attribute is missing or invalid.
    #[error("attribute {0} is missing or invalid")]
    Attribute(&'static str),
    /// The pixel data could not be decoded (codec missing or data damaged).
    #[error("cannot decode the pixel data")]
    Decode(#[source] PixelError),
    /// Writing the transcoded data set failed.
    #[error("cannot encode the transcoded instance")]
    Write(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The media type of frames and bulk pixel data in a transfer syntax
/// (PS3.18 Table 8.7.3-2): `application/octet-stream` for the native
/// syntaxes, the image or video type for the compressed ones; `None` for a
/// transfer syntax the table does not list.
pub fn frame_media_type(transfer_syntax: &str) -> Option<&'static str> {
    Some(match transfer_syntax.trim_end_matches(['\0', ' ']) {
        IMPLICIT_VR_LITTLE_ENDIAN
        | EXPLICIT_VR_LITTLE_ENDIAN
        | EXPLICIT_VR_BIG_ENDIAN
        | DEFLATED => "application/octet-stream",
        "1.2.840.10008.1.2.5" => "image/dicom-rle",
        "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.57"
        | "1.2.840.10008.1.2.4.70" => "image/jpeg",
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "image/jls",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "image/jp2",
        "1.2.840.10008.1.2.4.92" | "1.2.840.10008.1.2.4.93" => "image/jpx",
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => {
            "image/jphc"
        }
        "1.2.840.10008.1.2.4.100" | "1.2.840.10008.1.2.4.101" => "video/mpeg2",
        "1.2.840.10008.1.2.4.102"
        | "1.2.840.10008.1.2.4.103"
        | "1.2.840.10008.1.2.4.104"
        | "1.2.840.10008.1.2.4.105"
        | "1.2.840.10008.1.2.4.106" => "video/mp4",
        "1.2.840.10008.1.2.4.107" | "1.2.840.10008.1.2.4.108" => "video/H265",
        _ => return None,
    })
}

/// Whether a transfer syntax encodes pixel data natively (PS3.5 §8.1.1),
/// so that frames are the stored bytes in little endian order.
pub fn is_native(transfer_syntax: &str) -> bool {
    frame_media_type(transfer_syntax) == Some("application/octet-stream")
}

/// Number of Frames (0028,0008) of an object, 1 when absent.
pub fn frame_count(object: &DefaultDicomObject) -> u32 {
    uint(object, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1)
}

fn check_numbers(numbers: &[u32], frames: u32) -> Result<(), FrameError> {
    match numbers.iter().find(|&&n| n == 0 || n > frames) {
        Some(&requested) => Err(FrameError::NoSuchFrame { requested, frames }),
        None => Ok(()),
    }
}

/// The value bytes of a primitive in little endian order, whatever the
/// transfer syntax it was read from (dicom-rs keeps OW as 16-bit words).
fn le_bytes(p: &PrimitiveValue) -> Vec<u8> {
    match p {
        PrimitiveValue::U16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        PrimitiveValue::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        PrimitiveValue::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        PrimitiveValue::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        PrimitiveValue::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        PrimitiveValue::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        PrimitiveValue::U64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        PrimitiveValue::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        other => other.to_bytes().into_owned(),
    }
}

/// The value of a top-level binary element in little endian order, or
/// `None` when absent or not binary (PS3.18 §8.7.3.3: bulk data as
/// `application/octet-stream` is little endian).
pub fn element_le_bytes(object: &InMemDicomObject, tag: Tag) -> Option<Vec<u8>> {
    match object.get(tag)?.value() {
        Value::Primitive(p) => Some(le_bytes(p)),
        _ => None,
    }
}

/// Whether the object's Pixel Data is encapsulated (PS3.5 §A.4).
pub fn is_encapsulated(object: &DefaultDicomObject) -> bool {
    object
        .get(tags::PIXEL_DATA)
        .is_some_and(|e| matches!(e.value(), Value::PixelSequence(_)))
}

/// The frames `numbers` (1-based, PS3.18 §10.4.1.1.4) as stored: the
/// compressed bytes of each frame for encapsulated pixel data (fragments
/// grouped by the Basic Offset Table, one fragment per frame, or one
/// codestream start per frame), or the native bytes of each frame in
/// little endian order (1-bit data re-packed from the frame's first bit).
///
/// # Errors
///
/// [`FrameError`]: no pixel data, a frame number out of range, fragments
/// that cannot be grouped, native data shorter than the attributes.
pub fn stored_frames(
    object: &DefaultDicomObject,
    numbers: &[u32],
) -> Result<Vec<Vec<u8>>, FrameError> {
    let element = object
        .get(tags::PIXEL_DATA)
        .ok_or(FrameError::NoPixelData)?;
    let frames = frame_count(object);
    check_numbers(numbers, frames)?;
    match element.value() {
        Value::PixelSequence(seq) => {
            let all = split_fragments(seq.offset_table(), seq.fragments(), frames)?;
            Ok(numbers
                .iter()
                .map(|&n| all[n as usize - 1].clone())
                .collect())
        }
        Value::Primitive(p) => {
            let bytes = le_bytes(p);
            let bits = frame_bits(object)?;
            numbers
                .iter()
                .map(|&n| {
                    let start = u64::from(n - 1) * bits;
                    slice_bits(&bytes, start, bits).ok_or(FrameError::Truncated)
                })
                .collect()
        }
        Value::Sequence(_) => Err(FrameError::Attribute("PixelData")),
    }
}

/// Bits of one native frame: rows × columns × samples × Bits Allocated
/// (YBR_FULL_422 holds two samples per pixel, PS3.3 §C.7.6.3.1.2).
fn frame_bits(object: &InMemDicomObject) -> Result<u64, FrameError> {
    let get = |tag, name| uint(object, tag).ok_or(FrameError::Attribute(name));
    let rows = u64::from(get(tags::ROWS, "Rows")?);
    let columns = u64::from(get(tags::COLUMNS, "Columns")?);
    let bits = u64::from(get(tags::BITS_ALLOCATED, "BitsAllocated")?);
    let samples = u64::from(uint(object, tags::SAMPLES_PER_PIXEL).unwrap_or(1));
    let photometric = crate::pixels::code(object, tags::PHOTOMETRIC_INTERPRETATION);
    let per_pixel = if samples == 3 && photometric.as_deref() == Some("YBR_FULL_422") {
        2
    } else {
        samples
    };
    Ok(rows * columns * per_pixel * bits)
}

/// `len` bits from bit `start` (LSB first within each byte, PS3.5 §8.1.1),
/// as bytes; `None` when the data is too short.
fn slice_bits(bytes: &[u8], start: u64, len: u64) -> Option<Vec<u8>> {
    let end = start.checked_add(len)?;
    if end.div_ceil(8) > bytes.len() as u64 {
        return None;
    }
    if start.is_multiple_of(8) && len.is_multiple_of(8) {
        let (a, b) = (
            usize::try_from(start / 8).ok()?,
            usize::try_from(end.div_ceil(8)).ok()?,
        );
        return Some(bytes[a..b].to_vec());
    }
    let mut out = vec![0u8; usize::try_from(len.div_ceil(8)).ok()?];
    for i in 0..len {
        let src = start + i;
        let bit = (bytes[(src / 8) as usize] >> (src % 8)) & 1;
        out[(i / 8) as usize] |= bit << (i % 8);
    }
    Some(out)
}

/// Groups encapsulated fragments into frames (PS3.5 §A.4): by the Basic
/// Offset Table when it has one entry per frame, else one fragment per
/// frame, all fragments for a single frame, or a new frame at each
/// fragment that starts a JPEG (SOI), JPEG 2000 (SOC) codestream.
pub fn split_fragments(
    offset_table: &[u32],
    fragments: &[Vec<u8>],
    frames: u32,
) -> Result<Vec<Vec<u8>>, FrameError> {
    let n = frames as usize;
    let fail = || FrameError::FrameSplit {
        fragments: fragments.len(),
        frames,
    };
    if fragments.is_empty() {
        return Err(fail());
    }
    if n == 1 {
        return Ok(vec![fragments.concat()]);
    }
    if offset_table.len() == n {
        // Offsets count item headers (8 bytes) plus fragment lengths.
        let mut starts = Vec::with_capacity(fragments.len());
        let mut at = 0u64;
        for f in fragments {
            starts.push(at);
            at += 8 + f.len() as u64;
        }
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(n);
        for (i, &offset) in offset_table.iter().enumerate() {
            let next = offset_table.get(i + 1).map_or(u64::MAX, |&o| u64::from(o));
            let first = starts
                .iter()
                .position(|&s| s == u64::from(offset))
                .ok_or_else(fail)?;
            let frame: Vec<u8> = fragments
                .iter()
                .zip(&starts)
                .skip(first)
                .take_while(|(_, s)| **s < next)
                .flat_map(|(f, _)| f.iter().copied())
                .collect();
            out.push(frame);
        }
        return Ok(out);
    }
    if fragments.len() == n {
        return Ok(fragments.to_vec());
    }
    let starts_codestream =
        |f: &[u8]| f.starts_with(&[0xFF, 0xD8]) || f.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]);
    let mut out: Vec<Vec<u8>> = Vec::new();
    for f in fragments {
        match out.last_mut() {
            Some(last) if !starts_codestream(f) => last.extend_from_slice(f),
            _ => out.push(f.clone()),
        }
    }
    if out.len() == n { Ok(out) } else { Err(fail()) }
}

/// Native frames decoded from any transfer syntax, little endian, with the
/// Photometric Interpretation they are in.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeFrames {
    /// One byte vector per requested frame: rows × columns × samples ×
    /// ⌈Bits Allocated / 8⌉ bytes, interleaved (Planar Configuration 0),
    /// 1-bit data packed LSB first.
    pub frames: Vec<Vec<u8>>,
    /// Photometric Interpretation of the bytes ("RGB" where the codec
    /// converted YBR).
    pub photometric: String,
}

/// The frames `numbers` (1-based) uncompressed: as stored for native
/// transfer syntaxes (little endian), decoded through
/// [`crate::decode_pixels`] for encapsulated ones.
///
/// # Errors
///
/// [`FrameError`]; [`FrameError::Decode`] when the codec fails or is not
/// built in (JPEG-LS without the `jpeg-ls` feature).
pub fn native_frames(
    object: &DefaultDicomObject,
    numbers: &[u32],
) -> Result<NativeFrames, FrameError> {
    let photometric = crate::pixels::code(object, tags::PHOTOMETRIC_INTERPRETATION)
        .unwrap_or_else(|| "MONOCHROME2".to_owned());
    if !is_encapsulated(object) {
        return Ok(NativeFrames {
            frames: stored_frames(object, numbers)?,
            photometric,
        });
    }
    check_numbers(numbers, frame_count(object))?;
    let decoded = crate::decode_pixels(object).map_err(FrameError::Decode)?;
    check_numbers(numbers, decoded.frames)?;
    let frames = numbers
        .iter()
        .map(|&n| {
            let range = decoded.frame_range(n).ok_or(FrameError::NoSuchFrame {
                requested: n,
                frames: decoded.frames,
            })?;
            Ok(samples_le(&decoded.samples, range, decoded.bits_allocated))
        })
        .collect::<Result<Vec<_>, FrameError>>()?;
    Ok(NativeFrames {
        frames,
        photometric: decoded.photometric,
    })
}

fn samples_le(samples: &Samples, range: std::ops::Range<usize>, bits_allocated: u16) -> Vec<u8> {
    match samples {
        Samples::U8(v) if bits_allocated == 1 => {
            let bits = &v[range];
            let mut out = vec![0u8; bits.len().div_ceil(8)];
            for (i, &b) in bits.iter().enumerate() {
                out[i / 8] |= (b & 1) << (i % 8);
            }
            out
        }
        Samples::U8(v) => v[range].to_vec(),
        Samples::U16(v) => v[range].iter().flat_map(|x| x.to_le_bytes()).collect(),
        Samples::I16(v) if bits_allocated == 8 => v[range].iter().map(|&x| x as u8).collect(),
        Samples::I16(v) => v[range].iter().flat_map(|x| x.to_le_bytes()).collect(),
        Samples::U32(v) => v[range].iter().flat_map(|x| x.to_le_bytes()).collect(),
        Samples::I32(v) => v[range].iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// The instance re-encoded in Explicit VR Little Endian (PS3.5 §A.2) as a
/// PS3.10 file: encapsulated pixel data decoded to native (OW when Bits
/// Allocated > 8, else OB; Planar Configuration 0; Photometric
/// Interpretation as decoded), every other element as read. An instance
/// already in Explicit VR Little Endian comes back unchanged by the caller,
/// not here.
///
/// # Errors
///
/// [`FrameError::Decode`] when the pixel data cannot be decoded,
/// [`FrameError::Write`] when the data set cannot be encoded.
pub fn transcode_to_explicit_le(object: &DefaultDicomObject) -> Result<Vec<u8>, FrameError> {
    let mut out = object.clone();
    if is_encapsulated(object) {
        let all: Vec<u32> = (1..=frame_count(object)).collect();
        let native = native_frames(object, &all)?;
        let bits_allocated = uint(object, tags::BITS_ALLOCATED).unwrap_or(8);
        let vr = if bits_allocated > 8 { VR::OW } else { VR::OB };
        let mut bytes = native.frames.concat();
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        out.put(DataElement::new(
            tags::PIXEL_DATA,
            vr,
            PrimitiveValue::from(bytes),
        ));
        out.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(native.photometric.as_str()),
        ));
        if uint(object, tags::SAMPLES_PER_PIXEL) == Some(3) {
            out.put(DataElement::new(
                tags::PLANAR_CONFIGURATION,
                VR::US,
                PrimitiveValue::from(0u16),
            ));
        }
    }
    out.meta_mut()
        .set_transfer_syntax(&dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN);
    let mut bytes = Vec::new();
    out.write_all(&mut bytes)
        .map_err(|e| FrameError::Write(Box::new(e)))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn media_types_follow_table_8_7_3_2() {
        assert_eq!(
            frame_media_type("1.2.840.10008.1.2.4.80"),
            Some("image/jls")
        );
        assert_eq!(
            frame_media_type("1.2.840.10008.1.2.4.90"),
            Some("image/jp2")
        );
        assert_eq!(
            frame_media_type("1.2.840.10008.1.2.4.50"),
            Some("image/jpeg")
        );
        assert_eq!(
            frame_media_type("1.2.840.10008.1.2.5"),
            Some("image/dicom-rle")
        );
        assert!(is_native("1.2.840.10008.1.2"));
        assert!(!is_native("1.2.840.10008.1.2.4.50"));
        assert_eq!(frame_media_type("1.2.3"), None);
    }

    #[test]
    fn fragments_group_by_offset_table_count_or_codestream_start() {
        let f = |b: &[u8]| b.to_vec();
        // Basic Offset Table: frame 1 = fragments 0 and 1, frame 2 = fragment 2.
        let frags = vec![f(&[0xFF, 0xD8, 1]), f(&[2, 3]), f(&[0xFF, 0xD8, 4])];
        let table = [0, 8 + 3 + 8 + 2];
        assert_eq!(
            split_fragments(&table, &frags, 2).unwrap(),
            vec![vec![0xFF, 0xD8, 1, 2, 3], vec![0xFF, 0xD8, 4]]
        );
        // No table: codestream starts.
        assert_eq!(
            split_fragments(&[], &frags, 2).unwrap(),
            vec![vec![0xFF, 0xD8, 1, 2, 3], vec![0xFF, 0xD8, 4]]
        );
        // One fragment per frame.
        assert_eq!(split_fragments(&[], &frags, 3).unwrap().len(), 3);
        assert!(matches!(
            split_fragments(&[], &frags, 4),
            Err(FrameError::FrameSplit { .. })
        ));
    }

    #[test]
    fn one_bit_frames_are_repacked_from_their_first_bit() {
        // Two 3-bit frames: 101 and 011 packed LSB first = 0b011_101.
        let bytes = [0b0001_1101u8];
        assert_eq!(slice_bits(&bytes, 0, 3).unwrap(), vec![0b101]);
        assert_eq!(slice_bits(&bytes, 3, 3).unwrap(), vec![0b011]);
        assert!(slice_bits(&bytes, 6, 3).is_none());
    }
}
