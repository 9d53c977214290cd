//! Loading: the packages under a folder, verified and built into the image
//! and text models (the first valid package of each modality), with report
//! heads attached to the encoder they were trained on.

use std::path::Path;

use candle_core::{DType, Device};

use super::text;
use super::{
    ImageModel, ImageNet, PackageRef, PackageStatus, Pipeline, TextHeads, TextModel, package_id,
};
use crate::package::{self, Architecture, Manifest, Modality, ModelPackage, Observation};
use crate::report_heads::ReportHeads;
use crate::text_encoder::{ForwardPass, TextEncoder};
use crate::xception::XceptionClassifier;

impl Pipeline {
    /// Loads every package under `dir` (each immediate subfolder with a
    /// `manifest.toml`; checksums verified) and builds its model on the
    /// device of [`crate::select_device`] (the CPU when that fails). The
    /// first valid package of each modality, by folder name, is used.
    ///
    /// Never fails: a missing folder or a missing, broken or unbuildable
    /// package leaves its branch reporting "model package not installed:
    /// <why>", and the package is listed with status `failed`.
    #[must_use]
    pub fn load(dir: &Path) -> Self {
        Self::load_with_text_pass(dir, None)
    }

    /// As [`Pipeline::load`], with the text encoder's forward pass chosen
    /// (`None`: [`ForwardPass::default_for`] the device). Used to compare
    /// predictions of the service's pass with the `BertModel` reference.
    #[must_use]
    pub fn load_with_text_pass(dir: &Path, text_pass: Option<ForwardPass>) -> Self {
        match package::list(dir) {
            Ok(listing) => Self::from_listing(listing, dir, text_pass),
            Err(e) => {
                let why = format!("cannot list {}: {e}", dir.display());
                Self {
                    image: Err(why.clone()),
                    text: Err(why),
                    packages: Vec::new(),
                }
            }
        }
    }

    /// Loads the single package in `package_dir` (as [`Pipeline::load`]
    /// does for each package of a folder); the other branch reports no
    /// package. Used by `fusion calibrate`.
    #[must_use]
    pub fn load_package(package_dir: &Path) -> Self {
        let listing = vec![package::PackageListing {
            dir: package_dir.to_path_buf(),
            manifest: ModelPackage::read_manifest(package_dir),
        }];
        Self::from_listing(listing, package_dir, None)
    }

    fn from_listing(
        listing: Vec<package::PackageListing>,
        dir: &Path,
        text_pass: Option<ForwardPass>,
    ) -> Self {
        let device = crate::select_device().unwrap_or(Device::Cpu);
        let text_pass = text_pass.unwrap_or_else(|| ForwardPass::default_for(&device));
        let mut packages = Vec::new();
        let mut image: Result<ImageModel, String> =
            Err(format!("no image package under {}", dir.display()));
        let mut text: Result<TextModel, String> =
            Err(format!("no text package under {}", dir.display()));
        let mut heads_found = Vec::new();
        for entry in listing {
            let folder = entry
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let manifest = match entry.manifest {
                Ok(m) => m,
                Err(e) => {
                    packages.push(PackageRef {
                        name: folder,
                        version: String::new(),
                        modality: "unknown".to_owned(),
                        manifest_sha256: None,
                        status: PackageStatus::Failed,
                        reason: Some(e.to_string()),
                    });
                    continue;
                }
            };
            let mut reference = PackageRef {
                name: manifest.name.clone(),
                version: manifest.version.clone(),
                modality: manifest.modality.to_string(),
                manifest_sha256: None,
                status: PackageStatus::Failed,
                reason: None,
            };
            if manifest.architecture == Architecture::ReportHeads {
                // Heads attach to their encoder package, loaded in this loop.
                heads_found.push((entry.dir, manifest, packages.len()));
                packages.push(reference);
                continue;
            }
            let slot_taken = match manifest.modality {
                Modality::Image => image
                    .as_ref()
                    .ok()
                    .map(|m| package_id(m.package.manifest())),
                Modality::Text => text.as_ref().ok().map(|m| package_id(m.package.manifest())),
            };
            if let Some(active) = slot_taken {
                reference.status = PackageStatus::Ignored;
                reference.reason = Some(format!(
                    "another {} package is in use: {active}",
                    manifest.modality
                ));
                packages.push(reference);
                continue;
            }
            let built = ModelPackage::load(&entry.dir)
                .map_err(|e| e.to_string())
                .and_then(|pkg| {
                    reference.manifest_sha256 = Some(pkg.manifest_sha256().to_owned());
                    match manifest.modality {
                        Modality::Image => build_image(pkg, &device).map(|m| image = Ok(m)),
                        Modality::Text => build_text(pkg, &device, text_pass).map(|m| text = Ok(m)),
                    }
                });
            match built {
                Ok(()) => reference.status = PackageStatus::Loaded,
                Err(why) => {
                    let why = format!("{}: {why}", manifest.name);
                    match manifest.modality {
                        Modality::Image => image = Err(why.clone()),
                        Modality::Text => text = Err(why.clone()),
                    }
                    reference.manifest_sha256 = None;
                    reference.reason = Some(why);
                }
            }
            packages.push(reference);
        }
        for (heads_dir, manifest, index) in heads_found {
            let reference = &mut packages[index];
            match attach_heads(&mut text, &heads_dir, &manifest, &device, text_pass) {
                Ok(sha) => {
                    reference.status = PackageStatus::Loaded;
                    reference.manifest_sha256 = Some(sha);
                }
                Err((status, why)) => {
                    reference.status = status;
                    reference.reason = Some(why);
                }
            }
        }
        Self {
            image,
            text,
            packages,
        }
    }

    /// The packages found by [`Pipeline::load`]: name, version, modality,
    /// manifest SHA-256 and status (loaded, failed with the reason, or
    /// ignored).
    #[must_use]
    pub fn packages(&self) -> Vec<PackageRef> {
        self.packages.clone()
    }
}

fn build_image(package: ModelPackage, device: &Device) -> Result<ImageModel, String> {
    let net = match package.manifest().architecture {
        Architecture::Xception => ImageNet::Xception(Box::new(
            XceptionClassifier::from_package(&package, device).map_err(|e| e.to_string())?,
        )),
        Architecture::MeanLogistic => {
            let (weight, bias) = load_mean_logistic(&package)?;
            ImageNet::MeanLogistic { weight, bias }
        }
        Architecture::Bert | Architecture::ReportHeads => {
            return Err("a text package cannot read images".to_owned());
        }
    };
    Ok(ImageModel {
        package,
        net,
        device: device.clone(),
    })
}

/// Reads the `weight` `[K]` and `bias` `[K]` tensors of a mean-logistic
/// package, K = the manifest's class count.
fn load_mean_logistic(package: &ModelPackage) -> Result<(Vec<f32>, Vec<f32>), String> {
    let bytes = package.read_weights().map_err(|e| e.to_string())?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| format!("weights: {e}"))?;
    let classes = package.manifest().output.classes().len();
    let read = |name: &str| -> Result<Vec<f32>, String> {
        let t = tensors
            .get(name)
            .ok_or_else(|| format!("weights: no tensor `{name}`"))?;
        let v = t
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| format!("weights: `{name}`: {e}"))?;
        if v.len() == classes {
            Ok(v)
        } else {
            Err(format!(
                "weights: `{name}` has {} values for {classes} classes",
                v.len()
            ))
        }
    };
    Ok((read("weight")?, read("bias")?))
}

fn build_text(
    package: ModelPackage,
    device: &Device,
    pass: ForwardPass,
) -> Result<TextModel, String> {
    let manifest = package.manifest();
    let weights = manifest.text_evidence.unwrap_or_default();
    if manifest.architecture != Architecture::Bert {
        return Err("a report-heads package needs its encoder package beside it".to_owned());
    }
    let mut encoder = None;
    let zero_shot = match &manifest.zero_shot {
        Some(spec) if spec.enabled => {
            let built = TextEncoder::from_package_with(&package, device, pass)
                .map_err(|e| e.to_string())?;
            let encoder = encoder.insert(built);
            let texts: Vec<&str> = Observation::ALL
                .iter()
                .flat_map(|o| {
                    let (p, a) = text::prompts(*o);
                    [p, a]
                })
                .collect();
            let emb = encoder.embed(&texts).map_err(|e| e.to_string())?;
            let prompts = Observation::ALL
                .iter()
                .zip(emb.chunks_exact(2))
                .map(|(o, pair)| (*o, pair[0], pair[1]))
                .collect();
            Some((spec.clone(), prompts))
        }
        _ => None,
    };
    Ok(TextModel {
        package,
        weights,
        encoder,
        zero_shot,
        heads: None,
    })
}

/// Attaches a report-heads package to the loaded text model when it names
/// that model's encoder (name and manifest SHA-256); builds the encoder when
/// zero-shot had not. Returns the heads manifest's SHA-256, or the status
/// (ignored, failed) and why.
fn attach_heads(
    text: &mut Result<TextModel, String>,
    dir: &Path,
    manifest: &Manifest,
    device: &Device,
    pass: ForwardPass,
) -> Result<String, (PackageStatus, String)> {
    let failed = |why: String| (PackageStatus::Failed, format!("{}: {why}", manifest.name));
    let crate::package::InputSpec::NoteFeatures(input) = &manifest.input else {
        return Err(failed("not a note-features package".to_owned()));
    };
    let model = text.as_mut().map_err(|why| {
        failed(format!(
            "its encoder `{}` is not loaded ({why})",
            input.encoder
        ))
    })?;
    if let Some(active) = &model.heads {
        return Err((
            PackageStatus::Ignored,
            format!(
                "another report-heads package is in use: {}",
                package_id(active.package.manifest())
            ),
        ));
    }
    let encoder = model.package.manifest();
    if encoder.name != input.encoder
        || model.package.manifest_sha256() != input.encoder_manifest_sha256
    {
        return Err(failed(format!(
            "trained on encoder `{}` (manifest {}), but the loaded text package is `{}` (manifest {})",
            input.encoder,
            input.encoder_manifest_sha256,
            encoder.name,
            model.package.manifest_sha256()
        )));
    }
    let package = ModelPackage::load(dir).map_err(|e| failed(e.to_string()))?;
    let heads = ReportHeads::from_package(&package).map_err(|e| failed(e.to_string()))?;
    if model.encoder.is_none() {
        let built = TextEncoder::from_package_with(&model.package, device, pass)
            .map_err(|e| failed(e.to_string()))?;
        model.encoder = Some(built);
    }
    let sha = package.manifest_sha256().to_owned();
    model.heads = Some(TextHeads { package, heads });
    Ok(sha)
}
