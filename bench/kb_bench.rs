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

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ragstream::kb::config::{EmbeddingsConfig, KbConfig};
use ragstream::kb::embed::{Embeddings, Failure, Provide, Purpose};
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

/// A small deterministic generator (no extra dependency, same text on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Words of the sample knowledge base and the domain dictionary.
fn vocabulary() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb");
    let text = std::fs::read_to_string(root.join("autism-qa.jsonl")).expect("sample base");
    let segmenter = ragstream::kb::segment::Segmenter::new(None).expect("dictionary");
    let mut words: Vec<String> = segmenter.words(&text);
    words.retain(|w| w.chars().count() >= 2 && w.chars().all(|c| !c.is_ascii()));
    words.sort();
    words.dedup();
    words
}

/// Writes the chunks as Markdown files, one `##` section per chunk.
fn generate(dir: &Path, chunks: usize, words: &[String]) -> Vec<String> {
    let mut rng = Lcg(42);
    let files = 100;
    let mut samples = Vec::new();
    for f in 0..files {
        let mut text = format!("# 生成文档 {f}\n\n");
        for c in (f..chunks).step_by(files) {
            let mut para = String::new();
            let target = 150 + rng.below(100);
            while para.chars().count() < target {
                para.push_str(&words[rng.below(words.len())]);
                para.push(if rng.below(8) == 0 { '。' } else { '，' });
            }
            if c % 997 == 0 {
                samples.push(para.clone());
            }
            text.push_str(&format!("## 第{c}节\n\n{para}\n\n"));
        }
        std::fs::write(dir.join(format!("doc-{f:03}.md")), text).expect("write");
    }
    samples
}

/// An in-process embedder producing dense vectors like real embedding models do:
/// the sum of a fixed pseudo-random dense vector per character bigram (a random
/// projection of the bag of bigrams), so texts sharing words get similar vectors.
#[derive(Debug)]
struct LocalEmbedder {
    dim: usize,
}

/// The dense random vector of one bigram (uniform in -1..1, seeded by the bigram).
fn bigram_vector(a: char, b: char, dim: usize) -> Vec<f32> {
    let mut rng = Lcg(((a as u64) << 32) ^ (b as u64) ^ 0x9e37_79b9_7f4a_7c15);
    (0..dim)
        .map(|_| rng.next() as f32 / (1u64 << 30) as f32 - 1.0)
        .collect()
}

fn fake_vector(text: &str, dim: usize) -> Vec<f32> {
    thread_local! {
        static CACHE: std::cell::RefCell<HashMap<(char, char), Vec<f32>>> = RefCell::new(HashMap::new());
    }
    let chars: Vec<char> = text.chars().filter(|c| c.is_alphanumeric()).collect();
    let mut v = vec![0.0f32; dim];
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        for pair in chars.windows(2) {
            let basis = cache
                .entry((pair[0], pair[1]))
                .or_insert_with(|| bigram_vector(pair[0], pair[1], dim));
            for (x, y) in v.iter_mut().zip(basis.iter()) {
                *x += y;
            }
        }
    });
    v
}

#[async_trait]
impl Provide for LocalEmbedder {
    fn model(&self) -> &str {
        "local-bigram-projection"
    }

    async fn embed_batch(&self, texts: &[String], _: Purpose) -> Result<Vec<Vec<f32>>, Failure> {
        Ok(texts.iter().map(|t| fake_vector(t, self.dim)).collect())
    }
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
