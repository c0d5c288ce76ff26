//! The embedded store in the data directory.
//!
//! ```text
//! data/kb.sqlite3   documents, metadata and vectors (source of truth, WAL mode)
//! data/fulltext/    tantivy index with jieba segmentation (derived, rebuilt when stale or unreadable)
//! ```
//!
//! Vectors are held in memory by [`vectors::VectorIndex`], loaded at open and reloaded
//! when another writer (an import in another process) bumps the SQLite generation.
//! Every write runs in one SQLite transaction; the full-text index is updated only
//! after that transaction commits, so a failed write leaves both exactly as they were.

pub mod admin;
pub mod db;
pub mod fulltext;
mod import;
pub mod postgres;
pub mod search;
pub mod vectors;

use crate::kb::{ImportError, StoreError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior};
use tokio_util::sync::CancellationToken;

use fulltext::{Entry, FullText};
use vectors::VectorIndex;

use super::config::KbConfig;
use super::embed::Embeddings;
use super::import::{Options, Progress, Report};
use super::segment::Segmenter;
use super::{
    DetailedHit, Error, KnowledgeBase, KnowledgeBaseAdmin, Listed, SearchParams, Selection, Stats,
};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "kb.sqlite3";
/// Directory name of the full-text index inside the data directory.
pub const FULLTEXT_DIR: &str = "fulltext";

/// Opens the store configured in `cfg` (creating an empty one if needed).
///
/// The lead's `serve` keeps the result as `Arc<dyn KnowledgeBase>`; the hit-test
/// endpoint calls [`Store::search_detailed`] on the concrete type.
pub async fn open(cfg: &KbConfig) -> Result<Store, Error> {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || Store::open_blocking(&cfg))
        .await
        .map_err(|err| Error::store(format!("open task failed: {err}")))?
}

/// The embedded knowledge base. Cheap to clone; clones share everything.
#[derive(Clone, Debug)]
pub struct Store {
    /// Shared state.
    pub(crate) inner: Arc<Inner>,
}

/// What a [`Store`] shares between clones.
#[derive(Debug)]
pub(crate) struct Inner {
    /// The data directory.
    pub(crate) data_dir: PathBuf,
    /// `data_dir/kb.sqlite3`.
    pub(crate) db_path: PathBuf,
    /// Idle read connections. A std Mutex: never held across `.await`.
    readers: Mutex<Vec<Connection>>,
    /// The full-text index.
    pub(crate) fulltext: FullText,
    /// The vector index; swapped whole when reloaded.
    vectors: RwLock<Arc<VectorIndex>>,
    /// Held while one caller reloads the vectors, so others keep using the old ones.
    reloading: Mutex<()>,
    /// The embeddings provider, or `None` for full-text only.
    pub(crate) embeddings: Option<Embeddings>,
    /// The config the store was opened with.
    pub(crate) config: KbConfig,
}

/// Rows a write removed and added, for the derived indexes.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Rowids removed.
    pub(crate) deleted: Vec<i64>,
    /// Rows added.
    pub(crate) added: Vec<Entry>,
}

impl Changes {
    /// Whether the write changed nothing.
    fn is_empty(&self) -> bool {
        self.deleted.is_empty() && self.added.is_empty()
    }
}

impl Store {
    /// Synchronous [`open`]; call it from a blocking context.
    pub fn open_blocking(cfg: &KbConfig) -> Result<Self, Error> {
        let embeddings = Embeddings::from_config(&cfg.embeddings)?;
        Self::open_with(cfg, embeddings)
    }

    /// Opens with an explicit embeddings provider (tests inject short backoffs this way).
    pub fn open_with(cfg: &KbConfig, embeddings: Option<Embeddings>) -> Result<Self, Error> {
        let data_dir = cfg.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| {
            Error::Store(StoreError::Io {
                path: data_dir.display().to_string(),
                source,
            })
        })?;
        let db_path = data_dir.join(DB_FILE);
        let fulltext_dir = data_dir.join(FULLTEXT_DIR);
        // Looked at before `connect`, which would create an empty database.
        let db_size = std::fs::metadata(&db_path).ok().map(|m| m.len());
        let segmenter = Segmenter::from_config(cfg)?;
        let opened = FullText::open(&fulltext_dir, segmenter.clone());
        let indexed = opened
            .as_ref()
            .ok()
            .map(FullText::generation)
            .transpose()?
            .flatten();
        match db_size {
            Some(0) => return Err(lost(&db_path, "is empty (0 bytes)", &fulltext_dir, &opened)),
            None if opened.is_err() || indexed.is_some_and(|g| g > 0) => {
                return Err(lost(&db_path, "is missing", &fulltext_dir, &opened));
            }
            _ => {}
        }
        let conn = db::connect(&db_path)?;
        if indexed.is_some_and(|g| g > 0) && db::generation(&conn)? == 0 {
            return Err(lost(
                &db_path,
                "has never been written",
                &fulltext_dir,
                &opened,
            ));
        }
        if let (Some(stored), Some(e)) = (db::vector_model(&conn)?, &embeddings) {
            check_model(&data_dir, &stored, e.model(), e.dimensions())?;
        }
        let (fulltext, corrupt) = match opened {
            Ok(fulltext) => (fulltext, false),
            Err(err) => {
                // The index is derived from SQLite: start it again.
                tracing::warn!(%err, dir = %fulltext_dir.display(), "the full-text index cannot be opened; rebuilding it from kb.sqlite3");
                let reopened = std::fs::remove_dir_all(&fulltext_dir)
                    .map_err(|e| Error::store(e.to_string()))
                    .and_then(|()| FullText::open(&fulltext_dir, segmenter));
                (
                    reopened.map_err(|e| cannot_rebuild(&fulltext_dir, &err, &e))?,
                    true,
                )
            }
        };
        let store = Self {
            inner: Arc::new(Inner {
                data_dir,
                db_path,
                readers: Mutex::new(vec![conn]),
                fulltext,
                vectors: RwLock::new(Arc::new(VectorIndex::default())),
                reloading: Mutex::new(()),
                embeddings,
                config: cfg.clone(),
            }),
        };
        if corrupt {
            let generation = store.read(db::generation)?;
            store
                .rebuild_fulltext(generation)
                .map_err(|e| cannot_rebuild(&fulltext_dir, &"it was unreadable", &e))?;
        }
        store.repair_fulltext()?;
        store.refresh_vectors()?;
        Ok(store)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The config the store was opened with.
    pub fn config(&self) -> &KbConfig {
        &self.inner.config
    }

    /// The embeddings provider, if one is configured.
    pub fn embeddings(&self) -> Option<&Embeddings> {
        self.inner.embeddings.as_ref()
    }

    /// Runs `f` on a pooled read connection.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let conn = self
            .inner
            .readers
            .lock()
            .map_err(|_| Error::store("connection pool poisoned"))?
            .pop();
        let conn = match conn {
            Some(conn) => conn,
            None => db::connect(&self.inner.db_path)?,
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.inner.readers.lock() {
            pool.push(conn);
        }
        result
    }

    /// Runs `f` in one immediate SQLite transaction; commits only if `f` succeeds and
    /// `cancel` was not triggered, then brings the full-text index up to date.
    pub(crate) fn write<T>(
        &self,
        cancel: &tokio_util::sync::CancellationToken,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(T, Changes), Error>,
    ) -> Result<T, Error> {
        let mut conn = db::connect(&self.inner.db_path)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db::sql)?;
        let before = db::generation(&tx)?;
        let (value, changes) = f(&tx)?;
        if changes.is_empty() {
            return Ok(value);
        }
        let generation = db::bump_generation(&tx)?;
        if cancel.is_cancelled() {
            return Err(Error::Import(ImportError::Cancelled));
        }
        tx.commit().map_err(db::sql)?;

        let fulltext = &self.inner.fulltext;
        let synced = if fulltext.generation()? == Some(before) {
            fulltext.apply(&changes.deleted, &changes.added, generation)
        } else {
            self.rebuild_fulltext(generation)
        };
        if let Err(err) = synced {
            tracing::error!(%err, "full-text index update failed after commit; rebuilding");
            self.rebuild_fulltext(generation).map_err(|err| {
                Error::store(format!(
                    "the documents were saved, but the full-text index could not be updated ({err}); \
                     it is rebuilt the next time the store opens"
                ))
            })?;
        }
        Ok(value)
    }

    /// Rebuilds the full-text index when it does not reflect the current SQLite generation.
    fn repair_fulltext(&self) -> Result<(), Error> {
        let generation = self.read(db::generation)?;
        let indexed = self.inner.fulltext.generation()?;
        if indexed == Some(generation) || (generation == 0 && indexed.is_none()) {
            return Ok(());
        }
        tracing::warn!(
            ?indexed,
            generation,
            "full-text index is out of date; rebuilding"
        );
        match self.rebuild_fulltext(generation) {
            Ok(()) => Ok(()),
            Err(err) => {
                // Another process may hold the writer; it will leave the index current.
                tracing::warn!(%err, "full-text rebuild failed; searching the existing index");
                Ok(())
            }
        }
    }

    /// Replaces the full-text index with the documents in SQLite.
    fn rebuild_fulltext(&self, generation: u64) -> Result<(), Error> {
        let conn = db::connect(&self.inner.db_path)?;
        let mut stmt = conn
            .prepare("SELECT rowid, title, body FROM chunks")
            .map_err(db::sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Entry {
                    rowid: r.get(0)?,
                    title: r.get(1)?,
                    body: r.get(2)?,
                })
            })
            .map_err(db::sql)?;
        self.inner
            .fulltext
            .rebuild(rows.map(|r| r.map_err(db::sql)), generation)
    }

    /// The current vector index, reloaded first if SQLite has moved on.
    pub(crate) fn vectors(&self) -> Result<Arc<VectorIndex>, Error> {
        self.refresh_vectors()?;
        self.current_vectors()
    }

    /// The vector index, reloaded first if SQLite has moved on (for benchmarks and diagnostics).
    pub fn vector_index(&self) -> Result<Arc<VectorIndex>, Error> {
        self.vectors()
    }

    /// The loaded vector index, without checking for changes.
    pub(crate) fn current_vectors(&self) -> Result<Arc<VectorIndex>, Error> {
        self.inner
            .vectors
            .read()
            .map(|v| Arc::clone(&v))
            .map_err(|_| Error::store("vector index lock poisoned"))
    }

    /// Reloads the vectors if the SQLite generation changed. While one caller reloads,
    /// others keep searching the previous vectors.
    fn refresh_vectors(&self) -> Result<(), Error> {
        let generation = self.read(db::generation)?;
        if self.current_vectors()?.generation == generation {
            return Ok(());
        }
        let Ok(_guard) = self.inner.reloading.try_lock() else {
            return Ok(());
        };
        let index = self.read(|conn| {
            let generation = db::generation(conn)?;
            let mut stmt = conn
                .prepare("SELECT rowid, embedding FROM chunks WHERE embedding IS NOT NULL")
                .map_err(db::sql)?;
            let rows = stmt
                .query_map([], |r| {
                    let blob: Vec<u8> = r.get(1)?;
                    Ok((r.get::<_, i64>(0)?, db::decode_vector(&blob)))
                })
                .map_err(db::sql)?;
            let mut vectors = Vec::new();
            for row in rows {
                vectors.push(row.map_err(db::sql)?);
            }
            Ok(VectorIndex::build(generation, vectors))
        })?;
        *self
            .inner
            .vectors
            .write()
            .map_err(|_| Error::store("vector index lock poisoned"))? = Arc::new(index);
        Ok(())
    }
}

/// The database is gone or empty while its full-text index shows it held documents.
fn lost(db: &Path, what: &str, fulltext: &Path, index: &Result<FullText, Error>) -> Error {
    let index = match index {
        Ok(ft) => match ft.generation() {
            Ok(Some(g)) if g > 0 => format!(
                "the full-text index in {} was built from write {g} of it",
                fulltext.display()
            ),
            _ => format!("{} is already there", fulltext.display()),
        },
        Err(_) => format!("{} is already there (unreadable)", fulltext.display()),
    };
    Error::store(format!(
        "{} {what}, but {index}: the knowledge base was lost (truncated, moved or deleted) and was not \
         replaced. Restore {} from a backup (the index holds no text to recover from); or, to start \
         a new knowledge base in this directory, delete {} and {} and import again",
        db.display(),
        db.display(),
        db.display(),
        fulltext.display()
    ))
}

/// The full-text index could neither be opened nor rebuilt.
fn cannot_rebuild(dir: &Path, why: &dyn std::fmt::Display, err: &Error) -> Error {
    Error::store(format!(
        "the full-text index in {} cannot be opened ({why}) and rebuilding it failed ({err}); \
         stop every ragstream using this data directory, delete {} and start again (it is \
         rebuilt from kb.sqlite3)",
        dir.display(),
        dir.display()
    ))
}

/// Fails when the configured model cannot produce vectors comparable with the stored ones.
pub(crate) fn check_model(
    data_dir: &Path,
    (stored_model, stored_dim): &(String, usize),
    model: &str,
    dimensions: Option<usize>,
) -> Result<(), Error> {
    let got = if model != stored_model {
        "is a different model, so its vectors are not comparable".to_owned()
    } else if let Some(d) = dimensions.filter(|d| d != stored_dim) {
        format!("is configured for {d}-dimension vectors")
    } else {
        return Ok(());
    };
    Err(Error::Store(StoreError::DimensionMismatch {
        data_dir: data_dir.display().to_string(),
        stored_dim: *stored_dim,
        stored_model: stored_model.clone(),
        model: model.to_owned(),
        got,
    }))
}

#[async_trait]
impl KnowledgeBase for Store {
    async fn embed_query(&self, query: &str) -> Option<Vec<f32>> {
        self.query_vector(query).await
    }

    async fn search_with_vector(
        &self,
        query: &str,
        vector: Option<Vec<f32>>,
        params: &SearchParams,
    ) -> Result<Vec<DetailedHit>, Error> {
        self.search_in_background(query, vector, params).await
    }

    async fn ready(&self) -> Result<(), Error> {
        let path = self.inner.db_path.clone();
        blocking(move || db::probe(&path)).await
    }
}

#[async_trait]
impl KnowledgeBaseAdmin for Store {
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
        let store = self.clone();
        blocking(move || Store::count(&store)).await
    }

    async fn list(
        &self,
        origin: Option<String>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Listed>, Error> {
        let store = self.clone();
        blocking(move || Store::list(&store, origin.as_deref(), limit, offset)).await
    }

    async fn stats(&self) -> Result<Stats, Error> {
        let store = self.clone();
        blocking(move || Store::stats(&store)).await
    }

    async fn delete(&self, selection: Selection) -> Result<usize, Error> {
        let store = self.clone();
        blocking(move || Store::delete(&store, &selection)).await
    }

    fn reader(self: Arc<Self>) -> Arc<dyn KnowledgeBase> {
        self
    }
}

/// Runs the store's blocking work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| Error::store(format!("store task failed: {err}")))?
}

/// A real store in a temporary directory holding `jsonl` (question/answer lines), for
/// unit tests of the code above the store.
#[cfg(test)]
pub(crate) async fn temporary(jsonl: &str) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("kb.jsonl");
    std::fs::write(&file, jsonl).expect("write jsonl");
    let cfg = KbConfig {
        data_dir: dir.path().join("data"),
        ..KbConfig::default()
    };
    let store = open(&cfg).await.expect("open store");
    KnowledgeBaseAdmin::import(
        &store,
        &[file],
        &Options::default(),
        &CancellationToken::new(),
        &super::import::Silent,
    )
    .await
    .expect("import");
    (dir, store)
}
