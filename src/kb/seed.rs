//! The sample knowledge base that `serve` imports into an empty store.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::import::{self, Report};
use super::{Error, KnowledgeBaseAdmin};

/// Imports `sample` into a store that has never held a document; returns what was imported.
///
/// `serve` calls this at start-up when no other source is configured. A missing sample
/// file is not an error (the binary may run outside the source tree): it logs a warning
/// and leaves the store empty.
pub async fn seed_if_empty(
    store: &dyn KnowledgeBaseAdmin,
    sample: &Path,
) -> Result<Option<Report>, Error> {
    let stats = store.stats().await?;
    // A store that was ever written (imported into, emptied by `kb delete`) is the
    // operator's, even when empty; a lost or truncated one does not open at all.
    if stats.generation > 0 || stats.documents > 0 {
        return Ok(None);
    }
    if !sample.exists() {
        tracing::warn!(sample = %sample.display(), "knowledge base is empty and the sample file is missing");
        return Ok(None);
    }
    let report = store
        .import(
            &[sample.to_path_buf()],
            &import::Options::default(),
            &CancellationToken::new(),
            &import::Silent,
        )
        .await?;
    tracing::info!(sample = %sample.display(), added = report.added, "seeded the empty knowledge base");
    Ok(Some(report))
}
