//! The `viewport` of a rendered resource (PS3.18 §8.3.5.1.3):
//! `viewport=vw,vh[,sx,sy,sw,sh]` names a source region of the image
//! (`sx`, `sy`: its top left corner, default 0, 0; `sw`, `sh`: its width
//! and height, default the rest of the image, a negative value flipping the
//! region along that axis) and the viewport it is scaled to, `vw` × `vh`
//! pixels, keeping its aspect ratio: the result is as large as fits in the
//! viewport.
//!
//! Resampling is bilinear at pixel centres, after a box filter when the
//! region shrinks by more than 2× (each output pixel then averages the
//! source pixels it covers), so a thumbnail does not alias.

use crate::render::RenderedFrame;

/// A parsed `viewport` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    /// Viewport width and height, pixels (at least 1).
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Source region: top left column and row (from 0), width and height
    /// (`None`: to the image's edge; negative: flipped).
    pub source: Option<(i64, i64, Option<i64>, Option<i64>)>,
}

/// Why a viewport cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewportError {
    /// Not `vw,vh[,sx,sy,sw,sh]` with whole numbers.
    #[error("viewport is vw,vh[,sx,sy,sw,sh] with whole numbers, vw and vh at least 1")]
    Malformed,
    /// A viewport larger than [`MAX_VIEWPORT`] on a side.
    #[error("a viewport side may be at most {MAX_VIEWPORT} pixels")]
    TooLarge,
    /// The source region is empty or reaches outside the image.
    #[error("the viewport's source region is empty or outside the image")]
    OutsideImage,
}

/// The largest viewport side, pixels: bounds the memory of one rendering
/// (4096 × 4096 × 3 bytes = 48 MiB).
pub const MAX_VIEWPORT: u32 = 4096;

impl Viewport {
    /// Parses `vw,vh[,sx,sy,sw,sh]`; `sw` and `sh` may be empty (to the
    /// edge).
    ///
    /// # Errors
    ///
    /// [`ViewportError::Malformed`] or [`ViewportError::TooLarge`].
    pub fn parse(value: &str) -> Result<Self, ViewportError> {
        let parts: Vec<&str> = value.split(',').map(str::trim).collect();
        let whole = |s: &str| s.parse::<i64>().map_err(|_| ViewportError::Malformed);
        let optional = |s: &str| {
            if s.is_empty() {
                Ok(None)
            } else {
                whole(s).map(Some)
            }
        };
        let (w, h) = match parts.as_slice() {
            [w, h] | [w, h, ..] => (whole(w)?, whole(h)?),
            _ => return Err(ViewportError::Malformed),
        };
        if w < 1 || h < 1 {
            return Err(ViewportError::Malformed);
        }
        if w > i64::from(MAX_VIEWPORT) || h > i64::from(MAX_VIEWPORT) {
            return Err(ViewportError::TooLarge);
        }
        let source = match parts.as_slice() {
            [_, _] => None,
            [_, _, sx, sy] => Some((
                optional(sx)?.unwrap_or(0),
                optional(sy)?.unwrap_or(0),
                None,
                None,
            )),
            [_, _, sx, sy, sw, sh] => Some((
                optional(sx)?.unwrap_or(0),
                optional(sy)?.unwrap_or(0),
                optional(sw)?,
                optional(sh)?,
            )),
            _ => return Err(ViewportError::Malformed),
        };
        Ok(Self {
            width: u32::try_from(w).map_err(|_| ViewportError::Malformed)?,
            height: u32::try_from(h).map_err(|_| ViewportError::Malformed)?,
            source,
        })
    }

    /// The frame's source region scaled into the viewport.
    ///
    /// # Errors
    ///
    /// [`ViewportError::OutsideImage`] when the region is empty or not
    /// inside the frame.
    pub fn apply(&self, frame: &RenderedFrame) -> Result<RenderedFrame, ViewportError> {
        let (cols, rows) = (i64::from(frame.columns), i64::from(frame.rows));
        let (sx, sy, sw, sh) = self.source.unwrap_or((0, 0, None, None));
        let sw = sw.unwrap_or(cols - sx);
        let sh = sh.unwrap_or(rows - sy);
        // A negative extent runs left (up) from sx (sy) and flips.
        let (x0, x1) = if sw < 0 { (sx + sw, sx) } else { (sx, sx + sw) };
        let (y0, y1) = if sh < 0 { (sy + sh, sy) } else { (sy, sy + sh) };
        if x0 < 0 || y0 < 0 || x1 > cols || y1 > rows || x1 <= x0 || y1 <= y0 {
            return Err(ViewportError::OutsideImage);
        }
        let (rw, rh) = ((x1 - x0) as f64, (y1 - y0) as f64);
        let scale = (f64::from(self.width) / rw).min(f64::from(self.height) / rh);
        let out_w = ((rw * scale).round() as u32).clamp(1, self.width);
        let out_h = ((rh * scale).round() as u32).clamp(1, self.height);
        let ch = usize::from(frame.channels);
        let mut data = Vec::with_capacity(out_w as usize * out_h as usize * ch);
        let (step_x, step_y) = (rw / f64::from(out_w), rh / f64::from(out_h));
        let sample = |x: f64, y: f64, c: usize| -> f64 {
            // Bilinear at source coordinates (pixel centres at +0.5).
            let fx = (x - 0.5).clamp(0.0, (cols - 1) as f64);
            let fy = (y - 0.5).clamp(0.0, (rows - 1) as f64);
            let (ix, iy) = (fx.floor() as usize, fy.floor() as usize);
            let (ix1, iy1) = (
                (ix + 1).min(frame.columns as usize - 1),
                (iy + 1).min(frame.rows as usize - 1),
            );
            let (ax, ay) = (fx - ix as f64, fy - iy as f64);
            let at = |px: usize, py: usize| {
                f64::from(frame.data[(py * frame.columns as usize + px) * ch + c])
            };
            let top = at(ix, iy) * (1.0 - ax) + at(ix1, iy) * ax;
            let bottom = at(ix, iy1) * (1.0 - ax) + at(ix1, iy1) * ax;
            top * (1.0 - ay) + bottom * ay
        };
        // Box filter taps per output pixel when shrinking past 2×.
        let taps_x = (step_x / 2.0).ceil().max(1.0) as usize;
        let taps_y = (step_y / 2.0).ceil().max(1.0) as usize;
        for oy in 0..out_h {
            for ox in 0..out_w {
                for c in 0..ch {
                    let mut sum = 0.0;
                    for ty in 0..taps_y {
                        for tx in 0..taps_x {
                            let u = (f64::from(ox) + (tx as f64 + 0.5) / taps_x as f64) * step_x;
                            let v = (f64::from(oy) + (ty as f64 + 0.5) / taps_y as f64) * step_y;
                            let x = if sw < 0 { x1 as f64 - u } else { x0 as f64 + u };
                            let y = if sh < 0 { y1 as f64 - v } else { y0 as f64 + v };
                            sum += sample(x, y, c);
                        }
                    }
                    let v = sum / (taps_x * taps_y) as f64;
                    data.push(v.round().clamp(0.0, 255.0) as u8);
                }
            }
        }
        Ok(RenderedFrame {
            rows: out_h,
            columns: out_w,
            channels: frame.channels,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ramp(columns: u32, rows: u32) -> RenderedFrame {
        RenderedFrame {
            rows,
            columns,
            channels: 1,
            data: (0..rows * columns).map(|i| (i % columns) as u8).collect(),
        }
    }

    #[test]
    fn the_image_fits_the_viewport_keeping_its_aspect_ratio() {
        let out = Viewport::parse("64,64")
            .unwrap()
            .apply(&ramp(128, 64))
            .unwrap();
        assert_eq!((out.columns, out.rows), (64, 32));
        // A horizontal ramp 0..127 halved: about 2 per column.
        assert!(
            (i32::from(out.data[10]) - 21).abs() <= 1,
            "{}",
            out.data[10]
        );
        let out = Viewport::parse("256,512")
            .unwrap()
            .apply(&ramp(128, 64))
            .unwrap();
        assert_eq!((out.columns, out.rows), (256, 128));
    }

    #[test]
    fn a_source_region_is_cropped_and_a_negative_width_flips() {
        let out = Viewport::parse("10,10,20,0,10,10")
            .unwrap()
            .apply(&ramp(64, 64))
            .unwrap();
        assert_eq!((out.columns, out.rows), (10, 10));
        assert_eq!(&out.data[..3], &[20, 21, 22]);
        let out = Viewport::parse("10,10,30,0,-10,10")
            .unwrap()
            .apply(&ramp(64, 64))
            .unwrap();
        assert_eq!(&out.data[..3], &[29, 28, 27]);
    }

    #[test]
    fn bad_viewports_are_refused() {
        assert_eq!(Viewport::parse("0,10"), Err(ViewportError::Malformed));
        assert_eq!(Viewport::parse("10"), Err(ViewportError::Malformed));
        assert_eq!(Viewport::parse("10,a"), Err(ViewportError::Malformed));
        assert_eq!(Viewport::parse("99999,10"), Err(ViewportError::TooLarge));
        let v = Viewport::parse("10,10,60,60,10,10").unwrap();
        assert_eq!(v.apply(&ramp(64, 64)), Err(ViewportError::OutsideImage));
    }
}
