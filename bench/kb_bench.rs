//! Knowledge-base benchmark: import speed, full-text and hybrid search latency.
//!
//! ```sh
//! cargo run --release --example kb_bench -- [--chunks 100000] [--dim 1024] [--queries 500] \
//!     [--runs 3] [--recall-queries 100] [--store DIR] \
//!     [--postgres postgres://user@127.0.0.1:5432/db --runs 3]
//! ```
//!
//! `--store DIR` keeps both stores in `DIR` and reuses them when they are already there
//! (no import then), so that two builds can be timed on the same stores one after the
//! other, and callgrind can count the searches alone. `--runs N` repeats the search
//! measurements N times in the process (min / median / max of the p50s).
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
//! 5. With `--postgres URL` (an empty database with pgvector; `bench/kb_bench_pg.sh`
//!    starts a throwaway cluster and drops it afterwards): the same files are imported
//!    with the same embedder into LangChain's table, `kb migrate` builds the HNSW index, and
//!    the same queries run `--runs` times on each store, hybrid (query vector given)
//!    and full text only, one after the other, and the vector ranking alone (the store's
//!    HNSW statement beside the embedded vector index): p50 / p99 per run, and the load average;
//!    then how far PostgreSQL's full-text top 5 agree with the embedded store's (the share
//!    of the embedded store's hits PostgreSQL also returns, and how often the first hit is
//!    the same). A database that already holds `documents` is reused without importing,
//!    so a cluster kept between runs can time two builds on the same rows.
//!
//! Results go to stdout as Markdown rows for BENCHMARKS.md.

#[path = "kb_gen.rs"]
mod kb_gen;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kb_gen::{Lcg, LocalEmbedder, fake_vector, generate, vocabulary};
use ragstream::kb::config::{EmbeddingsConfig, KbConfig, StoreKind};
use ragstream::kb::embed::Embeddings;
use ragstream::kb::import::{Options, Silent};
use ragstream::kb::store::postgres;
use ragstream::kb::{KnowledgeBase, KnowledgeBaseAdmin, SearchParams, Store};
use tokio_util::sync::CancellationToken;

/// Command-line settings.
struct Args {
    /// Chunks to generate.
    chunks: usize,
    /// Vector size for the hybrid run.
    dim: usize,
    /// Queries per measurement.
    queries: usize,
    /// A PostgreSQL database to measure beside the embedded store.
    postgres: Option<String>,
    /// Measurement runs (embedded store; per store in the PostgreSQL comparison).
    runs: usize,
    /// Queries for the recall of the vector index against an exact scan (0: skip).
    recall_queries: usize,
    /// Where to keep (and reuse) the stores; a temporary directory when absent.
    store: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        chunks: 100_000,
        dim: 1024,
        queries: 500,
        postgres: None,
        runs: 3,
        recall_queries: 100,
        store: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--postgres" {
            args.postgres = Some(it.next().expect("--postgres needs a URL"));
            continue;
        }
        if flag == "--store" {
            args.store = Some(it.next().expect("--store needs a directory").into());
            continue;
        }
        let value: usize = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--chunks" => args.chunks = value,
            "--dim" => args.dim = value,
            "--queries" => args.queries = value,
            "--runs" => args.runs = value.max(1),
            "--recall-queries" => args.recall_queries = value,
            other => panic!(
                "unknown flag {other}; use --chunks, --dim, --queries, --runs, \
                 --recall-queries, --store, --postgres"
            ),
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

/// Imports `dir` into `store`: (documents added, time taken).
async fn import(store: &impl KnowledgeBaseAdmin, dir: &Path) -> (usize, Duration) {
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

/// The 1-minute load average, from /proc/loadavg.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Times `n` async searches (after 20 warm-up ones), sorted.
async fn measure_async<F, Fut>(n: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..n.min(20) {
        f(i).await;
    }
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        f(i).await;
        times.push(start.elapsed());
    }
    times.sort();
    times
}

/// "p50 / p99" of sorted times.
fn p50_p99(t: &[Duration]) -> String {
    format!("{} / {}", ms(percentile(t, 0.5)), ms(percentile(t, 0.99)))
}

/// min / median / max of the runs' p50s.
fn spread(runs: &[Vec<Duration>]) -> String {
    let mut p50: Vec<Duration> = runs.iter().map(|t| percentile(t, 0.5)).collect();
    p50.sort();
    format!(
        "{} / **{}** / {}",
        ms(p50[0]),
        ms(p50[p50.len() / 2]),
        ms(p50[p50.len() - 1])
    )
}

/// Imports `input` into the PostgreSQL database at `url` and measures both stores,
/// `runs` times each, on the same queries and vectors; prints Markdown rows.
#[allow(clippy::too_many_arguments)]
async fn compare_postgres(
    url: &str,
    args: &Args,
    input: &Path,
    queries: &[String],
    vectors: &[Vec<f32>],
    embedded: &Store,
    params: &SearchParams,
) {
    let mut cfg = KbConfig {
        store: StoreKind::Postgres,
        ..KbConfig::default()
    };
    cfg.postgres.url = Some(url.to_owned().into());
    cfg.postgres.query_function = String::new();
    cfg.embeddings.dimensions = Some(args.dim);
    // LangChain JS's table without index: the import inserts 100,000 rows far faster
    // than with the HNSW index maintained per row; `kb migrate` then builds the index.
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to --postgres");
    tokio::spawn(conn);
    // A database that already holds the table (a cluster kept between runs, as with
    // `--store` for the embedded store) is reused as it is: no import, no index build.
    let reused: bool = client
        .query_one("SELECT to_regclass('documents') IS NOT NULL", &[])
        .await
        .expect("look for the documents table")
        .get(0);
    let existing: i64 = if reused {
        let count = client.query_one("SELECT count(*) FROM documents", &[]);
        count.await.expect("count the rows").get(0)
    } else {
        0
    };
    if !reused {
        client
            .batch_execute(&format!(
                "CREATE TABLE documents (id bigserial primary key, content text, metadata jsonb, \
                 embedding vector({}))",
                args.dim
            ))
            .await
            .expect("create table (an empty database with pgvector is needed)");
    }
    let embedder = Embeddings::new(
        Box::new(LocalEmbedder { dim: args.dim }),
        &EmbeddingsConfig {
            batch_size: 256,
            ..EmbeddingsConfig::default()
        },
    );
    let store = postgres::connect_with(&cfg, Some(embedder))
        .await
        .expect("connect to --postgres");
    let imported = if reused {
        None
    } else {
        let (added, took) = import(&store, input).await;
        let start = Instant::now();
        postgres::migrate::migrate(&cfg).await.expect("kb migrate");
        Some((added, took, start.elapsed()))
    };
    let load_before = load();
    // The vector ranking alone: the statement the store's vector ranking sends with the
    // default empty filter, at the store's ef_search (kb.postgres.ef_search 100 ≥ 50
    // candidates), beside the embedded store's vector index, 50 nearest each.
    client
        .batch_execute("SET hnsw.ef_search = 100")
        .await
        .expect("ef_search");
    let nearest = client
        .prepare(
            "SELECT id::text, content, metadata, (1 - (embedding <=> $1))::float8 \
             FROM \"documents\" WHERE embedding IS NOT NULL AND metadata IS NOT NULL \
             ORDER BY embedding <=> $1 LIMIT $2",
        )
        .await
        .expect("prepare the vector statement");
    let index = embedded.vector_index().expect("vectors");
    let candidates = 50i64;
    let mut rows: Vec<(&str, Vec<Vec<Duration>>)> = vec![
        (
            "PostgreSQL + HNSW, vector ranking alone (50 nearest)",
            Vec::new(),
        ),
        ("embedded, vector index alone (50 nearest)", Vec::new()),
        ("PostgreSQL + HNSW, hybrid (query vector given)", Vec::new()),
        ("embedded, hybrid (query vector given)", Vec::new()),
        ("PostgreSQL, full text only", Vec::new()),
        ("embedded, full text only", Vec::new()),
    ];
    for _ in 0..args.runs {
        rows[0].1.push(
            measure_async(queries.len(), |i| {
                let (client, nearest) = (&client, &nearest);
                let v = pgvector::Vector::from(vectors[i].clone());
                async move {
                    let found = client
                        .query(nearest, &[&v, &candidates])
                        .await
                        .expect("vector statement");
                    assert!(!found.is_empty());
                }
            })
            .await,
        );
        rows[1].1.push(measure(queries.len(), |i| {
            assert!(!index.search(&vectors[i], 50).is_empty());
        }));
        rows[2].1.push(
            measure_async(queries.len(), |i| {
                let store = &store;
                async move {
                    store
                        .search_with_vector(&queries[i], Some(vectors[i].clone()), params)
                        .await
                        .expect("postgres search");
                }
            })
            .await,
        );
        rows[3].1.push(measure(queries.len(), |i| {
            embedded
                .search_blocking(&queries[i], Some(&vectors[i]), params)
                .expect("search");
        }));
        rows[4].1.push(
            measure_async(queries.len(), |i| {
                let store = &store;
                async move {
                    store
                        .search_with_vector(&queries[i], None, params)
                        .await
                        .expect("postgres search");
                }
            })
            .await,
        );
        rows[5].1.push(measure(queries.len(), |i| {
            embedded
                .search_blocking(&queries[i], None, params)
                .expect("search");
        }));
    }
    println!();
    match imported {
        Some((added, took, index_took)) => println!(
            "PostgreSQL: {added} rows imported in {:.1} s ({:.0} rows/s), then `kb migrate` built \
             the HNSW index in {:.1} s; load average {load_before} before the searches, {} after",
            took.as_secs_f64(),
            added as f64 / took.as_secs_f64(),
            index_took.as_secs_f64(),
            load()
        ),
        None => println!(
            "PostgreSQL: the database's {existing} rows reused (not imported); load average \
             {load_before} before the searches, {} after",
            load()
        ),
    }
    let header: Vec<String> = (1..=args.runs)
        .map(|r| format!("run {r} p50 / p99"))
        .collect();
    println!(
        "| search, top 5 | {} | p50 min / median / max |",
        header.join(" | ")
    );
    println!("|---|{}---|", "---|".repeat(args.runs));
    for (name, runs) in &rows {
        let cells: Vec<String> = runs.iter().map(|t| p50_p99(t)).collect();
        println!("| {name} | {} | {} |", cells.join(" | "), spread(runs));
    }
    // How close PostgreSQL's full-text ranking comes to the embedded store's on the same
    // rows: PostgreSQL bounds its candidates, the embedded store ranks every match.
    {
        let (mut top1, mut shared, mut wanted) = (0usize, 0usize, 0usize);
        for query in queries {
            let pg = store
                .search_with_vector(query, None, params)
                .await
                .expect("postgres search");
            let own = embedded
                .search_blocking(query, None, params)
                .expect("search");
            let pg: Vec<&str> = pg.iter().map(|h| h.hit.text.as_str()).collect();
            wanted += own.len();
            shared += own
                .iter()
                .filter(|h| pg.contains(&h.hit.text.as_str()))
                .count();
            top1 += usize::from(own.first().map(|h| h.hit.text.as_str()) == pg.first().copied());
        }
        println!(
            "| full text: PostgreSQL's top 5 in the embedded store's top 5 | {:.3} | same first \
             hit | {:.3} |",
            shared as f64 / wanted.max(1) as f64,
            top1 as f64 / queries.len().max(1) as f64
        );
    }
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

/// Opens the store in `dir`, importing `input` unless `dir` already held a store:
/// (chunks added, import time), or `None` when the store was reused.
async fn open_or_import(
    dir: &Path,
    input: &Path,
    embedder: Option<Embeddings>,
) -> (Store, Option<(usize, Duration)>) {
    let reused = dir.exists();
    let cfg = KbConfig {
        data_dir: dir.to_path_buf(),
        ..KbConfig::default()
    };
    let store = Store::open_with(&cfg, embedder).expect("open");
    if reused {
        return (store, None);
    }
    let imported = import(&store, input).await;
    (store, Some(imported))
}

/// "N chunks in T s = R chunks/s", or that the store was reused.
fn rate(imported: Option<(usize, Duration)>, bold: bool) -> String {
    match imported {
        Some((added, took)) => {
            let rate = added as f64 / took.as_secs_f64();
            let rate = if bold {
                format!("**{rate:.0} chunks/s**")
            } else {
                format!("{rate:.0} chunks/s")
            };
            format!("{added} chunks in {:.1} s = {rate}", took.as_secs_f64())
        }
        None => "not measured (store reused from --store)".to_owned(),
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let temp = tempfile::tempdir().expect("temp dir");
    let work = args.store.clone().unwrap_or_else(|| temp.path().to_owned());
    let input: PathBuf = work.join("input");
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
    let (store, imported) = open_or_import(&work.join("fulltext-only"), &input, None).await;

    // Hybrid, with vectors from the in-process embedder.
    let embedder = Embeddings::new(
        Box::new(LocalEmbedder { dim: args.dim }),
        &EmbeddingsConfig {
            batch_size: 256,
            ..EmbeddingsConfig::default()
        },
    );
    let (hybrid_store, hybrid_imported) =
        open_or_import(&work.join("hybrid"), &input, Some(embedder)).await;
    let vectors: Vec<Vec<f32>> = queries.iter().map(|q| fake_vector(q, args.dim)).collect();
    let index = hybrid_store.vector_index().expect("vectors");

    // Full text and hybrid take turns, so that outside load falls on both alike.
    let mut empty = 0;
    let mut ft = Vec::new();
    let mut hy = Vec::new();
    let mut vec_only = Vec::new();
    let candidates = KbConfig::default().search.candidates;
    for _ in 0..args.runs {
        empty = 0;
        ft.push(measure(queries.len(), |i| {
            let hits = store
                .search_blocking(&queries[i], None, &params)
                .expect("search");
            empty += usize::from(hits.is_empty());
        }));
        hy.push(measure(queries.len(), |i| {
            hybrid_store
                .search_blocking(&queries[i], Some(&vectors[i]), &params)
                .expect("search");
        }));
        // The hybrid search's vector part alone: the index's best `candidates`.
        vec_only.push(measure(queries.len(), |i| {
            std::hint::black_box(index.search(&vectors[i], candidates));
        }));
    }
    let mut found = 0;
    let mut wanted = 0;
    for v in vectors.iter().take(args.recall_queries) {
        let exact: Vec<i64> = index.search_exact(v, 10).iter().map(|m| m.rowid).collect();
        let fast: Vec<i64> = index.search(v, 10).iter().map(|m| m.rowid).collect();
        wanted += exact.len();
        found += exact.iter().filter(|r| fast.contains(r)).count();
    }

    println!(
        "chunks: {} (hybrid store: {}), queries: {}, dim: {}, runs: {}, load average {} at the end",
        store.count().unwrap_or_default(),
        index.len(),
        queries.len(),
        args.dim,
        args.runs,
        load()
    );
    println!("| measurement | result |");
    println!("|---|---|");
    println!("| import, no embeddings | {} |", rate(imported, true));
    println!(
        "| import, in-process {}-dim embedder | {} |",
        args.dim,
        rate(hybrid_imported, false)
    );
    let runs = |t: &[Vec<Duration>]| -> String {
        let cells: Vec<String> = t.iter().map(|t| p50_p99(t)).collect();
        cells.join("; ")
    };
    println!(
        "| full-text search, top 5, p50 / p99 per run | {} ({} of {} queries without hits) |",
        runs(&ft),
        empty,
        queries.len()
    );
    println!(
        "| full-text search p50, min / median / max | {} |",
        spread(&ft)
    );
    println!(
        "| hybrid search, query vector given, top 5, p50 / p99 per run | {} |",
        runs(&hy)
    );
    println!(
        "| hybrid search p50, min / median / max | {} |",
        spread(&hy)
    );
    println!(
        "| its vector part alone (the index's best {candidates}) p50, min / median / max | {} |",
        spread(&vec_only)
    );
    if args.recall_queries > 0 {
        println!(
            "| vector index recall@10 vs exact scan ({}, {} queries) | {:.3} |",
            if index.is_quantized() {
                "binary prefilter + exact rescoring"
            } else {
                "exact scan"
            },
            wanted / 10,
            found as f64 / wanted.max(1) as f64
        );
    }
    if let Some(url) = &args.postgres {
        compare_postgres(
            url,
            &args,
            &input,
            &queries,
            &vectors,
            &hybrid_store,
            &params,
        )
        .await;
    }
}
