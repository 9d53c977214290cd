//! Image-branch latency: the Xception backbone once plus 20 MC-dropout head
//! passes (the manifest's T) per image, on the CPU (or the first GPU with
//! `--features cuda`).
//!
//! ```sh
//! scripts/fetch-models --image-only
//! cargo run -p fusion-models --release --example bench_image [-- ITERATIONS]
//! ```
//! Prints load time and median / p95 milliseconds per image.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use candle_core::{Device, Tensor};
use fusion_models::image_branch;
use fusion_models::package::{ModelPackage, default_packages_dir};
use fusion_models::xception::{INPUT_SIZE, XceptionClassifier};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args().nth(1).map_or(Ok(20), |a| a.parse())?;
    let device = fusion_models::select_device()?;
    let dir = default_packages_dir().join("pneumonia-xception");
    let t0 = Instant::now();
    let pkg = ModelPackage::load(&dir)
        .map_err(|e| format!("{e}\n(run scripts/fetch-models --image-only first)"))?;
    let verified = t0.elapsed();
    let model = XceptionClassifier::from_package(&pkg, &device)?;
    let loaded = t0.elapsed();
    println!(
        "device {device:?}, threads {}; load: verify {:.0} ms, build {:.0} ms",
        candle_core::utils::get_num_threads(),
        verified.as_secs_f64() * 1e3,
        (loaded - verified).as_secs_f64() * 1e3
    );

    // A fixed pseudo-image in [−1, 1]: latency does not depend on content.
    let n = 3 * INPUT_SIZE * INPUT_SIZE;
    let data: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
        .collect();
    let x =
        Tensor::from_vec(data, (1, 3, INPUT_SIZE, INPUT_SIZE), &Device::Cpu)?.to_device(&device)?;

    let mut backbone_ms = Vec::new();
    let mut head_ms = Vec::new();
    let mut total_ms = Vec::new();
    for i in 0..=iterations {
        let t = Instant::now();
        let features = model.backbone_features(&x)?;
        let _ = features.to_vec2::<f32>()?; // synchronise
        let tb = t.elapsed();
        let preds = image_branch::predict(&model, &features, pkg.manifest(), i as u64)?;
        let total = t.elapsed();
        if i == 0 {
            let p = &preds[0][0];
            println!(
                "warm-up done: {} P {:.4}, MC mean {:.4} var {:.2e} over T = {}",
                p.observation, p.probability, p.mean, p.variance, p.passes
            );
            continue; // warm-up
        }
        backbone_ms.push(tb.as_secs_f64() * 1e3);
        head_ms.push((total - tb).as_secs_f64() * 1e3);
        total_ms.push(total.as_secs_f64() * 1e3);
    }
    for (name, v) in [
        ("backbone", &mut backbone_ms),
        ("20 head passes + opinion", &mut head_ms),
        ("total", &mut total_ms),
    ] {
        v.sort_by(f64::total_cmp);
        let median = v[v.len() / 2];
        let p95 = v[((v.len() as f64 * 0.95).ceil() as usize)
            .saturating_sub(1)
            .min(v.len() - 1)];
        println!(
            "{name:>26}: median {median:8.2} ms   p95 {p95:8.2} ms   (n = {})",
            v.len()
        );
    }
    Ok(())
}
