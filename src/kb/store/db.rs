//! The SQLite side of the store: the source of truth for documents, metadata and vectors.
//!
//! WAL mode lets `serve` read while an import writes; every write bumps the
//! `generation` in `meta`, which the derived indexes (full text, vectors) compare
//! against to know whether they are out of date.

use crate::kb::StoreError;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::kb::Error;
use crate::kb::document::{Document, Kind};

/// Schema version written to `meta`; bump with a migration when the tables change.
const SCHEMA_VERSION: &str = "1";

/// Tables and indexes; idempotent.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    source TEXT NOT NULL,
    origin TEXT NOT NULL,
    line INTEGER NOT NULL,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    embedding BLOB,
    imported_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_origin ON chunks(origin);
";

/// Maps a SQLite error to the store error.
pub fn sql(err: rusqlite::Error) -> Error {
    Error::Store(StoreError::Sqlite(err))
}

/// Opens (creating if needed) the database with WAL and a generous busy timeout.
pub fn connect(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open(path)
        .map_err(|err| Error::store(format!("cannot open {}: {err}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(sql)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql)?;
    conn.execute_batch(SCHEMA).map_err(sql)?;
    let version: Option<String> = get_meta(&conn, "schema_version")?;
    match version.as_deref() {
        None => set_meta(&conn, "schema_version", SCHEMA_VERSION)?,
        Some(SCHEMA_VERSION) => {}
        Some(other) => {
            return Err(Error::store(format!(
                "{} has schema version {other}, this ragstream reads version {SCHEMA_VERSION}",
                path.display()
            )));
        }
    }
    Ok(conn)
}

/// Checks that the database file on disk still answers: opened afresh, read-only,
/// never created, so a file that was removed, truncated or overwritten under a running
/// store is noticed (pooled connections would go on reading their cached pages).
pub fn probe(path: &Path) -> Result<(), Error> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| Error::store(format!("cannot open {}: {err}", path.display())))?;
    generation(&conn).map(|_| ())
}

/// Reads a `meta` value.
pub fn get_meta(conn: &Connection, key: &str) -> Result<Option<String>, Error> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(sql)
}

/// Writes a `meta` value.
pub fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<(), Error> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
    .map_err(sql)?;
    Ok(())
}

/// Removes a `meta` value.
pub fn delete_meta(conn: &Connection, key: &str) -> Result<(), Error> {
    conn.execute("DELETE FROM meta WHERE key = ?1", [key])
        .map_err(sql)?;
    Ok(())
}

/// The write generation: bumped by every committed change.
pub fn generation(conn: &Connection) -> Result<u64, Error> {
    Ok(get_meta(conn, "generation")?
        .and_then(|g| g.parse().ok())
        .unwrap_or(0))
}

/// Bumps the generation inside a write transaction and returns the new value.
pub fn bump_generation(tx: &Transaction<'_>) -> Result<u64, Error> {
    let next = generation(tx)? + 1;
    set_meta(tx, "generation", &next.to_string())?;
    Ok(next)
}

/// The model and size of the stored vectors, if any are stored.
pub fn vector_model(conn: &Connection) -> Result<Option<(String, usize)>, Error> {
    let model = get_meta(conn, "embedding_model")?;
    let dim = get_meta(conn, "embedding_dim")?.and_then(|d| d.parse().ok());
    Ok(model.zip(dim))
}

/// Records the model and size of the stored vectors, or forgets them when none are left.
pub fn sync_vector_model(tx: &Transaction<'_>, model: Option<(&str, usize)>) -> Result<(), Error> {
    let any: bool = tx
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM chunks WHERE embedding IS NOT NULL)",
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;
    match (any, model) {
        (false, _) => {
            delete_meta(tx, "embedding_model")?;
            delete_meta(tx, "embedding_dim")?;
        }
        (true, Some((name, dim))) => {
            set_meta(tx, "embedding_model", name)?;
            set_meta(tx, "embedding_dim", &dim.to_string())?;
        }
        (true, None) => {}
    }
    Ok(())
}

/// A stored row, as search results and listings need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// SQLite rowid; the key shared with the full-text and vector indexes.
    pub rowid: i64,
    /// The document.
    pub doc: Document,
    /// Whether the row has a vector.
    pub has_vector: bool,
}

/// Columns read by [`read_row`], in order.
pub const ROW_COLUMNS: &str = "rowid, id, hash, kind, title, body, source, origin, line, tags, metadata, embedding IS NOT NULL";

/// Reads one row selected with [`ROW_COLUMNS`].
pub fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let kind: String = r.get(3)?;
    let tags: String = r.get(9)?;
    let metadata: String = r.get(10)?;
    let line: i64 = r.get(8)?;
    Ok(Row {
        rowid: r.get(0)?,
        has_vector: r.get(11)?,
        doc: Document {
            id: r.get(1)?,
            hash: r.get(2)?,
            kind: Kind::parse(&kind),
            title: r.get(4)?,
            body: r.get(5)?,
            source: r.get(6)?,
            origin: r.get(7)?,
            line: usize::try_from(line).unwrap_or(0),
            tags: serde_json::from_str(&tags).unwrap_or_default(),
            metadata: serde_json::from_str(&metadata).unwrap_or_default(),
        },
    })
}

/// Inserts a document and returns its rowid, or `None` when a document with
/// the same content hash is already stored: another import (another process,
/// or a second `serve` seeding the same directory) got there between this
/// import's plan and its write, and idempotency means there is nothing to add.
pub fn insert(
    tx: &Transaction<'_>,
    doc: &Document,
    vector: Option<&[f32]>,
) -> Result<Option<i64>, Error> {
    let tags = serde_json::to_string(&doc.tags).map_err(|e| Error::store(e.to_string()))?;
    let metadata = serde_json::to_string(&doc.metadata).map_err(|e| Error::store(e.to_string()))?;
    let blob = vector.map(encode_vector);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO chunks (id, hash, kind, title, body, source, origin, line, tags, metadata, embedding, imported_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT DO NOTHING",
        )
        .map_err(sql)?;
    let inserted = stmt
        .execute(params![
            doc.id,
            doc.hash,
            doc.kind.as_str(),
            doc.title,
            doc.body,
            doc.source,
            doc.origin,
            doc.line as i64,
            tags,
            metadata,
            blob,
            now
        ])
        .map_err(sql)?;
    Ok((inserted > 0).then(|| tx.last_insert_rowid()))
}

/// Deletes rows by rowid.
pub fn delete_rowids(tx: &Transaction<'_>, rowids: &[i64]) -> Result<(), Error> {
    let mut stmt = tx
        .prepare_cached("DELETE FROM chunks WHERE rowid = ?1")
        .map_err(sql)?;
    for rowid in rowids {
        stmt.execute([rowid]).map_err(sql)?;
    }
    Ok(())
}

/// Rows with the given rowids, in the order asked (missing rows are skipped).
pub fn rows_by_rowid(conn: &Connection, rowids: &[i64]) -> Result<Vec<Row>, Error> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM chunks WHERE rowid = ?1"
        ))
        .map_err(sql)?;
    let mut rows = Vec::with_capacity(rowids.len());
    for rowid in rowids {
        if let Some(row) = stmt.query_row([rowid], read_row).optional().map_err(sql)? {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Encodes a vector as little-endian `f32`s.
pub fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decodes a vector written by [`encode_vector`].
pub fn decode_vector(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_through_blobs() {
        let v = vec![0.5, -1.25, 3.0e-7];
        assert_eq!(decode_vector(&encode_vector(&v)), v);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.sqlite3");
        let conn = connect(&path).unwrap();
        set_meta(&conn, "schema_version", "99").unwrap();
        drop(conn);
        let err = connect(&path).unwrap_err().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }
}
