//! The engine's view of local files: read-only, and only at their real locations.
//!
//! Registration resolves a product's location to its canonical path; this store checks again
//! on every read that the file read *is* at its canonical path (no symbolic link anywhere on
//! the way, so a file swapped for a link after registration, or a link inside a registered
//! folder, is refused) and is not inside a protected folder (the node's own data). It never
//! writes, copies, renames or deletes.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// A read-only local file system that reads files only at their real locations.
#[derive(Debug)]
pub(crate) struct ConfinedFiles {
    inner: LocalFileSystem,
    protected: Arc<Vec<PathBuf>>,
}

impl ConfinedFiles {
    pub(crate) fn new(protected: &[PathBuf]) -> Self {
        Self {
            inner: LocalFileSystem::new(),
            protected: Arc::new(
                protected
                    .iter()
                    .filter_map(|p| std::fs::canonicalize(p).ok())
                    .collect(),
            ),
        }
    }

    /// Refuses a file that is not at its real location or lies in a protected folder.
    fn check(&self, location: &Path) -> Result<()> {
        let path = PathBuf::from(format!("/{location}"));
        let refuse = |reason: &str| object_store::Error::Generic {
            store: "local files",
            source: format!("{}: {reason}", path.display()).into(),
        };
        let real = std::fs::canonicalize(&path).map_err(|e| refuse(&e.to_string()))?;
        if real != path {
            return Err(refuse(
                "is reached through a symbolic link; data is read only at its real location (register the target itself)",
            ));
        }
        if self.protected.iter().any(|p| real.starts_with(p)) {
            return Err(refuse("lies in the node's own data directory"));
        }
        Ok(())
    }

    fn read_only() -> object_store::Error {
        object_store::Error::NotSupported {
            source: "the engine never writes, moves or deletes data".into(),
        }
    }
}

impl fmt::Display for ConfinedFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfinedFiles")
    }
}

#[async_trait]
impl ObjectStore for ConfinedFiles {
    async fn put_opts(&self, _: &Path, _: PutPayload, _: PutOptions) -> Result<PutResult> {
        Err(Self::read_only())
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(Self::read_only())
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check(location)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.check(location)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        locations.map(|_| Err(Self::read_only())).boxed()
    }

    /// Lists what is there; reading a listed file that is not at its real location fails.
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> Result<()> {
        Err(Self::read_only())
    }
}
