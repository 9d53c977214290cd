//! The decoders of this crate's own, frame by frame: JPEG DCT where
//! `jpeg-decoder` refuses (12-bit) or would colour-transform (RGB), and RLE
//! Lossless of 32-bit samples, where dicom-rs' decoder stops at 16 bits.

use std::panic::catch_unwind;

use dicom_core::value::Value;
use dicom_object::InMemDicomObject;

use super::{Geometry, PixelError};
use crate::jpeg_dct;

/// native-endian results.
pub(super) fn decode_frames(
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

pub(super) type FrameResult = Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>;

/// One JPEG DCT frame to native-endian samples (8-bit: bytes; more: u16).
pub(super) fn dct_frame(data: &[u8], g: &Geometry) -> FrameResult {
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
pub(super) fn rle_frame(data: &[u8], g: &Geometry) -> FrameResult {
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
