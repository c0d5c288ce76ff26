//! Operating the server: limits, shutdown, readiness, metrics, fallbacks,
//! slow clients.

mod support;

use std::time::Duration;

use bytes::Bytes;
use ragstream::config::RawFallback;
use serde_json::{Value, json};
use support::process::{self, Process};
use support::upstream::content;
use support::{Reply, Step, Upstream, answer, chat, config, last, metric, start};

fn ask() -> Value {
    json!({"content": "孩子不说话怎么办"})
}

/// A long answer: `n` chunks, `gap` apart.
fn long_answer(n: usize, gap: Duration) -> Reply {
    let pieces: Vec<String> = (0..n).map(|i| format!("第{i}句。")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    Reply::answer(&pieces).paced(gap)
}

#[tokio::test]
async fn a_flood_beyond_max_streams_gets_a_clear_503() {
    let upstream = Upstream::start(vec![
        long_answer(50, Duration::from_millis(20)),
        Reply::answer(&["后来"]),
    ])
    .await;
    let mut raw = config(&upstream.base_url);
    raw.server.max_streams = 1;
    let server = start(raw).await;

    let mut first = support::post(&server, "/api/chat", ask()).await;
    first.chunk().await.unwrap();
    let second = support::post(&server, "/api/chat", ask()).await;

    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.max_streams")
    );

    drop(first);
    assert!(upstream.wait_all_closed(Duration::from_secs(1)).await);
    // The slot is free again once the first stream is gone.
    let mut third = None;
    for _ in 0..50 {
        let response = support::post(&server, "/api/chat", ask()).await;
        if response.status() == 200 {
            third = Some(support::read_events(response).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(answer(&third.expect("the slot was released")), "后来");
}

#[tokio::test]
async fn shutdown_lets_streams_finish_within_the_grace_period_then_ends_them() {
    let upstream = Upstream::start(vec![
        long_answer(3, Duration::from_millis(30)),
        long_answer(1000, Duration::from_millis(20)),
    ])
    .await;
    let mut raw = config(&upstream.base_url);
    raw.server.shutdown_grace_ms = 1_000;
    let server = start(raw).await;

    let short = support::post(&server, "/api/chat", ask()).await;
    let long = support::post(&server, "/api/chat", ask()).await;
    server.shutdown.cancel();

    let short = support::read_events(short).await;
    assert_eq!(
        last(&short).event,
        "done",
        "a stream that ends within the grace period ends normally"
    );
    let long = support::read_events(long).await;
    assert_eq!(last(&long).event, "error");
    assert_eq!(last(&long).data["code"], "shutting_down");
    assert!(
        answer(&long).starts_with("第0句。"),
        "the stream ran until the deadline"
    );
    assert!(
        upstream.wait_all_closed(Duration::from_secs(1)).await,
        "the upstream request was cancelled"
    );

    // Once the last stream has ended the server stops accepting.
    let mut refused = false;
    for _ in 0..200 {
        let probe = reqwest::Client::new()
            .get(format!("{}/healthz", server.url))
            .send()
            .await;
        if probe.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "no new connections once draining is done");
}

/// Issue 10, parts 6 and 8: the drain is visible over HTTP/1.1, on a fresh
/// connection, and this test fails if the probe's request fails.
#[tokio::test]
async fn readyz_reports_ready_then_draining() {
    let upstream = Upstream::start(vec![long_answer(1000, Duration::from_millis(20))]).await;
    let mut raw = config(&upstream.base_url);
    raw.server.shutdown_grace_ms = 30_000;
    let server = start(raw).await;

    let ready = reqwest::get(format!("{}/readyz", server.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({"status": "ready", "kb": "ok"})
    );

    // A running stream keeps the server draining.
    let mut stream = support::post(&server, "/api/chat", ask()).await;
    stream.chunk().await.unwrap();
    let kept_alive = reqwest::Client::new();
    let before = kept_alive
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), 200);
    server.shutdown.cancel();

    let again = kept_alive
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .expect("a kept-alive connection is still served while draining");
    assert_eq!(again.status(), 503);

    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let during = fresh()
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .expect("the server answers while it drains");
    assert_eq!(during.status(), 503);
    assert_eq!(
        during.json::<Value>().await.unwrap(),
        json!({"status": "draining"})
    );

    let question = fresh()
        .post(format!("{}/api/chat", server.url))
        .json(&ask())
        .send()
        .await
        .expect("the server answers while it drains");
    assert_eq!(question.status(), 503);
    assert_eq!(question.headers()["retry-after"], "1");
    let body: Value = question.json().await.unwrap();
    assert_eq!(body["error"]["code"], "shutting_down");

    let alive = fresh()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), 200, "liveness is unaffected by the drain");

    assert!(
        stream.chunk().await.unwrap().is_some(),
        "the running stream goes on"
    );
}

/// Issue 10, parts 6 and 8: a fresh process, so every value comes from this
/// test alone; every series exists at zero before the first request.
#[tokio::test]
async fn metrics_start_at_zero_and_count_exactly_what_a_request_caused() {
    let upstream = Upstream::start(vec![
        Reply::Status(502, vec![], "bad gateway".into()),
        Reply::tool_call("c1", "autism_expert", &["{\"question\":\"自伤\"}"]),
        Reply::answer(&["好"]),
    ])
    .await;
    let server = Process::start(process::serve(&upstream.base_url)).await;
    let scrape = || async {
        reqwest::get(format!("{}/metrics", server.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };

    let before = scrape().await;
    for series in [
        "ragstream_http_requests_total{endpoint=\"/api/chat\",status=\"200\"}",
        "ragstream_http_requests_total{endpoint=\"/api/python\",status=\"200\"}",
        "ragstream_active_streams",
        "ragstream_streams_total{outcome=\"done\"}",
        "ragstream_streams_total{outcome=\"error\"}",
        "ragstream_streams_total{outcome=\"cancelled\"}",
        "ragstream_streams_total{outcome=\"shutdown\"}",
        "ragstream_tool_calls_total{tool=\"autism_expert\",outcome=\"ok\"}",
        "ragstream_tool_calls_total{tool=\"autism_expert\",outcome=\"error\"}",
        "ragstream_upstream_errors_total{kind=\"upstream_unavailable\"}",
        "ragstream_upstream_errors_total{kind=\"upstream_timeout\"}",
        "ragstream_time_to_first_byte_seconds_count",
        "ragstream_stream_duration_seconds_count",
        "ragstream_kb_search_seconds_count",
        "ragstream_prefetch_total{outcome=\"hit\"}",
        "ragstream_prefetch_total{outcome=\"partial\"}",
        "ragstream_prefetch_total{outcome=\"miss\"}",
        "ragstream_prefetch_total{outcome=\"wasted\"}",
    ] {
        assert_eq!(metric(&before, series), 0.0, "{series} before any request");
    }

    let response = reqwest::Client::new()
        .post(format!("{}/api/chat", server.url))
        .json(&ask())
        .send()
        .await
        .unwrap();
    let events = support::read_events(response).await;
    assert_eq!(answer(&events), "好");
    let after = scrape().await;

    for (series, expected) in [
        (
            "ragstream_http_requests_total{endpoint=\"/api/chat\",status=\"200\"}",
            1.0,
        ),
        (
            "ragstream_http_requests_total{endpoint=\"/metrics\",status=\"200\"}",
            1.0,
        ),
        ("ragstream_active_streams", 0.0),
        ("ragstream_streams_total{outcome=\"done\"}", 1.0),
        ("ragstream_streams_total{outcome=\"error\"}", 0.0),
        (
            "ragstream_tool_calls_total{tool=\"autism_expert\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "ragstream_upstream_errors_total{kind=\"upstream_unavailable\"}",
            1.0,
        ),
        ("ragstream_time_to_first_byte_seconds_count", 1.0),
        ("ragstream_stream_duration_seconds_count", 1.0),
        ("ragstream_kb_search_seconds_count", 1.0),
        // examples/autism.toml has no embeddings provider: `auto` prefetches nothing.
        ("ragstream_prefetch_total{outcome=\"hit\"}", 0.0),
        ("ragstream_prefetch_total{outcome=\"miss\"}", 0.0),
        ("ragstream_prefetch_total{outcome=\"wasted\"}", 0.0),
    ] {
        assert_eq!(metric(&after, series), expected, "{series}");
    }
}

/// Issue 10, part 8: the first SIGTERM drains, the second exits at once.
#[tokio::test]
async fn a_second_sigterm_exits_at_once_with_a_failure_status() {
    let upstream = Upstream::start(vec![long_answer(100_000, Duration::from_millis(20))]).await;
    let mut command = process::serve(&upstream.base_url);
    command.env("RAGSTREAM_SERVER__SHUTDOWN_GRACE_MS", "600000");
    let mut server = Process::start(command).await;
    let mut stream = reqwest::Client::new()
        .post(format!("{}/api/chat", server.url))
        .json(&ask())
        .send()
        .await
        .unwrap();
    stream.chunk().await.unwrap();

    server.terminate();
    let draining = reqwest::get(format!("{}/readyz", server.url))
        .await
        .unwrap();
    assert_eq!(draining.status(), 503, "the first signal starts the drain");
    server.terminate();

    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("a second SIGTERM ends the process without waiting for the 10-minute grace")
        .unwrap();
    assert_eq!(status.code(), Some(143), "128 + SIGTERM");
}

/// Issue 10, part 8: "listening" means the knowledge base is open.
#[tokio::test]
async fn serve_opens_the_knowledge_base_before_it_says_listening() {
    let not_a_dir = tempfile::NamedTempFile::new().unwrap();
    let mut command = process::serve("http://127.0.0.1:9/v1");
    command.env("RAGSTREAM_KB__DATA_DIR", not_a_dir.path());
    let output = command.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
}

#[tokio::test]
async fn a_failing_provider_falls_back_to_the_next_one() {
    let primary = Upstream::start(vec![
        Reply::Status(503, vec![], "down".into()),
        Reply::Status(503, vec![], "down".into()),
    ])
    .await;
    let backup = Upstream::start(vec![Reply::answer(&["备用"])]).await;
    let mut raw = config(&primary.base_url);
    raw.llm.retries = 1;
    raw.llm.fallbacks = vec![RawFallback {
        base_url: backup.base_url.clone(),
        api_key: Some(ragstream::llm::Secret::new("sk-backup")),
        model: Some("backup-model".into()),
    }];
    let server = start(raw).await;

    let events = chat(&server, ask()).await;

    assert_eq!(answer(&events), "备用");
    assert_eq!(primary.requests().len(), 2);
    assert_eq!(backup.requests()[0]["model"], "backup-model");
    assert_eq!(backup.headers(0)["authorization"], "Bearer sk-backup");
}

#[tokio::test]
async fn a_client_that_does_not_read_holds_back_the_upstream() {
    // 400 MB of answer: far more than the kernel's socket buffers on both hops
    // (loopback autotuning here allows up to 32 MiB per receive buffer).
    let chunk = Bytes::from(support::upstream::frame(
        &content(&"长".repeat(340)).to_string(),
    ));
    let times = 400_000_000 / chunk.len();
    let total = chunk.len() * times;
    let upstream = Upstream::start(vec![Reply::Stream(vec![Step::Repeat(chunk, times)])]).await;
    let server = start(config(&upstream.base_url)).await;

    let response = support::post(&server, "/api/chat", ask()).await;
    let mut previous = usize::MAX;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = upstream.sent_bytes();
        if sent == previous {
            break;
        }
        previous = sent;
    }

    let sent = upstream.sent_bytes();
    eprintln!("upstream sent {sent} of {total} bytes before backpressure stopped it");
    assert!(
        sent < total / 3,
        "ragstream buffered {sent} of {total} bytes for a client that reads nothing"
    );
    drop(response);
    assert!(upstream.wait_all_closed(Duration::from_secs(2)).await);
}

/// Issue 10, part 6: `/readyz` turns 503 when the store stops answering (here its
/// database file is overwritten under the running server), saying why.
#[tokio::test]
async fn readyz_reports_a_failing_store() {
    let upstream = Upstream::start(vec![]).await;
    let server = start(config(&upstream.base_url)).await;
    let ready = reqwest::get(format!("{}/readyz", server.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let db = server.data.path().join("data").join("kb.sqlite3");
    let size = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0x5a_u8; size.max(4096)]).unwrap();
    for extra in ["kb.sqlite3-wal", "kb.sqlite3-shm"] {
        let _ = std::fs::remove_file(server.data.path().join("data").join(extra));
    }

    let failing = reqwest::get(format!("{}/readyz", server.url))
        .await
        .unwrap();
    assert_eq!(failing.status(), 503);
    let body: Value = failing.json().await.unwrap();
    assert_eq!(body["status"], "not_ready", "{body}");
    assert!(
        body["kb"]
            .as_str()
            .is_some_and(|t| t.contains("not a database")),
        "{body}"
    );
}
