//! Every catalogued real DICOM file: parse, index, decode, and compare the
//! decoded stored values with the catalogue's min/max/mean (computed by
//! pydicom 3.0.2 with the pylibjpeg plugins; tests/data/README.md).

// Helpers outside #[test] functions unwrap too: this is a test crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use fusion_imaging::{ParseError, PixelError, decode_pixels, index_attributes, parse, read};

/// Relative tolerance for px_min/px_max, printed with 6 significant digits.
fn close_6_digits(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= expected.abs() * 5e-6 + 1e-9
}

#[derive(Default, Debug)]
struct Tally {
    files: usize,
    decoded: usize,
    matched: usize,
}

#[test]
fn every_catalogued_file_decodes_as_catalogued() {
    let rows = common::catalogue();
    assert_eq!(rows.len(), 105, "catalogue rows");
    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    for row in &rows {
        let file = row.get("file");
        let bytes = common::read(file);
        let decode_ok = row.get("decode_ok");
        let ts = match row.get("transfer_syntax_uid") {
            "" => "(none)".to_string(),
            ts => ts.to_string(),
        };
        // Strict STOW-RS validation; files without the identifying UIDs
        // (test material, DICOMDIRs) are refused with a typed error.
        match parse(&bytes) {
            Ok(instance) => {
                let attrs = index_attributes(&instance);
                assert_eq!(attrs.sop_instance_uid, *instance.sop_instance_uid());
            }
            Err(e) => eprintln!("{file}: refused by parse: {e}"),
        }
        let object = match read(&bytes) {
            Ok(o) => o,
            Err(e) if decode_ok != "yes" => {
                eprintln!("{file}: refused by read: {e}");
                continue;
            }
            Err(e) => {
                failures.push(format!("{file}: read failed: {e:?}"));
                continue;
            }
        };
        let result = decode_pixels(&object);
        if decode_ok == "no-pixel-data" {
            assert!(
                matches!(result, Err(PixelError::NoPixelData)),
                "{file}: expected NoPixelData, got {result:?}"
            );
            continue;
        }
        if decode_ok.starts_with("no:") {
            match result {
                Err(e) => eprintln!("{file}: refused as expected: {e}"),
                Ok(p) => failures.push(format!(
                    "{file}: broken on purpose but decoded ({} samples)",
                    p.samples.len()
                )),
            }
            continue;
        }
        let jpeg_ls = matches!(
            ts.as_str(),
            "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81"
        );
        if jpeg_ls && !cfg!(feature = "jpeg-ls") {
            // Built without CharLS: a clear refusal, never a panic.
            match result {
                Err(e) => eprintln!("{file}: JPEG-LS not compiled in: {e}"),
                Ok(_) => failures.push(format!("{file}: decoded without the jpeg-ls feature")),
            }
            continue;
        }
        let t = tally.entry(ts.clone()).or_default();
        t.files += 1;
        let pixels = match result {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{file} [{ts}]: decode failed: {e} ({e:?})"));
                continue;
            }
        };
        t.decoded += 1;
        let n = pixels.samples.len();
        let values = pixels.samples.to_f64(0..n);
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = values.iter().sum::<f64>() / n as f64;
        let want = |c: &str| row.get(c).parse::<f64>().expect(c);
        let (wmin, wmax, wmean) = (want("px_min"), want("px_max"), want("px_mean"));
        let oddities = row.get("oddities");
        let lossy = matches!(
            ts.as_str(),
            "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51"
        );
        let colour = row.get("samples_px") == "3";
        let ok = if lossy && colour {
            // Lossy colour JPEG: decoders differ by about ±0.05 on the mean
            // (tests/data/README.md); extremes move with IDCT rounding.
            (mean - wmean).abs() <= 0.05 && (min - wmin).abs() <= 3.0 && (max - wmax).abs() <= 3.0
        } else if lossy {
            // Lossy grey JPEG: the IDCT is not bit-exact across decoders
            // (ISO/IEC 10918-2 allows ±1 per sample), so allow one unit on
            // extremes and 0.05 on the mean (measured deviation is far less).
            (mean - wmean).abs() <= 0.05 && (min - wmin).abs() <= 1.0 && (max - wmax).abs() <= 1.0
        } else {
            close_6_digits(min, wmin)
                && close_6_digits(max, wmax)
                && (mean - wmean).abs() <= wmean.abs() * 1e-9 + 5e-6
        };
        eprintln!(
            "{file} [{ts}] {oddities}: min {min} ({wmin}) max {max} ({wmax}) mean {mean:.6} ({wmean})"
        );
        if ok {
            t.matched += 1;
        } else {
            failures.push(format!(
                "{file} [{ts}]: min {min} max {max} mean {mean:.6}, catalogue {wmin} {wmax} {wmean}"
            ));
        }
    }
    eprintln!("transfer syntax: files / decoded / matched");
    for (ts, t) in &tally {
        eprintln!("{ts}: {} / {} / {}", t.files, t.decoded, t.matched);
    }
    let total: Tally = tally.values().fold(Tally::default(), |a, t| Tally {
        files: a.files + t.files,
        decoded: a.decoded + t.decoded,
        matched: a.matched + t.matched,
    });
    eprintln!("total: {total:?}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn parse_errors_map_to_stow_failure_reasons() {
    let err = parse(b"not dicom").unwrap_err();
    assert_eq!(err.failure_reason().code(), 0xC000, "{err}");
    let err = parse(b"").unwrap_err();
    assert!(matches!(err, ParseError::TooShort { len: 0 }));
}
