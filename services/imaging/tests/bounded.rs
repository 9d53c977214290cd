//! Issue #14, finding 1: a declared length larger than the bytes sent must
//! be refused before anything is allocated for it. The attack: an ordinary
//! 9.7 KB implicit VR MR file whose Patient Name (0010,0010) length field
//! says 0xFFFFFFF0 made the parser allocate and zero 4 GiB.
//!
//! Peak memory is measured with a counting global allocator, so this file
//! holds one test at a time per process (`--test-threads` does not matter:
//! every test here, measured or not, runs under one lock).
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

/// The documented bound on parsing (and indexing) a part of `len` bytes.
fn bound(len: usize) -> usize {
    let factor = usize::try_from(fusion_imaging::PARSE_MEMORY_FACTOR).unwrap();
    let allowance = usize::try_from(fusion_imaging::PARSE_MEMORY_ALLOWANCE).unwrap();
    factor * len + allowance
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
    let limit = bound(mutant.len());
    assert!(
        peak <= limit,
        "peak {peak} bytes over the bound {limit} for a {} byte part",
        mutant.len()
    );

    // The untouched file still parses, within the same bound.
    let (result, peak) = peak_of(|| stow_pipeline(&original));
    eprintln!("{file} untouched: peak {peak} bytes, {result:?}");
    result.unwrap();
    assert!(peak <= bound(original.len()));
}

#[test]
fn a_meta_element_longer_than_the_part_is_refused_before_allocation() {
    let _guard = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    // (0002,0001) OB with its 4-byte length, retagged as Private Information
    // (0002,0102), which dicom-rs' meta reader sizes by its length.
    let mut mutant = common::read("pydicom-3.0.2/test_files/MR_small_implicit.dcm");
    assert_eq!(&mutant[144..150], &[0x02, 0x00, 0x01, 0x00, b'O', b'B']);
    mutant[146..148].copy_from_slice(&0x0102u16.to_le_bytes());
    mutant[152..156].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let (result, peak) = peak_of(|| parse(&mutant).map(|_| ()).map_err(|e| e.to_string()));
    let err = result.unwrap_err();
    eprintln!("meta (0002,0102) length 0xFFFFFFF0: peak {peak} bytes: {err}");
    assert_eq!(
        err,
        format!(
            "element (0002,0102) declares a 4294967280 byte value but only {} bytes follow its header",
            mutant.len() - 156
        )
    );
    assert!(peak <= bound(mutant.len()), "peak {peak}");
}

/// An implicit VR little endian element (PS3.5 §7.1.3).
fn implicit(group: u16, element: u16, value: &[u8]) -> Vec<u8> {
    let mut out = group.to_le_bytes().to_vec();
    out.extend(element.to_le_bytes());
    out.extend(u32::try_from(value.len()).unwrap().to_le_bytes());
    out.extend(value);
    out
}

/// A bare implicit VR data set with the identifying UIDs and `depth`
/// Content Sequences (0040,A730) nested in each other, undefined lengths.
fn nested(depth: usize) -> Vec<u8> {
    let mut out = implicit(0x0008, 0x0016, b"1.2.840.10008.5.1.4.1.1.88.11\0");
    out.extend(implicit(0x0008, 0x0018, b"1.2.3.4.5.6.7.8.9\0"));
    out.extend(implicit(0x0020, 0x000D, b"1.2.3.4.5.6.7.8.10"));
    out.extend(implicit(0x0020, 0x000E, b"1.2.3.4.5.6.7.8.11"));
    let open = [
        0x40, 0x00, 0x30, 0xA7, 0xFF, 0xFF, 0xFF, 0xFF, // (0040,A730), undefined
        0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF, // item, undefined
    ];
    let close = [
        0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, // item delimitation
        0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0, // sequence delimitation
    ];
    for _ in 0..depth {
        out.extend(open);
    }
    out.extend(implicit(0x0040, 0xA010, b"CONTAINS"));
    for _ in 0..depth {
        out.extend(close);
    }
    out
}

#[test]
fn sequences_nest_to_a_fixed_depth_without_exhausting_the_stack() {
    // Not measured, but its allocations (a 100,000-level nesting) would
    // count in another test's peak if it ran alongside (CI run of stop 21).
    let _guard = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    // The stack of a blocking worker thread (tokio's default, 2 MiB).
    let run = |bytes: Vec<u8>| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || parse(&bytes).map(|_| ()).map_err(|e| e.to_string()))
            .unwrap()
            .join()
            .unwrap()
    };
    let limit = fusion_imaging::MAX_SEQUENCE_DEPTH;
    run(nested(limit)).expect("the deepest nesting allowed parses");
    for depth in [limit + 1, 100_000] {
        let err = run(nested(depth)).unwrap_err();
        assert_eq!(err, format!("sequences nest deeper than {limit} levels"));
    }
}

#[test]
fn a_deflated_data_set_inflates_to_a_bounded_multiple() {
    use std::io::Write;
    let _guard = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let file = common::read("pydicom-3.0.2/test_files/image_dfl.dcm");
    let meta_len = u32::from_le_bytes(file[140..144].try_into().unwrap()) as usize;
    let data_set_at = 144 + meta_len;
    let inflated_len = |bytes: &[u8]| {
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::DeflateDecoder::new(&bytes[data_set_at..]),
            &mut out,
        )
        .unwrap();
        out.len()
    };
    // The catalogue's own deflated file parses.
    parse(&file).unwrap();
    assert!(inflated_len(&file) < fusion_imaging::MAX_INFLATE_RATIO * (file.len() - data_set_at));

    // Its data set, followed by 64 MiB of trailing padding (FFFC,FFFC),
    // deflated: a bomb of about 70 KB.
    let plain = {
        let mut d = flate2::read::DeflateDecoder::new(&file[data_set_at..]);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut out).unwrap();
        out
    };
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&plain).unwrap();
    let pad = 64usize << 20;
    e.write_all(&[0xFC, 0xFF, 0xFC, 0xFF, b'O', b'B', 0, 0])
        .unwrap();
    e.write_all(&u32::try_from(pad).unwrap().to_le_bytes())
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..pad >> 20 {
        e.write_all(&zeros).unwrap();
    }
    let mut bomb = file[..data_set_at].to_vec();
    bomb.extend(e.finish().unwrap());
    let deflated = bomb.len() - data_set_at;
    drop(zeros);

    let (result, peak) = peak_of(|| parse(&bomb).map(|_| ()).map_err(|e| e.to_string()));
    let err = result.unwrap_err();
    eprintln!(
        "{} byte part inflating to {} bytes: peak {peak} bytes: {err}",
        bomb.len(),
        plain.len() + 12 + pad
    );
    let limit = deflated * fusion_imaging::MAX_INFLATE_RATIO;
    assert_eq!(
        err,
        format!(
            "the deflated data set inflates past {limit} bytes ({} × its size)",
            fusion_imaging::MAX_INFLATE_RATIO
        )
    );
    assert!(peak <= 2 * limit + (1 << 20), "peak {peak}");
}

/// The bare implicit VR data set of `nested(0)` followed by `body`.
fn with_body(body: &[u8]) -> Vec<u8> {
    let mut out = nested(0);
    let tail = implicit(0x0040, 0xA010, b"CONTAINS").len();
    out.truncate(out.len() - tail);
    out.extend(body);
    out
}

/// Data sets built to cost the most memory per byte in dicom-rs and the
/// index: empty elements, one-byte values, items of one element, long
/// numeric arrays of a QIDO attribute. Each either parses or is refused, and
/// the peak stays within the documented bound.
#[test]
fn data_sets_dense_in_elements_or_values_stay_within_the_bound() {
    let _guard = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let n = 256 << 10;
    let backslashes = |group, element| with_body(&implicit(group, element, &vec![b'\\'; n]));
    let repeated = |group, element, value: &[u8]| {
        with_body(&implicit(group, element, &value.repeat(n / value.len())))
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty private elements", {
            let mut body = Vec::new();
            for i in 0..n / 8 {
                let group = 0x0009 + 2 * u16::try_from(i / 0xFFFF).unwrap();
                let element = u16::try_from(i % 0xFFFF).unwrap() + 1;
                body.extend(implicit(group, element, b""));
            }
            with_body(&body)
        }),
        (
            "Study Description of backslashes",
            backslashes(0x0008, 0x1030),
        ),
        ("Modality of backslashes", backslashes(0x0008, 0x0060)),
        ("Window Center of backslashes", backslashes(0x0028, 0x1050)),
        ("Patient Name of backslashes", backslashes(0x0010, 0x0010)),
        (
            "Window Center of two-byte values",
            repeated(0x0028, 0x1050, b"0\\"),
        ),
        (
            "Modality of three-byte values",
            repeated(0x0008, 0x0060, b"MR\\"),
        ),
        (
            "Study Description of four-byte values",
            repeated(0x0008, 0x1030, b"abc\\"),
        ),
        (
            "Rows with 128 Ki values",
            with_body(&implicit(0x0028, 0x0010, &vec![1; n])),
        ),
        ("empty items", {
            let mut body = vec![0x08, 0x00, 0x15, 0x11, 0xFF, 0xFF, 0xFF, 0xFF];
            for _ in 0..n / 8 {
                body.extend([0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
            }
            body.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
            with_body(&body)
        }),
        ("items of one element", {
            let mut body = vec![0x08, 0x00, 0x15, 0x11, 0xFF, 0xFF, 0xFF, 0xFF];
            for _ in 0..n / 16 {
                body.extend([0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0]);
                body.extend(implicit(0x0008, 0x1150, b""));
            }
            body.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
            with_body(&body)
        }),
    ];
    let mut over = Vec::new();
    for (name, bytes) in &cases {
        let (result, peak) = peak_of(|| stow_pipeline(bytes));
        let bound = bound(bytes.len());
        eprintln!(
            "{name}: {} bytes, peak {peak} bytes ({:.1} ×), bound {bound}: {}",
            bytes.len(),
            peak as f64 / bytes.len() as f64,
            result.err().unwrap_or_else(|| "parsed".into())
        );
        if peak > bound {
            over.push(*name);
        }
    }
    assert!(over.is_empty(), "over the bound: {over:?}");
}

fn find(bytes: &[u8], needle: &[u8]) -> usize {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

/// Pixel attributes or codestream headers that claim more than the pixel
/// data holds are refused before any codec allocates for them.
#[test]
fn pixel_sizes_past_the_pixel_data_are_refused_before_decoding() {
    let _guard = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = "pydicom-3.0.2/test_files";
    let rows = |bytes: &mut Vec<u8>, value: u16| {
        let at = find(bytes, &[0x28, 0x00, 0x10, 0x00, b'U', b'S', 2, 0]) + 8;
        bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
    };
    let sof = |bytes: &mut Vec<u8>, marker: u8| {
        let pixel_data = find(bytes, &[0xE0, 0x7F, 0x10, 0x00]);
        let at = pixel_data + find(&bytes[pixel_data..], &[0xFF, marker]);
        bytes[at + 5..at + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    };
    let siz = |bytes: &mut Vec<u8>| {
        let at = find(bytes, &[0xFF, 0x4F, 0xFF, 0x51]);
        bytes[at + 8..at + 16].copy_from_slice(&[0, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, 0xFF]);
    };
    type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "MR_small.dcm",
            Box::new(move |b| rows(b, 0xFFFF)),
            "pixel data is truncated: 8192 bytes, 8388480 expected",
        ),
        (
            "MR_small_RLE.dcm",
            Box::new(move |b| rows(b, 0xFFFF)),
            "the pixel attributes call for 8388480 decoded bytes",
        ),
        (
            "JPGExtended.dcm",
            Box::new(move |b| sof(b, 0xC1)),
            "the JPEG header of frame 1 declares 65535 × 65535 × 1",
        ),
        (
            "SC_rgb_jpeg_dcmtk.dcm",
            Box::new(move |b| sof(b, 0xC0)),
            "the JPEG header of frame 1 declares 65535 × 65535 × 3",
        ),
        (
            "MR_small_jp2klossless.dcm",
            Box::new(siz),
            "the JPEG 2000 header of frame 1 declares 16777215 × 16777215 × 1",
        ),
    ];
    for (file, mutate, expected) in cases {
        let mut bytes = common::read(&format!("{dir}/{file}"));
        mutate(&mut bytes);
        let instance = parse(&bytes).unwrap();
        let (result, peak) = peak_of(|| decode_pixels(instance.object()).map(|_| ()));
        let err = result.unwrap_err().to_string();
        eprintln!("{file}: peak {peak} bytes: {err}");
        assert!(err.starts_with(expected), "{file}: {err}");
        assert!(peak <= 4 * bytes.len(), "{file}: peak {peak}");
    }
}
