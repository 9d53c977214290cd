//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`,
//! off in the service): the decoders this crate implements itself, called
//! on raw bytes without a DICOM object around them. Not a public API.

use crate::charset::{self, CharacterSets};
use crate::{jpeg_dct, pixels};

/// Decodes one 8- or 12-bit sequential DCT JPEG stream (`jpeg_dct`);
/// returns the number of samples.
///
/// # Errors
///
/// The decoder's error, as text.
pub fn jpeg_dct(data: &[u8]) -> Result<usize, String> {
    jpeg_dct::decode(data)
        .map(|image| {
            assert_eq!(
                image.data.len(),
                image.width * image.height * image.components,
                "decoded size matches the frame header"
            );
            image.data.len()
        })
        .map_err(|e| e.to_string())
}

/// Decodes one RLE Lossless frame (PS3.5 Annex G) of `rows` × `columns`
/// pixels, `samples_per_pixel` (1 or 3) samples of `bits_allocated` (8, 16
/// or 32) bits; returns the number of bytes.
///
/// # Errors
///
/// The decoder's error, as text.
pub fn rle_frame(
    data: &[u8],
    rows: u16,
    columns: u16,
    samples_per_pixel: u16,
    bits_allocated: u16,
) -> Result<usize, String> {
    pixels::fuzz_rle_frame(data, rows, columns, samples_per_pixel, bits_allocated)
}

/// Decodes `bytes` in the character sets `terms` (values of Specific
/// Character Set (0008,0005), ISO 2022 code extensions included).
pub fn charset_decode(bytes: &[u8], terms: &[&str], person_name: bool) -> String {
    charset::decode(bytes, &CharacterSets::from_values(terms), person_name)
}

/// The image size a JPEG, JPEG-LS or JPEG 2000 frame header declares:
/// (width, height, components).
pub fn codestream_header(data: &[u8]) -> Option<(u32, u32, u32)> {
    pixels::codestream_header(data).map(|h| (h.width, h.height, h.components))
}
