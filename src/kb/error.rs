//! The knowledge base's errors: what went wrong reading input ([`ImportError`]) is kept
//! apart from what went wrong in a store ([`StoreError`]), and both keep their cause as
//! `source()`.

/// Any knowledge-base failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or parsing the files of an import (or an eval file) failed.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The store failed: opening, reading, writing, its indexes.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The embeddings API failed or answered something unusable (already redacted).
    #[error("embeddings: {0}")]
    Embedding(String),
    /// A config value cannot work.
    #[error("kb config: {0}")]
    Config(String),
}

impl Error {
    /// A store failure described in our own words.
    pub fn store(message: impl Into<String>) -> Self {
        Self::Store(StoreError::Message(message.into()))
    }
}

/// Input that cannot be imported, named by file and line where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that failed.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A line of an input file is not what the format expects.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file that failed.
        path: String,
        /// One-based line number.
        line: usize,
        /// What is wrong, and what to fix.
        message: String,
    },
    /// The import was interrupted before it committed anything.
    #[error("interrupted; the knowledge base is unchanged")]
    Cancelled,
}

/// A store that cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("knowledge base: sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The full-text index failed.
    #[error("knowledge base: full-text index: {0}")]
    FullText(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A file or directory of the store could not be used.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The vectors in the store and the configured model do not fit together.
    #[error(
        "the store in {data_dir} holds {stored_dim}-dimension vectors from model `{stored_model}`, \
         but the configured model `{model}` {got}; configure the same model again, \
         or import into a new --data directory (or `kb delete --all` first)"
    )]
    DimensionMismatch {
        /// The data directory.
        data_dir: String,
        /// Vector size recorded in the store.
        stored_dim: usize,
        /// Model recorded in the store.
        stored_model: String,
        /// The configured model.
        model: String,
        /// What the configured model gives, e.g. `returns 1024-dimension vectors`.
        got: String,
    },
    /// Any other failure, in our own words (what happened and what to do).
    #[error("knowledge base: {0}")]
    Message(String),
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn an_unreadable_import_path_is_an_import_error_with_its_io_cause() {
        let err = crate::kb::import::collect_files(&["/no/such/file.jsonl".into()]).unwrap_err();
        assert!(
            matches!(err, Error::Import(ImportError::Io { .. })),
            "{err:?}"
        );
        let cause = err.source().expect("the cause is kept");
        assert!(
            cause.downcast_ref::<std::io::Error>().is_some(),
            "{cause:?}"
        );
    }

    #[test]
    fn a_database_that_is_not_one_is_a_store_error_with_its_sqlite_cause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.sqlite3");
        std::fs::write(&path, vec![0x5a_u8; 8192]).unwrap();
        let err = crate::kb::store::db::probe(&path).unwrap_err();
        assert!(
            matches!(err, Error::Store(StoreError::Sqlite(_))),
            "{err:?}"
        );
        let cause = err.source().expect("the cause is kept");
        assert!(
            cause.downcast_ref::<rusqlite::Error>().is_some(),
            "{cause:?}"
        );
        assert!(err.to_string().contains("not a database"), "{err}");
    }
}
