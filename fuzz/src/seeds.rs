//! Seed inputs for each target: the shared DICOM catalogue
//! (`tests/data/dicom-catalog.tsv`, files fetched into `.test-data/dicom/`
//! by `scripts/fetch-test-data`), the pixel data fragments of its JPEG and
//! RLE files, the note intake fixtures of `services/notes/tests/fixtures/`,
//! and a few inputs written here; plus the crash inputs kept under
//! `fuzz/regressions/<target>/`.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A named input.
pub type Input = (String, Vec<u8>);

/// The catalogue's files, by catalogue path. Panics when they have not been
/// fetched (`scripts/fetch-test-data`).
pub fn catalogue() -> Vec<Input> {
    let root = repo_root();
    let tsv = std::fs::read_to_string(root.join("tests/data/dicom-catalog.tsv"))
        .unwrap_or_else(|e| panic!("tests/data/dicom-catalog.tsv: {e}"));
    tsv.lines()
        .skip(1)
        .filter_map(|line| line.split('\t').next())
        .filter(|file| !file.is_empty())
        .map(|file| {
            let path = root.join(".test-data/dicom").join(file);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (run scripts/fetch-test-data)", path.display())
            });
            (file.to_owned(), bytes)
        })
        .collect()
}

/// The fragments of an encapsulated Pixel Data (7FE0,0010) element in an
/// explicit VR little endian file (PS3.5 §A.4), offset table excluded.
pub fn fragments(file: &[u8]) -> Vec<&[u8]> {
    let header = [
        0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
    ];
    let Some(start) = file.windows(header.len()).position(|w| w == header) else {
        return Vec::new();
    };
    let mut at = start + header.len();
    let mut out = Vec::new();
    while let Some(item) = file.get(at..at + 8) {
        if item[..4] != [0xFE, 0xFF, 0x00, 0xE0] {
            break;
        }
        let len = u32::from_le_bytes([item[4], item[5], item[6], item[7]]) as usize;
        let Some(value) = file.get(at + 8..at + 8 + len) else {
            break;
        };
        out.push(value);
        at += 8 + len;
    }
    // The first item is the Basic Offset Table.
    out.into_iter().skip(1).collect()
}

fn files_in(dir: &Path) -> Vec<Input> {
    let mut out: Vec<Input> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter_map(|p| {
                    let name = p.file_name()?.to_string_lossy().into_owned();
                    Some((name, std::fs::read(&p).ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The crash inputs of a target kept as regression tests.
pub fn regressions(target: &str) -> Vec<Input> {
    files_in(&repo_root().join("fuzz/regressions").join(target))
}

fn with_prefix(prefix: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    out.extend_from_slice(bytes);
    out
}

/// The seeds of `target`.
pub fn seeds(target: &str) -> Vec<Input> {
    let intake = repo_root().join("services/notes/tests/fixtures/intake");
    let note = |ext: &str| -> Vec<Input> {
        files_in(&intake)
            .into_iter()
            .filter(|(name, _)| name.ends_with(ext))
            .collect()
    };
    let encapsulated = |transfer_syntaxes: &[&str]| -> Vec<Input> {
        catalogue()
            .into_iter()
            .filter(|(_, bytes)| {
                transfer_syntaxes.iter().any(|ts| {
                    bytes
                        .windows(ts.len())
                        .take(1024)
                        .any(|w| w == ts.as_bytes())
                })
            })
            .flat_map(|(name, bytes)| {
                fragments(&bytes)
                    .into_iter()
                    .take(2)
                    .enumerate()
                    .map(|(i, f)| (format!("{name}#{i}"), f.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    match target {
        "dicom_parse" => catalogue(),
        "jpeg_dct" => encapsulated(&["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"]),
        "rle" => encapsulated(&["1.2.840.10008.1.2.5\0"])
            .into_iter()
            .flat_map(|(name, frame)| {
                // 64 × 64 × 1 × 16 bits; 100 × 100 × 3 × 8, 16 and 32 bits
                // (the catalogue's geometries, rows and columns modulo 256).
                [[64, 64, 2], [100, 100, 1], [100, 100, 3], [100, 100, 5]]
                    .map(|shape| (format!("{name}@{shape:?}"), with_prefix(&shape, &frame)))
            })
            .collect(),
        "charset" => vec![
            (
                "ISO 2022 IR 87 person name".into(),
                with_prefix(&[0x8A], b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"),
            ),
            (
                "ISO 2022 IR 13 katakana".into(),
                with_prefix(&[0x8B], b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3"),
            ),
            (
                "ISO 2022 IR 149".into(),
                with_prefix(&[0x8C], b"\x1b$)C\xb1\xe8\xc8\xf1\xc1\xdf"),
            ),
            ("ISO_IR 100".into(), with_prefix(&[0x81], b"J\xe9r\xf4me")),
            ("GB18030".into(), with_prefix(&[0x84], b"\xd6\xd0\xce\xc4")),
        ],
        "rendered" => {
            // 256 entries, 16-bit: discrete, linear, indirect (PS3.3 C.7.9.2).
            let words: [u16; 11] = [0, 2, 0, 10, 1, 4, 50, 2, 2, 0, 0];
            let lut: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            vec![
                (
                    "segmented, viewport 8,8".into(),
                    with_prefix(&[1, 0, 0, 3], &with_prefix(b"8,8", &lut)),
                ),
                (
                    "8-bit segmented, cropped flipped viewport, RGB".into(),
                    with_prefix(
                        &[0, 255, 3, 13],
                        &with_prefix(b"4,4,12,2,-8,8", &[0, 2, 0, 9, 1, 3, 30]),
                    ),
                ),
            ]
        }
        "hl7v2" => note(".hl7"),
        "fhir" => note(".json"),
        "stow_multipart" => {
            let body = b"--B\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--B\r\n\
Content-Type: application/dicom\r\nContent-Length: 4\r\n\r\nabcd\r\n--B--";
            vec![
                (
                    "two parts".into(),
                    with_prefix(
                        b"\x07multipart/related; type=\"application/dicom\"; boundary=B\n",
                        body,
                    ),
                ),
                (
                    "quoted boundary, one chunk".into(),
                    with_prefix(
                        b"\xffmultipart/related; boundary=\"B\"; type=application/dicom\n",
                        body,
                    ),
                ),
            ]
        }
        _ => Vec::new(),
    }
}
