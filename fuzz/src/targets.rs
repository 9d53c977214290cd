//! The fuzz targets: one function per parser or decoder of ours, each
//! taking arbitrary bytes. A target panics only on a broken invariant (a
//! bug); refusing the input with an error is the expected outcome for most
//! of them. Every target has a memory bound in bytes for an input of a
//! given size, which the libFuzzer binaries and the bounded run enforce.

use fusion_imaging::{PARSE_MEMORY_ALLOWANCE, PARSE_MEMORY_FACTOR};

/// A fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its name: the libFuzzer binary, `fuzz/regressions/<name>/`.
    pub name: &'static str,
    /// What it exercises.
    pub about: &'static str,
    /// Runs the target on one input.
    pub run: fn(&[u8]),
    /// The most memory, in bytes, one input of `len` bytes may take.
    pub memory_bound: fn(usize) -> usize,
}

/// Every target, in the order the bounded run takes them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "dicom_parse",
        about: "a STOW-RS part: bounded DICOM reading, validation, index attributes, pixel decoding",
        run: dicom_parse,
        memory_bound: dicom_memory_bound,
    },
    Target {
        name: "jpeg_dct",
        about: "the 8/12-bit sequential DCT JPEG decoder (JPEG Baseline and Extended)",
        run: jpeg_dct,
        memory_bound: jpeg_dct_memory_bound,
    },
    Target {
        name: "rle",
        about: "the RLE Lossless frame decoder (PS3.5 Annex G), 8 to 32 bits",
        run: rle,
        memory_bound: rle_memory_bound,
    },
    Target {
        name: "rendered",
        about: "segmented palette expansion (PS3.3 C.7.9.2) and the rendered viewport (PS3.18 8.3.5.1.3)",
        run: rendered,
        memory_bound: rendered_memory_bound,
    },
    Target {
        name: "charset",
        about: "text decoding per Specific Character Set, ISO 2022 code extensions",
        run: charset,
        memory_bound: text_memory_bound,
    },
    Target {
        name: "hl7v2",
        about: "the HL7 v2 ER7 reader and ORU^R01 / MDM^T02 note intake",
        run: hl7v2,
        memory_bound: text_memory_bound,
    },
    Target {
        name: "stow_multipart",
        about: "the STOW-RS multipart/related reader, its Content-Type parameters and chunking",
        run: stow_multipart,
        memory_bound: multipart_memory_bound,
    },
    Target {
        name: "fhir",
        about: "FHIR R4 DocumentReference / DiagnosticReport intake, base64 attachments",
        run: fhir,
        memory_bound: text_memory_bound,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

const MIB: usize = 1 << 20;

fn factor(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// Parsing and indexing: the budget of `fusion_imaging::bounds`
/// (64 × the part + 1 MiB); decoding: at most 8 × the decoded size, which
/// is at most 512 × the encapsulated bytes or 16 MiB.
pub fn dicom_memory_bound(len: usize) -> usize {
    let parse = factor(PARSE_MEMORY_FACTOR) * len + factor(PARSE_MEMORY_ALLOWANCE);
    let decoded = (factor(fusion_imaging::MAX_DECODE_RATIO) * len)
        .max(factor(fusion_imaging::DECODE_ALLOWANCE));
    parse + 8 * decoded
}

/// Four blocks per input byte at most, each 64 coefficients of 4 bytes,
/// a plane of 64 samples and 64 output samples of 2 bytes.
fn jpeg_dct_memory_bound(len: usize) -> usize {
    4 * len * (256 + 128 + 128) + MIB
}

/// At most 128 output bytes per two segment bytes, times 3 samples of 4
/// bytes.
fn rle_memory_bound(len: usize) -> usize {
    64 * 12 * len + MIB
}

/// A palette of at most 65,536 entries (two bytes each) and a viewport of
/// at most 64 × 64 pixels over a 16 × 16 frame, beside the input.
fn rendered_memory_bound(len: usize) -> usize {
    8 * len + MIB
}

/// Text: the decoded copy, lines, fields and JSON values.
fn text_memory_bound(len: usize) -> usize {
    64 * len + MIB
}

/// The parts, a copy of the body in chunks, and multer's buffers.
fn multipart_memory_bound(len: usize) -> usize {
    8 * len + MIB
}

/// A STOW-RS part through what the service does with it: parse (bounded),
/// index attributes, DICOM JSON metadata, pixel decoding and the rendering
/// of the first frame.
pub fn dicom_parse(data: &[u8]) {
    let Ok(instance) = fusion_imaging::parse(data) else {
        // Refusals are expected; reading without validation must also hold.
        if let Ok(object) = fusion_imaging::read(data) {
            let _ = fusion_imaging::decode_pixels(&object);
        }
        return;
    };
    let attrs = fusion_imaging::index_attributes(&instance);
    assert_eq!(&attrs.sop_instance_uid, instance.sop_instance_uid());
    let _ = fusion_imaging::metadata_json(instance.object(), "/bulk");
    if let Ok(pixels) = fusion_imaging::decode_pixels(instance.object()) {
        assert_eq!(
            pixels.samples.len(),
            pixels.frame_len() * pixels.frames as usize,
            "decoded samples fill [frames, rows, columns, samples]"
        );
        let _ = fusion_imaging::render_frame(
            instance.object(),
            &pixels,
            &fusion_imaging::RenderOptions::default(),
        );
    }
}

/// One JPEG stream for the 12-bit capable DCT decoder.
pub fn jpeg_dct(data: &[u8]) {
    let _ = fusion_imaging::fuzzing::jpeg_dct(data);
    let _ = fusion_imaging::fuzzing::codestream_header(data);
}

/// `[rows: u8][columns: u8][shape: u8]` then one RLE frame; `shape` picks
/// samples per pixel (1 or 3) and bits allocated (8, 16 or 32).
pub fn rle(data: &[u8]) {
    let [rows, columns, shape, frame @ ..] = data else {
        return;
    };
    let samples = if shape & 1 == 0 { 1 } else { 3 };
    let bits = [8, 16, 32][usize::from(shape >> 1) % 3];
    let _ = fusion_imaging::fuzzing::rle_frame(
        frame,
        u16::from(*rows),
        u16::from(*columns),
        samples,
        bits,
    );
}

/// `[entries_hi, entries_lo, flags, viewport_len]`, the viewport
/// parameter's text (`viewport_len` bytes), then segmented palette data
/// (16-bit little endian words, or bytes when `flags & 1`): the data is
/// expanded to at most `entries` entries, and the viewport, when it parses
/// and is at most 64 pixels a side, applied to a 16 × 16 ramp.
pub fn rendered(data: &[u8]) {
    let [hi, lo, flags, viewport_len, rest @ ..] = data else {
        return;
    };
    let entries = usize::from(u16::from_be_bytes([*hi, *lo])).max(1);
    let (viewport, lut) = rest.split_at(usize::from(*viewport_len).min(rest.len()));
    let eight_bit = flags & 1 == 1;
    let words: Vec<u16> = if eight_bit {
        lut.iter().map(|&b| u16::from(b)).collect()
    } else {
        lut.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    };
    if let Ok(table) = fusion_imaging::palette::expand_segmented(&words, entries, eight_bit) {
        assert!(table.len() <= entries, "the table stops at its entries");
    }
    if let Ok(v) = fusion_imaging::Viewport::parse(&String::from_utf8_lossy(viewport))
        && v.width <= 64
        && v.height <= 64
    {
        let frame = fusion_imaging::RenderedFrame {
            rows: 16,
            columns: 16,
            channels: 1 + 2 * (flags >> 1 & 1),
            data: (0..16 * 16 * usize::from(1 + 2 * (flags >> 1 & 1)))
                .map(|i| (i % 256) as u8)
                .collect(),
        };
        if let Ok(out) = v.apply(&frame) {
            assert!(
                out.columns <= v.width && out.rows <= v.height,
                "fits the viewport"
            );
            assert_eq!(
                out.data.len(),
                (out.rows * out.columns) as usize * usize::from(out.channels)
            );
        }
    }
}

/// The character set combinations of PS3.5 Annex H to K and the
/// catalogue's charset files.
const CHARACTER_SETS: &[&[&str]] = &[
    &[""],
    &["ISO_IR 100"],
    &["ISO_IR 192"],
    &["ISO_IR 13"],
    &["GB18030"],
    &["GBK"],
    &["ISO_IR 144"],
    &["ISO_IR 126"],
    &["ISO_IR 138"],
    &["ISO_IR 166"],
    &["", "ISO 2022 IR 87"],
    &["ISO 2022 IR 13", "ISO 2022 IR 87"],
    &["", "ISO 2022 IR 149"],
    &["", "ISO 2022 IR 58"],
    &["ISO 2022 IR 6", "ISO 2022 IR 100", "ISO 2022 IR 87"],
    &["ISO 2022 IR 100", "ISO 2022 IR 126", "ISO 2022 IR 144"],
];

/// `[sets: u8]` then the text bytes; `sets` picks the Specific Character
/// Set values, its top bit whether the text is a person name.
pub fn charset(data: &[u8]) {
    let [sets, text @ ..] = data else {
        return;
    };
    let terms = CHARACTER_SETS[usize::from(sets & 0x7F) % CHARACTER_SETS.len()];
    let decoded = fusion_imaging::fuzzing::charset_decode(text, terms, sets & 0x80 != 0);
    assert!(
        decoded.len() <= 4 * text.len() + 4,
        "decoded text stays within 4 bytes per input byte"
    );
}

/// An HL7 v2 message body.
pub fn hl7v2(data: &[u8]) {
    let _ = fusion_notes::intake::decode_hl7v2(data, &Default::default());
}

/// `[chunk: u8]` then a Content-Type line and the body; the body arrives
/// in chunks of `chunk + 1` bytes.
pub fn stow_multipart(data: &[u8]) {
    let [chunk, rest @ ..] = data else {
        return;
    };
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let content_type = String::from_utf8_lossy(&rest[..split]).into_owned();
    let body = bytes::Bytes::copy_from_slice(rest.get(split + 1..).unwrap_or_default());
    let size = usize::from(*chunk) + 1;
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..body.len())
        .step_by(size)
        .map(|at| Ok(body.slice(at..(at + size).min(body.len()))))
        .collect();
    let limits = fusion_imaging::StowLimits {
        max_total_bytes: 1 << 20,
        max_part_bytes: 1 << 19,
    };
    let Ok(mut reader) =
        fusion_imaging::StowReader::new(&content_type, futures::stream::iter(chunks), limits)
    else {
        return;
    };
    futures::executor::block_on(async {
        let mut index = 0;
        while let Ok(Some(part)) = reader.next_part().await {
            assert_eq!(part.index, index, "parts are numbered in order");
            assert!(part.data.len() as u64 <= limits.max_part_bytes);
            index += 1;
        }
    });
}

/// A FHIR R4 resource as JSON.
pub fn fhir(data: &[u8]) {
    let _ = fusion_notes::intake::decode_fhir_json(data, &Default::default());
}
