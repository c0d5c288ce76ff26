//! Two `ragstream serve` processes on one PostgreSQL database: no state of their own,
//! so an import by the CLI or by another tool is visible to both at once, and a
//! database that goes away turns `/readyz` to 503 until it is back.

mod support;

use std::process::Stdio;

use serde_json::Value;
use support::embed_server::{EmbedServer, fake_vector};
use support::pg;
use support::process::{Process, ROOT, ragstream};
use tokio::process::Command;

const DIM: usize = 64;
const QUESTION: &str = "孩子有自伤行为（撞头、打头、咬手），该怎么办？";

/// Points `command` at the database and the scripted embeddings.
fn postgres_env(command: &mut std::process::Command, db_url: &str, embed: &EmbedServer) {
    command
        .env("RAGSTREAM_KB__STORE", "postgres")
        .env("DATABASE_URL", db_url)
        .env("RAGSTREAM_KB__EMBEDDINGS__PROVIDER", "openai")
        .env("RAGSTREAM_KB__EMBEDDINGS__BASE_URL", embed.base_url())
        .env("RAGSTREAM_KB__EMBEDDINGS__API_KEY", "sk-embed-key-0123")
        .env("RAGSTREAM_KB__EMBEDDINGS__MODEL", "fake-64")
        .env("RAGSTREAM_KB__POSTGRES__CONNECT_TIMEOUT_MS", "1000");
}

async fn serve(db_url: &str, embed: &EmbedServer) -> Process {
    let mut command = ragstream("info");
    command.args([
        "serve",
        "--config",
        "examples/autism.toml",
        "--addr",
        "127.0.0.1:0",
    ]);
    postgres_env(&mut command, db_url, embed);
    let mut command = Command::from(command);
    command.stderr(Stdio::piped()).kill_on_drop(true);
    Process::start(command).await
}

async fn search(p: &Process, q: &str) -> (u16, Value) {
    let url =
        reqwest::Url::parse_with_params(&format!("{}/api/kb/search", p.url), [("q", q)]).unwrap();
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn hit_ids(v: &Value) -> Vec<String> {
    v["hits"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| h["id"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn two_instances_share_one_database_and_see_imports_without_restart() {
    let embed = EmbedServer::start(DIM).await;
    let db = pg::database().await;
    pg::client(&db)
        .await
        .batch_execute(&pg::langchain_js_sql(DIM))
        .await
        .unwrap();
    let url = pg::url(&db);
    let a = serve(&url, &embed).await;
    let b = serve(&url, &embed).await;

    // Never seeded with the sample: the database is the team's.
    let (status, empty) = search(&a, QUESTION).await;
    assert_eq!(status, 200, "{empty}");
    assert!(hit_ids(&empty).is_empty(), "{empty}");

    let mut import = ragstream("warn");
    import.args(["kb", "import", "--quiet", "examples/kb/autism-qa.jsonl"]);
    postgres_env(&mut import, &url, &embed);
    // Async: the embeddings server runs on this test's thread.
    let out = Command::from(import)
        .current_dir(ROOT)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (_, from_a) = search(&a, QUESTION).await;
    let (_, from_b) = search(&b, QUESTION).await;
    assert_eq!(hit_ids(&from_a)[0], "self-injury", "{from_a}");
    assert_eq!(from_a["hits"], from_b["hits"]);

    // A row LangChain writes is found by both at once.
    let text = "自伤行为的应急处理清单";
    let vector = fake_vector(text, DIM)
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",");
    pg::client(&db)
        .await
        .batch_execute(&format!(
            "insert into documents (content, metadata, embedding) \
             values ('{text}', '{{\"source\": \"langchain\"}}', '[{vector}]')"
        ))
        .await
        .unwrap();
    for p in [&a, &b] {
        let (_, found) = search(p, text).await;
        assert_eq!(found["hits"][0]["text"], text, "{found}");
        assert_eq!(found["hits"][0]["source"], "langchain", "{found}");
    }

    // The database goes away: searches fail and /readyz says 503; then it is back.
    let admin = pg::client("postgres").await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {db} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
        ))
        .await
        .unwrap();
    for p in [&a, &b] {
        let ready = reqwest::get(format!("{}/readyz", p.url)).await.unwrap();
        assert_eq!(ready.status(), 503);
        let (status, body) = search(p, QUESTION).await;
        assert!(status >= 500, "{status} {body}");
    }
    admin
        .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    for p in [&a, &b] {
        let ready = reqwest::get(format!("{}/readyz", p.url)).await.unwrap();
        assert_eq!(ready.status(), 200);
        let (_, back) = search(p, QUESTION).await;
        assert_eq!(hit_ids(&back)[0], "self-injury", "{back}");
    }
}

#[tokio::test]
async fn serve_refuses_to_start_when_the_database_is_down() {
    let embed = EmbedServer::start(DIM).await;
    let port = support::closed_port().port();
    let mut command = ragstream("info");
    command.args([
        "serve",
        "--config",
        "examples/autism.toml",
        "--addr",
        "127.0.0.1:0",
    ]);
    postgres_env(
        &mut command,
        &format!("postgres://ragstream:db-password-secret@127.0.0.1:{port}/kb?sslmode=disable"),
        &embed,
    );
    let out = Command::from(command).output().await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}/kb")) && stderr.contains("cannot be reached"),
        "{stderr}"
    );
    assert!(!stderr.contains("db-password-secret"), "{stderr}");
}

/// Issue 11, item 3: reranking sits above the stores, so the PostgreSQL store's hits
/// are reranked as the embedded store's are.
#[tokio::test]
async fn the_postgres_stores_hits_are_reranked() {
    let embed = EmbedServer::start(DIM).await;
    let rerank = support::rerank_server::RerankServer::start().await;
    rerank.prefer("孩子打人、推人怎么办", 0.91);
    let db = pg::database().await;
    pg::client(&db)
        .await
        .batch_execute(&pg::langchain_js_sql(DIM))
        .await
        .unwrap();
    let url = pg::url(&db);
    let mut import = ragstream("warn");
    import.args(["kb", "import", "--quiet", "examples/kb/autism-qa.jsonl"]);
    postgres_env(&mut import, &url, &embed);
    let out = Command::from(import).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut command = ragstream("info");
    command.args([
        "serve",
        "--config",
        "examples/autism.toml",
        "--addr",
        "127.0.0.1:0",
    ]);
    postgres_env(&mut command, &url, &embed);
    // The stored question itself: since full-text scores weigh evidence by BM25 (issue
    // 11), only its own entry passes the default min_score; with 0 every candidate that
    // shares a word goes to the reranker, which prefers another.
    command
        .env("RAGSTREAM_KB__RERANK__BASE_URL", rerank.base_url())
        .env("RAGSTREAM_KB__RERANK__MODEL", "bge-reranker-v2-m3")
        .env("RAGSTREAM_KB__SEARCH__MIN_SCORE", "0");
    let mut command = Command::from(command);
    command.stderr(Stdio::piped()).kill_on_drop(true);
    let p = Process::start(command).await;

    let (status, found) = search(&p, QUESTION).await;
    assert_eq!(status, 200, "{found}");
    let top = &found["hits"][0];
    assert_eq!(top["id"], "aggression", "{found}");
    assert!(
        (top["score"].as_f64().unwrap() - 0.91).abs() < 1e-6,
        "{found}"
    );
    assert!(
        top["reranked_from"]["rank"].as_u64().unwrap() > 1,
        "{found}"
    );
    assert_eq!(rerank.seen()[0].body["query"], QUESTION);
}

/// `--data` names a directory of the embedded store; with `kb.store = "postgres"` it
/// means nothing, and the command says so instead of ignoring it silently.
#[tokio::test]
async fn data_dir_given_with_the_postgres_store_is_reported_as_ignored() {
    let embed = EmbedServer::start(DIM).await;
    let port = support::closed_port().port();
    let url = format!("postgres://ragstream@127.0.0.1:{port}/kb?sslmode=disable");
    for args in [
        &["kb", "stats", "--data", "/tmp/somewhere-else"][..],
        &["ask", "--data", "/tmp/somewhere-else", "孩子自伤怎么办"][..],
    ] {
        let mut command = ragstream("warn");
        command.args(args);
        postgres_env(&mut command, &url, &embed);
        let out = Command::from(command).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--data is ignored") && stderr.contains("/tmp/somewhere-else"),
            "{args:?}: {stderr}"
        );
    }
    // The embedded store uses the directory: no warning.
    let dir = tempfile::tempdir().unwrap();
    let mut command = ragstream("warn");
    command.args(["kb", "stats", "--data"]).arg(dir.path());
    let out = Command::from(command).output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("--data is ignored"),
        "{out:?}"
    );
}
