//! DICOM handling for the fusion service: parse and validate what a PACS sends
//! over STOW-RS, extract the index attributes and DICOM JSON, decode pixel
//! data for every transfer syntax the service accepts, and render frames for
//! WADO-RS `/rendered` and the image model.
//!
//! Everything here is synchronous CPU work except the STOW-RS multipart reader;
//! callers run the rest in `spawn_blocking`. No error message carries patient
//! data: they name the step and the attribute that failed, never a value.
//!
//! The modules, in the order data flows through them:
//!
//! - [`parse`]: bytes → [`DicomInstance`] (PS3.10 file format, PS3.5 encodings),
//!   every declared length checked against the bytes present and memory
//!   bounded at [`PARSE_MEMORY_FACTOR`] × the part (issue #14).
//! - [`index`]: [`DicomInstance`] → [`InstanceAttributes`] and DICOM JSON (PS3.18 §F.2).
//! - [`pixels`]: a parsed object → [`PixelArray`] `[frames, rows, columns, samples]`.
//! - [`render`]: [`PixelArray`] → 8-bit grey or RGB frame, PNG or JPEG, or f32
//!   modality values; [`palette`] expands segmented palettes (PS3.3 §C.7.9)
//!   and [`viewport`] crops and scales for `viewport=` (PS3.18 §8.3.5.1.3).
//! - [`frames`]: frames as stored or decoded, media types of transfer
//!   syntaxes, transcoding to Explicit VR Little Endian (PS3.18 §8.7.3, §10.4).
//! - [`stow`]: STOW-RS multipart reading and the response body (PS3.18 §10.5).
//! - [`search_keys`]: the attributes QIDO-RS searches by, keyword ↔ tag
//!   through the PS3.6 data dictionary (PS3.18 §10.6.1.2).

#![forbid(unsafe_code)]

mod bounds;
mod charset;
pub mod frames;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
pub mod index;
mod jpeg_dct;
pub mod palette;
pub mod parse;
pub mod pixels;
pub mod render;
pub mod search_keys;
pub mod stow;
pub mod viewport;

pub use bounds::{
    ELEMENT_COST, INDEX_VALUE_COST, ITEM_COST, MAX_INFLATE_RATIO, MAX_SEQUENCE_DEPTH,
    PARSE_MEMORY_ALLOWANCE, PARSE_MEMORY_FACTOR, STRING_VALUE_COST,
};
pub use frames::{
    EXPLICIT_VR_LITTLE_ENDIAN, FrameError, NativeFrames, frame_media_type, is_native,
    native_frames, stored_frames, transcode_to_explicit_le,
};
pub use fusion_schemas::{FrameValues, InstanceAttributes};
pub use index::{IndexError, index_attributes, metadata_json, qido_json};
pub use parse::{DicomInstance, ParseError, parse, read, sop_uids};
pub use pixels::{
    DECODE_ALLOWANCE, MAX_DECODE_RATIO, PixelArray, PixelError, RLE_MAX_RATIO, Samples,
    decode_pixels,
};
pub use render::{
    RenderError, RenderOptions, RenderedFrame, Window, modality_values, render_frame,
};
pub use search_keys::{
    SEARCH_KEYWORDS, include_field_tag, search_key_tag, search_keyword_of, tag_key,
};
pub use stow::{
    DEFAULT_MAX_PART_BYTES, DEFAULT_MAX_TOTAL_BYTES, FailureReason, StowError, StowLimits,
    StowPart, StowReader, StowResponse, WarningReason,
};
pub use viewport::{MAX_VIEWPORT, Viewport, ViewportError};
