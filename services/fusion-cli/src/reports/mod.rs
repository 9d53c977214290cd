//! A site's labelled reports: `fusion eval reports` (measure the labeller,
//! the text branch and the fused probability against gold) and `fusion
//! train` (fit report heads on frozen encoders and write a model package).
//!
//! Both read the CSV through a label map ([`fusion_notes::labelled`]) and
//! send every report through the real note path: text/plain intake, the
//! mention labeller, then (eval) the models pipeline as the service runs it.

pub mod eval;
mod plots;
pub mod train;
pub mod uncertainty;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use fusion_models::TextEncoder;
use fusion_models::text_encoder::{EMBEDDING_DIM, Embedding};
use fusion_notes::intake::{DecodeOptions, decode_plain_text};
use fusion_notes::labelled::{LabelMap, LabelledReport, read_reports};
use fusion_schemas::{NoteAnalysis, Observation};
use sha2::{Digest, Sha256};

/// The eight observations the macro figures are over: the
/// ChestX-ray14 labels that map one-to-one (or Mass | Nodule) onto CheXpert
/// findings, leaving out No Finding (a different convention here: "no tag
/// at all") and Pleural Other (a thickening tag).
pub const EIGHT: [Observation; 8] = [
    Observation::Cardiomegaly,
    Observation::LungLesion,
    Observation::Edema,
    Observation::Consolidation,
    Observation::Pneumonia,
    Observation::Atelectasis,
    Observation::Pneumothorax,
    Observation::PleuralEffusion,
];

/// The model packages folder: `--models`, else `FUSION_MODELS_DIR`, else
/// `models/packages` under the working folder when it exists (the
/// repository root), else the checkout this binary was built from.
#[must_use]
pub fn models_dir(arg: Option<&Path>) -> PathBuf {
    if let Some(dir) = arg {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os("FUSION_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("models/packages");
    if local.is_dir() {
        local
    } else {
        fusion_models::package::default_packages_dir()
    }
}

/// One report after the note path: its text as the intake decoded it and
/// the labeller's analysis.
pub struct AnalysedReport {
    /// The labelled report.
    pub report: LabelledReport,
    /// The decoded text.
    pub text: String,
    /// The labeller's analysis of `text`.
    pub analysis: NoteAnalysis,
}

/// Reads the reports of `split` (all when `None`) and runs each through
/// text/plain intake and the labeller. Reports the intake refuses (empty)
/// are left out and counted.
///
/// # Errors
/// The CSV or the map cannot be read.
pub fn load(
    csv: &Path,
    map: &LabelMap,
    split: Option<&str>,
) -> anyhow::Result<(Vec<AnalysedReport>, usize)> {
    let reports = read_reports(csv, map, split)?;
    let mut out = Vec::with_capacity(reports.len());
    let mut refused = 0;
    for report in reports {
        match decode_plain_text(
            report.text.as_bytes(),
            Some("utf-8"),
            &DecodeOptions::default(),
        ) {
            Ok(decoded) => {
                let text = decoded.text.unwrap_or_default();
                let analysis = fusion_notes::analyze(&text);
                out.push(AnalysedReport {
                    report,
                    text,
                    analysis,
                });
            }
            Err(_) => refused += 1,
        }
    }
    Ok((out, refused))
}

/// SHA-256 of a file, hex.
///
/// # Errors
/// The file cannot be read.
pub fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0_u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Sentence embeddings with an on-disk cache keyed by the encoder
/// package's manifest SHA-256 and each sentence's SHA-256, so retraining
/// does not re-embed a data set. The cache holds embeddings of report
/// sentences, so it lives outside the repository
/// (`$XDG_CACHE_HOME/fusion/embeddings`, else `~/.cache/…`) and is written
/// with mode 0600.
pub struct EmbeddingCache {
    path: PathBuf,
    known: HashMap<[u8; 32], Embedding>,
    fresh: Vec<([u8; 32], Embedding)>,
}

impl EmbeddingCache {
    /// Opens (or starts) the cache for the encoder with `manifest_sha256`;
    /// `dir` overrides the folder.
    #[must_use]
    pub fn open(manifest_sha256: &str, dir: Option<&Path>) -> Self {
        let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("fusion")
                .join("embeddings")
        });
        let path = dir.join(format!("{manifest_sha256}.bin"));
        let mut known = HashMap::new();
        // Records: 32-byte key, 384 f32 LE. A torn tail is ignored.
        if let Ok(bytes) = std::fs::read(&path) {
            let record = 32 + 4 * EMBEDDING_DIM;
            for chunk in bytes.chunks_exact(record) {
                let mut key = [0_u8; 32];
                key.copy_from_slice(&chunk[..32]);
                let mut e = [0.0_f32; EMBEDDING_DIM];
                for (v, b) in e.iter_mut().zip(chunk[32..].chunks_exact(4)) {
                    *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
                // A damaged record (NaN, infinity) is embedded again, never
                // fed to a fit (attack review: a NaN hung training).
                if e.iter().all(|v| v.is_finite()) {
                    known.insert(key, e);
                }
            }
        }
        Self {
            path,
            known,
            fresh: Vec::new(),
        }
    }

    /// Embeddings of `sentences`, from the cache or the encoder (in batches,
    /// with progress on standard error).
    ///
    /// # Errors
    /// The encoder fails.
    pub fn embed(
        &mut self,
        encoder: &TextEncoder,
        sentences: &[&str],
    ) -> anyhow::Result<Vec<Embedding>> {
        let keys: Vec<[u8; 32]> = sentences
            .iter()
            .map(|s| Sha256::digest(s.as_bytes()).into())
            .collect();
        let mut missing: Vec<usize> = (0..sentences.len())
            .filter(|&i| !self.known.contains_key(&keys[i]))
            .collect();
        missing.sort_by_key(|&i| keys[i]);
        missing.dedup_by_key(|i| keys[*i]);
        if !missing.is_empty() {
            eprintln!(
                "fusion: embedding {} new sentences ({} cached)",
                missing.len(),
                self.known.len()
            );
        }
        let started = std::time::Instant::now();
        for (k, chunk) in missing.chunks(256).enumerate() {
            let texts: Vec<&str> = chunk.iter().map(|&i| sentences[i]).collect();
            let embedded = encoder.embed(&texts)?;
            for (&i, e) in chunk.iter().zip(embedded) {
                self.known.insert(keys[i], e);
                self.fresh.push((keys[i], e));
            }
            eprintln!(
                "fusion: {} / {} sentences embedded ({:.0} s)",
                ((k + 1) * 256).min(missing.len()),
                missing.len(),
                started.elapsed().as_secs_f64()
            );
        }
        self.flush();
        Ok(keys.iter().map(|k| self.known[k]).collect())
    }

    /// Appends the new embeddings to the cache file; a failure only costs a
    /// re-embedding next time, so it is reported and ignored.
    fn flush(&mut self) {
        if self.fresh.is_empty() {
            return;
        }
        let result = (|| -> std::io::Result<()> {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut f = options.open(&self.path)?;
            // A kill during an earlier append leaves a torn record: cut it
            // off, or every record appended after it would be misaligned.
            let record = (32 + 4 * EMBEDDING_DIM) as u64;
            let len = f.metadata()?.len();
            if len % record != 0 {
                f.set_len(len - len % record)?;
            }
            let mut buf = Vec::with_capacity(self.fresh.len() * (32 + 4 * EMBEDDING_DIM));
            for (key, e) in &self.fresh {
                buf.extend_from_slice(key);
                e.iter()
                    .for_each(|v| buf.extend_from_slice(&v.to_le_bytes()));
            }
            f.write_all(&buf)
        })();
        if let Err(e) = result {
            eprintln!(
                "fusion: embedding cache not written ({}): {e}",
                self.path.display()
            );
        }
        self.fresh.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A torn record left by a kill mid-append is cut off before the next
    /// append, so every record after it still reads back (attack review:
    /// one torn write misaligned the cache for good).
    #[test]
    fn a_torn_cache_tail_is_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let record = 32 + 4 * EMBEDDING_DIM;
        let path = dir.path().join("enc.bin");
        let mut bytes = vec![7_u8; record]; // one whole record
        bytes.extend(vec![9_u8; record / 2]); // and half of one
        std::fs::write(&path, &bytes).unwrap();
        let mut cache = EmbeddingCache::open("enc", Some(dir.path()));
        assert_eq!(cache.known.len(), 1, "the torn tail is not read");
        cache.fresh.push(([1_u8; 32], [0.5_f32; EMBEDDING_DIM]));
        cache.flush();
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, 2 * record);
        let reopened = EmbeddingCache::open("enc", Some(dir.path()));
        assert_eq!(reopened.known.len(), 2);
        assert_eq!(reopened.known[&[1_u8; 32]], [0.5_f32; EMBEDDING_DIM]);
    }

    #[test]
    fn a_damaged_cache_record_is_embedded_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EmbeddingCache::open("enc", Some(dir.path()));
        let mut bad = [0.5_f32; EMBEDDING_DIM];
        bad[7] = f32::NAN;
        cache.fresh.push(([2_u8; 32], bad));
        cache.fresh.push(([3_u8; 32], [0.25_f32; EMBEDDING_DIM]));
        cache.flush();
        let reopened = EmbeddingCache::open("enc", Some(dir.path()));
        assert!(!reopened.known.contains_key(&[2_u8; 32]));
        assert!(reopened.known.contains_key(&[3_u8; 32]));
    }
}
