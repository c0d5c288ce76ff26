//! Embeddings providers against a scripted HTTP server speaking each wire format,
//! and hybrid search on a real on-disk store with the vectors it returns.

mod support;

use std::time::Duration;

use ragstream::kb::config::{KbConfig, Provider};
use ragstream::kb::embed::Embeddings;
use ragstream::kb::import::{Options, Silent};
use ragstream::kb::{Error, ImportError, KnowledgeBase, KnowledgeBaseAdmin, Store, StoreError};
use serde_json::json;
use support::embed_server::EmbedServer;
use support::kb::{config, import, params, sample, write};
use support::logs::Logs;
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-test-secret-123";

fn openai_config(dir: &std::path::Path, server: &EmbedServer) -> KbConfig {
    let mut cfg = config(dir);
    cfg.embeddings.provider = Provider::Openai;
    cfg.embeddings.base_url = Some(server.base_url());
    cfg.embeddings.api_key = Some(KEY.into());
    cfg.embeddings.model = Some("bge-m3".into());
    cfg.embeddings.batch_size = 16;
    // The scripted embedder's vectors are hashed character bigrams: related texts reach
    // a cosine of 0.3 to 0.6, so these tests of fusion lower the floor of real models.
    cfg.search.vector_floor = 0.2;
    cfg
}

fn minimax_config(dir: &std::path::Path, server: &EmbedServer) -> KbConfig {
    let mut cfg = config(dir);
    cfg.embeddings.provider = Provider::Minimax;
    cfg.embeddings.base_url = Some(server.base_url());
    cfg.embeddings.api_key = Some(KEY.into());
    cfg.embeddings.group_id = Some("group-42".into());
    cfg
}

/// Opens with millisecond backoffs so retry tests stay fast.
fn open_fast(cfg: &KbConfig) -> Result<Store, Error> {
    let embeddings =
        Embeddings::from_config(&cfg.embeddings)?.map(|e| e.with_backoff(Duration::from_millis(5)));
    Store::open_with(cfg, embeddings)
}

#[tokio::test]
async fn openai_wire_format_batches_and_hybrid_search() {
    let server = EmbedServer::start(64).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_fast(&openai_config(dir.path(), &server)).unwrap();
    let report = import(&store, &[sample()]).await.unwrap();
    assert_eq!(report.embedded, 47);

    let seen = server.seen();
    assert_eq!(seen.len(), 3, "47 texts in batches of 16");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("Bearer sk-test-secret-123")
    );
    assert_eq!(seen[0].body["model"], "bge-m3");
    assert_eq!(seen[0].body["encoding_format"], "float");
    assert_eq!(seen[0].body["input"].as_array().unwrap().len(), 16);
    assert!(
        seen[0].body["input"][0]
            .as_str()
            .unwrap()
            .starts_with("什么是自闭症")
    );
    assert!(seen[0].body.get("dimensions").is_none());

    let stats = store.stats().unwrap();
    assert_eq!(stats.with_vectors, 47);
    assert_eq!(stats.embedding_model.as_deref(), Some("bge-m3"));
    assert_eq!(stats.embedding_dim, Some(64));

    let hits = store
        .search_detailed("孩子晚上睡不着、夜醒多", &params(3))
        .await
        .unwrap();
    assert_eq!(hits[0].hit.id, "sleep");
    assert!(
        hits[0].vector_rank.is_some() && hits[0].fulltext_rank.is_some(),
        "{:?}",
        hits[0]
    );
    assert!(hits[0].vector_score.unwrap() > 0.3);
    let rrf_both = 1.0 / (60.0 + hits[0].fulltext_rank.unwrap() as f32)
        + 1.0 / (60.0 + hits[0].vector_rank.unwrap() as f32);
    assert!((hits[0].rrf_score - rrf_both).abs() < 1e-6);
    // The query itself went out as one more request.
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn vectors_find_what_full_text_misses() {
    let server = EmbedServer::start(64).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_fast(&openai_config(dir.path(), &server)).unwrap();
    // Written so that jieba's words do not overlap, but character bigrams do.
    let file = write(
        dir.path(),
        "x.jsonl",
        "{\"id\":\"x\",\"question\":\"ABCD\",\"answer\":\"EFGH\"}\n",
    );
    import(&store, &[file]).await.unwrap();
    let hits = store.search_detailed("ABCDX", &params(3)).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].fulltext_rank, None);
    assert_eq!(hits[0].vector_rank, Some(1));
}

#[tokio::test]
async fn minimax_sends_group_id_and_db_or_query_type() {
    let server = EmbedServer::start(128).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_fast(&minimax_config(dir.path(), &server)).unwrap();
    import(&store, &[sample()]).await.unwrap();
    let hits = store
        .search_detailed("孩子挑食严重，只吃几种食物", &params(3))
        .await
        .unwrap();
    assert_eq!(hits[0].hit.id, "picky-eating");

    let seen = server.seen();
    let first = &seen[0];
    assert_eq!(first.query, [("GroupId".to_owned(), "group-42".to_owned())]);
    assert_eq!(
        first.authorization.as_deref(),
        Some("Bearer sk-test-secret-123")
    );
    assert_eq!(first.body["model"], "embo-01");
    assert_eq!(first.body["type"], "db");
    assert_eq!(seen.last().unwrap().body["type"], "query");
    assert_eq!(
        seen.last().unwrap().body["texts"],
        json!(["孩子挑食严重，只吃几种食物"])
    );
}

#[tokio::test]
async fn minimax_errors_in_base_resp_fail_the_import_and_leave_the_store_unchanged() {
    let server = EmbedServer::start(32).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_fast(&minimax_config(dir.path(), &server)).unwrap();
    server.push(200, json!({"vectors": null, "base_resp": {"status_code": 1004, "status_msg": "authorized error"}}));
    let err = import(&store, &[sample()]).await.unwrap_err().to_string();
    assert!(
        err.contains("MiniMax returned status 1004 (authorized error)"),
        "{err}"
    );
    assert!(err.contains("check `embeddings.api_key`"), "{err}");
    assert!(!err.contains(KEY), "{err}");
    assert_eq!(store.count().unwrap(), 0);
    assert_eq!(server.seen().len(), 1, "auth errors are not retried");
}

#[tokio::test]
async fn minimax_rate_limits_are_retried() {
    let server = EmbedServer::start(32).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_fast(&minimax_config(dir.path(), &server)).unwrap();
    server.push(
        200,
        json!({"vectors": null, "base_resp": {"status_code": 1002, "status_msg": "rate limit"}}),
    );
    server.push(503, json!({"error": "busy"}));
    let report = import(&store, &[sample()]).await.unwrap();
    assert_eq!(report.embedded, 47);
}

#[tokio::test]
async fn an_api_that_stays_down_fails_the_import_atomically() {
    let server = EmbedServer::start(64).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = openai_config(dir.path(), &server);
    let store = open_fast(&cfg).unwrap();
    let first = write(
        dir.path(),
        "first.jsonl",
        "{\"id\":\"a\",\"question\":\"睡眠\",\"answer\":\"作息\"}\n",
    );
    import(&store, &[first]).await.unwrap();
    let before = store.stats().unwrap();

    for _ in 0..5 {
        server.push(
            500,
            json!({"error": {"message": format!("upstream down for key {KEY}")}}),
        );
    }
    let err = import(&store, &[sample()]).await.unwrap_err().to_string();
    assert!(
        err.contains("500") && err.contains("gave up after 5 attempts"),
        "{err}"
    );
    assert!(err.contains("upstream down for key ***"), "{err}");
    assert!(!err.contains(KEY), "{err}");
    assert_eq!(store.stats().unwrap(), before);
}

/// A reply far larger than a batch of vectors can be is refused after the limit,
/// not read into memory, and the import fails atomically saying what to check.
#[tokio::test]
async fn an_oversized_embeddings_reply_fails_the_import_clearly() {
    let server = EmbedServer::start(64).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_fast(&openai_config(dir.path(), &server)).unwrap();
    // Batches of 16 texts may weigh 5 MiB; send 6.
    let padding = "x".repeat(6 * 1024 * 1024);
    server.push(200, json!({"data": [], "padding": padding}));
    let err = import(&store, &[sample()]).await.unwrap_err().to_string();
    assert!(
        err.contains("sent a reply larger than 5 MiB for 16 texts")
            && err.contains("check `embeddings.base_url`"),
        "{err}"
    );
    assert_eq!(store.count().unwrap(), 0);
    assert_eq!(server.seen().len(), 1, "a reply that large is not retried");
}

#[tokio::test]
async fn a_401_names_the_key_setting_without_leaking_it() {
    let server = EmbedServer::start(64).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_fast(&openai_config(dir.path(), &server)).unwrap();
    // Providers echo the key they were sent (issue 10: this body used not to).
    server.push(
        401,
        json!({"error": {"message": format!("Incorrect API key provided: {KEY}")}}),
    );
    let err = import(&store, &[sample()]).await.unwrap_err().to_string();
    assert!(
        err.contains("401") && err.contains("check `embeddings.api_key`"),
        "{err}"
    );
    assert!(err.contains("Incorrect API key provided: ***"), "{err}");
    assert!(!err.contains(KEY), "{err}");
    assert!(!format!("{store:?}").contains(KEY));
}

/// The body is cut at 300 characters for the message: a key across the cut
/// must not leave its first half behind.
#[tokio::test]
async fn a_key_across_the_excerpt_cut_is_redacted_whole() {
    let server = EmbedServer::start(64).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_fast(&openai_config(dir.path(), &server)).unwrap();
    let filler = "x".repeat(270);
    server.push(400, json!({"error": format!("{filler} {KEY} {filler}")}));
    let err = import(&store, &[sample()]).await.unwrap_err().to_string();
    assert!(err.contains(" *** "), "{err}");
    assert!(!err.contains("sk-test"), "{err}");
}

/// Issue 10: credentials in `embeddings.base_url` were printed with the URL.
#[tokio::test]
async fn credentials_in_the_embeddings_url_never_show() {
    let server = EmbedServer::start(64).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = openai_config(dir.path(), &server);
    cfg.embeddings.base_url = Some(format!("http://kb:hunter2-pw@{}/v1", server.addr));
    let store = open_fast(&cfg).unwrap();
    server.push(403, json!({"error": "forbidden"}));
    let err = import(&store, &[sample()]).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("http://***@{}/v1", server.addr)),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn cancelling_while_embedding_leaves_the_store_unchanged() {
    let server = EmbedServer::start(64).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_fast(&openai_config(dir.path(), &server)).unwrap();
    server.hang();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let err = store
        .import(&[sample()], &Options::default(), &cancel, &Silent)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Import(ImportError::Cancelled)),
        "{err}"
    );
    assert_eq!(store.count().unwrap(), 0);
}

#[tokio::test]
async fn a_store_built_with_one_model_refuses_another() {
    let server = EmbedServer::start(64).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = openai_config(dir.path(), &server);
    {
        let store = open_fast(&cfg).unwrap();
        import(&store, &[sample()]).await.unwrap();
    }
    // Another model: refused at open, before any API call.
    let mut other = cfg.clone();
    other.embeddings.model = Some("text-embedding-3-large".into());
    let err = open_fast(&other).unwrap_err().to_string();
    assert!(
        err.contains("holds 64-dimension vectors from model `bge-m3`"),
        "{err}"
    );
    assert!(err.contains("`text-embedding-3-large`"), "{err}");

    // Same model name, but the server now returns another size: refused at import and at query.
    server.set_dim(32);
    let store = open_fast(&cfg).unwrap();
    let file = write(
        dir.path(),
        "new.jsonl",
        "{\"id\":\"n\",\"question\":\"新问题\",\"answer\":\"新回答\"}\n",
    );
    let err = import(&store, &[file]).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Store(StoreError::DimensionMismatch { stored_dim: 64, .. })
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("returns 32-dimension vectors"),
        "{err}"
    );
    assert_eq!(store.count().unwrap(), 47);
    let err = store.search_detailed("睡眠", &params(3)).await.unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::DimensionMismatch { .. })),
        "{err}"
    );

    // Configured dimensions that disagree with the store are refused at open.
    let mut sized = cfg.clone();
    sized.embeddings.dimensions = Some(1024);
    let err = open_fast(&sized).unwrap_err().to_string();
    assert!(
        err.contains("configured for 1024-dimension vectors"),
        "{err}"
    );
}

#[tokio::test]
async fn search_falls_back_to_full_text_when_the_api_fails_at_query_time() {
    let server = EmbedServer::start(64).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = openai_config(dir.path(), &server);
    cfg.embeddings.max_retries = 0;
    let store = open_fast(&cfg).unwrap();
    import(&store, &[sample()]).await.unwrap();
    server.push(503, json!({"error": "down"}));
    let hits = store
        .search_detailed("孩子自伤怎么办", &params(3))
        .await
        .unwrap();
    assert_eq!(hits[0].hit.id, "self-injury");
    assert_eq!(hits[0].vector_rank, None);
}

/// Issue 10: a question embedded at search time had the import's budget
/// (4 retries of 60 s): a hung API stalled the user's question for minutes.
/// Now it gets `query_timeout_ms` for one request and a retry, then full text.
#[tokio::test]
async fn a_hung_api_at_query_time_falls_back_to_full_text_within_the_query_budget() {
    let (logs, _capture) = Logs::capture();
    let server = EmbedServer::start(64).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = openai_config(dir.path(), &server);
    cfg.embeddings.timeout_secs = 1;
    cfg.embeddings.query_timeout_ms = 300;
    let store = open_fast(&cfg).unwrap();
    import(&store, &[sample()]).await.unwrap();
    let imported = server.seen().len();
    server.hang();

    let hits = store
        .search_detailed("孩子自伤怎么办", &params(3))
        .await
        .unwrap();

    assert_eq!(hits[0].hit.id, "self-injury", "answered from full text");
    assert_eq!(hits[0].vector_rank, None);
    assert_eq!(
        server.seen().len(),
        imported + 1,
        "one query request, cut off by the budget, not retried for minutes"
    );
    let logs = logs.text();
    assert!(
        logs.contains("query embedding failed; answering from full text only"),
        "{logs}"
    );
    assert!(
        logs.contains("within 300 ms (embeddings.query_timeout_ms)"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_failing_api_at_query_time_is_retried_once_at_most() {
    let server = EmbedServer::start(64).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_fast(&openai_config(dir.path(), &server)).unwrap();
    import(&store, &[sample()]).await.unwrap();
    let imported = server.seen().len();
    for _ in 0..3 {
        server.push(503, json!({"error": "down"}));
    }

    let hits = store
        .search_detailed("孩子自伤怎么办", &params(3))
        .await
        .unwrap();

    assert_eq!(hits[0].vector_rank, None, "answered from full text");
    assert_eq!(server.seen().len(), imported + 2, "one try and one retry");
}

/// A running store (a `serve`) sees vectors that another writer (a `kb import` in
/// another process, here a second store on the same directory) imported after it opened.
#[tokio::test]
async fn a_running_store_searches_vectors_another_writer_imported() {
    let server = EmbedServer::start(64).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = openai_config(dir.path(), &server);
    let running = open_fast(&cfg).unwrap();
    let before = running
        .search_detailed("孩子晚上睡不着、夜醒多", &params(3))
        .await
        .unwrap();
    assert!(before.is_empty(), "{before:?}");

    let importer = open_fast(&cfg).unwrap();
    assert_eq!(import(&importer, &[sample()]).await.unwrap().embedded, 47);

    let vector = running.embed_query("孩子晚上睡不着、夜醒多").await;
    assert!(vector.is_some(), "the query is embedded");
    let hits = running
        .search_with_vector("孩子晚上睡不着、夜醒多", vector, &params(3))
        .await
        .unwrap();
    assert_eq!(hits[0].hit.id, "sleep", "{hits:?}");
    assert!(
        hits.iter().any(|h| h.vector_rank.is_some()),
        "the new vectors were loaded: {hits:?}"
    );
}
