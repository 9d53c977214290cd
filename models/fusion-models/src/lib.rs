//! Per-label uncertainty and late fusion for the clinical multimodal service:
//! subjective-logic opinions built from each branch's evidence, trust
//! discounting and the reduced Dempster's rule that fuses them ([`opinion`],
//! [`evidence`]), abstention on vacuity or conflict ([`abstain`]), temperature
//! scaling with ECE and Brier score ([`calibration`]), and split conformal
//! prediction sets ([`conformal`]).
//!
//! Everything is f64, deterministic and free of model-runtime dependencies;
//! the image and text models that produce logits live in their own modules.

pub mod abstain;
pub mod calibration;
pub mod conformal;
pub mod evidence;
pub mod opinion;

pub use abstain::{AbstainPolicy, AbstainReason};
pub use calibration::{
    CalibrationError, ECE_BINS, TemperatureScaler, brier_score, expected_calibration_error,
    negative_log_likelihood, sigmoid,
};
pub use conformal::{
    BinaryClass, ConformalCalibrator, ConformalError, PredictionSet, nonconformity_score,
    quantile_rank,
};
pub use evidence::{Evidence, SampleMoments, TextEvidenceWeights, TextLabel, sample_moments};
pub use opinion::{
    Combination, FusedOpinion, FusionError, Opinion, OpinionError, combine, combine_all,
};
