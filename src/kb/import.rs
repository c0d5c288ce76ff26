//! `kb import`: files in, documents stored, all or nothing.
//!
//! 1. collect the files (directories recursively; hidden entries and unsupported
//!    files inside a directory are skipped, named ones are an error);
//! 2. parse every file (a bad row stops the import with `file:line`);
//! 3. plan against the store: content already stored is skipped, a changed document
//!    with a known id replaces the old one, `--replace` also removes what its files no
//!    longer contain;
//! 4. embed only what is new (the slow, fallible part; nothing is written yet);
//! 5. write everything in one SQLite transaction, then update the full-text index.
//!
//! Steps 1, 2 ([`read_documents`]) and 4 ([`embed_documents`]) are the same for every
//! store; planning (3) and writing (5) are the store's own ([`KnowledgeBaseAdmin::import`](super::KnowledgeBaseAdmin::import);
//! the embedded store's in `store/import.rs`).
//!
//! Cancellation (Ctrl-C) is honoured up to the commit; a failure at any step leaves
//! the store exactly as it was.

use crate::kb::ImportError;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Error;
use super::config::ChunkConfig;
use super::document::Document;
use super::embed::{Embeddings, Purpose};
use super::formats::{self, Format};

/// Options of one import.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Remove documents of the imported files that the files no longer contain.
    pub replace: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Files read.
    pub files: usize,
    /// Documents in those files.
    pub documents: usize,
    /// New documents stored.
    pub added: usize,
    /// Documents whose id was known but whose content changed.
    pub updated: usize,
    /// Documents already stored with the same content.
    pub unchanged: usize,
    /// Documents removed by `--replace`.
    pub removed: usize,
    /// Documents embedded.
    pub embedded: usize,
}

/// Progress callbacks; the CLI draws a bar, the library logs nothing by itself.
pub trait Progress: Send + Sync {
    /// A stage with `total` steps begins (`"parse"`, `"embed"`, `"store"`, `"index"`).
    fn start(&self, stage: &str, total: u64);
    /// `done` steps of the current stage are finished.
    fn set(&self, done: u64);
    /// The import ended (successfully or not).
    fn finish(&self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str, _: u64) {}
    fn set(&self, _: u64) {}
}

/// Lists the importable files under `paths`, sorted, without duplicates.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| {
            Error::Import(ImportError::Io {
                path: path.display().to_string(),
                source,
            })
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            // Hidden entries below the named directory are skipped, and hidden folders
            // are not entered (`.git`); the directory named itself is the user's choice.
            let walk = walkdir::WalkDir::new(path)
                .follow_links(true)
                .into_iter()
                .filter_entry(|e| {
                    e.depth() == 0 || !e.file_name().as_encoded_bytes().starts_with(b".")
                });
            for entry in walk {
                let entry = entry.map_err(|err| ImportError::Io {
                    path: err.path().unwrap_or(path).display().to_string(),
                    source: err.into(),
                })?;
                if entry.file_type().is_file() && Format::of(entry.path()).is_some() {
                    found.push(entry.into_path());
                }
            }
            found.sort();
            files.extend(found);
        } else if Format::of(path).is_some() {
            files.push(path.clone());
        } else {
            return Err(Error::Import(ImportError::Parse {
                path: path.display().to_string(),
                line: 1,
                message: "unsupported file type; use .jsonl, .csv, .md or .txt".into(),
            }));
        }
    }
    // Absolute paths, so that `--replace` and `kb delete --origin` match however
    // the file was named (`./a.md`, `a.md`, `docs/../a.md`).
    let mut files: Vec<PathBuf> = files
        .into_iter()
        .map(|f| std::fs::canonicalize(&f).unwrap_or(f))
        .collect();
    let mut seen = HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    Ok(files)
}

/// The documents of an import, parsed and deduplicated, before any store sees them.
#[derive(Debug)]
pub struct Parsed {
    /// The files read, sorted.
    pub files: Vec<PathBuf>,
    /// Their documents, repeated content dropped.
    pub docs: Vec<Document>,
}

/// Steps 1 and 2, the same for every store: collects the files under `paths`, parses
/// them on blocking threads (a bad row stops with `file:line`), and drops repeated
/// content.
pub async fn read_documents(
    paths: &[PathBuf],
    chunk: ChunkConfig,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> Result<Parsed, Error> {
    let files = collect_files(paths)?;
    progress.start("parse", files.len() as u64);
    let mut docs = Vec::new();
    for (i, file) in files.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(Error::Import(ImportError::Cancelled));
        }
        let file = file.clone();
        let parsed = tokio::task::spawn_blocking(move || formats::read(&file, chunk))
            .await
            .map_err(|err| Error::store(format!("parse task failed: {err}")))??;
        docs.extend(parsed);
        progress.set(i as u64 + 1);
    }
    Ok(Parsed {
        docs: dedupe(docs)?,
        files,
    })
}

/// Step 4, the same for every store: embeds `docs` (the ones a store's plan found new)
/// in batches with retries; Ctrl-C stops it before anything is written.
pub async fn embed_documents(
    embeddings: &Embeddings,
    docs: &[Document],
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> Result<Vec<Vec<f32>>, Error> {
    let texts: Vec<String> = docs.iter().map(Document::embedding_text).collect();
    progress.start("embed", texts.len() as u64);
    let report = |done: usize| progress.set(done as u64);
    tokio::select! {
        result = embeddings.embed(&texts, Purpose::Document, &report) => result,
        () = cancel.cancelled() => Err(Error::Import(ImportError::Cancelled)),
    }
}

/// Drops repeated content and rejects one id used for two different contents.
fn dedupe(docs: Vec<Document>) -> Result<Vec<Document>, Error> {
    let mut hashes = HashSet::new();
    let mut ids: HashMap<String, (String, usize)> = HashMap::new();
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        if !hashes.insert(doc.hash.clone()) {
            continue;
        }
        if let Some((path, line)) = ids.get(&doc.id) {
            return Err(Error::Import(ImportError::Parse {
                path: doc.origin.clone(),
                line: doc.line,
                message: format!(
                    "id `{}` is already used by different content at {path}:{line}; ids must be unique",
                    doc.id
                ),
            }));
        }
        ids.insert(doc.id.clone(), (doc.origin.clone(), doc.line));
        out.push(doc);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::document::Kind;

    fn doc(id: &str, body: &str, line: usize) -> Document {
        Document::new(
            Some(id.into()),
            Kind::Qa,
            "q".into(),
            body.into(),
            "s".into(),
            "f.jsonl",
            line,
            "f",
        )
    }

    #[test]
    fn repeated_content_is_imported_once() {
        let docs = dedupe(vec![doc("a", "x", 1), doc("a", "x", 2), doc("b", "y", 3)]).unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn one_id_for_two_contents_names_both_places() {
        let err = dedupe(vec![doc("a", "x", 1), doc("a", "y", 5)])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "f.jsonl:5: id `a` is already used by different content at f.jsonl:1; ids must be unique"
        );
    }

    // Issue 10: `.git/objects/*.jsonl` was imported from inside a hidden folder.
    #[test]
    fn hidden_files_and_folders_are_skipped_at_every_depth_unless_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for (path, text) in [
            ("kb/a.md", "# a"),
            ("kb/.git/objects/pack.jsonl", "{}"),
            ("kb/.git/b.md", "# b"),
            ("kb/sub/.cache/c.md", "# c"),
            ("kb/sub/.d.md", "# d"),
            ("kb/sub/e.md", "# e"),
            (".shared/f.md", "# f"),
            (".shared/.old/g.md", "# g"),
            (".h.md", "# h"),
        ] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let names = |paths: &[&str]| -> Vec<String> {
            let paths: Vec<PathBuf> = paths.iter().map(|p| root.join(p)).collect();
            collect_files(&paths)
                .unwrap()
                .iter()
                .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(names(&["kb"]), ["kb/a.md", "kb/sub/e.md"]);
        // A hidden folder or file named on the command line is the user's choice.
        assert_eq!(names(&[".shared", ".h.md"]), [".shared/f.md", ".h.md"]);
        assert_eq!(
            names(&["kb/.git"]),
            ["kb/.git/b.md", "kb/.git/objects/pack.jsonl"]
        );
    }

    #[test]
    fn unsupported_files_in_directories_are_skipped_but_named_ones_fail() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.md"), "# a").unwrap();
        std::fs::write(dir.path().join("b.jsonl"), "").unwrap();
        std::fs::write(dir.path().join("c.pdf"), "").unwrap();
        std::fs::write(dir.path().join(".hidden.md"), "").unwrap();
        let files = collect_files(&[dir.path().to_path_buf()]).unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.strip_prefix(&root).unwrap().to_owned())
            .collect();
        assert_eq!(names, [PathBuf::from("b.jsonl"), PathBuf::from("sub/a.md")]);

        let err = collect_files(&[dir.path().join("c.pdf")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.pdf:1: unsupported file type"), "{err}");
    }
}
