//! Helpers for the knowledge-base tests.

use std::path::{Path, PathBuf};

use ragstream::kb::import::{Options, Report, Silent};
use ragstream::kb::{KbConfig, KnowledgeBaseAdmin, Store};
use tokio_util::sync::CancellationToken;

/// The sample knowledge base shipped in `examples/kb`.
pub fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb/autism-qa.jsonl")
}

/// The sample eval set.
pub fn sample_eval() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb/autism-eval.jsonl")
}

/// A config with the store in `dir` and full-text search only.
pub fn config(dir: &Path) -> KbConfig {
    KbConfig {
        data_dir: dir.join("data"),
        ..KbConfig::default()
    }
}

/// Imports `paths` with default options.
pub async fn import(store: &Store, paths: &[PathBuf]) -> Result<Report, ragstream::kb::Error> {
    store
        .import(
            paths,
            &Options::default(),
            &CancellationToken::new(),
            &Silent,
        )
        .await
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Ids of the hits, best first.
pub fn ids(hits: &[ragstream::kb::Hit]) -> Vec<String> {
    hits.iter().map(|h| h.id.clone()).collect()
}

/// Search limits that keep every hit: `top_k` results, no threshold, no budget.
pub fn params(top_k: usize) -> ragstream::kb::SearchParams {
    ragstream::kb::SearchParams {
        top_k,
        min_score: 0.0,
        max_context_chars: 100_000,
    }
}
