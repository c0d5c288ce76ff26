//! Speculative retrieval and early-started tool calls, end to end: ragstream over
//! TCP against the scripted model upstream and the scripted embeddings server.
//!
//! Ordering is asserted, never time: a [`Gate`] holds the model's reply until the
//! embeddings server has seen what the test waits for.

mod support;

use ragstream::config::RawConfig;
use ragstream::engine::PrefetchMode;
use ragstream::kb::config::Provider;
use serde_json::{Value, json};
use support::embed_server::EmbedServer;
use support::upstream::{finish, frame, tool_args, tool_start};
use support::{Gate, Reply, Server, Step, Upstream, answer, chat, config, last, start};

const QUESTION: &str = "自闭症孩子自伤怎么办？";

/// The reference config with query embeddings from `embed` and prefetch `mode`.
fn with_embeddings(upstream: &Upstream, embed: &EmbedServer, mode: PrefetchMode) -> RawConfig {
    let mut raw = config(&upstream.base_url);
    raw.kb.embeddings.provider = Provider::Openai;
    raw.kb.embeddings.base_url = Some(embed.base_url());
    raw.kb.embeddings.api_key = Some("sk-embed".into());
    raw.kb.embeddings.model = Some("bge-m3".into());
    raw.kb.embeddings.max_retries = 0;
    raw.chat.prefetch = mode;
    raw
}

/// Starts ragstream; returns it with the number of embeddings requests its
/// import made (query embeddings come after them).
async fn serve(raw: RawConfig, embed: &EmbedServer) -> (Server, usize) {
    let server = start(raw).await;
    (server, embed.seen().len())
}

/// A tool call of the knowledge-base tool asking `question`, in two fragments.
fn kb_call(question: &str) -> Reply {
    let arguments = json!({ "question": question }).to_string();
    let (a, b) = arguments.split_at(arguments.find(':').unwrap() + 1);
    Reply::tool_call("c1", "autism_expert", &[a, b])
}

/// The value of `series` in the server's `/metrics`.
async fn metric(server: &Server, series: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    support::metric(&text, series)
}

/// Asks `content` in a task of its own; the task ends with the response head.
fn send(server: &Server, content: &str) -> tokio::task::JoinHandle<reqwest::Response> {
    let url = format!("{}/api/chat", server.url);
    let body = json!({ "content": content });
    tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap()
    })
}

fn sources(events: &[support::Sse]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "sources")
        .flat_map(|e| e.data["sources"].as_array().cloned().unwrap_or_default())
        .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_call_asking_the_question_reuses_the_prefetch_one_embedding_not_two() {
    let upstream = Upstream::start(vec![
        kb_call("自闭症孩子自伤怎么办"),
        Reply::answer(&["先确保安全[1]"]),
    ])
    .await;
    let embed = EmbedServer::start(32).await;
    let (server, imported) = serve(
        with_embeddings(&upstream, &embed, PrefetchMode::Auto),
        &embed,
    )
    .await;

    let events = chat(&server, json!({ "content": QUESTION })).await;

    assert_eq!(last(&events).event, "done", "{events:?}");
    assert_eq!(answer(&events), "先确保安全[1]");
    assert_eq!(sources(&events)[0], "self-injury");
    assert_eq!(
        embed.queries_since(imported),
        [QUESTION],
        "the question is embedded once, by the prefetch; the tool call reuses its hits"
    );
    let tool_message = &upstream.requests()[1]["messages"];
    assert!(
        tool_message.to_string().contains("先确保孩子安全"),
        "the model read the prefetched hit: {tool_message}"
    );
    assert!(metric(&server, "ragstream_prefetch_total{outcome=\"hit\"}").await >= 1.0);
}

#[tokio::test]
async fn a_call_asking_something_else_searches_again_with_the_models_words() {
    let upstream = Upstream::start(vec![
        kb_call("孩子语言发育迟缓"),
        Reply::answer(&["多描述[1]"]),
    ])
    .await;
    let embed = EmbedServer::start(32).await;
    let (server, imported) = serve(
        with_embeddings(&upstream, &embed, PrefetchMode::Auto),
        &embed,
    )
    .await;

    let events = chat(&server, json!({ "content": QUESTION })).await;

    assert_eq!(last(&events).event, "done", "{events:?}");
    assert_eq!(
        embed.queries_since(imported),
        [QUESTION, "孩子语言发育迟缓"],
        "the prefetch embedded the question, the call its own words"
    );
    assert_eq!(
        sources(&events)[0],
        "language",
        "the hits answer the model's query"
    );
    assert!(metric(&server, "ragstream_prefetch_total{outcome=\"miss\"}").await >= 1.0);
}

#[tokio::test]
async fn a_close_rephrasing_reuses_the_vector_and_searches_the_models_words() {
    let upstream = Upstream::start(vec![
        kb_call("孩子语言发育迟缓怎么办"),
        Reply::answer(&["好"]),
    ])
    .await;
    let embed = EmbedServer::start(32).await;
    let (server, imported) = serve(
        with_embeddings(&upstream, &embed, PrefetchMode::Auto),
        &embed,
    )
    .await;

    let events = chat(
        &server,
        json!({ "content": "我家孩子语言发育迟缓，该怎么办呢" }),
    )
    .await;

    assert_eq!(last(&events).event, "done", "{events:?}");
    assert_eq!(
        embed.queries_since(imported).len(),
        1,
        "the call reused the question's vector"
    );
    assert_eq!(sources(&events)[0], "language");
    assert!(metric(&server, "ragstream_prefetch_total{outcome=\"partial\"}").await >= 1.0);
}

#[tokio::test]
async fn a_direct_answer_is_not_held_up_by_a_hung_embeddings_api_whose_request_it_then_cancels() {
    let gate = Gate::new();
    let mut reply = vec![Step::Gate(gate.clone())];
    reply.push(Step::Bytes(frame(
        &support::upstream::content("你好").to_string(),
    )));
    reply.push(Step::Bytes(frame(&finish("stop").to_string())));
    reply.push(Step::Bytes(frame("[DONE]")));
    let upstream = Upstream::start(vec![Reply::Stream(reply)]).await;
    let embed = EmbedServer::start(32).await;
    let (server, imported) = serve(
        with_embeddings(&upstream, &embed, PrefetchMode::Auto),
        &embed,
    )
    .await;
    embed.hang();

    let asking = send(&server, "你好");
    embed
        .wait_for_requests(imported + 1, "the prefetch embeds the question")
        .await;
    assert_eq!(
        embed.in_flight(),
        1,
        "the embeddings API holds the question"
    );
    gate.open();
    let events = support::read_events(asking.await.unwrap()).await;

    assert_eq!(last(&events).event, "done", "{events:?}");
    assert_eq!(answer(&events), "你好", "answered while the embedding hung");
    assert!(
        embed.wait_idle().await,
        "the dropped prefetch hung up on the embeddings API"
    );
    assert!(metric(&server, "ragstream_prefetch_total{outcome=\"wasted\"}").await >= 1.0);
}

#[tokio::test]
async fn a_cancelled_request_cancels_its_prefetch() {
    let upstream = Upstream::start(vec![Reply::Silent]).await;
    let embed = EmbedServer::start(32).await;
    let (server, imported) = serve(
        with_embeddings(&upstream, &embed, PrefetchMode::Auto),
        &embed,
    )
    .await;
    embed.hang();

    let response = send(&server, QUESTION);
    embed
        .wait_for_requests(imported + 1, "the prefetch embeds the question")
        .await;
    assert_eq!(embed.in_flight(), 1);
    response.abort();
    let _ = response.await;

    assert!(
        embed.wait_idle().await,
        "the prefetch's request was dropped"
    );
    assert!(
        upstream
            .wait_all_closed(std::time::Duration::from_secs(10))
            .await,
        "and so was the model call"
    );
}

#[tokio::test]
async fn off_embeds_only_the_models_query_and_a_failing_prefetch_never_fails_the_answer() {
    // Off: the question is never embedded on its own.
    let upstream = Upstream::start(vec![kb_call(QUESTION), Reply::answer(&["好"])]).await;
    let embed = EmbedServer::start(32).await;
    let (server, imported) = serve(
        with_embeddings(&upstream, &embed, PrefetchMode::Off),
        &embed,
    )
    .await;
    let events = chat(&server, json!({ "content": "请问：自闭症孩子自伤怎么办" })).await;
    assert_eq!(last(&events).event, "done", "{events:?}");
    assert_eq!(embed.queries_since(imported), [QUESTION]);

    // Auto with an embeddings API that fails: the call searches full text.
    let upstream = Upstream::start(vec![kb_call(QUESTION), Reply::answer(&["好"])]).await;
    let embed = EmbedServer::start(32).await;
    let (server, _) = serve(
        with_embeddings(&upstream, &embed, PrefetchMode::Auto),
        &embed,
    )
    .await;
    embed.push(500, json!({"error": {"message": "down"}}));
    let events = chat(&server, json!({ "content": QUESTION })).await;
    assert_eq!(last(&events).event, "done", "{events:?}");
    assert_eq!(sources(&events)[0], "self-injury", "full text found it");
}

/// Item 2: the search starts when the call's JSON closes, while the model's
/// turn is still open (the gate holds its `finish_reason` and `[DONE]`).
#[tokio::test]
async fn a_tool_call_is_searched_as_soon_as_its_arguments_close() {
    let gate = Gate::new();
    let chunks: Vec<Value> = vec![
        tool_start(0, "c1", "autism_expert"),
        tool_args(0, "{\"question\":"),
        tool_args(0, "\"孩子语言发育迟缓\"}"),
    ];
    let mut steps: Vec<Step> = chunks
        .iter()
        .map(|c| Step::Bytes(frame(&c.to_string())))
        .collect();
    steps.push(Step::Gate(gate.clone()));
    steps.push(Step::Bytes(frame(&finish("tool_calls").to_string())));
    steps.push(Step::Bytes(frame("[DONE]")));
    let upstream = Upstream::start(vec![Reply::Stream(steps), Reply::answer(&["好"])]).await;
    let embed = EmbedServer::start(32).await;
    let (server, imported) = serve(
        with_embeddings(&upstream, &embed, PrefetchMode::Off),
        &embed,
    )
    .await;

    let asking = send(&server, QUESTION);
    embed
        .wait_for_requests(imported + 1, "the search starts before the turn ends")
        .await;
    assert_eq!(upstream.open_streams(), 1, "the model's turn is still open");
    gate.open();
    let events = support::read_events(asking.await.unwrap()).await;

    assert_eq!(last(&events).event, "done", "{events:?}");
    assert_eq!(sources(&events)[0], "language");
    assert_eq!(
        embed.queries_since(imported),
        ["孩子语言发育迟缓"],
        "the early search's result was used, not searched again"
    );
}
