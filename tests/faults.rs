//! Upstream and client faults: every stream ends with `done` or `error`, and
//! nothing is left running upstream.

mod support;

use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use ragstream::config::RawFallback;
use ragstream::kb::config::Provider;
use serde_json::json;
use support::embed_server::EmbedServer;
use support::logs::Logs;
use support::upstream::{content, finish, frame};
use support::{Reply, Step, Upstream, answer, chat, config, last, start};

/// The key `support::config` configures.
const KEY: &str = "sk-test-secret-key";

fn ask() -> serde_json::Value {
    json!({"content": "孩子不说话怎么办"})
}

fn error_code(events: &[support::Sse]) -> String {
    let end = last(events);
    assert_eq!(end.event, "error", "expected an error event, got {end:?}");
    end.data["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_500_before_the_first_byte_is_retried() {
    let upstream = Upstream::start(vec![
        Reply::Status(500, vec![], r#"{"error":{"message":"internal"}}"#.into()),
        Reply::Status(503, vec![], "overloaded".into()),
        Reply::answer(&["好的"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(answer(&events), "好的");
    assert_eq!(upstream.requests().len(), 3);
}

/// The retry waits what the provider asked (150 ms), not the backoff (at most
/// 10 ms here): the wait is read from the retry's log line, not a clock.
/// Issue 10: the test used to pass with `Retry-After` ignored.
#[tokio::test]
async fn a_429_honours_retry_after_then_succeeds() {
    let (logs, _capture) = Logs::capture();
    let upstream = Upstream::start(vec![
        Reply::Status(
            429,
            vec![("retry-after", "0.15".into())],
            r#"{"error":{"message":"slow down"}}"#.into(),
        ),
        Reply::answer(&["ok"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    assert_eq!(answer(&chat(&server, ask()).await), "ok");
    let logs = logs.text();
    assert!(logs.contains("retrying model provider"), "{logs}");
    assert!(logs.contains("delay_ms=150"), "{logs}");
}

/// Issue 10: `Retry-After: 1e20` panicked in `Duration::from_secs_f64` and the
/// client's stream ended with neither `done` nor `error`.
#[tokio::test]
async fn any_retry_after_from_the_provider_is_capped_never_a_panic() {
    let (logs, _capture) = Logs::capture();
    let limited = |status, value: &str| {
        Reply::Status(status, vec![("retry-after", value.into())], "{}".into())
    };
    let upstream = Upstream::start(vec![
        limited(429, "1e20"),
        limited(503, "-1"),
        limited(429, "Fri, 31 Dec 9999 23:59:59 GMT"),
        limited(503, "NaN"),
        Reply::answer(&["ok"]),
    ])
    .await;
    let mut raw = config(&upstream.base_url);
    raw.llm.retries = 4;
    let server = start(raw).await;

    let events = chat(&server, ask()).await;

    assert_eq!(answer(&events), "ok");
    assert_eq!(last(&events).event, "done");
    assert_eq!(upstream.requests().len(), 5);
    let logs = logs.text();
    assert_eq!(
        logs.matches("delay_ms=200").count(),
        2,
        "the huge value and the far date wait max_backoff_ms:\n{logs}"
    );
}

/// Issue 10: the line buffer had no cap, so a provider that never sends a
/// line end grew memory without bound.
#[tokio::test]
async fn a_line_that_never_ends_is_cut_off_with_a_protocol_error() {
    let endless = Bytes::from(vec![b'x'; 64 * 1024]);
    let upstream = Upstream::start(vec![Reply::Stream(vec![
        Step::Bytes(frame(&content("前").to_string())),
        Step::Repeat(endless, 256),
    ])])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(answer(&events), "前");
    assert_eq!(error_code(&events), "upstream_protocol");
    let message = last(&events).data["message"].as_str().unwrap().to_owned();
    assert!(message.contains("longer than 1048576 bytes"), "{message}");
    assert!(
        upstream.wait_all_closed(Duration::from_secs(2)).await,
        "the upstream request was dropped"
    );
    assert!(
        upstream.sent_bytes() < 16 * 1024 * 1024,
        "ragstream stopped reading: {} bytes sent",
        upstream.sent_bytes()
    );
}

#[tokio::test]
async fn retries_run_out_with_a_clear_error() {
    let limited = || {
        Reply::Status(
            429,
            vec![],
            r#"{"error":{"message":"Rate limit reached"}}"#.into(),
        )
    };
    let upstream = Upstream::start(vec![limited(), limited(), limited()]).await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(error_code(&events), "upstream_rate_limited");
    assert!(
        last(&events).data["message"]
            .as_str()
            .unwrap()
            .contains("Rate limit reached")
    );
    assert_eq!(upstream.requests().len(), 3, "one try and two retries");
}

#[tokio::test]
async fn a_4xx_is_not_retried_and_never_shows_the_key() {
    let upstream = Upstream::start(vec![Reply::Status(
        401,
        vec![],
        r#"{"error":{"message":"Incorrect API key provided: sk-test-secret-key"}}"#.into(),
    )])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(error_code(&events), "upstream_rejected");
    let message = last(&events).data["message"].as_str().unwrap().to_owned();
    assert!(message.contains("HTTP 401"), "{message}");
    assert!(!message.contains("sk-test-secret-key"), "{message}");
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn connection_refused_ends_with_an_error() {
    let url = format!("http://{}/v1", support::closed_port());
    let server = start(config(&url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(error_code(&events), "upstream_unreachable");
}

#[tokio::test]
async fn a_silent_provider_is_retried_after_the_first_byte_timeout() {
    let upstream = Upstream::start(vec![Reply::Silent, Reply::answer(&["终于"])]).await;
    let mut raw = config(&upstream.base_url);
    raw.llm.first_byte_timeout_ms = 200;
    let server = start(raw).await;

    assert_eq!(answer(&chat(&server, ask()).await), "终于");
    assert!(
        upstream.wait_all_closed(Duration::from_secs(2)).await,
        "the silent first attempt was hung up on, not leaked"
    );
}

#[tokio::test]
async fn a_provider_that_never_answers_ends_with_a_timeout() {
    let upstream = Upstream::start(vec![Reply::Silent, Reply::Silent]).await;
    let mut raw = config(&upstream.base_url);
    raw.llm.first_byte_timeout_ms = 100;
    raw.llm.retries = 1;
    let server = start(raw).await;

    assert_eq!(error_code(&chat(&server, ask()).await), "upstream_timeout");
    assert!(
        upstream.wait_all_closed(Duration::from_secs(2)).await,
        "the silent requests were hung up on"
    );
}

#[tokio::test]
async fn a_drop_mid_stream_ends_with_an_error_after_the_text_so_far() {
    let upstream =
        Upstream::start(vec![Reply::answer(&["一", "二", "三"]).cut(2, Step::Drop)]).await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(answer(&events), "一二");
    assert_eq!(error_code(&events), "upstream_interrupted");
}

#[tokio::test]
async fn a_malformed_chunk_ends_with_a_protocol_error() {
    let upstream = Upstream::start(vec![Reply::Stream(vec![
        Step::Bytes(frame(&content("前").to_string())),
        Step::Bytes(frame("{\"choices\": [oops")),
        Step::Bytes(frame(&content("后").to_string())),
    ])])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(answer(&events), "前");
    assert_eq!(error_code(&events), "upstream_protocol");
    assert!(
        last(&events).data["message"]
            .as_str()
            .unwrap()
            .contains("oops")
    );
}

fn error_object() -> Reply {
    Reply::Stream(vec![Step::Bytes(frame(
        r#"{"error":{"message":"model overloaded","code":529}}"#,
    ))])
}

#[tokio::test]
async fn an_error_object_before_any_content_is_retried() {
    let upstream = Upstream::start(vec![error_object(), Reply::answer(&["好了"])]).await;
    let server = start(config(&upstream.base_url)).await;

    assert_eq!(answer(&chat(&server, ask()).await), "好了");
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test]
async fn an_error_object_that_persists_is_passed_on() {
    let upstream = Upstream::start(vec![error_object(), error_object(), error_object()]).await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(error_code(&events), "upstream_error");
    assert!(
        last(&events).data["message"]
            .as_str()
            .unwrap()
            .contains("model overloaded")
    );
}

#[tokio::test]
async fn a_drop_after_keep_alives_but_before_any_content_is_retried() {
    let upstream = Upstream::start(vec![
        Reply::Stream(vec![
            Step::Bytes(b": ping\n\n".to_vec()),
            Step::Bytes(frame(
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            )),
            Step::Drop,
        ]),
        Reply::answer(&["第二次"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(
        answer(&events),
        "第二次",
        "the client never saw the failed attempt"
    );
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test]
async fn slow_chunks_within_the_idle_timeout_are_fine() {
    let upstream = Upstream::start(vec![
        Reply::answer(&["慢", "慢", "来"]).paced(Duration::from_millis(150)),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(answer(&events), "慢慢来");
    assert_eq!(last(&events).event, "done");
}

#[tokio::test]
async fn a_stream_that_never_ends_hits_the_idle_timeout() {
    let upstream = Upstream::start(vec![Reply::answer(&["开始"]).cut(1, Step::Hang)]).await;
    let mut raw = config(&upstream.base_url);
    raw.llm.idle_timeout_ms = 300;
    let server = start(raw).await;

    let events = chat(&server, ask()).await;

    assert_eq!(answer(&events), "开始");
    assert_eq!(error_code(&events), "upstream_timeout");
    assert!(
        upstream.wait_all_closed(Duration::from_secs(2)).await,
        "the hung upstream request was closed"
    );
}

#[tokio::test]
async fn a_stream_without_done_still_completes() {
    let upstream = Upstream::start(vec![
        Reply::fixture("quirky_tool_call.sse", 33),
        Reply::answer(&["好"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    let call = events.iter().find(|e| e.event == "tool_call").unwrap();
    assert_eq!(call.data["name"], "autism_expert");
    assert_eq!(call.data["arguments"], "{\"question\":\"孩子不理人\"}");
    assert_eq!(answer(&events), "好");
}

#[tokio::test]
async fn a_client_disconnect_cancels_the_upstream_request() {
    let many: Vec<String> = (0..200).map(|i| format!("第{i}句。")).collect();
    let pieces: Vec<&str> = many.iter().map(String::as_str).collect();
    let upstream = Upstream::start(vec![
        Reply::answer(&pieces).paced(Duration::from_millis(20)),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let mut response = support::post(&server, "/api/chat", ask()).await;
    response.chunk().await.unwrap().unwrap();
    assert_eq!(upstream.open_streams(), 1);
    drop(response);

    assert!(
        upstream.wait_all_closed(Duration::from_secs(1)).await,
        "upstream stream still open after the client left"
    );
}

#[tokio::test]
async fn a_client_disconnect_cancels_an_upstream_that_is_silent() {
    let upstream = Upstream::start(vec![Reply::Stream(vec![
        Step::Bytes(frame(&content("想").to_string())),
        Step::Hang,
    ])])
    .await;
    let mut raw = config(&upstream.base_url);
    raw.llm.idle_timeout_ms = 30_000;
    let server = start(raw).await;

    let mut response = support::post(&server, "/api/chat", ask()).await;
    response.chunk().await.unwrap().unwrap();
    drop(response);

    assert!(
        upstream.wait_all_closed(Duration::from_secs(1)).await,
        "upstream stream still open after the client left"
    );
}

#[tokio::test]
async fn the_classic_endpoint_shows_a_failure_in_the_text() {
    let upstream = Upstream::start(vec![Reply::answer(&["一半"]).cut(1, Step::Drop)]).await;
    let server = start(config(&upstream.base_url)).await;

    let text = support::post(&server, "/api/python", ask())
        .await
        .text()
        .await
        .unwrap();

    assert!(
        text.starts_with("一半\n\n[error: model provider stream broke off"),
        "{text}"
    );
}

#[tokio::test]
async fn finish_without_a_done_frame_is_enough() {
    let upstream = Upstream::start(vec![Reply::Stream(vec![
        Step::Bytes(frame(&content("完").to_string())),
        Step::Bytes(frame(&finish("length").to_string())),
    ])])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(last(&events).data["finish_reason"], "length");
}

#[tokio::test]
async fn a_disconnect_during_the_answer_after_a_tool_call_leaves_nothing_running() {
    let many: Vec<String> = (0..500).map(|i| format!("第{i}句。")).collect();
    let pieces: Vec<&str> = many.iter().map(String::as_str).collect();
    let upstream = Upstream::start(vec![
        Reply::answer(&["热身"]),
        Reply::tool_call("c1", "autism_expert", &["{\"question\":\"自伤\"}"]),
        Reply::answer(&pieces).paced(Duration::from_millis(20)),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;
    // A first answer starts what lives on (metrics upkeep, pooled connections).
    chat(&server, ask()).await;
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let baseline = tasks();

    let mut response = support::post(&server, "/api/chat", ask()).await;
    let mut seen = String::new();
    while !seen.contains("event: delta") {
        seen.push_str(&String::from_utf8_lossy(
            &response.chunk().await.unwrap().unwrap(),
        ));
    }
    assert_eq!(upstream.requests().len(), 3, "the answer call is running");
    drop(response);

    assert!(
        upstream.wait_all_closed(Duration::from_secs(1)).await,
        "the answer call was cancelled"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while tasks() > baseline && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        tasks() <= baseline,
        "{} tasks alive, {baseline} before the request",
        tasks()
    );
}

#[tokio::test]
async fn the_idle_timeout_counts_from_the_last_chunk_not_the_first() {
    let upstream = Upstream::start(vec![
        Reply::answer(&["一", "二", "三", "四", "五"]).paced(Duration::from_millis(250)),
    ])
    .await;
    let mut raw = config(&upstream.base_url);
    raw.llm.idle_timeout_ms = 600;
    let server = start(raw).await;

    let events = chat(&server, ask()).await;

    assert_eq!(
        answer(&events),
        "一二三四五",
        "1.5 s in all, but never 600 ms of silence"
    );
    assert_eq!(last(&events).event, "done");
}

/// Issue 10: providers echo the key in an error object inside the stream; it
/// reached the client's `error` event and the log verbatim.
#[tokio::test]
async fn a_key_echoed_in_the_stream_reaches_neither_the_client_nor_the_log() {
    let (logs, _capture) = Logs::capture();
    let echo = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}. Find your key at https://platform.openai.com/account/api-keys."}}}}"#
    );
    let upstream = Upstream::start(vec![Reply::Stream(vec![
        Step::Bytes(frame(&content("前").to_string())),
        Step::Bytes(frame(&echo)),
    ])])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(error_code(&events), "upstream_error");
    let message = last(&events).data["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("Incorrect API key provided: ***."),
        "{message}"
    );
    assert!(!message.contains(KEY), "{message}");
    let logs = logs.text();
    assert!(logs.contains("Incorrect API key provided: ***."), "{logs}");
    assert!(!logs.contains(KEY), "{logs}");
}

/// Issue 10: a connect error named the endpoint URL, credentials included.
#[tokio::test]
async fn credentials_in_the_base_url_reach_neither_the_client_nor_the_log() {
    let (logs, _capture) = Logs::capture();
    let addr = support::closed_port();
    let server = start(config(&format!("http://ragstream:hunter2-pw@{addr}/v1"))).await;

    let events = chat(&server, ask()).await;

    assert_eq!(error_code(&events), "upstream_unreachable");
    let message = last(&events).data["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(&format!("http://***@{addr}/v1")),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    let logs = logs.text();
    assert!(logs.contains("model call failed"), "{logs}");
    assert!(!logs.contains("hunter2"), "{logs}");
}

/// Issue 10 (part 8): a base URL without `/v1` got a bare 404.
#[tokio::test]
async fn a_404_says_to_check_the_base_url() {
    let upstream = Upstream::start(vec![]).await;
    let without_v1 = upstream.base_url.trim_end_matches("/v1").to_owned();
    let server = start(config(&without_v1)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(error_code(&events), "upstream_rejected");
    let message = last(&events).data["message"].as_str().unwrap().to_owned();
    assert!(message.contains("HTTP 404"), "{message}");
    assert!(
        message.contains("check `llm.base_url`, which usually ends in `/v1`"),
        "{message}"
    );
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn include_usage_asks_for_usage_and_the_done_event_reports_it() {
    let upstream = Upstream::start(vec![Reply::answer(&["ok"])]).await;
    let mut raw = config(&upstream.base_url);
    raw.llm.include_usage = true;
    let server = start(raw).await;

    let events = chat(&server, ask()).await;

    let done = last(&events);
    assert_eq!(done.event, "done");
    assert_eq!(
        done.data["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
    );
    assert_eq!(
        upstream.requests()[0]["stream_options"],
        json!({"include_usage": true})
    );
}

#[tokio::test]
async fn without_include_usage_no_stream_options_are_sent() {
    let upstream = Upstream::start(vec![Reply::answer(&["ok"])]).await;
    let server = start(config(&upstream.base_url)).await;

    chat(&server, ask()).await;

    assert!(upstream.requests()[0].get("stream_options").is_none());
}

#[tokio::test]
async fn a_408_and_a_409_are_retried() {
    let upstream = Upstream::start(vec![
        Reply::Status(408, vec![], "request timeout".into()),
        Reply::Status(409, vec![], "conflict".into()),
        Reply::answer(&["第三次"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    assert_eq!(answer(&chat(&server, ask()).await), "第三次");
    assert_eq!(upstream.requests().len(), 3);
}

/// A malformed request fails the same everywhere: no retry, no fallback.
#[tokio::test]
async fn a_400_413_or_422_is_neither_retried_nor_sent_to_the_fallback() {
    let rejected = |status| Reply::Status(status, vec![], r#"{"error":{"message":"bad"}}"#.into());
    let down = || Reply::Status(500, vec![], "down".into());
    let main = Upstream::start(vec![
        rejected(400),
        rejected(413),
        rejected(422),
        down(),
        down(),
        down(),
    ])
    .await;
    let fallback = Upstream::start(vec![Reply::answer(&["备用"])]).await;
    let mut raw = config(&main.base_url);
    raw.llm.fallbacks = vec![RawFallback {
        base_url: fallback.base_url.clone(),
        api_key: None,
        model: None,
    }];
    let server = start(raw).await;

    for status in [400, 413, 422] {
        let events = chat(&server, ask()).await;
        assert_eq!(error_code(&events), "upstream_rejected");
        let message = last(&events).data["message"].as_str().unwrap().to_owned();
        assert!(message.contains(&format!("HTTP {status}")), "{message}");
    }
    assert_eq!(main.requests().len(), 3, "one request each, no retry");
    assert!(fallback.requests().is_empty(), "no fallback");

    // The fallback is wired: a 500 that persists does reach it.
    assert_eq!(answer(&chat(&server, ask()).await), "备用");
    assert_eq!(main.requests().len(), 6);
}

/// Issue 10: a hung tool hung the whole answer. Here the embeddings API hangs
/// while the knowledge-base tool embeds the model's question, with a query
/// budget longer than the tool's timeout.
#[tokio::test]
async fn a_hung_tool_ends_in_a_tool_error_that_the_model_answers_from() {
    let embed = EmbedServer::start(64).await;
    let upstream = Upstream::start(vec![
        Reply::tool_call("c1", "autism_expert", &["{\"question\":\"自伤\"}"]),
        Reply::answer(&["先保证安全"]),
    ])
    .await;
    let mut raw = config(&upstream.base_url);
    raw.kb.embeddings.provider = Provider::Openai;
    raw.kb.embeddings.base_url = Some(embed.base_url());
    raw.kb.embeddings.query_timeout_ms = 60_000;
    raw.tools[0].timeout_ms = 300;
    let server = start(raw).await;
    embed.hang();

    let events = chat(&server, ask()).await;

    let result = events.iter().find(|e| e.event == "tool_result").unwrap();
    let error = result.data["error"].as_str().unwrap();
    assert!(
        error.contains("tool `autism_expert` did not answer within 300 ms"),
        "{error}"
    );
    assert_eq!(answer(&events), "先保证安全");
    assert_eq!(last(&events).event, "done");
    let requests = upstream.requests();
    let told = requests[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .any(|c| c.contains("did not answer within 300 ms"));
    assert!(told, "the model read the error: {:?}", requests[1]);
}

/// One piece of a generated provider body.
fn piece() -> impl Strategy<Value = Step> {
    let json_chunk = prop_oneof![
        "\\PC{0,12}".prop_map(|t| content(&t)),
        "\\PC{0,12}".prop_map(|t| support::upstream::reasoning(&t)),
        ("[a-z_]{0,10}", "[a-z0-9_-]{0,6}")
            .prop_map(|(name, id)| support::upstream::tool_start(0, &id, &name)),
        "\\PC{0,16}".prop_map(|a| support::upstream::tool_args(0, &a)),
        "[a-z_]{0,8}".prop_map(|r| finish(&r)),
        "\\PC{0,24}".prop_map(|m| json!({"error": {"message": m}})),
    ];
    prop_oneof![
        6 => json_chunk.prop_map(|c| Step::Bytes(frame(&c.to_string()))),
        2 => Just(Step::Bytes(frame("[DONE]"))),
        2 => prop::collection::vec(any::<u8>(), 0..48).prop_map(Step::Bytes),
        2 => "(data|event|id|:)?:? ?\\PC{0,24}(\n|\r|\r\n){0,2}".prop_map(|t| Step::Bytes(t.into_bytes())),
        1 => Just(Step::Bytes(b": keep-alive\n\n".to_vec())),
        1 => Just(Step::Drop),
        1 => (1usize..40).prop_map(|ms| Step::Sleep(Duration::from_millis(ms as u64))),
    ]
}

/// Headers a provider may send, with any printable value.
fn header() -> impl Strategy<Value = (String, String)> {
    let name = prop::sample::select(vec![
        "retry-after",
        "retry-after",
        "content-type",
        "x-request-id",
        "content-encoding",
        "cache-control",
    ]);
    let value = prop_oneof![
        "[ -~]{0,24}",
        prop::sample::select(vec![
            "1e20",
            "-1",
            "NaN",
            "inf",
            "0.001",
            "18446744073709551616",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "text/event-stream",
            "application/json",
            "gzip",
        ])
        .prop_map(str::to_owned),
    ];
    (name.prop_map(str::to_owned), value).prop_map(|(n, v)| (n, v.trim().to_owned()))
}

fn provider_reply() -> impl Strategy<Value = Reply> {
    let status = prop_oneof![6 => Just(200u16), 1 => 201u16..=299, 3 => 400u16..=599];
    (
        status,
        prop::collection::vec(header(), 0..4),
        prop::collection::vec(piece(), 0..12),
    )
        .prop_map(|(status, headers, body)| Reply::Raw {
            status,
            headers,
            body,
        })
}

/// Issue 10: whatever status, headers and bytes the provider answers with,
/// the client's stream ends with exactly one final event, `done` or `error`,
/// and nothing is left open upstream. Drives the real server over TCP.
#[test]
fn any_provider_reply_ends_the_stream_with_done_or_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (upstream, server) = runtime.block_on(async {
        let upstream = Upstream::start(vec![]).await;
        let mut raw = config(&upstream.base_url);
        raw.llm.retries = 1;
        raw.llm.backoff_ms = 1;
        raw.llm.max_backoff_ms = 5;
        let server = start(raw).await;
        (upstream, server)
    });
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        source_file: Some(file!()),
        ..ProptestConfig::default()
    });
    let result = runner.run(&provider_reply(), |reply| {
        runtime.block_on(async {
            // Retries and tool rounds get the same reply again.
            upstream.reset(vec![reply.clone(), reply.clone(), reply]);
            let events = chat(&server, ask()).await;
            prop_assert!(!events.is_empty());
            let finals: Vec<usize> = events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.event == "done" || e.event == "error")
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(
                finals,
                vec![events.len() - 1],
                "one final event, last: {:?}",
                events
            );
            prop_assert!(upstream.wait_all_closed(Duration::from_secs(2)).await);
            Ok(())
        })
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}
