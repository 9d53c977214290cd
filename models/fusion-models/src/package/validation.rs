//! Manifest validation: the values the types cannot rule out (ranges,
//! consistency between modality, architecture, input and output, label and
//! file lists, digests and safe relative paths), each refusal naming the key
//! at fault as a dotted path.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use super::{
    Architecture, ClassOutput, EmbeddingOutput, EnsembleUncertainty, ImageInput, InputSpec,
    Manifest, McDropout, Modality, NoUncertainty, NoteFeaturesInput, OutOfRangeAge, OutputSpec,
    PackageError, SCHEMA_VERSION, TextInput, Trust, UncertaintyMethod,
};

impl Manifest {
    pub(super) fn check(&self, path: &Path) -> Result<(), PackageError> {
        let invalid = |key: &str, message: String| PackageError::Invalid {
            path: path.to_path_buf(),
            key: key.to_owned(),
            message,
        };
        if self.schema_version != SCHEMA_VERSION {
            return Err(invalid(
                "schema_version",
                format!(
                    "{} is not supported; this build reads {SCHEMA_VERSION}",
                    self.schema_version
                ),
            ));
        }
        if !is_package_name(&self.name) {
            return Err(invalid(
                "name",
                format!(
                    "{:?}: use lowercase letters, digits and '-', starting with a letter or digit",
                    self.name
                ),
            ));
        }
        if self.version.trim().is_empty() {
            return Err(invalid("version", "empty".to_owned()));
        }
        let input_modality = match self.input {
            InputSpec::Image(_) => Modality::Image,
            InputSpec::Text(_) | InputSpec::NoteFeatures(_) => Modality::Text,
        };
        if input_modality != self.modality {
            return Err(invalid(
                "input.kind",
                format!("`{input_modality}` input for a `{}` package", self.modality),
            ));
        }
        let arch_fits = match self.modality {
            Modality::Image => {
                matches!(
                    self.architecture,
                    Architecture::Xception | Architecture::MeanLogistic
                )
            }
            Modality::Text => match self.architecture {
                Architecture::Bert => matches!(self.input, InputSpec::Text(_)),
                Architecture::ReportHeads => {
                    matches!(self.input, InputSpec::NoteFeatures(_))
                        && matches!(self.output, OutputSpec::Sigmoid(_))
                        && matches!(self.uncertainty, UncertaintyMethod::Ensemble(_))
                }
                _ => false,
            },
        };
        if !arch_fits {
            return Err(invalid(
                "architecture",
                format!(
                    "{:?} cannot read `{}` input",
                    self.architecture, self.modality
                ),
            ));
        }
        match &self.input {
            InputSpec::Image(ImageInput {
                width,
                height,
                channels,
                normalisation,
                ..
            }) => {
                if *width == 0 || *height == 0 || !matches!(channels, 1 | 3) {
                    return Err(invalid(
                        "input",
                        format!(
                            "{width}x{height}x{channels}: need a non-empty size and 1 or 3 channels"
                        ),
                    ));
                }
                if !(normalisation.std.is_finite()
                    && normalisation.std > 0.0
                    && normalisation.mean.is_finite())
                {
                    return Err(invalid(
                        "input.normalisation",
                        "mean must be finite and std finite and > 0".to_owned(),
                    ));
                }
                let Some(pre) = &self.preprocessing else {
                    return Err(invalid(
                        "preprocessing",
                        "required for an image package".to_owned(),
                    ));
                };
                if !(0.0 <= pre.lower_percentile
                    && pre.lower_percentile < pre.upper_percentile
                    && pre.upper_percentile <= 100.0)
                {
                    return Err(invalid(
                        "preprocessing.lower_percentile",
                        format!(
                            "need 0 ≤ lower < upper ≤ 100, got {} and {}",
                            pre.lower_percentile, pre.upper_percentile
                        ),
                    ));
                }
                if pre.bit_depth != 8 {
                    return Err(invalid(
                        "preprocessing.bit_depth",
                        format!("{}: only 8 is supported", pre.bit_depth),
                    ));
                }
            }
            InputSpec::Text(TextInput {
                tokenizer,
                max_tokens,
                chunk_stride,
            }) => {
                if self.preprocessing.is_some() {
                    return Err(invalid(
                        "preprocessing",
                        "only image packages have image preprocessing".to_owned(),
                    ));
                }
                if *max_tokens < 3 || *chunk_stride == 0 || *chunk_stride > max_tokens - 2 {
                    return Err(invalid(
                        "input.chunk_stride",
                        format!(
                            "need max_tokens ≥ 3 and 1 ≤ chunk_stride ≤ max_tokens − 2 so chunks overlap or touch; got {max_tokens} and {chunk_stride}"
                        ),
                    ));
                }
                if self.file(tokenizer).is_none() {
                    return Err(invalid(
                        "input.tokenizer",
                        format!("{tokenizer:?} is not one of [[files]]"),
                    ));
                }
            }
            InputSpec::NoteFeatures(NoteFeaturesInput {
                encoder,
                encoder_manifest_sha256,
                features_version,
                ..
            }) => {
                if !is_package_name(encoder) {
                    return Err(invalid(
                        "input.encoder",
                        format!("{encoder:?} is not a package name"),
                    ));
                }
                if !is_sha256(encoder_manifest_sha256) {
                    return Err(invalid(
                        "input.encoder_manifest_sha256",
                        "need 64 lowercase hex digits".to_owned(),
                    ));
                }
                if !super::manifest::NOTE_FEATURES_VERSIONS.contains(features_version) {
                    return Err(invalid(
                        "input.features_version",
                        format!("{features_version}: this build reads versions 1 and 2"),
                    ));
                }
            }
        }
        match (&self.output, self.modality) {
            (OutputSpec::Embedding(EmbeddingOutput { dimension, .. }), Modality::Text) => {
                if *dimension == 0 {
                    return Err(invalid("output.dimension", "must be > 0".to_owned()));
                }
                if !self.labels.is_empty() {
                    return Err(invalid(
                        "labels",
                        "an embedding model has no label outputs".to_owned(),
                    ));
                }
            }
            (
                OutputSpec::Softmax(ClassOutput { classes })
                | OutputSpec::Sigmoid(ClassOutput { classes }),
                _,
            ) => {
                let min = if matches!(self.output, OutputSpec::Softmax(_)) {
                    2
                } else {
                    1
                };
                if classes.len() < min {
                    return Err(invalid(
                        "output.classes",
                        format!("need at least {min} classes"),
                    ));
                }
                if self.labels.is_empty() {
                    return Err(invalid(
                        "labels",
                        "a classifier needs at least one label".to_owned(),
                    ));
                }
            }
            (OutputSpec::Embedding(_), Modality::Image) => {
                return Err(invalid(
                    "output.kind",
                    "image packages must output class scores".to_owned(),
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, label) in self.labels.iter().enumerate() {
            if label.output >= self.output.classes().len() {
                return Err(invalid(
                    &format!("labels[{i}].output"),
                    format!(
                        "{} is out of range for {} classes",
                        label.output,
                        self.output.classes().len()
                    ),
                ));
            }
            if !seen.insert(label.observation) {
                return Err(invalid(
                    &format!("labels[{i}].observation"),
                    format!("{} appears twice", label.observation),
                ));
            }
        }
        match self.uncertainty {
            UncertaintyMethod::McDropout(McDropout {
                passes,
                rate,
                max_evidence,
                ..
            }) => {
                if passes < 2 {
                    return Err(invalid(
                        "uncertainty.passes",
                        format!("{passes}: need at least 2 passes for a variance"),
                    ));
                }
                if !(rate > 0.0 && rate < 1.0) {
                    return Err(invalid(
                        "uncertainty.rate",
                        format!("{rate}: need 0 < rate < 1"),
                    ));
                }
                check_max_evidence(max_evidence)
                    .map_err(|m| invalid("uncertainty.max_evidence", m))?;
            }
            UncertaintyMethod::None(NoUncertainty { max_evidence }) => {
                check_max_evidence(max_evidence)
                    .map_err(|m| invalid("uncertainty.max_evidence", m))?;
            }
            UncertaintyMethod::Ensemble(EnsembleUncertainty {
                members,
                max_evidence,
            }) => {
                if members < 2 {
                    return Err(invalid(
                        "uncertainty.members",
                        format!("{members}: need at least 2 members for a variance"),
                    ));
                }
                check_max_evidence(max_evidence)
                    .map_err(|m| invalid("uncertainty.max_evidence", m))?;
            }
        }
        for (i, label) in self.labels.iter().enumerate() {
            for (key, value) in [
                ("base_rate", label.base_rate),
                ("decision_threshold", label.decision_threshold),
            ] {
                if let Some(v) = value
                    && !(0.0..=1.0).contains(&v)
                {
                    return Err(invalid(
                        &format!("labels[{i}].{key}"),
                        format!("{v}: need a value in [0, 1]"),
                    ));
                }
            }
        }
        if let Some(age) = self.intended_use.age_years
            && !(age.min >= 0.0 && age.min <= age.max && age.max.is_finite())
        {
            return Err(invalid(
                "intended_use.age_years",
                format!("need 0 ≤ min ≤ max, got {} and {}", age.min, age.max),
            ));
        }
        if let Some(OutOfRangeAge::Discount(Trust { trust })) = self.intended_use.out_of_range_age
            && !(0.0..=1.0).contains(&trust)
        {
            return Err(invalid(
                "intended_use.out_of_range_age.trust",
                format!("{trust}: need 0 ≤ trust ≤ 1"),
            ));
        }
        if let Some(z) = &self.zero_shot {
            if self.modality != Modality::Text {
                return Err(invalid(
                    "zero_shot",
                    "only text packages have zero-shot evidence".to_owned(),
                ));
            }
            if !(z.scale.is_finite() && z.scale > 0.0) {
                return Err(invalid(
                    "zero_shot.scale",
                    format!("{}: need a finite value > 0", z.scale),
                ));
            }
            check_max_evidence(z.weight).map_err(|m| invalid("zero_shot.weight", m))?;
            if !(-1.0..=1.0).contains(&z.min_similarity) {
                return Err(invalid(
                    "zero_shot.min_similarity",
                    format!("{}: need −1 ≤ min_similarity ≤ 1", z.min_similarity),
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, l) in z.labels.iter().enumerate() {
                if !seen.insert(l.observation) {
                    return Err(invalid(
                        &format!("zero_shot.labels[{i}].observation"),
                        format!("{} appears twice", l.observation),
                    ));
                }
            }
        }
        match &self.source.wheel_sha256 {
            Some(sha) if !is_sha256(sha) => {
                return Err(invalid(
                    "source.wheel_sha256",
                    "need 64 lowercase hex digits".to_owned(),
                ));
            }
            None if self.source.registry != "repository" => {
                return Err(invalid(
                    "source.wheel_sha256",
                    format!("required for a `{}` package", self.source.registry),
                ));
            }
            _ => {}
        }
        if let Some(conv) = &self.source.converted_from
            && !is_sha256(&conv.sha256)
        {
            return Err(invalid(
                "source.converted_from.sha256",
                "need 64 lowercase hex digits".to_owned(),
            ));
        }
        let mut paths = BTreeSet::new();
        for (i, file) in self.files.iter().enumerate() {
            if !is_safe_relative(&file.path) {
                return Err(invalid(
                    &format!("files[{i}].path"),
                    format!(
                        "{:?}: must be relative, '/'-separated, without '..' or '.'",
                        file.path
                    ),
                ));
            }
            if !paths.insert(file.path.as_str()) {
                return Err(invalid(
                    &format!("files[{i}].path"),
                    format!("{:?} is listed twice", file.path),
                ));
            }
            if !is_sha256(&file.sha256) {
                return Err(invalid(
                    &format!("files[{i}].sha256"),
                    "need 64 lowercase hex digits".to_owned(),
                ));
            }
        }
        if self.weights().is_none() {
            return Err(invalid(
                "files",
                "no file with role = \"weights\"".to_owned(),
            ));
        }
        Ok(())
    }
}

fn check_max_evidence(max_evidence: f64) -> Result<(), String> {
    if (0.0..=crate::opinion::EVIDENCE_LIMIT).contains(&max_evidence) {
        Ok(())
    } else {
        Err(format!("{max_evidence}: need a finite value ≥ 0"))
    }
}

fn is_package_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}
