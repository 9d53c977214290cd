//! Frames and transcoding on the catalogue's files (PS3.18 §10.4.1.1.4,
//! §8.7.3.5.2; PS3.5 §A.2, §A.4): a lossless JPEG 2000 instance transcodes to
//! Explicit VR Little Endian with the same pixels as the native original.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dicom_dictionary_std::tags;

const MR: &str = "pydicom-3.0.2/test_files/MR_small.dcm";
const MR_J2K: &str = "pydicom-3.0.2/test_files/MR_small_jp2klossless.dcm";

#[test]
fn lossless_jpeg_2000_transcodes_to_the_native_pixels() {
    let native = fusion_imaging::read(&common::read(MR)).unwrap();
    let j2k = fusion_imaging::read(&common::read(MR_J2K)).unwrap();
    let out = fusion_imaging::transcode_to_explicit_le(&j2k).unwrap();
    let back = fusion_imaging::read(&out).unwrap();
    assert_eq!(
        back.meta().transfer_syntax(),
        fusion_imaging::EXPLICIT_VR_LITTLE_ENDIAN
    );
    let pixels = |o: &dicom_object::DefaultDicomObject| {
        fusion_imaging::frames::element_le_bytes(o, tags::PIXEL_DATA).unwrap()
    };
    assert_eq!(pixels(&back), pixels(&native));
    let frames = fusion_imaging::native_frames(&j2k, &[1]).unwrap();
    assert_eq!(frames.frames, vec![pixels(&native)]);
}
