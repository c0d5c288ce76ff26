//! The administrative side of a knowledge base: what `kb import`, `kb list`, `kb stats`,
//! `kb delete` and seeding call, whatever the store.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::document::Kind;
use super::import::{Options, Progress, Report};
use super::{Error, KnowledgeBase};

/// One line of `kb list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    /// Document id.
    pub id: String,
    /// Question/answer pair or passage.
    pub kind: Kind,
    /// Question or heading.
    pub title: String,
    /// Citation.
    pub source: String,
    /// Imported file.
    pub origin: String,
    /// Line in the imported file.
    pub line: usize,
    /// Whether a vector is stored.
    pub has_vector: bool,
}

/// What `kb stats` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// All documents.
    pub documents: u64,
    /// Question/answer pairs among them.
    pub qa_pairs: u64,
    /// Passages among them.
    pub passages: u64,
    /// Documents with a vector.
    pub with_vectors: u64,
    /// Model of the stored vectors.
    pub embedding_model: Option<String>,
    /// Size of the stored vectors.
    pub embedding_dim: Option<usize>,
    /// Documents per imported file, largest first.
    pub origins: Vec<(String, u64)>,
    /// Documents the full-text index holds (equals `documents` when in sync).
    pub fulltext_documents: u64,
    /// SQLite write generation.
    pub generation: u64,
}

/// Which documents `kb delete` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These ids.
    Ids(Vec<String>),
    /// Everything imported from this file.
    Origin(String),
    /// Everything.
    All,
}

/// Writing to and inspecting a store. Every store also answers searches
/// ([`KnowledgeBase`]); the server and the engine only ever see that side.
#[async_trait]
pub trait KnowledgeBaseAdmin: KnowledgeBase {
    /// Imports `paths` as one atomic change (see [`super::import`]).
    async fn import(
        &self,
        paths: &[PathBuf],
        options: &Options,
        cancel: &CancellationToken,
        progress: &dyn Progress,
    ) -> Result<Report, Error>;

    /// Number of documents.
    async fn count(&self) -> Result<u64, Error>;

    /// Documents in import order, optionally only those from `origin`.
    async fn list(
        &self,
        origin: Option<String>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Listed>, Error>;

    /// What `kb stats` prints.
    async fn stats(&self) -> Result<Stats, Error>;

    /// Deletes the selected documents in one transaction; returns how many went.
    async fn delete(&self, selection: Selection) -> Result<usize, Error>;

    /// The same store as the read side the engine and server take.
    fn reader(self: Arc<Self>) -> Arc<dyn KnowledgeBase>;
}
