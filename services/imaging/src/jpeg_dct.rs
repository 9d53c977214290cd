//! A decoder for sequential DCT JPEG with Huffman coding at 8 or 12 bits of
//! sample precision (ISO/IEC 10918-1 processes 1, 2 and 4, Annex F): the
//! JPEG Baseline and JPEG Extended transfer syntaxes 1.2.840.10008.1.2.4.50
//! and .51 (PS3.5 §A.4.1).
//!
//! dicom-rs decodes JPEG through the `jpeg-decoder` crate, which refuses
//! 12-bit DCT data and applies a YCbCr→RGB transform to 3-component data
//! that DICOM labels RGB; no maintained pure-Rust crate decodes 12-bit DCT and
//! the C libraries that do (libjpeg-turbo ≥ 3, GDCM) would need a vendored C
//! build and `unsafe` bindings. The process is small enough to implement
//! here. Components are returned as stored, with no colour transform, which
//! is what Photometric Interpretation RGB means (PS3.5 §8.2.1).

use std::f32::consts::PI;

/// Why a JPEG stream could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum DctError {
    /// The stream ended inside a marker segment.
    #[error("JPEG stream truncated")]
    Truncated,
    /// No SOI marker at the start.
    #[error("not a JPEG stream (no SOI marker)")]
    NoSoi,
    /// A marker segment is malformed.
    #[error("malformed JPEG {0} segment")]
    Malformed(&'static str),
    /// A coding process other than sequential DCT with Huffman coding.
    #[error("unsupported JPEG coding process (SOF{0})")]
    UnsupportedProcess(u8),
    /// A Huffman code that is not in the table.
    #[error("invalid Huffman code in JPEG scan")]
    BadHuffmanCode,
    /// A scan or table referenced before it was defined.
    #[error("JPEG scan references an undefined {0}")]
    Undefined(&'static str),
    /// The frame header declares more 8 × 8 blocks than the stream could
    /// code (each takes at least two bits).
    #[error("JPEG frame of {blocks} blocks is larger than the stream can code")]
    TooLarge {
        /// Blocks the frame header calls for.
        blocks: usize,
    },
    /// The entropy-coded data ended before all blocks were decoded.
    #[error("JPEG entropy-coded data ends early")]
    PrematureEnd,
}

/// A decoded image: samples interleaved, `[height, width, components]`.
#[derive(Debug)]
pub(crate) struct DctImage {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) components: usize,
    pub(crate) data: Vec<u16>,
}

/// The sample precision P of the first SOF marker, if the stream has one.
pub(crate) fn sof_precision(data: &[u8]) -> Option<u8> {
    let mut i = 2;
    while i + 4 < data.len() {
        if data[i] != 0xFF {
            return None;
        }
        let marker = data[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            return data.get(i + 4).copied();
        }
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        i += 2 + len;
    }
    None
}

const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// A Huffman table in the form of ISO/IEC 10918-1 §F.2.2.3.
#[derive(Debug, Clone, Default)]
struct Huffman {
    mincode: [i32; 17],
    maxcode: [i32; 17],
    valptr: [usize; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], values: Vec<u8>) -> Self {
        let mut t = Huffman {
            values,
            maxcode: [-1; 17],
            ..Default::default()
        };
        let mut code = 0i32;
        let mut k = 0usize;
        for len in 1..=16 {
            let n = usize::from(counts[len - 1]);
            t.valptr[len] = k;
            t.mincode[len] = code;
            code += i32::try_from(n).unwrap_or(0);
            k += n;
            t.maxcode[len] = if n > 0 { code - 1 } else { -1 };
            code <<= 1;
        }
        t
    }

    fn decode(&self, bits: &mut BitReader<'_>) -> Result<u8, DctError> {
        let mut code = 0i32;
        for len in 1..=16 {
            code = (code << 1) | bits.bit();
            if self.maxcode[len] >= code && code >= self.mincode[len] {
                let idx = self.valptr[len] + usize::try_from(code - self.mincode[len]).unwrap_or(0);
                return self
                    .values
                    .get(idx)
                    .copied()
                    .ok_or(DctError::BadHuffmanCode);
            }
        }
        Err(DctError::BadHuffmanCode)
    }
}

/// Reads entropy-coded bits, removing stuffed zero bytes; at a marker it
/// feeds zeros (F.2.2.5), as decoders conventionally do for damaged data.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u32,
    count: u32,
    /// Whether zeros had to be fed for missing data.
    starved: bool,
}

impl<'a> BitReader<'a> {
    fn bit(&mut self) -> i32 {
        if self.count == 0 {
            let byte = match self.data.get(self.pos) {
                Some(0xFF) if self.data.get(self.pos + 1) == Some(&0x00) => {
                    self.pos += 2;
                    0xFF
                }
                Some(0xFF) | None => {
                    self.starved = true;
                    0
                }
                Some(&b) => {
                    self.pos += 1;
                    b
                }
            };
            self.acc = u32::from(byte);
            self.count = 8;
        }
        self.count -= 1;
        i32::from((self.acc >> self.count) & 1 == 1)
    }

    fn bits(&mut self, n: u8) -> i32 {
        (0..n).fold(0, |v, _| (v << 1) | self.bit())
    }

    /// Skips to the next RSTn marker after a restart interval.
    fn restart(&mut self) {
        self.count = 0;
        while self.pos + 1 < self.data.len() {
            if self.data[self.pos] == 0xFF && (0xD0..=0xD7).contains(&self.data[self.pos + 1]) {
                self.pos += 2;
                return;
            }
            self.pos += 1;
        }
    }
}

/// EXTEND of §F.2.2.1: the signed value of an `s`-bit magnitude category.
fn extend(v: i32, s: u8) -> i32 {
    if s == 0 {
        0
    } else if v < (1 << (s - 1)) {
        v - (1 << s) + 1
    } else {
        v
    }
}

#[derive(Debug, Clone)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Blocks across and down, padded to whole MCUs.
    bw: usize,
    bh: usize,
    coefs: Vec<i32>,
}

fn be16(data: &[u8], at: usize) -> Result<usize, DctError> {
    match data.get(at..at + 2) {
        Some(b) => Ok(usize::from(u16::from_be_bytes([b[0], b[1]]))),
        None => Err(DctError::Truncated),
    }
}

/// Decodes one JPEG stream (one frame of the DICOM pixel data).
pub(crate) fn decode(data: &[u8]) -> Result<DctImage, DctError> {
    if data.get(0..2) != Some(&[0xFF, 0xD8]) {
        return Err(DctError::NoSoi);
    }
    let mut qt = [[0u16; 64]; 4];
    let mut dc: [Option<Huffman>; 4] = Default::default();
    let mut ac: [Option<Huffman>; 4] = Default::default();
    let mut comps: Vec<Component> = Vec::new();
    let (mut width, mut height, mut precision) = (0usize, 0usize, 8u8);
    let mut restart_interval = 0usize;
    let mut i = 2;
    loop {
        // Markers may be preceded by fill bytes 0xFF (B.1.1.2).
        while data.get(i) == Some(&0xFF) && data.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if data.get(i) != Some(&0xFF) {
            return Err(DctError::Truncated);
        }
        let marker = *data.get(i + 1).ok_or(DctError::Truncated)?;
        i += 2;
        if marker == 0xD9 {
            break;
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            continue;
        }
        let len = be16(data, i)?;
        let seg = data.get(i + 2..i + len).ok_or(DctError::Truncated)?;
        match marker {
            0xDB => read_dqt(seg, &mut qt)?,
            0xC4 => read_dht(seg, &mut dc, &mut ac)?,
            0xC0 | 0xC1 => {
                precision = *seg.first().ok_or(DctError::Malformed("SOF"))?;
                height = be16(seg, 1)?;
                width = be16(seg, 3)?;
                let n = usize::from(*seg.get(5).ok_or(DctError::Malformed("SOF"))?);
                if width == 0 || height == 0 || n == 0 || seg.len() < 6 + 3 * n {
                    return Err(DctError::Malformed("SOF"));
                }
                for c in seg[6..6 + 3 * n].chunks_exact(3) {
                    let (h, v) = (usize::from(c[1] >> 4), usize::from(c[1] & 15));
                    if !(1..=4).contains(&h) || !(1..=4).contains(&v) || c[2] > 3 {
                        return Err(DctError::Malformed("SOF"));
                    }
                    comps.push(Component {
                        id: c[0],
                        h,
                        v,
                        tq: usize::from(c[2]),
                        bw: 0,
                        bh: 0,
                        coefs: Vec::new(),
                    });
                }
                let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
                let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
                let mcux = width.div_ceil(8 * hmax);
                let mcuy = height.div_ceil(8 * vmax);
                // A coded block takes at least two bits (a DC code and an
                // end-of-block code): a frame larger than the stream can
                // code is refused before its coefficients are allocated.
                let blocks: usize = comps.iter().map(|c| mcux * c.h * mcuy * c.v).sum();
                if blocks > 4 * data.len() {
                    return Err(DctError::TooLarge { blocks });
                }
                for c in &mut comps {
                    c.bw = mcux * c.h;
                    c.bh = mcuy * c.v;
                    c.coefs = vec![0; c.bw * c.bh * 64];
                }
            }
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(DctError::UnsupportedProcess(marker - 0xC0));
            }
            0xDD => restart_interval = be16(seg, 0)?,
            0xDA => {
                let end = decode_scan(
                    seg,
                    &data[i + len..],
                    &mut comps,
                    (&dc, &ac),
                    restart_interval,
                    (width, height),
                )?;
                i += len + end;
                continue;
            }
            _ => {}
        }
        i += len;
    }
    if comps.is_empty() {
        return Err(DctError::Undefined("frame header"));
    }
    Ok(reconstruct(&comps, &qt, width, height, precision))
}

fn read_dqt(mut seg: &[u8], qt: &mut [[u16; 64]; 4]) -> Result<(), DctError> {
    while let Some(&pq_tq) = seg.first() {
        let (pq, tq) = (pq_tq >> 4, usize::from(pq_tq & 15));
        let size = if pq == 0 { 64 } else { 128 };
        let body = seg.get(1..1 + size).ok_or(DctError::Malformed("DQT"))?;
        let table = qt.get_mut(tq).ok_or(DctError::Malformed("DQT"))?;
        for (k, q) in table.iter_mut().enumerate() {
            *q = if pq == 0 {
                u16::from(body[k])
            } else {
                u16::from_be_bytes([body[2 * k], body[2 * k + 1]])
            };
        }
        seg = &seg[1 + size..];
    }
    Ok(())
}

type Tables = [Option<Huffman>; 4];

fn read_dht(mut seg: &[u8], dc: &mut Tables, ac: &mut Tables) -> Result<(), DctError> {
    while let Some(&tc_th) = seg.first() {
        let counts: [u8; 16] = seg
            .get(1..17)
            .and_then(|c| c.try_into().ok())
            .ok_or(DctError::Malformed("DHT"))?;
        let total: usize = counts.iter().map(|&n| usize::from(n)).sum();
        let values = seg.get(17..17 + total).ok_or(DctError::Malformed("DHT"))?;
        let table = Huffman::new(&counts, values.to_vec());
        let slot = usize::from(tc_th & 15);
        let set = if tc_th >> 4 == 0 { &mut *dc } else { &mut *ac };
        *set.get_mut(slot).ok_or(DctError::Malformed("DHT"))? = Some(table);
        seg = &seg[17 + total..];
    }
    Ok(())
}

/// Decodes the entropy-coded segment after an SOS header; returns how many
/// bytes of `rest` it used.
fn decode_scan(
    header: &[u8],
    rest: &[u8],
    comps: &mut [Component],
    (dc, ac): (&Tables, &Tables),
    restart_interval: usize,
    (width, height): (usize, usize),
) -> Result<usize, DctError> {
    let ns = usize::from(*header.first().ok_or(DctError::Malformed("SOS"))?);
    let mut scan: Vec<(usize, &Huffman, &Huffman)> = Vec::new();
    for s in header
        .get(1..1 + 2 * ns)
        .ok_or(DctError::Malformed("SOS"))?
        .chunks_exact(2)
    {
        let ci = comps
            .iter()
            .position(|c| c.id == s[0])
            .ok_or(DctError::Undefined("component"))?;
        let d = dc[usize::from(s[1] >> 4) & 3]
            .as_ref()
            .ok_or(DctError::Undefined("DC table"))?;
        let a = ac[usize::from(s[1] & 15) & 3]
            .as_ref()
            .ok_or(DctError::Undefined("AC table"))?;
        scan.push((ci, d, a));
    }
    // Sequential DCT scans cover the whole spectrum: Ss = 0, Se = 63,
    // Ah = Al = 0 (ISO/IEC 10918-1 §B.2.3).
    if header.get(1 + 2 * ns..4 + 2 * ns) != Some(&[0, 63, 0]) {
        return Err(DctError::Malformed("SOS (spectral selection)"));
    }
    let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
    let mut bits = BitReader {
        data: rest,
        pos: 0,
        acc: 0,
        count: 0,
        starved: false,
    };
    let mut pred = vec![0i32; comps.len()];
    let block = |bits: &mut BitReader<'_>,
                 pred: &mut [i32],
                 ci: usize,
                 d: &Huffman,
                 a: &Huffman,
                 bx: usize,
                 by: usize,
                 comps: &mut [Component]|
     -> Result<(), DctError> {
        let c = &mut comps[ci];
        let base = (by * c.bw + bx) * 64;
        let Some(out) = c.coefs.get_mut(base..base + 64) else {
            return Ok(());
        };
        let t = d.decode(bits)?;
        // DC difference categories stop at 11 (8-bit) and 15 (12-bit),
        // ISO/IEC 10918-1 Table F.1; a damaged table may hold any byte.
        if t > 15 {
            return Err(DctError::Malformed("scan (DC difference category)"));
        }
        // Wrapping: damaged data may add differences past i32.
        pred[ci] = pred[ci].wrapping_add(extend(bits.bits(t), t));
        out[0] = pred[ci];
        let mut k = 1;
        while k < 64 {
            let rs = a.decode(bits)?;
            let (r, s) = (usize::from(rs >> 4), rs & 15);
            if s == 0 {
                if r != 15 {
                    break;
                }
                k += 16;
                continue;
            }
            k += r;
            if k > 63 {
                return Err(DctError::Malformed("scan (coefficient past 63)"));
            }
            out[ZIGZAG[k]] = extend(bits.bits(s), s);
            k += 1;
        }
        Ok(())
    };
    let mut mcu_count = 0usize;
    let mut restart_check = |bits: &mut BitReader<'_>, pred: &mut [i32]| {
        if restart_interval > 0 && mcu_count > 0 && mcu_count.is_multiple_of(restart_interval) {
            bits.restart();
            pred.iter_mut().for_each(|p| *p = 0);
        }
        mcu_count += 1;
    };
    if scan.len() == 1 {
        // Non-interleaved: only the blocks covering the component's own size.
        let (ci, d, a) = scan[0];
        let c = &comps[ci];
        let bw = (width * c.h).div_ceil(hmax).div_ceil(8);
        let bh = (height * c.v).div_ceil(vmax).div_ceil(8);
        for by in 0..bh {
            for bx in 0..bw {
                restart_check(&mut bits, &mut pred);
                block(&mut bits, &mut pred, ci, d, a, bx, by, comps)?;
            }
        }
    } else {
        let mcux = width.div_ceil(8 * hmax);
        let mcuy = height.div_ceil(8 * vmax);
        for my in 0..mcuy {
            for mx in 0..mcux {
                restart_check(&mut bits, &mut pred);
                for &(ci, d, a) in &scan {
                    let (h, v) = (comps[ci].h, comps[ci].v);
                    for y in 0..v {
                        for x in 0..h {
                            block(
                                &mut bits,
                                &mut pred,
                                ci,
                                d,
                                a,
                                mx * h + x,
                                my * v + y,
                                comps,
                            )?;
                        }
                    }
                }
            }
        }
    }
    if bits.starved {
        return Err(DctError::PrematureEnd);
    }
    // Continue after the entropy-coded data: the next marker that is not RSTn.
    let mut end = bits.pos;
    while end + 1 < rest.len() {
        if rest[end] == 0xFF && rest[end + 1] != 0x00 && !(0xD0..=0xD7).contains(&rest[end + 1]) {
            return Ok(end);
        }
        end += 1;
    }
    Ok(rest.len())
}

/// Dequantises, applies the inverse DCT (A.3.3), level-shifts and clamps to
/// the sample range, and upsamples subsampled components.
fn reconstruct(
    comps: &[Component],
    qt: &[[u16; 64]; 4],
    width: usize,
    height: usize,
    precision: u8,
) -> DctImage {
    let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
    let shift = f32::from(1u16 << (precision.clamp(2, 16) - 1));
    let max = f32::from(u16::try_from((1u32 << precision.clamp(2, 16)) - 1).unwrap_or(u16::MAX));
    // cos table: COS[x][u] = C(u) cos((2x+1)uπ/16) / 2
    let mut cos = [[0f32; 8]; 8];
    for (x, row) in cos.iter_mut().enumerate() {
        for (u, v) in row.iter_mut().enumerate() {
            let cu = if u == 0 { 1.0 / 2f32.sqrt() } else { 1.0 };
            *v = cu * ((2 * x + 1) as f32 * u as f32 * PI / 16.0).cos() / 2.0;
        }
    }
    let n = comps.len();
    let mut data = vec![0u16; width * height * n];
    for (ci, c) in comps.iter().enumerate() {
        let q = &qt[c.tq];
        let plane_w = c.bw * 8;
        let mut plane = vec![0u16; plane_w * c.bh * 8];
        for by in 0..c.bh {
            for bx in 0..c.bw {
                let base = (by * c.bw + bx) * 64;
                let mut f = [0f32; 64];
                for k in 0..64 {
                    // q is in zig-zag order, coefficients in natural order.
                    f[ZIGZAG[k]] = c.coefs[base + ZIGZAG[k]] as f32 * f32::from(q[k]);
                }
                // Rows then columns.
                let mut tmp = [0f32; 64];
                for v in 0..8 {
                    for x in 0..8 {
                        tmp[v * 8 + x] = (0..8).map(|u| cos[x][u] * f[v * 8 + u]).sum();
                    }
                }
                for y in 0..8 {
                    for x in 0..8 {
                        let s: f32 = (0..8).map(|v| cos[y][v] * tmp[v * 8 + x]).sum();
                        let s = (s + shift).round().clamp(0.0, max);
                        plane[(by * 8 + y) * plane_w + bx * 8 + x] = s as u16;
                    }
                }
            }
        }
        for y in 0..height {
            let sy = y * c.v / vmax;
            for x in 0..width {
                let sx = x * c.h / hmax;
                data[(y * width + x) * n + ci] = plane[sy * plane_w + sx];
            }
        }
    }
    DctImage {
        width,
        height,
        components: n,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_larger_than_the_stream_can_code_is_refused_before_allocation() {
        // SOI, SOF1 (12-bit, 65535 × 65535, one component), EOI.
        let stream = [
            0xFF, 0xD8, 0xFF, 0xC1, 0x00, 0x0B, 12, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0x11, 0, 0xFF,
            0xD9,
        ];
        assert_eq!(
            decode(&stream).unwrap_err(),
            DctError::TooLarge {
                blocks: 8192 * 8192
            }
        );
    }
}
