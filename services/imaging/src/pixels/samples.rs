//! Decoded bytes to typed stored values: Bits Stored masking, sign
//! extension, YBR to RGB, YBR_FULL_422 expansion and planar interleaving.

use super::{Geometry, PixelError, Samples};

/// YBR_FULL to RGB in place, PS3.3 §C.7.6.3.1.2, rounded as pydicom does.
pub(super) fn ybr_full_to_rgb(values: &mut [u8]) {
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
pub(super) fn to_samples(
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
