//! Content-addressed blob storage for DICOM bytes, through `object_store`.
//!
//! A blob's key is the SHA-256 of its bytes (FIPS 180-4), laid out as
//! `sha256/<first two hex digits>/<64 hex digits>` so that no folder grows
//! without bound. Writes are durable before `put` returns: the local folder
//! backend fsyncs the file and its folder; cloud backends acknowledge only
//! committed objects. Reads verify the hash, so silent corruption surfaces as
//! an error instead of wrong pixels.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

/// Errors of the blob store. Messages name the step and the key, never bytes.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The blob URL is not a usable object-store location.
    #[error("blob store URL is not usable: {0}")]
    BadUrl(String),
    /// The local blob folder could not be created.
    #[error("cannot create the blob folder {path}: {source}")]
    CreateFolder {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No blob under this key.
    #[error("blob {0} not found")]
    NotFound(BlobKey),
    /// The bytes read back do not hash to their key.
    #[error("blob {0} is corrupt: its bytes do not match its SHA-256")]
    Corrupt(BlobKey),
    /// The object store failed.
    #[error("blob store failed: {0}")]
    Store(#[from] object_store::Error),
}

/// SHA-256 of a blob's bytes, as 64 lower-case hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobKey(String);

impl BlobKey {
    /// The key of `bytes`: their SHA-256.
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    /// Parses a stored key.
    ///
    /// # Errors
    ///
    /// [`BlobError::BadUrl`] is not used here; a malformed key gives
    /// `Err(String)` describing the rule it breaks (64 lower-case hex digits).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err("a blob key is 64 lower-case hex digits (SHA-256)".to_owned())
        }
    }

    /// The key as hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn object_path(&self) -> ObjectPath {
        ObjectPath::from(format!("sha256/{}/{}", &self.0[..2], self.0))
    }
}

impl TryFrom<String> for BlobKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<BlobKey> for String {
    fn from(k: BlobKey) -> String {
        k.0
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobKey({})", self.0)
    }
}

/// The blob store: a local folder by default, any `object_store` URL in
/// production (`s3://…` with the `s3` feature). Cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    /// The folder, for the local backend; its existence is part of readiness.
    local_root: Option<PathBuf>,
    /// Where the store points, with any credentials removed (for logs).
    display: String,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore")
            .field("location", &self.display)
            .finish()
    }
}

impl BlobStore {
    /// Opens the store at `url`: `file:///abs/path` (created if missing) or,
    /// with the matching cargo feature, a cloud URL such as `s3://bucket/prefix`
    /// whose credentials come from the environment (`AWS_*`).
    ///
    /// # Errors
    ///
    /// [`BlobError::BadUrl`] for an unknown scheme or a scheme whose feature
    /// is not compiled in; [`BlobError::CreateFolder`] when the local folder
    /// cannot be created.
    pub fn open(url: &Url) -> Result<Self, BlobError> {
        let mut display = url.clone();
        let _ = display.set_password(None);
        let _ = display.set_username("");
        let display = display.to_string();
        if url.scheme() == "file" {
            let root = url
                .to_file_path()
                .map_err(|()| BlobError::BadUrl("a file:// URL needs an absolute path".into()))?;
            std::fs::create_dir_all(&root).map_err(|source| BlobError::CreateFolder {
                path: root.clone(),
                source,
            })?;
            let fs = LocalFileSystem::new_with_prefix(&root)?.with_fsync(true);
            return Ok(Self {
                inner: Arc::new(fs),
                local_root: Some(root),
                display,
            });
        }
        let (store, prefix) =
            object_store::parse_url_opts(url, std::env::vars()).map_err(|e| match e {
                object_store::Error::Generic { source, .. } => BlobError::BadUrl(format!(
                    "{source} (is the cargo feature for this scheme enabled?)"
                )),
                other => BlobError::BadUrl(other.to_string()),
            })?;
        let inner: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            Arc::from(store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        };
        Ok(Self {
            inner,
            local_root: None,
            display,
        })
    }

    /// Opens a local folder, creating it if missing.
    ///
    /// # Errors
    ///
    /// As [`BlobStore::open`].
    pub fn local(folder: &std::path::Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(folder).map_err(|source| BlobError::CreateFolder {
            path: folder.to_owned(),
            source,
        })?;
        let abs = std::fs::canonicalize(folder).map_err(|source| BlobError::CreateFolder {
            path: folder.to_owned(),
            source,
        })?;
        let url = Url::from_directory_path(&abs)
            .map_err(|()| BlobError::BadUrl("blob folder path is not absolute".into()))?;
        Self::open(&url)
    }

    /// Where the store points, credentials removed.
    pub fn location(&self) -> &str {
        &self.display
    }

    /// Stores `bytes` under their SHA-256 and returns the key once they are
    /// durable. Storing bytes that are already there is a no-op.
    ///
    /// # Errors
    ///
    /// [`BlobError::Store`] when the backend fails.
    pub async fn put(&self, bytes: Bytes) -> Result<BlobKey, BlobError> {
        let key = BlobKey::of(&bytes);
        let path = key.object_path();
        if self.inner.head(&path).await.is_ok() {
            // Written again now: the collector's grace period counts from
            // here, so an old unreferenced blob about to be indexed again is
            // not taken from under it (local folder; object stores keep
            // their own time, see README "Blob collection").
            if let Some(root) = &self.local_root {
                let file = root.join(path.as_ref());
                let _ = tokio::task::spawn_blocking(move || {
                    std::fs::File::options()
                        .append(true)
                        .open(file)
                        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
                })
                .await;
            }
            return Ok(key);
        }
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .inner
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await
        {
            // Another writer stored the same content first: same key, same bytes.
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(key),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a blob back and checks it against its key.
    ///
    /// # Errors
    ///
    /// [`BlobError::NotFound`], [`BlobError::Corrupt`] when the bytes do not
    /// hash to the key, [`BlobError::Store`] otherwise.
    pub async fn get(&self, key: &BlobKey) -> Result<Bytes, BlobError> {
        let result = match self.inner.get(&key.object_path()).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::NotFound(key.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        let bytes = result.bytes().await?;
        if BlobKey::of(&bytes) != *key {
            return Err(BlobError::Corrupt(key.clone()));
        }
        Ok(bytes)
    }

    /// Blobs last written before `cutoff`, with their sizes in bytes, for
    /// the collector. Objects whose names are not blob keys are left out.
    /// Each item is [`BlobError::Store`] when the listing fails.
    pub fn list_older_than(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> futures::stream::BoxStream<'_, Result<(BlobKey, u64), BlobError>> {
        use futures::{StreamExt, TryStreamExt};
        self.inner
            .list(Some(&ObjectPath::from("sha256")))
            .map_err(BlobError::from)
            .try_filter_map(move |meta| async move {
                if meta.last_modified >= cutoff {
                    return Ok(None);
                }
                let key = meta
                    .location
                    .filename()
                    .and_then(|name| BlobKey::parse(name).ok())
                    .filter(|key| key.object_path() == meta.location);
                Ok(key.map(|k| (k, meta.size)))
            })
            .boxed()
    }

    /// Removes a blob; one already gone is no error.
    ///
    /// # Errors
    ///
    /// [`BlobError::Store`] when the backend fails.
    pub async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match self.inner.delete(&key.object_path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Local folder only: removes staged files (`<key>#<n>`, written by a
    /// `put` that never reached its rename because the process died) last
    /// modified before `cutoff`. Returns how many files and bytes.
    ///
    /// # Errors
    ///
    /// [`BlobError::CreateFolder`] with the I/O error when the folder cannot
    /// be walked.
    pub fn remove_staged(&self, cutoff: std::time::SystemTime) -> Result<(u64, u64), BlobError> {
        let Some(root) = &self.local_root else {
            return Ok((0, 0));
        };
        let io = |source| BlobError::CreateFolder {
            path: root.clone(),
            source,
        };
        let (mut files, mut bytes) = (0, 0);
        let top = root.join("sha256");
        let Ok(dirs) = std::fs::read_dir(&top) else {
            return Ok((0, 0));
        };
        for dir in dirs {
            let dir = dir.map_err(io)?;
            if !dir.file_type().map_err(io)?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(dir.path()).map_err(io)? {
                let entry = entry.map_err(io)?;
                let name = entry.file_name();
                let staged = name
                    .to_str()
                    .and_then(|n| n.split_once('#'))
                    .is_some_and(|(key, _)| BlobKey::parse(key).is_ok());
                let meta = entry.metadata().map_err(io)?;
                if staged && meta.is_file() && meta.modified().map_err(io)? < cutoff {
                    std::fs::remove_file(entry.path()).map_err(io)?;
                    files += 1;
                    bytes += meta.len();
                }
            }
        }
        Ok((files, bytes))
    }

    /// Whether a blob exists.
    ///
    /// # Errors
    ///
    /// [`BlobError::Store`] when the backend cannot answer.
    pub async fn contains(&self, key: &BlobKey) -> Result<bool, BlobError> {
        match self.inner.head(&key.object_path()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Readiness check: the local folder exists, or the remote store answers
    /// a listing.
    ///
    /// # Errors
    ///
    /// [`BlobError::NotFound`]-free: a missing folder is
    /// [`BlobError::CreateFolder`] with the I/O error; a failing backend is
    /// [`BlobError::Store`].
    pub async fn check(&self) -> Result<(), BlobError> {
        if let Some(root) = &self.local_root {
            let meta =
                tokio::fs::metadata(root)
                    .await
                    .map_err(|source| BlobError::CreateFolder {
                        path: root.clone(),
                        source,
                    })?;
            if !meta.is_dir() {
                return Err(BlobError::BadUrl(format!(
                    "{} is not a folder",
                    root.display()
                )));
            }
            return Ok(());
        }
        self.inner
            .list_with_delimiter(Some(&ObjectPath::from("sha256")))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_sha256_hex() {
        // FIPS 180-4 test vector "abc".
        assert_eq!(
            BlobKey::of(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(BlobKey::parse("ABC").is_err());
    }

    #[tokio::test]
    async fn put_get_round_trip_and_dedup() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let key = store.put(Bytes::from_static(b"DICM bytes")).await.unwrap();
        let again = store.put(Bytes::from_static(b"DICM bytes")).await.unwrap();
        assert_eq!(key, again);
        assert_eq!(store.get(&key).await.unwrap().as_ref(), b"DICM bytes");
        let on_disk = dir
            .path()
            .join("sha256")
            .join(&key.as_str()[..2])
            .join(key.as_str());
        assert!(on_disk.is_file(), "{on_disk:?}");
        store.check().await.unwrap();
    }

    #[tokio::test]
    async fn corruption_is_detected_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let key = store.put(Bytes::from_static(b"original")).await.unwrap();
        let on_disk = dir
            .path()
            .join("sha256")
            .join(&key.as_str()[..2])
            .join(key.as_str());
        std::fs::write(&on_disk, b"tampered").unwrap();
        assert!(matches!(store.get(&key).await, Err(BlobError::Corrupt(_))));
    }

    #[tokio::test]
    async fn missing_blob_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let key = BlobKey::of(b"never stored");
        assert!(matches!(store.get(&key).await, Err(BlobError::NotFound(_))));
        assert!(!store.contains(&key).await.unwrap());
    }

    #[test]
    fn unknown_scheme_is_a_clear_error() {
        let err = BlobStore::open(&Url::parse("gopher://x/y").unwrap()).unwrap_err();
        assert!(matches!(err, BlobError::BadUrl(_)), "{err}");
    }
}
