//! Verification: a package folder loaded with every listed file's size and
//! SHA-256 checked ([`ModelPackage::load`], [`verify`]), reads of verified
//! files only, and the listing of the packages under a folder ([`list`]).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{MANIFEST_FILE, Manifest, PackageError};

/// A file that passed verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedFile {
    /// Path relative to the package folder.
    pub path: String,
    /// Its SHA-256 (equal to the manifest's).
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A loaded, verified package: the manifest and the folder its files are in.
#[derive(Debug, Clone)]
pub struct ModelPackage {
    dir: PathBuf,
    manifest: Manifest,
    manifest_sha256: String,
    files: Vec<VerifiedFile>,
}

impl ModelPackage {
    /// Reads `dir/manifest.toml`, checks it, and verifies the size and
    /// SHA-256 of every listed file.
    ///
    /// # Errors
    /// Any [`PackageError`]: no manifest, malformed or invalid manifest (naming
    /// the key), a missing file (pointing at `scripts/fetch-models`), or a size
    /// or checksum mismatch (naming the file and both values).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, PackageError> {
        let dir = dir.as_ref();
        let (manifest, manifest_sha256) = read_manifest_with_hash(dir)?;
        let files = verify_files(dir, &manifest)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            manifest_sha256,
            files,
        })
    }

    /// Reads and checks `dir/manifest.toml` without touching the listed
    /// files.
    ///
    /// # Errors
    /// [`PackageError::NoManifest`], [`PackageError::Io`],
    /// [`PackageError::Malformed`] or [`PackageError::Invalid`].
    pub fn read_manifest(dir: impl AsRef<Path>) -> Result<Manifest, PackageError> {
        read_manifest_with_hash(dir.as_ref()).map(|(m, _)| m)
    }

    /// As [`ModelPackage::read_manifest`], with the SHA-256 of the manifest
    /// file (64 lowercase hex digits), which pins every file it lists.
    ///
    /// # Errors
    /// As [`ModelPackage::read_manifest`].
    pub fn read_manifest_with_sha256(
        dir: impl AsRef<Path>,
    ) -> Result<(Manifest, String), PackageError> {
        read_manifest_with_hash(dir.as_ref())
    }

    /// The package folder.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed manifest.
    #[must_use]
    pub const fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// SHA-256 of the `manifest.toml` bytes, which pin every other file: the
    /// identity to record with each prediction (`model_packages.sha256`).
    #[must_use]
    pub fn manifest_sha256(&self) -> &str {
        &self.manifest_sha256
    }

    /// The files verified by [`ModelPackage::load`].
    #[must_use]
    pub fn files(&self) -> &[VerifiedFile] {
        &self.files
    }

    /// Reads a listed file into memory and checks its size and SHA-256 again
    /// on the bytes read, so what a model is built from is exactly what the
    /// manifest pins even if the file changed after [`ModelPackage::load`].
    ///
    /// # Errors
    /// [`PackageError::Unlisted`] for a file the manifest does not list, and
    /// the file errors of [`ModelPackage::load`].
    pub fn read_verified(&self, file: &str) -> Result<Vec<u8>, PackageError> {
        let entry = self
            .manifest
            .file(file)
            .ok_or_else(|| PackageError::Unlisted {
                dir: self.dir.clone(),
                file: file.to_owned(),
            })?;
        let path = self.dir.join(&entry.path);
        let bytes = fs::read(&path).map_err(|e| file_error(&path, e, &self.manifest))?;
        check_size(&path, entry.size, bytes.len() as u64)?;
        check_digest(&path, &entry.sha256, &hex::encode(Sha256::digest(&bytes)))?;
        Ok(bytes)
    }

    /// The weights file's bytes, verified (see [`ModelPackage::read_verified`]).
    ///
    /// # Errors
    /// As [`ModelPackage::read_verified`].
    pub fn read_weights(&self) -> Result<Vec<u8>, PackageError> {
        let path = self
            .manifest
            .weights()
            .map(|f| f.path.clone())
            .unwrap_or_default();
        self.read_verified(&path)
    }
}

fn read_manifest_with_hash(dir: &Path) -> Result<(Manifest, String), PackageError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PackageError::NoManifest {
                dir: dir.to_path_buf(),
            });
        }
        Err(source) => return Err(PackageError::Io { path, source }),
    };
    let text = String::from_utf8(bytes.clone()).map_err(|e| PackageError::Malformed {
        path: path.clone(),
        key: ".".to_owned(),
        message: format!("not UTF-8: {e}"),
    })?;
    let manifest = Manifest::from_toml(&text, &path)?;
    Ok((manifest, hex::encode(Sha256::digest(&bytes))))
}

fn file_error(path: &Path, e: std::io::Error, manifest: &Manifest) -> PackageError {
    if e.kind() == std::io::ErrorKind::NotFound {
        PackageError::MissingFile {
            path: path.to_path_buf(),
            fetch: manifest.source.fetch.clone(),
        }
    } else {
        PackageError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

fn check_size(path: &Path, expected: u64, actual: u64) -> Result<(), PackageError> {
    if expected == actual {
        Ok(())
    } else {
        Err(PackageError::SizeMismatch {
            path: path.to_path_buf(),
            expected,
            actual,
        })
    }
}

fn check_digest(path: &Path, expected: &str, actual: &str) -> Result<(), PackageError> {
    if expected == actual {
        Ok(())
    } else {
        Err(PackageError::ChecksumMismatch {
            path: path.to_path_buf(),
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        })
    }
}

fn sha256_stream(path: &Path, manifest: &Manifest) -> Result<(String, u64), PackageError> {
    let mut file = fs::File::open(path).map_err(|e| file_error(path, e, manifest))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; 1 << 20];
    let mut total = 0_u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| file_error(path, e, manifest))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

fn verify_files(dir: &Path, manifest: &Manifest) -> Result<Vec<VerifiedFile>, PackageError> {
    manifest
        .files
        .iter()
        .map(|entry| {
            let path = dir.join(&entry.path);
            let size = fs::metadata(&path)
                .map_err(|e| file_error(&path, e, manifest))?
                .len();
            check_size(&path, entry.size, size)?;
            let (digest, _) = sha256_stream(&path, manifest)?;
            check_digest(&path, &entry.sha256, &digest)?;
            Ok(VerifiedFile {
                path: entry.path.clone(),
                sha256: digest,
                size,
            })
        })
        .collect()
}

/// Checks the manifest in `dir` and the size and SHA-256 of every file it
/// lists, returning the verified files.
///
/// # Errors
/// As [`ModelPackage::load`].
pub fn verify(dir: impl AsRef<Path>) -> Result<Vec<VerifiedFile>, PackageError> {
    let dir = dir.as_ref();
    let manifest = ModelPackage::read_manifest(dir)?;
    verify_files(dir, &manifest)
}

/// One package folder found by [`list`], with its manifest or the reason it
/// could not be read (one broken package does not hide the others). Files are
/// not verified: call [`ModelPackage::load`] for that.
#[derive(Debug)]
pub struct PackageListing {
    /// The package folder.
    pub dir: PathBuf,
    /// The manifest, or why it could not be read.
    pub manifest: Result<Manifest, PackageError>,
}

/// The packages under `root`: every immediate subfolder holding a
/// `manifest.toml`, sorted by folder name.
///
/// # Errors
/// [`PackageError::Io`] if `root` cannot be listed.
pub fn list(root: impl AsRef<Path>) -> Result<Vec<PackageListing>, PackageError> {
    let root = root.as_ref();
    let io = |source| PackageError::Io {
        path: root.to_path_buf(),
        source,
    };
    let mut dirs = Vec::new();
    for entry in fs::read_dir(root).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() && path.join(MANIFEST_FILE).is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|dir| PackageListing {
            manifest: ModelPackage::read_manifest(&dir),
            dir,
        })
        .collect())
}

/// `models/packages` in this repository, for tests, examples and the CLI's
/// default (`CARGO_MANIFEST_DIR/../packages`).
#[must_use]
pub fn default_packages_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("models/packages"), |p| p.join("packages"))
}
