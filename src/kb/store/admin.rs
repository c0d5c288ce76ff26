//! Listing, statistics and deletion in the embedded store (blocking; the async form is
//! [`KnowledgeBaseAdmin`](crate::kb::KnowledgeBaseAdmin)).

use rusqlite::params;
use tokio_util::sync::CancellationToken;

use super::{Changes, Store, db};
use crate::kb::Error;
use crate::kb::admin::{Listed, Selection, Stats};

impl Store {
    /// Number of documents.
    pub fn count(&self) -> Result<u64, Error> {
        self.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(db::sql)
        })
    }

    /// Documents in import order, optionally only those from `origin`.
    pub fn list(
        &self,
        origin: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Listed>, Error> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {} FROM chunks WHERE (?1 IS NULL OR origin = ?1)
                     ORDER BY rowid LIMIT ?2 OFFSET ?3",
                    db::ROW_COLUMNS
                ))
                .map_err(db::sql)?;
            let rows = stmt
                .query_map(params![origin, limit as i64, offset as i64], db::read_row)
                .map_err(db::sql)?;
            rows.map(|row| {
                let row = row.map_err(db::sql)?;
                Ok(Listed {
                    id: row.doc.id,
                    kind: row.doc.kind,
                    title: row.doc.title,
                    source: row.doc.source,
                    origin: row.doc.origin,
                    line: row.doc.line,
                    has_vector: row.has_vector,
                })
            })
            .collect()
        })
    }

    /// Counts by kind, origin and vectors.
    pub fn stats(&self) -> Result<Stats, Error> {
        let mut stats = self.read(|conn| {
            let count = |sql: &str| -> Result<u64, Error> {
                conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                    .map(|n| n as u64)
                    .map_err(db::sql)
            };
            let mut stmt = conn
                .prepare("SELECT origin, COUNT(*) FROM chunks GROUP BY origin ORDER BY 2 DESC, 1")
                .map_err(db::sql)?;
            let origins = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
                .map_err(db::sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db::sql)?;
            let model = db::vector_model(conn)?;
            Ok(Stats {
                documents: count("SELECT COUNT(*) FROM chunks")?,
                qa_pairs: count("SELECT COUNT(*) FROM chunks WHERE kind = 'qa'")?,
                passages: count("SELECT COUNT(*) FROM chunks WHERE kind <> 'qa'")?,
                with_vectors: count("SELECT COUNT(*) FROM chunks WHERE embedding IS NOT NULL")?,
                embedding_model: model.as_ref().map(|m| m.0.clone()),
                embedding_dim: model.map(|m| m.1),
                origins,
                fulltext_documents: 0,
                generation: db::generation(conn)?,
            })
        })?;
        stats.fulltext_documents = self.inner.fulltext.len();
        Ok(stats)
    }

    /// Deletes the selected documents in one transaction; returns how many went.
    pub fn delete(&self, selection: &Selection) -> Result<usize, Error> {
        self.write(&CancellationToken::new(), |tx| {
            let rowids: Vec<i64> = match selection {
                Selection::All => collect(tx, "SELECT rowid FROM chunks", params![])?,
                Selection::Origin(origin) => {
                    let found = collect(
                        tx,
                        "SELECT rowid FROM chunks WHERE origin = ?1",
                        params![origin],
                    )?;
                    if found.is_empty() {
                        return Err(Error::store(format!(
                            "no documents were imported from `{origin}`; nothing was deleted (see `kb stats`)"
                        )));
                    }
                    found
                }
                Selection::Ids(ids) => {
                    let mut rowids = Vec::new();
                    for id in ids {
                        let found =
                            collect(tx, "SELECT rowid FROM chunks WHERE id = ?1", params![id])?;
                        if found.is_empty() {
                            return Err(Error::store(format!(
                                "no document with id `{id}`; nothing was deleted (see `kb list`)"
                            )));
                        }
                        rowids.extend(found);
                    }
                    rowids
                }
            };
            db::delete_rowids(tx, &rowids)?;
            db::sync_vector_model(tx, None)?;
            let removed = rowids.len();
            Ok((
                removed,
                Changes {
                    deleted: rowids,
                    added: Vec::new(),
                },
            ))
        })
    }
}

/// The first column of every row of a query, as rowids.
fn collect(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<i64>, Error> {
    let mut stmt = tx.prepare(sql).map_err(db::sql)?;
    stmt.query_map(params, |r| r.get(0))
        .map_err(db::sql)?
        .collect::<Result<Vec<i64>, _>>()
        .map_err(db::sql)
}
