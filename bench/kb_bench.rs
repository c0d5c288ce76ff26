//! Knowledge-base benchmark: import speed, full-text and hybrid search latency.
//!
//! ```sh
//! cargo run --release --example kb_bench -- [--chunks 100000] [--dim 1024] [--queries 500]
//! ```
//!
//! 1. Generates `--chunks` Markdown sections of Chinese text (about 150–250 characters
//!    each, words drawn from the sample knowledge base) in 100 files.
//! 2. Imports them into a fresh store without embeddings: chunks per second.
//! 3. Runs `--queries` full-text searches (top 5): p50 / p99.
//! 4. Imports the same files into a second store with an in-process embedder
//!    (dense random projection of character bigrams, `--dim` dimensions; no HTTP), then runs hybrid
//!    searches with the query vector given: p50 / p99, plus the recall@10 of the
//!    vector index against an exact scan.
//!
//! Results go to stdout as Markdown rows for BENCHMARKS.md.

#[path = "kb_gen.rs"]
mod kb_gen;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kb_gen::{Lcg, LocalEmbedder, fake_vector, generate, vocabulary};
use ragstream::kb::config::{EmbeddingsConfig, KbConfig};
use ragstream::kb::embed::Embeddings;
use ragstream::kb::import::{Options, Silent};
use ragstream::kb::{KnowledgeBaseAdmin, SearchParams, Store};
use tokio_util::sync::CancellationToken;

/// Command-line settings.
struct Args {
    /// Chunks to generate.
    chunks: usize,
    /// Vector size for the hybrid run.
    dim: usize,
    /// Queries per measurement.
    queries: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        chunks: 100_000,
        dim: 1024,
        queries: 500,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: usize = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--chunks" => args.chunks = value,
            "--dim" => args.dim = value,
            "--queries" => args.queries = value,
            other => panic!("unknown flag {other}; use --chunks, --dim, --queries"),
        }
    }
    args
}

/// Query strings: 2–4 vocabulary words, or a fragment of a generated chunk.
fn queries(n: usize, words: &[String], samples: &[String]) -> Vec<String> {
    let mut rng = Lcg(7);
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                (0..2 + rng.below(3))
                    .map(|_| words[rng.below(words.len())].as_str())
                    .collect::<Vec<_>>()
                    .join("")
            } else {
                samples[rng.below(samples.len())].chars().take(20).collect()
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn import(store: &Store, dir: &Path) -> (usize, Duration) {
    let start = Instant::now();
    let report = store
        .import(
            &[dir.to_path_buf()],
            &Options::default(),
            &CancellationToken::new(),
            &Silent,
        )
        .await
        .expect("import");
    (report.added, start.elapsed())
}

fn measure(n: usize, mut f: impl FnMut(usize)) -> Vec<Duration> {
    // Warm up caches and the reader.
    for i in 0..n.min(20) {
        f(i);
    }
    let mut times: Vec<Duration> = (0..n)
        .map(|i| {
            let start = Instant::now();
            f(i);
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let work = tempfile::tempdir().expect("temp dir");
    let input: PathBuf = work.path().join("input");
    std::fs::create_dir_all(&input).expect("input dir");
    let words = vocabulary();
    let samples = generate(&input, args.chunks, &words);
    let queries = queries(args.queries, &words, &samples);
    let params = SearchParams {
        top_k: 5,
        min_score: 0.0,
        max_context_chars: 4000,
    };

    // Full text only.
    let cfg = KbConfig {
        data_dir: work.path().join("fulltext-only"),
        ..KbConfig::default()
    };
    let store = Store::open_blocking(&cfg).expect("open");
    let (added, took) = import(&store, &input).await;
    let rate = added as f64 / took.as_secs_f64();
    let mut empty = 0;
    let ft = measure(queries.len(), |i| {
        let hits = store
            .search_blocking(&queries[i], None, &params)
            .expect("search");
        empty += usize::from(hits.is_empty());
    });

    // Hybrid, with vectors from the in-process embedder.
    let cfg = KbConfig {
        data_dir: work.path().join("hybrid"),
        ..KbConfig::default()
    };
    let embedder = Embeddings::new(
        Box::new(LocalEmbedder { dim: args.dim }),
        &EmbeddingsConfig {
            batch_size: 256,
            ..EmbeddingsConfig::default()
        },
    );
    let hybrid_store = Store::open_with(&cfg, Some(embedder)).expect("open");
    let (hybrid_added, hybrid_took) = import(&hybrid_store, &input).await;
    let vectors: Vec<Vec<f32>> = queries.iter().map(|q| fake_vector(q, args.dim)).collect();
    let index = hybrid_store.vector_index().expect("vectors");
    let hy = measure(queries.len(), |i| {
        hybrid_store
            .search_blocking(&queries[i], Some(&vectors[i]), &params)
            .expect("search");
    });
    let mut found = 0;
    let mut wanted = 0;
    for v in vectors.iter().take(100) {
        let exact: Vec<i64> = index.search_exact(v, 10).iter().map(|m| m.rowid).collect();
        let fast: Vec<i64> = index.search(v, 10).iter().map(|m| m.rowid).collect();
        wanted += exact.len();
        found += exact.iter().filter(|r| fast.contains(r)).count();
    }

    println!(
        "chunks: {added} (hybrid store: {hybrid_added}), queries: {}, dim: {}",
        queries.len(),
        args.dim
    );
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| import, no embeddings | {added} chunks in {:.1} s = **{rate:.0} chunks/s** |",
        took.as_secs_f64()
    );
    println!(
        "| import, in-process {}-dim embedder | {hybrid_added} chunks in {:.1} s = {:.0} chunks/s |",
        args.dim,
        hybrid_took.as_secs_f64(),
        hybrid_added as f64 / hybrid_took.as_secs_f64()
    );
    println!(
        "| full-text search, top 5 | p50 **{}**, p99 {} ({} of {} queries without hits) |",
        ms(percentile(&ft, 0.5)),
        ms(percentile(&ft, 0.99)),
        empty,
        queries.len()
    );
    println!(
        "| hybrid search, query vector given, top 5 | p50 **{}**, p99 {} |",
        ms(percentile(&hy, 0.5)),
        ms(percentile(&hy, 0.99))
    );
    println!(
        "| vector index recall@10 vs exact scan ({}) | {:.3} |",
        if index.is_quantized() {
            "binary prefilter + exact rescoring"
        } else {
            "exact scan"
        },
        found as f64 / wanted.max(1) as f64
    );
}
