//! Bounds checked before any codec allocates: the pixel data must be able
//! to hold what the attributes call for, and no codestream may declare a
//! larger image than they do.

use dicom_core::value::Value;
use dicom_object::InMemDicomObject;

use super::{
    DECODE_ALLOWANCE, Geometry, MAX_DECODE_RATIO, PixelError, RLE_LOSSLESS, RLE_MAX_RATIO,
};

/// Checks, before any codec allocates, that the pixel data can hold what
/// the attributes call for: native data has all its bytes (PS3.5 §8.1.1),
/// encapsulated data decodes to at most [`MAX_DECODE_RATIO`] times its
/// size or [`DECODE_ALLOWANCE`] (RLE: [`RLE_MAX_RATIO`] times), and no
/// frame's JPEG, JPEG-LS or
/// JPEG 2000 header declares a larger image than the attributes.
pub(super) fn check_sizes(
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
