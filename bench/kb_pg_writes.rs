//! Write benchmark of the PostgreSQL store: what an import, a small change and a
//! delete cost on a table of `--chunks` rows, where ragstream's term statistics must
//! follow every change (issue 12).
//!
//!     bench/kb_bench_pg.sh --example kb_pg_writes --chunks 20000 --runs 5
//!
//! Against an empty database with pgvector (`--postgres URL`; `bench/kb_bench_pg.sh`
//! starts a throwaway cluster): LangChain JS's table without vectors (full text only,
//! so no embedding time is measured), then
//! 1. the generated knowledge base (`--chunks` rows, 100 Markdown files) imported in one
//!    transaction: rows/s;
//! 2. `--runs` times on that table: a one-document import, its re-import with changed
//!    text, and its `kb delete`;
//! 3. a bulk import of another tenth of the table (new rows) and its `kb delete`.
//!
//! Each step prints its time; the small steps print min / median / max.

#[path = "kb_gen.rs"]
#[allow(
    dead_code,
    reason = "the embedder is kb_bench's; this bench imports full text only"
)]
mod kb_gen;

use std::path::Path;
use std::time::{Duration, Instant};

use kb_gen::{Lcg, generate, vocabulary};
use ragstream::kb::config::{KbConfig, StoreKind};
use ragstream::kb::import::{Options, Silent};
use ragstream::kb::store::postgres::{self, PgStore};
use ragstream::kb::{KnowledgeBaseAdmin, Selection};
use tokio_util::sync::CancellationToken;

/// Command-line settings.
struct Args {
    /// Rows of the table.
    chunks: usize,
    /// Repetitions of each small step.
    runs: usize,
    /// The database (empty, with pgvector).
    postgres: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        chunks: 20_000,
        runs: 5,
        postgres: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--postgres" => args.postgres = value,
            "--chunks" => args.chunks = value.parse().expect("--chunks needs a number"),
            "--runs" => {
                args.runs = value
                    .parse::<usize>()
                    .expect("--runs needs a number")
                    .max(1)
            }
            other => panic!("unknown flag {other}; use --chunks, --runs, --postgres"),
        }
    }
    assert!(!args.postgres.is_empty(), "--postgres URL is needed");
    args
}

/// Imports `paths` in one transaction; the time it took.
async fn import(store: &PgStore, paths: &[&Path]) -> Duration {
    let paths: Vec<_> = paths.iter().map(|p| p.to_path_buf()).collect();
    let start = Instant::now();
    store
        .import(
            &paths,
            &Options::default(),
            &CancellationToken::new(),
            &Silent,
        )
        .await
        .expect("import");
    start.elapsed()
}

/// `kb delete` of `selection`; the time it took.
async fn delete(store: &PgStore, selection: Selection) -> Duration {
    let start = Instant::now();
    store.delete(selection).await.expect("delete");
    start.elapsed()
}

/// A paragraph of generated text (as kb_gen's chunks) from `rng`.
fn paragraph(rng: &mut Lcg, words: &[String]) -> String {
    let mut para = String::new();
    let target = 150 + rng.below(100);
    while para.chars().count() < target {
        para.push_str(&words[rng.below(words.len())]);
        para.push(if rng.below(8) == 0 { '。' } else { '，' });
    }
    para
}

/// Writes one question/answer document `id` as JSON lines at `path`.
fn one_document(path: &Path, id: &str, answer: &str) {
    let line = serde_json::json!({"id": id, "question": "生成问题", "answer": answer});
    std::fs::write(path, format!("{line}\n")).expect("write");
}

fn spread(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "{:.0} / {:.0} / {:.0} ms",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    let (client, conn) = tokio_postgres::connect(&args.postgres, tokio_postgres::NoTls)
        .await
        .expect("connect to --postgres");
    tokio::spawn(conn);
    client
        .batch_execute(
            "DROP TABLE IF EXISTS documents, documents_ragstream_terms, documents_ragstream_df, \
             documents_ragstream_totals; \
             CREATE TABLE documents (id bigserial primary key, content text, metadata jsonb, \
             embedding vector(8))",
        )
        .await
        .expect("create table (an empty database with pgvector is needed)");
    let mut cfg = KbConfig {
        store: StoreKind::Postgres,
        ..KbConfig::default()
    };
    cfg.postgres.url = Some(args.postgres.clone().into());
    cfg.postgres.query_function = String::new();
    let store = postgres::connect_with(&cfg, None)
        .await
        .expect("connect to --postgres");

    let work = tempfile::tempdir().expect("temporary directory");
    let corpus = work.path().join("corpus");
    std::fs::create_dir(&corpus).expect("mkdir");
    let words = vocabulary();
    generate(&corpus, args.chunks, &words);
    let took = import(&store, &[&corpus]).await;
    println!(
        "| bulk import of {} rows into an empty table | {:.1} s ({:.0} rows/s) |",
        args.chunks,
        took.as_secs_f64(),
        args.chunks as f64 / took.as_secs_f64()
    );

    let mut rng = Lcg(2026);
    let one = work.path().join("one.jsonl");
    let (mut added, mut changed, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.runs {
        one_document(&one, "bench-one", &paragraph(&mut rng, &words));
        added.push(import(&store, &[&one]).await);
        one_document(&one, "bench-one", &paragraph(&mut rng, &words));
        changed.push(import(&store, &[&one]).await);
        deleted.push(delete(&store, Selection::Ids(vec!["bench-one".into()])).await);
    }
    let n = args.chunks;
    println!("| one-document import on {n} rows | {} |", spread(added));
    println!("| re-import of it, text changed | {} |", spread(changed));
    println!("| `kb delete` of it | {} |", spread(deleted));

    let tenth = work.path().join("tenth.jsonl");
    let lines: Vec<String> = (0..n / 10)
        .map(|i| {
            serde_json::json!({"id": format!("tenth-{i}"), "question": "生成问题",
                "answer": paragraph(&mut rng, &words)})
            .to_string()
        })
        .collect();
    std::fs::write(&tenth, lines.join("\n") + "\n").expect("write");
    let took = import(&store, &[&tenth]).await;
    println!(
        "| import of {} more rows (a tenth) | {:.2} s ({:.0} rows/s) |",
        n / 10,
        took.as_secs_f64(),
        (n / 10) as f64 / took.as_secs_f64()
    );
    let origin = tenth.display().to_string();
    let took = delete(&store, Selection::Origin(origin)).await;
    println!(
        "| `kb delete` of those rows | {:.2} s |",
        took.as_secs_f64()
    );
}
