//! The PostgreSQL + pgvector store: LangChain's `documents` table (as its JS or Python
//! `SupabaseVectorStore` writes it) searched and written as it is.
//!
//! ```text
//! config.rs   [kb.postgres]
//! pool.rs     deadpool of tokio-postgres clients over rustls
//! schema.rs   the table's id/embedding columns and the query function's arguments (pg_proc)
//! rows.rs     a row's metadata ↔ ragstream's document fields
//! search.rs   full text and vector rankings on two connections at once, fused (kb::fusion)
//! import.rs   kb import: LangChain-readable rows in one transaction
//! admin.rs    count, list, stats, delete (ragstream's own rows only)
//! terms.rs    ragstream's jieba terms of each row, in a side table beside LangChain's
//! term_stats.rs  the side table's term statistics, moved by each change's delta
//! fulltext.rs Chinese full-text ranking over those terms, scored as kb::score says
//! migrate.rs  kb migrate: extension, table, HNSW index, hash and id indexes, only what is missing
//! ```
//!
//! Every process is stateless: nothing is cached but the schema (and, per connection,
//! prepared statements), so any number of
//! `serve` instances share one database and see each import at once.

pub mod admin;
pub mod config;
pub mod fulltext;
mod import;
pub mod migrate;
pub mod pool;
pub mod rows;
pub mod schema;
mod search;
pub mod term_stats;
pub mod terms;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use tokio_util::sync::CancellationToken;

use crate::kb::config::KbConfig;
use crate::kb::embed::Embeddings;
use crate::kb::import::{Options, Progress, Report};
use crate::kb::{
    DetailedHit, Error, KnowledgeBase, KnowledgeBaseAdmin, Listed, SearchParams, Selection, Stats,
};
use schema::Schema;

/// The store, cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    /// Shared state.
    inner: Arc<Inner>,
}

/// What clones share.
struct Inner {
    /// The connections.
    pool: Pool,
    /// The table and function as inspected at connect time.
    schema: Schema,
    /// The embeddings provider; without one the store searches full text only and
    /// imports rows with a NULL embedding.
    embeddings: Option<Embeddings>,
    /// The config the store was opened with.
    config: KbConfig,
    /// jieba with the synonym groups, as the embedded store segments (full text).
    segmenter: crate::kb::segment::Segmenter,
    /// Whether the "function has no match_count" warning was logged.
    warned_no_limit: AtomicBool,
    /// Whether the "no full-text table" warning was logged.
    warned_no_terms: AtomicBool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &pool::target(&self.inner.config.postgres))
            .field("schema", &self.inner.schema)
            .finish()
    }
}

/// Connects, inspects the table and function, and checks the configured vector size.
///
/// A database that cannot be reached, a missing table or function, or a `vector(N)`
/// column whose size differs from `kb.embeddings.dimensions` is an error saying what to do.
/// With `kb.embeddings.provider = "none"` the store searches full text only (logged
/// at startup, shown by `kb stats`).
pub async fn connect(cfg: &KbConfig) -> Result<PgStore, Error> {
    connect_with(cfg, Embeddings::from_config(&cfg.embeddings)?).await
}

/// [`connect`] with an explicit embeddings provider (`None`: full text only).
pub async fn connect_with(
    cfg: &KbConfig,
    embeddings: Option<Embeddings>,
) -> Result<PgStore, Error> {
    let pool = pool::build(&cfg.postgres)?;
    let client = pool::client(&pool, &cfg.postgres).await?;
    let schema = schema::inspect(&client, &cfg.postgres).await?;
    if let (Some(dim), Some(e)) = (schema.dim, &embeddings) {
        if let Some(want) = e.dimensions().filter(|want| *want != dim) {
            return Err(dimension_mismatch(
                &cfg.postgres.table,
                dim,
                e.model(),
                want,
            ));
        }
    }
    drop(client);
    if embeddings.is_none() {
        tracing::warn!(
            table = %cfg.postgres.table,
            "vector search is off: no kb.embeddings.provider is configured, so the PostgreSQL \
             store searches full text only and imports rows without embeddings"
        );
    }
    let segmenter = crate::kb::segment::Segmenter::from_config(cfg)?;
    let store = PgStore {
        inner: Arc::new(Inner {
            pool,
            schema,
            embeddings,
            config: cfg.clone(),
            segmenter,
            warned_no_limit: AtomicBool::new(false),
            warned_no_terms: AtomicBool::new(false),
        }),
    };
    store.warn_if_unlimited();
    Ok(store)
}

/// The table's vectors and the model's do not have the same size.
fn dimension_mismatch(table: &str, dim: usize, model: &str, got: usize) -> Error {
    Error::store(format!(
        "table {table} holds {dim}-dimension vectors (embedding vector({dim})), but the configured \
         model `{model}` gives {got}-dimension vectors; configure the model that wrote the table \
         (kb.embeddings.model, kb.embeddings.dimensions) or use another kb.postgres.table"
    ))
}

impl PgStore {
    /// A pooled connection.
    async fn client(&self) -> Result<Object, Error> {
        pool::client(&self.inner.pool, &self.inner.config.postgres).await
    }

    /// The inspected schema.
    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    /// Logs once that the query function sorts the whole table.
    fn warn_if_unlimited(&self) {
        let unlimited = self
            .inner
            .schema
            .function
            .as_ref()
            .is_some_and(|f| !f.match_count);
        if unlimited && !self.inner.warned_no_limit.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                function = %self.inner.config.postgres.query_function,
                "the query function has no match_count argument (LangChain Python's match_documents): \
                 it sorts the whole table on every search; set kb.postgres.query_function = \"\" to \
                 query the table with the HNSW index instead"
            );
        }
    }

    /// The configured model's name, or "none".
    fn model(&self) -> &str {
        self.inner.embeddings.as_ref().map_or("none", |e| e.model())
    }

    /// Checks a vector's size against the column's.
    fn check_dim(&self, len: usize) -> Result<(), Error> {
        match self.inner.schema.dim {
            Some(dim) if dim != len => Err(dimension_mismatch(
                &self.inner.config.postgres.table,
                dim,
                self.model(),
                len,
            )),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl KnowledgeBase for PgStore {
    async fn embed_query(&self, query: &str) -> Option<Vec<f32>> {
        match self.inner.embeddings.as_ref()?.embed_query(query).await {
            Ok(vector) => Some(vector),
            Err(err) => {
                tracing::warn!(%err, "query embedding failed; answering from full text only");
                None
            }
        }
    }

    async fn search_with_vector(
        &self,
        query: &str,
        vector: Option<Vec<f32>>,
        params: &SearchParams,
    ) -> Result<Vec<DetailedHit>, Error> {
        self.search_fused(query, vector, params).await
    }

    async fn ready(&self) -> Result<(), Error> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(pool::sql)?;
        Ok(())
    }
}

#[async_trait]
impl KnowledgeBaseAdmin for PgStore {
    async fn import(
        &self,
        paths: &[PathBuf],
        options: &Options,
        cancel: &CancellationToken,
        progress: &dyn Progress,
    ) -> Result<Report, Error> {
        let result = self.import_inner(paths, options, cancel, progress).await;
        progress.finish();
        result
    }

    async fn count(&self) -> Result<u64, Error> {
        self.count_rows().await
    }

    async fn list(
        &self,
        origin: Option<String>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Listed>, Error> {
        self.list_rows(origin, limit, offset).await
    }

    async fn stats(&self) -> Result<Stats, Error> {
        self.stats_rows().await
    }

    async fn delete(&self, selection: Selection) -> Result<usize, Error> {
        self.delete_rows(selection).await
    }

    fn reader(self: Arc<Self>) -> Arc<dyn KnowledgeBase> {
        self
    }
}
