//! Optional reranking (issue 11, item 3), end to end: ragstream over real HTTP with
//! a scripted rerank service (tests/support/rerank_server.rs) and, on the tool path,
//! the scripted model upstream.

mod support;

use ragstream::config::RawConfig;
use serde_json::{Value, json};
use support::rerank_server::{OTHER_SCORE, RerankServer};
use support::{Reply, Upstream, answer, chat, config, last, start};

const KEY: &str = "rr-test-secret-key-123";

/// Every stored question shares 孩子 and 怎么办 with it: without reranking no hit
/// stands out and the retrieval-only answer offers all three ("did you mean").
const VAGUE: &str = "我家孩子怎么办";

/// The reference config without a model, reranked by `rerank`.
fn retrieval_only(rerank: &RerankServer) -> RawConfig {
    let mut raw = config("http://unused");
    raw.llm.base_url = None;
    raw.llm.api_key = None;
    with_rerank(raw, rerank)
}

fn with_rerank(mut raw: RawConfig, rerank: &RerankServer) -> RawConfig {
    raw.kb.rerank.base_url = Some(rerank.base_url());
    raw.kb.rerank.api_key = Some(KEY.into());
    raw.kb.rerank.model = Some("bge-reranker-v2-m3".into());
    raw.kb.rerank.timeout_ms = 500;
    raw
}

/// `(id, score)` of the sources of the first `sources` event.
fn sources(events: &[support::Sse]) -> Vec<(String, f64)> {
    let sources = events
        .iter()
        .find(|e| e.event == "sources")
        .expect("sources");
    sources.data["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_owned(),
                s["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

async fn metrics(server: &support::Server) -> String {
    reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_reranker_picks_the_answer_without_a_model() {
    let rerank = RerankServer::start().await;
    rerank.prefer("刻板行为", 0.93);
    let server = start(retrieval_only(&rerank)).await;

    let events = chat(&server, json!({"content": VAGUE})).await;

    assert_eq!(last(&events).data["finish_reason"], "retrieval_only");
    let text = answer(&events);
    assert!(text.contains("刻板行为常有自我调节的作用"), "{text}");
    let sources = sources(&events);
    assert_eq!(sources[0].0, "repetitive");
    assert!(
        (sources[0].1 - 0.93).abs() < 1e-6,
        "the score is the reranker's: {sources:?}"
    );
    assert!((sources[1].1 - OTHER_SCORE).abs() < 1e-6, "{sources:?}");
    let shown = metrics(&server).await;
    assert!(support::metric(&shown, "ragstream_kb_rerank_total{outcome=\"ok\"}") >= 1.0);

    // The documented request: model, query, the candidates' question and answer, top_n.
    let seen = rerank.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    let body = &seen[0].body;
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["documents", "model", "query", "top_n"]);
    assert_eq!(body["model"], "bge-reranker-v2-m3");
    assert_eq!(body["query"], VAGUE);
    assert_eq!(body["top_n"], 3);
    let documents: Vec<&str> = body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        documents.len(),
        3,
        "every candidate above kb.search.min_score"
    );
    assert!(
        documents.contains(&"孩子有刻板行为怎么办？\n刻板行为常有自我调节的作用，先观察规律，再逐步引导到更合适的活动。"),
        "{documents:?}"
    );
}

#[tokio::test]
async fn the_model_is_shown_the_hits_in_the_rerankers_order() {
    let rerank = RerankServer::start().await;
    rerank.prefer("语言发育", 0.88);
    let upstream = Upstream::start(vec![
        Reply::tool_call(
            "call_1",
            "autism_expert",
            &["{\"question\":\"我家孩子怎么办\"}"],
        ),
        Reply::answer(&["好"]),
    ])
    .await;
    let server = start(with_rerank(config(&upstream.base_url), &rerank)).await;

    let events = chat(&server, json!({"content": VAGUE})).await;

    assert_eq!(last(&events).data["finish_reason"], "stop");
    assert_eq!(sources(&events)[0].0, "language");
    let second = &upstream.requests()[1];
    let tool = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    let text = tool["content"].as_str().unwrap();
    assert!(
        text.starts_with("[1] Q: 孩子语言发育迟缓怎么办？"),
        "the reranker's best comes first: {text}"
    );
    assert!(text.contains("id: language, score: 0.880"), "{text}");
    assert_eq!(rerank.seen()[0].body["query"], "我家孩子怎么办");
}

#[tokio::test]
async fn the_hit_test_shows_where_a_reranked_hit_came_from() {
    let rerank = RerankServer::start().await;
    rerank.prefer("刻板行为", 0.9);
    let server = start(retrieval_only(&rerank)).await;

    let reranked: Value = reqwest::get(format!("{}/api/kb/search?q={VAGUE}", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hits = reranked["hits"].as_array().unwrap();
    assert_eq!(hits[0]["id"], "repetitive");
    let from = &hits[0]["reranked_from"];
    assert!(from["rank"].as_u64().unwrap() >= 1, "{from}");
    let retrieval_score = from["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&retrieval_score), "{from}");
    assert!((hits[0]["score"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    assert_eq!(hits[0]["rank"], 1);

    // top_k 1: one result asked for.
    let one: Value = reqwest::get(format!("{}/api/kb/search?q={VAGUE}&top_k=1", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["hits"].as_array().unwrap().len(), 1);
    assert_eq!(rerank.seen()[1].body["top_n"], 1);
}

#[tokio::test]
async fn rerank_min_score_drops_what_the_reranker_finds_irrelevant() {
    let rerank = RerankServer::start().await;
    rerank.prefer("自伤", 0.2);
    let mut raw = retrieval_only(&rerank);
    raw.kb.rerank.min_score = 0.5;
    let server = start(raw).await;

    let events = chat(&server, json!({"content": VAGUE})).await;

    assert_eq!(answer(&events), "知识库中没有找到相关内容。");
    assert_eq!(last(&events).data["finish_reason"], "no_match");
}

#[tokio::test]
async fn out_of_domain_questions_never_reach_the_reranker() {
    let rerank = RerankServer::start().await;
    rerank.prefer("", 0.99);
    let server = start(retrieval_only(&rerank)).await;

    let events = chat(&server, json!({"content": "明天北京天气"})).await;

    assert_eq!(last(&events).data["finish_reason"], "no_match");
    assert!(
        rerank.seen().is_empty(),
        "kb.search.min_score gates the candidates"
    );
}

/// Every failure of the service keeps the unreranked answer (here: "did you mean"
/// the three questions), is counted by outcome and logged, and never fails the request.
#[tokio::test]
async fn a_failing_reranker_leaves_the_search_order() {
    let (logs, _capture) = support::logs::Logs::capture();
    let rerank = RerankServer::start().await;
    rerank.prefer("刻板行为", 0.93);
    let server = start(retrieval_only(&rerank)).await;
    let before = metrics(&server).await;

    rerank.push(500, json!({"error": format!("overloaded, key {KEY}")}));
    rerank.push_raw(200, "<html>gateway</html>");
    rerank.push(
        200,
        json!({"results": [{"index": 7, "relevance_score": 0.9}]}),
    );
    rerank.push(200, json!({"results": [{"index": 0, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.8}]}));
    rerank.push(
        200,
        json!({"results": [{"index": 0, "relevance_score": 3.7}]}),
    );
    rerank.push(200, json!({"data": []}));
    // Past the size limit: refused after 4 MiB, never read whole into memory.
    let padding = "x".repeat(ragstream::kb::rerank::client::MAX_REPLY_BYTES);
    rerank.push(
        200,
        json!({"results": [{"index": 0, "relevance_score": 0.9}], "padding": padding}),
    );
    for _ in 0..7 {
        let events = chat(&server, json!({"content": VAGUE})).await;
        assert_eq!(
            last(&events).data["finish_reason"],
            "did_you_mean",
            "{events:?}"
        );
        assert_eq!(sources(&events).len(), 3);
    }
    rerank.hang(true);
    let events = chat(&server, json!({"content": VAGUE})).await;
    assert_eq!(last(&events).data["finish_reason"], "did_you_mean");
    rerank.hang(false);
    // Working again: reranked again.
    let events = chat(&server, json!({"content": VAGUE})).await;
    assert_eq!(last(&events).data["finish_reason"], "retrieval_only");

    let after = metrics(&server).await;
    let delta = |outcome: &str| {
        let series = format!("ragstream_kb_rerank_total{{outcome=\"{outcome}\"}}");
        support::metric(&after, &series) - support::metric(&before, &series)
    };
    assert_eq!(delta("http_error"), 1.0);
    assert_eq!(delta("malformed"), 6.0);
    assert_eq!(delta("timeout"), 1.0);
    let logged = logs.text();
    assert!(
        logged.contains("reranking failed; keeping the search order"),
        "{logged}"
    );
    assert!(logged.contains("500 Internal Server Error"), "{logged}");
    assert!(
        logged.contains("index 7 is out of range for 3 documents"),
        "{logged}"
    );
    assert!(logged.contains("index 0 is listed twice"), "{logged}");
    assert!(logged.contains("relevance_score 3.7"), "{logged}");
    assert!(logged.contains("no answer within 500 ms"), "{logged}");
    assert!(
        logged.contains("the reply is larger than 4 MiB"),
        "{logged}"
    );
    assert!(!logged.contains(KEY), "the key is redacted: {logged}");
}

#[tokio::test]
async fn an_unreachable_reranker_leaves_the_search_order() {
    let addr = support::closed_port();
    let rerank = RerankServer::start().await;
    let mut raw = retrieval_only(&rerank);
    raw.kb.rerank.base_url = Some(format!("http://{addr}/v1"));
    let server = start(raw).await;

    let events = chat(&server, json!({"content": VAGUE})).await;

    assert_eq!(last(&events).data["finish_reason"], "did_you_mean");
    let shown = metrics(&server).await;
    assert!(support::metric(&shown, "ragstream_kb_rerank_total{outcome=\"unreachable\"}") >= 1.0);
    // A reranker that is down costs order, not answers: the instance stays ready.
    let ready = reqwest::get(format!("{}/readyz", server.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

/// `check-config` as an operator runs it, with the data directory of its own.
fn check_config(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let data = tempfile::tempdir().unwrap();
    let mut command = support::process::ragstream("warn");
    command
        .args([
            "check-config",
            "--no-probe",
            "--config",
            "examples/autism.toml",
        ])
        .env("RAGSTREAM_KB__DATA_DIR", data.path().join("data"));
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn rerank_settings_come_from_the_environment_with_the_key_masked() {
    let (code, stdout) = check_config(&[
        ("RAGSTREAM_KB__RERANK__BASE_URL", "http://127.0.0.1:9/v1"),
        (
            "RAGSTREAM_KB__RERANK__MODEL",
            "jina-reranker-v2-base-multilingual",
        ),
        ("RAGSTREAM_KB__RERANK__API_KEY", KEY),
        ("RAGSTREAM_KB__RERANK__CANDIDATES", "30"),
    ]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("[kb.rerank]"), "{stdout}");
    assert!(
        stdout.contains("model = \"jina-reranker-v2-base-multilingual\""),
        "{stdout}"
    );
    assert!(stdout.contains("candidates = 30"), "{stdout}");
    assert!(!stdout.contains(KEY), "the key leaked:\n{stdout}");
    assert!(
        stdout.contains("api_key = \"rr-*** (22 chars)\""),
        "{stdout}"
    );
}

#[test]
fn unusable_rerank_settings_are_refused_with_what_to_fix() {
    let (code, stdout) = check_config(&[
        ("RAGSTREAM_KB__RERANK__BASE_URL", "api.jina.ai"),
        ("RAGSTREAM_KB__RERANK__TIMEOUT_MS", "0"),
        ("RAGSTREAM_KB__RERANK__CANDIDATES", "2"),
        ("RAGSTREAM_KB__RERANK__MIN_SCORE", "7"),
    ]);
    assert_eq!(code, Some(1), "{stdout}");
    for expected in [
        "kb.rerank.base_url \"api.jina.ai\" is not an http(s) URL",
        "kb.rerank.model is required when kb.rerank.base_url is set",
        "kb.rerank.timeout_ms must be above 0",
        "kb.rerank.candidates 2 must be between kb.search.top_k (3) and 1000",
        "kb.rerank.min_score 7 must be between 0 and 1",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
    let (_, stdout) = check_config(&[("RAGSTREAM_KB_RERANK_MODEL", "x")]);
    assert!(stdout.contains("RAGSTREAM_KB__RERANK__MODEL"), "{stdout}");
}

/// `kb search` and `kb eval` search through the reranker too, so an operator can
/// calibrate `kb.rerank.min_score` and measure what the reranker changes.
#[tokio::test]
async fn kb_search_and_kb_eval_are_reranked() {
    let rerank = RerankServer::start().await;
    rerank.prefer("刻板行为", 0.93);
    let data = tempfile::tempdir().unwrap();
    // Async: the rerank server runs on this test's thread.
    let kb = |args: &[&str]| {
        let mut command = support::process::ragstream("warn");
        command
            .args(["--config", "examples/autism.toml", "kb"])
            .args(args)
            .env("RAGSTREAM_KB__DATA_DIR", data.path().join("data"))
            .env("RAGSTREAM_KB__RERANK__BASE_URL", rerank.base_url())
            .env("RAGSTREAM_KB__RERANK__MODEL", "bge-reranker-v2-m3");
        tokio::process::Command::from(command).output()
    };
    let imported = kb(&["import", "--quiet", &support::kb_path()])
        .await
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");

    let searched = kb(&["search", VAGUE]).await.unwrap();
    let stdout = String::from_utf8_lossy(&searched.stdout);
    assert!(searched.status.success(), "{searched:?}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("1. [0.930] 孩子有刻板行为怎么办？"),
        "{stdout}"
    );
    assert!(first.contains("reranked from "), "{stdout}");

    let cases = data.path().join("eval.jsonl");
    std::fs::write(
        &cases,
        format!("{{\"question\": \"{VAGUE}\", \"expected\": [\"repetitive\"]}}\n"),
    )
    .unwrap();
    let before = rerank.seen().len();
    let evaluated = kb(&["eval", cases.to_str().unwrap(), "--json"])
        .await
        .unwrap();
    assert!(evaluated.status.success(), "{evaluated:?}");
    assert_eq!(
        rerank.seen().len(),
        before + 1,
        "the eval question was reranked"
    );
    let report: Value = serde_json::from_slice(&evaluated.stdout).unwrap();
    assert_eq!(report["recall_at_1"], 1.0, "{report}");
}

/// With an embeddings provider the question is searched while the model thinks
/// (prefetch); a tool call asking the same thing gets those hits, reranked once.
#[tokio::test]
async fn prefetched_hits_are_reranked_once() {
    let embed = support::embed_server::EmbedServer::start(64).await;
    let rerank = RerankServer::start().await;
    rerank.prefer("语言发育", 0.88);
    let upstream = Upstream::start(vec![
        Reply::tool_call(
            "call_1",
            "autism_expert",
            &[&format!("{{\"question\":\"{VAGUE}\"}}")],
        ),
        Reply::answer(&["好"]),
    ])
    .await;
    let mut raw = with_rerank(config(&upstream.base_url), &rerank);
    raw.kb.embeddings.provider = ragstream::kb::config::Provider::Openai;
    raw.kb.embeddings.base_url = Some(embed.base_url());
    let server = start(raw).await;

    let events = chat(&server, json!({"content": VAGUE})).await;

    assert_eq!(sources(&events)[0].0, "language");
    assert_eq!(
        rerank.seen().len(),
        1,
        "one rerank for the prefetch and the call"
    );
    let shown = metrics(&server).await;
    assert!(support::metric(&shown, "ragstream_prefetch_total{outcome=\"hit\"}") >= 1.0);
}
