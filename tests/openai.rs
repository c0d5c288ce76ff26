//! ragstream as an OpenAI model (issue 14): `/v1/chat/completions` and
//! `/v1/models` over real HTTP, against the scripted upstream.

mod support;

use ragstream::llm::sse::Decoder;
use serde_json::{Value, json};
use support::upstream::{content, finish, tool_args, tool_start};
use support::{Reply, Server, Step, Upstream, config, post, start};

/// Posts to `/v1/chat/completions` and returns every `data:` payload, `[DONE]` as a string.
async fn stream(server: &Server, body: Value) -> Vec<Value> {
    let mut response = post(server, "/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    while let Some(bytes) = response.chunk().await.unwrap() {
        decoder.feed(&bytes);
        while let Some(frame) = decoder.next_frame().unwrap() {
            assert_eq!(frame.event, b"", "only data lines");
            out.push(if frame.data == b"[DONE]" {
                Value::String("[DONE]".into())
            } else {
                serde_json::from_slice(frame.data).unwrap()
            });
        }
    }
    out
}

/// The content of the chunks' deltas.
fn text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn ask(question: &str) -> Value {
    json!({"model": "ragstream", "stream": true, "messages": [{"role": "user", "content": question}]})
}

#[tokio::test]
async fn a_streamed_answer_is_standard_chunks_from_role_to_usage_and_done() {
    let upstream = Upstream::start(vec![Reply::answer(&["你好！", "有什么可以帮你？"])]).await;
    let server = start(config(&upstream.base_url)).await;

    let chunks = stream(
        &server,
        json!({
            "model": "ragstream", "stream": true, "stream_options": {"include_usage": true},
            "temperature": 0.2, "max_completion_tokens": 64, "n": 1, "user": "someone",
            "messages": [
                {"role": "system", "content": "只用中文回答"},
                {"role": "user", "content": [{"type": "text", "text": "你好"}]}
            ]
        }),
    )
    .await;

    let (last, body) = chunks.split_last().unwrap();
    assert_eq!(last, "[DONE]");
    let (usage, answer) = body.split_last().unwrap();
    assert_eq!(answer[0]["choices"][0]["delta"]["role"], "assistant");
    for chunk in answer {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "ragstream");
        assert_eq!(chunk["id"], answer[0]["id"]);
        assert!(chunk["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(chunk["usage"], Value::Null, "{chunk}");
    }
    assert_eq!(text(answer), "你好！有什么可以帮你？");
    assert_eq!(
        answer.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 15);

    let request = &upstream.requests()[0];
    let roles: Vec<_> = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].clone())
        .collect();
    assert_eq!(roles, ["system", "system", "user"]);
    assert_eq!(
        request["messages"][0]["content"], "你是自闭症康复专家",
        "the configured prompt comes first"
    );
    assert_eq!(request["messages"][1]["content"], "只用中文回答");
    assert_eq!(request["messages"][2]["content"], "你好");
    assert_eq!(request["temperature"], 0.2);
    assert_eq!(request["max_tokens"], 64);
}

#[tokio::test]
async fn without_include_usage_no_usage_chunk_is_sent() {
    let upstream = Upstream::start(vec![Reply::answer(&["好"])]).await;
    let server = start(config(&upstream.base_url)).await;

    let chunks = stream(&server, ask("你好")).await;

    assert_eq!(chunks.last().unwrap(), "[DONE]");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(
        chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null))
    );
}

#[tokio::test]
async fn a_knowledge_base_answer_hides_ragstreams_tool_call_and_carries_sources() {
    let upstream = Upstream::start(vec![
        Reply::tool_call(
            "call_1",
            "autism_expert",
            &["{\"question\":\"孩子自伤怎么办\"}"],
        ),
        Reply::answer(&["先保证", "安全。[1]"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let chunks = stream(&server, ask("我家孩子总是打自己的头，怎么办？")).await;

    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0]["delta"].get("tool_calls").is_none()),
        "ragstream's own tool calls are not the client's: {chunks:?}"
    );
    let sources: Vec<&Value> = chunks.iter().filter_map(|c| c.get("ragstream")).collect();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0]["sources"][0]["id"], "self-injury");
    assert_eq!(text(&chunks), "先保证安全。[1]");
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn a_non_streaming_call_returns_one_chat_completion() {
    let upstream = Upstream::start(vec![
        Reply::tool_call("call_1", "autism_expert", &["{\"question\":\"自伤\"}"]),
        Reply::answer(&["先保证", "安全。"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let response = post(
        &server,
        "/v1/chat/completions",
        json!({"model": "ragstream", "messages": [{"role": "user", "content": "孩子自伤"}]}),
    )
    .await;

    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "ragstream");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "先保证安全。");
    assert!(body["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"]["total_tokens"], 30,
        "usage summed over both model calls"
    );
    assert_eq!(body["ragstream"]["sources"][0]["id"], "self-injury");
}

#[tokio::test]
async fn knowledge_base_only_answers_finish_with_stop() {
    let mut raw = config("http://unused");
    raw.llm.base_url = None;
    raw.llm.api_key = None;
    let server = start(raw).await;

    let chunks = stream(&server, ask("孩子有刻板行为")).await;
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(text(&chunks).contains("刻板行为常有自我调节的作用"));

    let nothing = stream(&server, ask("明天北京天气")).await;
    assert_eq!(
        nothing[nothing.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn an_error_after_the_stream_started_is_openais_in_stream_error() {
    let upstream = Upstream::start(vec![Reply::answer(&["一半"]).cut(1, Step::Drop)]).await;
    let server = start(config(&upstream.base_url)).await;

    let chunks = stream(&server, ask("你好")).await;

    assert_eq!(text(&chunks), "一半");
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    let error = &chunks[chunks.len() - 2]["error"];
    assert_eq!(error["type"], "server_error");
    assert_eq!(error["code"], "upstream_interrupted");
    assert_eq!(error["param"], Value::Null);
    assert!(error["message"].as_str().unwrap().len() > 5, "{error}");
}

#[tokio::test]
async fn a_failed_non_streaming_answer_is_an_openai_error_with_a_gateway_status() {
    let upstream = Upstream::start(vec![Reply::Status(
        400,
        vec![],
        "{\"error\":\"bad\"}".into(),
    )])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let response = post(
        &server,
        "/v1/chat/completions",
        json!({"model": "ragstream", "messages": [{"role": "user", "content": "你好"}]}),
    )
    .await;

    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_rejected");
    assert_eq!(body["error"]["type"], "server_error");
}

#[tokio::test]
async fn models_lists_the_configured_id_and_other_ids_are_not_found() {
    let upstream = Upstream::start(vec![]).await;
    let mut raw = config(&upstream.base_url);
    raw.server.model_id = "autism-kb".into();
    let server = start(raw).await;
    let get = |path: &str| reqwest::get(format!("{}{path}", server.url));

    let models: Value = get("/v1/models").await.unwrap().json().await.unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(
        models["data"],
        json!([{"id": "autism-kb", "object": "model", "created": 0, "owned_by": "ragstream"}])
    );
    assert_eq!(get("/v1/models/autism-kb").await.unwrap().status(), 200);

    let response = get("/v1/models/gpt-4o").await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");

    let response = post(
        &server,
        "/v1/chat/completions",
        json!({"model": "ragstream", "messages": [{"role": "user", "content": "q"}]}),
    )
    .await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        json!({
            "message": "The model `ragstream` does not exist; this server answers as the model listed at /v1/models",
            "type": "invalid_request_error", "param": null, "code": "model_not_found"
        })
    );
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn bad_requests_get_openai_shaped_errors_that_say_what_to_fix() {
    let upstream = Upstream::start(vec![]).await;
    let server = start(config(&upstream.base_url)).await;

    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", server.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "invalid_json");

    let response = post(
        &server,
        "/v1/chat/completions",
        json!({"model": "ragstream", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only {\"type\":\"text\""),
        "{body}"
    );

    let response = reqwest::get(format!("{}/v1/embeddings", server.url))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], Value::Null);
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}
    }}])
}

#[tokio::test]
async fn a_call_of_a_client_tool_ends_the_turn_in_the_standard_format() {
    let upstream = Upstream::start(vec![
        Reply::tool_call("call_w", "get_weather", &["{\"city\":", "\"北京\"}"]),
        Reply::answer(&["北京晴。"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;
    let question = json!({"role": "user", "content": "北京天气？"});

    let chunks = stream(
        &server,
        json!({"model": "ragstream", "stream": true, "tools": weather_tool(), "tool_choice": "auto",
               "parallel_tool_calls": false, "messages": [question]}),
    )
    .await;

    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert_eq!(
        calls,
        [&json!([{"index": 0, "id": "call_w", "type": "function",
                  "function": {"name": "get_weather", "arguments": "{\"city\":\"北京\"}"}}])]
    );
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "tool_calls"
    );
    let sent = &upstream.requests()[0];
    let names: Vec<_> = sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].clone())
        .collect();
    assert_eq!(
        names,
        ["autism_expert", "get_weather"],
        "the model sees both tools"
    );
    assert_eq!(
        upstream.requests().len(),
        1,
        "ragstream does not run the client's tool"
    );

    // The client runs it and sends the result back; the model answers.
    let chunks = stream(
        &server,
        json!({"model": "ragstream", "stream": true, "tools": weather_tool(), "messages": [
            question,
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_w", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"北京\"}"}}]},
            {"role": "tool", "tool_call_id": "call_w", "content": "晴，25°C"}
        ]}),
    )
    .await;
    assert_eq!(text(&chunks), "北京晴。");
    let sent = &upstream.requests()[1]["messages"];
    assert_eq!(sent[2]["tool_calls"][0]["id"], "call_w");
    assert_eq!(
        sent[3],
        json!({"role": "tool", "content": "晴，25°C", "tool_call_id": "call_w"})
    );
}

#[tokio::test]
async fn when_a_turn_calls_both_tools_only_the_clients_call_is_returned_and_nothing_runs() {
    // docs/protocol.md, "Client tools": the client's calls end the turn;
    // ragstream's own call of that turn is dropped, not run.
    let mixed = Reply::chunks(&[
        tool_start(0, "call_kb", "autism_expert"),
        tool_args(0, "{\"question\":\"自伤\"}"),
        tool_start(1, "call_w", "get_weather"),
        tool_args(1, "{\"city\":\"北京\"}"),
        content(""),
        finish("tool_calls"),
    ]);
    let upstream = Upstream::start(vec![mixed.clone(), mixed]).await;
    let server = start(config(&upstream.base_url)).await;
    let body = |stream: bool| {
        json!({"model": "ragstream", "stream": stream, "tools": weather_tool(),
               "messages": [{"role": "user", "content": "北京天气和自伤"}]})
    };

    let chunks = stream(&server, body(true)).await;
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0][0]["function"]["name"], "get_weather");
    assert_eq!(calls[0][0]["index"], 0);
    assert!(
        chunks.iter().all(|c| c.get("ragstream").is_none()),
        "the knowledge base was not searched"
    );
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "tool_calls"
    );

    let response = post(&server, "/v1/chat/completions", body(false)).await;
    let body: Value = response.json().await.unwrap();
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["tool_calls"].as_array().unwrap().len(), 1);
    assert_eq!(message["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(upstream.requests().len(), 2, "one model call per request");
}

#[tokio::test]
async fn a_client_tool_may_not_take_the_name_of_ragstreams_own() {
    let upstream = Upstream::start(vec![]).await;
    let server = start(config(&upstream.base_url)).await;
    let response = post(
        &server,
        "/v1/chat/completions",
        json!({"model": "ragstream", "tools": [{"type": "function", "function": {"name": "autism_expert"}}],
               "messages": [{"role": "user", "content": "q"}]}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ragstream's own tools")
    );
}

#[tokio::test]
async fn with_keys_configured_v1_refuses_and_limits_in_openais_shape() {
    let upstream = Upstream::start(vec![Reply::answer(&["好"])]).await;
    let mut raw = config(&upstream.base_url);
    raw.server.api_keys = vec![ragstream::llm::Secret::new("rs-test-key-0123456789abcdef")];
    raw.server.rate_limit.requests_per_minute = Some(1);
    raw.server.rate_limit.burst = Some(2);
    let server = start(raw).await;
    let client = reqwest::Client::new();
    let models = |key: Option<&str>| {
        let request = client.get(format!("{}/v1/models", server.url));
        match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    };

    let response = models(None).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(body["error"]["param"], Value::Null);

    let ui = post(&server, "/api/ui/chat", json!({"messages": []})).await;
    assert_eq!(ui.status(), 401, "the UI stream is guarded like /api/chat");

    let key = Some("rs-test-key-0123456789abcdef");
    assert_eq!(models(key).send().await.unwrap().status(), 200);
    assert_eq!(models(key).send().await.unwrap().status(), 200);
    let response = models(key).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "requests");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}
