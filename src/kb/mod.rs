//! The knowledge base: what the knowledge-base tool searches.
//!
//! Two traits are the seam every store plugs in behind:
//! - [`KnowledgeBase`], the read side the engine, tools and server use: searches
//!   (plain, detailed, with a query vector given), query embedding, readiness;
//! - [`KnowledgeBaseAdmin`], the write side the `kb` commands and seeding use:
//!   import, list, stats, delete.
//!
//! What does not depend on a store stays here: the import formats and the parse →
//! dedupe steps of [`import`], chunking, segmentation, embeddings providers, eval.
//! [`store::Store`] is the embedded store in the data directory (SQLite for documents
//! and vectors, tantivy with jieba for BM25, hybrid ranking in `store::search`);
//! [`store::postgres::PgStore`] is a PostgreSQL + pgvector table in LangChain's layout.
//! [`cli`] holds the `kb` commands.

pub mod admin;
pub mod answer;
pub mod chunk;
pub mod cli;
pub mod config;
pub mod document;
pub mod embed;
pub mod error;
pub mod eval;
pub mod formats;
pub mod fusion;
pub mod homophones;
pub mod import;
pub mod rerank;
pub mod score;
pub mod seed;
pub mod segment;
pub mod store;
pub mod synonyms;

pub use admin::{KnowledgeBaseAdmin, Listed, Selection, Stats};
pub use config::KbConfig;
pub use error::{Error, ImportError, StoreError};
pub use seed::seed_if_empty;
pub use store::{Store, open};

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

/// How many hits a search may return and how much text they may carry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchParams {
    /// The most hits to return.
    pub top_k: usize,
    /// Hits scoring below this are dropped.
    pub min_score: f32,
    /// Budget on the characters of titles and answers shown to the model per search;
    /// stores ignore it, the engine applies it (`engine::prompt::fit`).
    pub max_context_chars: usize,
}

impl Default for SearchParams {
    fn default() -> Self {
        Self {
            top_k: 3,
            min_score: 0.0,
            max_context_chars: 4000,
        }
    }
}

/// One ranked search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Stable id of the matched document or chunk.
    pub id: String,
    /// The matched question, or the chunk's heading.
    pub title: String,
    /// The answer of a question/answer document, if the hit is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// The chunk text, for documents that are not question/answer pairs.
    pub text: String,
    /// The file or URL the document came from.
    pub source: String,
    /// Relevance; higher is better. Comparable only within one store.
    pub score: f32,
}

/// A hit with the evidence behind it, for the hit-test endpoint and `kb search`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetailedHit {
    /// What the model gets.
    #[serde(flatten)]
    pub hit: Hit,
    /// Position in the final ranking, from 1.
    pub rank: usize,
    /// Position in the full-text ranking, if the row was in it.
    pub fulltext_rank: Option<usize>,
    /// Full-text score (0..=1), if the row was in the full-text ranking.
    pub fulltext_score: Option<f32>,
    /// Position in the vector ranking, if the row was in it.
    pub vector_rank: Option<usize>,
    /// Cosine similarity, when the query and the row both have vectors.
    pub vector_score: Option<f32>,
    /// Reciprocal-rank-fusion value that ordered the hits.
    pub rrf_score: f32,
    /// The rank and score the search gave the hit, when a rerank service reordered
    /// it (`hit.score` is then the service's relevance score; see [`rerank`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reranked_from: Option<RerankedFrom>,
    /// Tags of the document.
    pub tags: Vec<String>,
}

/// Where a reranked hit stood before reranking.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RerankedFrom {
    /// Position in the search's ranking, from 1.
    pub rank: usize,
    /// The search's score (0..=1, the calibrated retrieval score).
    pub score: f32,
}

/// Searches `kb` and records the latency metric.
pub async fn timed_search(
    kb: &dyn KnowledgeBase,
    query: &str,
    params: &SearchParams,
) -> Result<Vec<Hit>, Error> {
    let started = std::time::Instant::now();
    let result = kb.search(query, params).await;
    metrics::histogram!(crate::telemetry::KB_SEARCH).record(started.elapsed().as_secs_f64());
    result
}

/// The read side of a store: what answering a question needs.
///
/// Searches embed the query with the store's embeddings provider when it has one;
/// [`KnowledgeBase::embed_query`] and [`KnowledgeBase::search_with_vector`] split that
/// in two, so a caller can embed once and search several times (prefetching).
#[async_trait]
pub trait KnowledgeBase: Send + Sync {
    /// The hits for `query`, best first, within `params`.
    async fn search(&self, query: &str, params: &SearchParams) -> Result<Vec<Hit>, Error> {
        Ok(self
            .search_detailed(query, params)
            .await?
            .into_iter()
            .map(|d| d.hit)
            .collect())
    }

    /// The hits with the evidence behind them (ranks and scores per ranking), for
    /// `/api/kb/search` and `kb search`.
    async fn search_detailed(
        &self,
        query: &str,
        params: &SearchParams,
    ) -> Result<Vec<DetailedHit>, Error> {
        let vector = self.embed_query(query).await;
        self.search_with_vector(query, vector, params).await
    }

    /// The query's vector, or `None` when the store has no embeddings provider or the
    /// provider failed within its query budget (the search then uses full text alone).
    async fn embed_query(&self, query: &str) -> Option<Vec<f32>>;

    /// Searches with a query vector computed earlier (`None`: full text only).
    async fn search_with_vector(
        &self,
        query: &str,
        vector: Option<Vec<f32>>,
        params: &SearchParams,
    ) -> Result<Vec<DetailedHit>, Error>;

    /// Whether the store is reachable (for `/readyz`).
    async fn ready(&self) -> Result<(), Error>;
}

/// A store opened for reading and writing, with both of its sides.
pub type SharedStore = Arc<dyn KnowledgeBaseAdmin>;

/// Opens the store `cfg` configures: the embedded one in `cfg.data_dir` (created empty
/// if needed), or the PostgreSQL table of `[kb.postgres]` (which must exist).
pub async fn connect(cfg: &KbConfig) -> Result<SharedStore, Error> {
    match cfg.store {
        config::StoreKind::Embedded => Ok(Arc::new(store::open(cfg).await?)),
        config::StoreKind::Postgres => Ok(Arc::new(store::postgres::connect(cfg).await?)),
    }
}
