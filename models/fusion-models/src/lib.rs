//! Per-label uncertainty and late fusion for the clinical multimodal service:
//! subjective-logic opinions built from each branch's evidence, trust
//! discounting and the reduced Dempster's rule that fuses them ([`opinion`],
//! [`evidence`]), abstention on vacuity or conflict ([`abstain`]), temperature
//! scaling with ECE and Brier score ([`calibration`]), and split conformal
//! prediction sets ([`conformal`]).
//!
//! The models that produce the evidence run on candle: verified model
//! packages ([`package`]), the all-MiniLM-L6-v2 sentence encoder
//! ([`text_encoder`], on the crate's own forward pass [`minilm`]), the
//! radiograph preprocessing ([`preprocess`]), the Xception pneumonia classifier ([`xception`]) and its MC-dropout branch
//! opinions ([`image_branch`]). [`pipeline`] runs a whole case: the
//! applicability gate, both branches, fusion, abstention and timings. The fusion math itself is f64, deterministic
//! and free of model-runtime dependencies.

pub mod abstain;
pub mod calibration;
pub mod catalogue;
pub mod conformal;
pub mod evidence;
pub mod image_branch;
pub mod metrics;
pub mod minilm;
pub mod opinion;
pub mod package;
pub mod pipeline;
pub mod preprocess;
pub mod report_heads;
pub mod text_encoder;
pub mod xception;

pub use abstain::{AbstainPolicy, AbstainReason};
pub use calibration::{
    CalibrationError, ECE_BINS, TemperatureScaler, brier_score, expected_calibration_error,
    negative_log_likelihood, sigmoid,
};
/// The device type models run on ([`select_device`]).
pub use candle_core::Device;
pub use conformal::{
    BinaryClass, ClassThreshold, ClassThresholds, ConformalCalibrator, ConformalError,
    PredictionSet, nonconformity_score, quantile_rank,
};
pub use evidence::{Evidence, EvidenceExt, SampleMoments, TextEvidenceWeights, sample_moments};
pub use fusion_schemas::NoteLabel;
pub use opinion::{
    Combination, FusedOpinion, FusionError, Opinion, OpinionError, combine, combine_all,
};
pub use package::{Manifest, ModelPackage, Observation, PackageError};
pub use pipeline::{
    BranchOpinion, BranchReport, BranchStatus, Branches, CaseInput, FrameValues, FusedLabel,
    GateAttributes, ImageCandidate, NoteInput, PackageRef, PackageStatus, Pipeline,
    PredictionOutput,
};
pub use text_encoder::{
    Embedding, ForwardPass, MAX_WINDOWS_PER_TEXT, TextEncoder, TextEncoderError,
};

/// The device to run models on, chosen once at start-up: the first CUDA GPU
/// when the crate is built with the `cuda` feature and one is present, else
/// the CPU.
///
/// # Errors
/// A candle error if a present GPU cannot be initialised.
pub fn select_device() -> candle_core::Result<candle_core::Device> {
    #[cfg(feature = "cuda")]
    if candle_core::utils::cuda_is_available() {
        return candle_core::Device::new_cuda(0);
    }
    Ok(candle_core::Device::Cpu)
}

#[cfg(test)]
mod tests {
    /// Models are loaded once and shared across worker threads.
    #[test]
    fn models_are_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<crate::TextEncoder>();
        shareable::<crate::xception::XceptionClassifier>();
        shareable::<crate::ModelPackage>();
    }
}
