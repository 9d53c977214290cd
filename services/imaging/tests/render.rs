//! The display pipeline on real files.

// Helpers outside #[test] functions unwrap too: this is a test crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use fusion_imaging::{
    RenderError, RenderOptions, Window, decode_pixels, modality_values, read, render_frame,
};

fn render(file: &str, options: RenderOptions) -> fusion_imaging::RenderedFrame {
    let object = read(&common::read(file)).unwrap();
    let pixels = decode_pixels(&object).unwrap();
    render_frame(&object, &pixels, &options).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn ct_modality_values_are_rescaled_stored_values() {
    // CT_small.dcm: Rescale Slope 1, Intercept -1024 (catalogue `rescale`).
    let object = read(&common::read("pydicom-3.0.2/test_files/CT_small.dcm")).unwrap();
    let pixels = decode_pixels(&object).unwrap();
    let values = modality_values(&object, &pixels, 1).unwrap();
    assert_eq!(
        (values.rows, values.columns, values.values.len()),
        (128, 128, 128 * 128)
    );
    let min = values.values.iter().copied().fold(f32::INFINITY, f32::min);
    let max = values
        .values
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    assert_eq!((min, max), (128.0 - 1024.0, 2191.0 - 1024.0));
}

#[test]
fn explicit_window_follows_the_linear_function() {
    // Window center 0, width 2: values ≤ -1 map to 0, > 0 to 255 (PS3.3 C.11.2.1.2.1).
    let frame = render(
        "pydicom-3.0.2/test_files/CT_small.dcm",
        RenderOptions {
            frame: 1,
            window: Some(Window {
                center: 0.0,
                width: 2.0,
            }),
        },
    );
    assert_eq!(frame.channels, 1);
    assert!(frame.data.iter().all(|&v| v == 0 || v == 255));
    let object = read(&common::read("pydicom-3.0.2/test_files/CT_small.dcm")).unwrap();
    let pixels = decode_pixels(&object).unwrap();
    let err = render_frame(
        &object,
        &pixels,
        &RenderOptions {
            frame: 1,
            window: Some(Window {
                center: 0.0,
                width: 0.5,
            }),
        },
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::InvalidWindow));
}

#[test]
fn file_window_and_min_max_fallback_use_the_full_range() {
    for file in [
        "pydicom-3.0.2/test_files/CT_small.dcm",
        "pydicom-3.0.2/test_files/MR_small.dcm",
        "pydicom-data-1.0.0/data_store/data/693_UNCR.dcm",
    ] {
        let frame = render(file, RenderOptions::default());
        let (min, max) = (
            frame.data.iter().min().unwrap(),
            frame.data.iter().max().unwrap(),
        );
        assert!(*min < 64 && *max > 192, "{file}: {min}..{max}");
    }
}

#[test]
fn monochrome1_is_inverted() {
    // The same CR as MONOCHROME1: most of a chest film is bright tissue, so
    // the mean of the rendered frame is above mid-grey only if inverted.
    let object = read(&common::read(
        "pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm",
    ))
    .unwrap();
    let pixels = decode_pixels(&object).unwrap();
    assert_eq!(pixels.photometric, "MONOCHROME1");
    let window = Some(Window {
        center: 7000.0,
        width: 14000.0,
    });
    let frame = render_frame(&object, &pixels, &RenderOptions { frame: 1, window }).unwrap();
    let values = modality_values(&object, &pixels, 1).unwrap();
    // The darkest output pixel is where the modality value is highest.
    let (imax, _) = values
        .values
        .iter()
        .enumerate()
        .fold(
            (0, f32::MIN),
            |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) },
        );
    assert_eq!(frame.data[imax], 0);
}

#[test]
fn colour_frames_render_as_rgb_png() {
    for file in [
        "pydicom-3.0.2/test_files/examples_palette.dcm",
        "pydicom-3.0.2/test_files/SC_rgb_jpeg_dcmtk.dcm",
        "pydicom-3.0.2/test_files/SC_ybr_full_422_uncompressed.dcm",
        "pydicom-3.0.2/test_files/SC_rgb_rle_16bit_2frame.dcm",
    ] {
        let frame = render(file, RenderOptions::default());
        assert_eq!(frame.channels, 3, "{file}");
        assert_eq!(frame.data.len(), (frame.rows * frame.columns * 3) as usize);
        let png = frame.to_png().unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}

#[test]
fn frames_are_numbered_from_one() {
    let file = "pydicom-3.0.2/test_files/SC_rgb_rle_16bit_2frame.dcm";
    let object = read(&common::read(file)).unwrap();
    let pixels = decode_pixels(&object).unwrap();
    assert_eq!(pixels.frames, 2);
    let first = render_frame(
        &object,
        &pixels,
        &RenderOptions {
            frame: 1,
            window: None,
        },
    )
    .unwrap();
    let second = render_frame(
        &object,
        &pixels,
        &RenderOptions {
            frame: 2,
            window: None,
        },
    )
    .unwrap();
    assert_ne!(first.data, second.data);
    let err = render_frame(
        &object,
        &pixels,
        &RenderOptions {
            frame: 3,
            window: None,
        },
    )
    .unwrap_err();
    assert!(matches!(
        err,
        RenderError::FrameOutOfRange {
            frame: 3,
            frames: 2
        }
    ));
    assert!(matches!(
        modality_values(&object, &pixels, 1),
        Err(RenderError::NotMonochrome)
    ));
}

#[test]
fn grey_png_round_trips_dimensions() {
    let frame = render(
        "pydicom-3.0.2/test_files/MR_small.dcm",
        RenderOptions::default(),
    );
    let png = frame.to_png().unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!((info.width, info.height), (64, 64));
    assert_eq!(info.color_type, png::ColorType::Grayscale);
}

#[test]
fn grey_gif_keeps_every_grey_level_and_colour_gif_its_size() {
    let frame = render(
        "pydicom-3.0.2/test_files/MR_small.dcm",
        RenderOptions::default(),
    );
    let gif = frame.to_gif().unwrap();
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options.read_info(std::io::Cursor::new(gif)).unwrap();
    let image = decoder.read_next_frame().unwrap().unwrap();
    assert_eq!((image.width, image.height), (64, 64));
    // The palette is the 256 grey levels: each index is the grey value.
    assert_eq!(image.buffer.as_ref(), frame.data.as_slice());
    let colour = render(
        "pydicom-3.0.2/test_files/examples_palette.dcm",
        RenderOptions::default(),
    );
    let gif = colour.to_gif().unwrap();
    let mut decoder = gif::DecodeOptions::new()
        .read_info(std::io::Cursor::new(gif))
        .unwrap();
    let image = decoder.read_next_frame().unwrap().unwrap();
    assert_eq!((image.width, image.height), (800, 350));
}
