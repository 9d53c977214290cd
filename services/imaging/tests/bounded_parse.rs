//! Issue #14, finding 1: a declared length larger than the bytes sent must
//! be refused before anything is allocated for it. The attack: an ordinary
//! 9.7 KB implicit VR MR file whose Patient Name (0010,0010) length field
//! says 0xFFFFFFF0 made the parser allocate and zero 4 GiB.
//!
//! Peak memory is measured with a counting global allocator, so this file
//! holds one test at a time per process (`--test-threads` does not matter:
//! the tests here run one after another under a lock).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Mutex;

use fusion_imaging::{decode_pixels, index_attributes, parse};
use peak_alloc::PeakAlloc;

#[global_allocator]
static PEAK: PeakAlloc = PeakAlloc;

/// Serialises the measured tests: the allocator counts the whole process.
static MEASURE: Mutex<()> = Mutex::new(());

/// Bytes allocated at the peak of `f`, above what was allocated before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    PEAK.reset_peak_usage();
    let before = PEAK.current_usage();
    let out = f();
    (out, PEAK.peak_usage().saturating_sub(before))
}

/// What STOW-RS does with a part: parse, index, decode the pixels.
fn stow_pipeline(bytes: &[u8]) -> Result<(), String> {
    let instance = parse(bytes).map_err(|e| e.to_string())?;
    let _ = index_attributes(&instance);
    let _ = decode_pixels(instance.object());
    Ok(())
}

/// Offset of the first data element with `tag` in an implicit VR little
/// endian data set, searched after the file meta group.
fn implicit_element(bytes: &[u8], group: u16, element: u16) -> usize {
    let meta_len = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    let start = 144 + meta_len;
    let mut needle = group.to_le_bytes().to_vec();
    needle.extend(element.to_le_bytes());
    start
        + bytes[start..]
            .windows(4)
            .position(|w| w == needle.as_slice())
            .expect("element present")
}

#[test]
fn patient_name_length_past_the_end_is_refused_in_bounded_memory() {
    let _guard = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let file = "pydicom-3.0.2/test_files/MR_small_implicit.dcm";
    let original = common::read(file);
    assert_eq!(original.len(), 9702);
    let at = implicit_element(&original, 0x0010, 0x0010);
    let mut mutant = original.clone();
    mutant[at + 4..at + 8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let available = mutant.len() - (at + 8);

    let (result, peak) = peak_of(|| stow_pipeline(&mutant));
    eprintln!(
        "{file} with (0010,0010) length 0xFFFFFFF0: {} bytes, peak {peak} bytes ({:.1} × the part), {result:?}",
        mutant.len(),
        peak as f64 / mutant.len() as f64
    );
    let message = result.expect_err("a length past the end is refused");
    assert!(
        message.contains("(0010,0010)")
            && message.contains("4294967280")
            && message.contains(&available.to_string()),
        "the error names the element, the declared and the available bytes: {message}"
    );
    let err = parse(&mutant).unwrap_err();
    assert_eq!(err.failure_reason().code(), 0xC000, "{err}");
    let bound = 64 * mutant.len() + (1 << 20);
    assert!(
        peak <= bound,
        "peak {peak} bytes over the bound {bound} for a {} byte part",
        mutant.len()
    );

    // The untouched file still parses, within the same bound.
    let (result, peak) = peak_of(|| stow_pipeline(&original));
    eprintln!("{file} untouched: peak {peak} bytes, {result:?}");
    result.unwrap();
    assert!(peak <= 64 * original.len() + (1 << 20));
}
