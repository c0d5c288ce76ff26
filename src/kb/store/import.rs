//! The embedded store's side of `kb import`: plan against SQLite, embed what is new,
//! write in one transaction (steps 3 to 5 of [`crate::kb::import`]).

use crate::kb::{ImportError, StoreError};
use std::collections::HashSet;
use std::path::PathBuf;

use rusqlite::OptionalExtension;
use tokio_util::sync::CancellationToken;

use super::fulltext::Entry;
use super::{Changes, Store, check_model, db};
use crate::kb::Error;
use crate::kb::document::Document;
use crate::kb::import::{Options, Parsed, Progress, Report, embed_documents, read_documents};

/// The import plan: what to write once the vectors are in.
#[derive(Debug, Default)]
struct Plan {
    /// Documents to insert (new or changed).
    insert: Vec<Document>,
    /// Rowids to delete (changed documents' old rows, `--replace` leftovers).
    delete: Vec<i64>,
    /// The report so far.
    report: Report,
}

impl Store {
    /// Imports `paths` as one atomic change (the caller ends the progress display).
    pub(crate) async fn import_inner(
        &self,
        paths: &[PathBuf],
        options: &Options,
        cancel: &CancellationToken,
        progress: &dyn Progress,
    ) -> Result<Report, Error> {
        let Parsed { files, docs } =
            read_documents(paths, self.config().chunk, cancel, progress).await?;
        let origins: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();

        let store = self.clone();
        let replace = options.replace;
        let mut plan = tokio::task::spawn_blocking(move || store.plan(docs, &origins, replace))
            .await
            .map_err(|err| Error::store(format!("plan task failed: {err}")))??;
        plan.report.files = files.len();

        let vectors = self.embed_plan(&plan, cancel, progress).await?;
        plan.report.embedded = vectors.as_ref().map_or(0, Vec::len);

        progress.start("store", plan.insert.len() as u64);
        let store = self.clone();
        let cancel = cancel.clone();
        let model = self.embeddings().map(|e| e.model().to_owned());
        tokio::task::spawn_blocking(move || store.apply(plan, vectors, model, &cancel))
            .await
            .map_err(|err| Error::store(format!("store task failed: {err}")))?
    }

    /// Compares the parsed documents with the store (read-only).
    fn plan(&self, docs: Vec<Document>, origins: &[String], replace: bool) -> Result<Plan, Error> {
        self.read(|conn| {
            let mut plan = Plan::default();
            plan.report.documents = docs.len();
            let mut by_hash = conn
                .prepare_cached("SELECT rowid FROM chunks WHERE hash = ?1")
                .map_err(db::sql)?;
            let mut by_id = conn
                .prepare_cached("SELECT rowid FROM chunks WHERE id = ?1")
                .map_err(db::sql)?;
            let mut keep: HashSet<i64> = HashSet::new();
            for doc in docs {
                if let Some(rowid) = by_hash
                    .query_row([&doc.hash], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(db::sql)?
                {
                    keep.insert(rowid);
                    plan.report.unchanged += 1;
                    continue;
                }
                if let Some(rowid) = by_id
                    .query_row([&doc.id], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(db::sql)?
                {
                    plan.delete.push(rowid);
                    plan.report.updated += 1;
                } else {
                    plan.report.added += 1;
                }
                plan.insert.push(doc);
            }
            if replace {
                let mut stmt = conn
                    .prepare_cached("SELECT rowid FROM chunks WHERE origin = ?1")
                    .map_err(db::sql)?;
                for origin in origins {
                    let rows = stmt
                        .query_map([origin], |r| r.get::<_, i64>(0))
                        .map_err(db::sql)?;
                    for rowid in rows {
                        let rowid = rowid.map_err(db::sql)?;
                        if !keep.contains(&rowid) && !plan.delete.contains(&rowid) {
                            plan.delete.push(rowid);
                            plan.report.removed += 1;
                        }
                    }
                }
            }
            Ok(plan)
        })
    }

    /// Embeds the documents to insert, checking the vectors fit the store.
    async fn embed_plan(
        &self,
        plan: &Plan,
        cancel: &CancellationToken,
        progress: &dyn Progress,
    ) -> Result<Option<Vec<Vec<f32>>>, Error> {
        let Some(embeddings) = self.embeddings() else {
            return Ok(None);
        };
        if plan.insert.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let vectors = embed_documents(embeddings, &plan.insert, cancel, progress).await?;
        let store = self.clone();
        let stored = tokio::task::spawn_blocking(move || store.read(db::vector_model))
            .await
            .map_err(|err| Error::store(format!("check task failed: {err}")))??;
        if let (Some(stored), Some(first)) = (stored, vectors.first()) {
            check_model(self.data_dir(), &stored, embeddings.model(), None)?;
            if first.len() != stored.1 {
                return Err(Error::Store(StoreError::DimensionMismatch {
                    data_dir: self.data_dir().display().to_string(),
                    stored_dim: stored.1,
                    stored_model: stored.0,
                    model: embeddings.model().to_owned(),
                    got: format!("returns {}-dimension vectors", first.len()),
                }));
            }
        }
        Ok(Some(vectors))
    }

    /// Writes the plan in one transaction.
    fn apply(
        &self,
        plan: Plan,
        vectors: Option<Vec<Vec<f32>>>,
        model: Option<String>,
        cancel: &CancellationToken,
    ) -> Result<Report, Error> {
        let Plan {
            insert,
            delete,
            mut report,
        } = plan;
        self.write(cancel, |tx| {
            db::delete_rowids(tx, &delete)?;
            let mut added = Vec::with_capacity(insert.len());
            for (i, doc) in insert.into_iter().enumerate() {
                if i % 1024 == 0 && cancel.is_cancelled() {
                    return Err(Error::Import(ImportError::Cancelled));
                }
                let vector = vectors.as_ref().and_then(|v| v.get(i)).map(Vec::as_slice);
                let Some(rowid) = db::insert(tx, &doc, vector).map_err(|err| at(&doc, err))? else {
                    // Stored meanwhile by a concurrent import of the same content.
                    report.added = report.added.saturating_sub(1);
                    report.unchanged += 1;
                    continue;
                };
                added.push(Entry {
                    rowid,
                    title: doc.title,
                    body: doc.body,
                });
            }
            let dim = vectors.as_ref().and_then(|v| v.first()).map(Vec::len);
            db::sync_vector_model(tx, model.as_deref().zip(dim))?;
            Ok((
                report,
                Changes {
                    deleted: delete,
                    added,
                },
            ))
        })
    }
}

/// Names the document's file and line in a storage error.
fn at(doc: &Document, err: Error) -> Error {
    Error::Import(ImportError::Parse {
        path: doc.origin.clone(),
        line: doc.line,
        message: format!("cannot store document `{}`: {err}", doc.id),
    })
}
