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
//! Each step prints its time; the small steps print min / median / max. The bulk
//! imports also print the CPU time they took, this process's and the database cluster's
//! (read from /proc: the postmaster's processes, and what its ended children used),
//! which other load on a shared machine disturbs far less than the wall time.

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

/// CPU seconds used so far by process `pid` (`children`: also its ended, reaped children).
fn cpu(pid: &str, children: bool) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // After the command name in parentheses: state, ppid, … utime is field 14.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let tick = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let used = tick(14) + tick(15) + if children { tick(16) + tick(17) } else { 0.0 };
    used / 100.0 // USER_HZ
}

/// The parent of process `pid`.
fn parent(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1).map(str::to_owned)
}

/// CPU seconds used so far by this process and by the cluster of `postmaster`.
fn cpu_now(postmaster: &str) -> (f64, f64) {
    let mut cluster = cpu(postmaster, true);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid.bytes().all(|b| b.is_ascii_digit()) && parent(&pid).as_deref() == Some(postmaster) {
            cluster += cpu(&pid, false);
        }
    }
    (cpu("self", false), cluster)
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
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("backend")
        .get(0);
    let postmaster = parent(&backend.to_string()).expect("the cluster runs on this machine");
    let cpu_before = cpu_now(&postmaster);
    let took = import(&store, &[&corpus]).await;
    let cpu_after = cpu_now(&postmaster);
    println!(
        "| bulk import of {} rows into an empty table | {:.1} s ({:.0} rows/s); CPU {:.2} s here + {:.2} s cluster |",
        args.chunks,
        took.as_secs_f64(),
        args.chunks as f64 / took.as_secs_f64(),
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1,
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
    let cpu_before = cpu_now(&postmaster);
    let took = import(&store, &[&tenth]).await;
    let cpu_after = cpu_now(&postmaster);
    println!(
        "| import of {} more rows (a tenth) | {:.2} s ({:.0} rows/s); CPU {:.2} s here + {:.2} s cluster |",
        n / 10,
        took.as_secs_f64(),
        (n / 10) as f64 / took.as_secs_f64(),
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1,
    );
    let origin = tenth.display().to_string();
    let took = delete(&store, Selection::Origin(origin)).await;
    println!(
        "| `kb delete` of those rows | {:.2} s |",
        took.as_secs_f64()
    );
}
