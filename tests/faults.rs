//! Upstream and client faults: every stream ends with `done` or `error`, and
//! nothing is left running upstream.

mod support;

use std::time::Duration;

use serde_json::json;
use support::upstream::{content, finish, frame};
use support::{Reply, Step, Upstream, answer, chat, config, last, start};

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

#[tokio::test]
async fn a_429_honours_retry_after_then_succeeds() {
    let upstream = Upstream::start(vec![
        Reply::Status(
            429,
            vec![("retry-after", "0.05".into())],
            r#"{"error":{"message":"slow down"}}"#.into(),
        ),
        Reply::answer(&["ok"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    assert_eq!(answer(&chat(&server, ask()).await), "ok");
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
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
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
}

#[tokio::test]
async fn a_provider_that_never_answers_ends_with_a_timeout() {
    let upstream = Upstream::start(vec![Reply::Silent, Reply::Silent]).await;
    let mut raw = config(&upstream.base_url);
    raw.llm.first_byte_timeout_ms = 100;
    raw.llm.retries = 1;
    let server = start(raw).await;

    assert_eq!(error_code(&chat(&server, ask()).await), "upstream_timeout");
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
