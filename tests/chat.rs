//! The turn loop end to end: ragstream over real HTTP against a scripted upstream.

mod support;

use ragstream::engine::AnswerMode;
use ragstream::llm::Dialect;
use serde_json::json;
use support::upstream::{content, finish, reasoning, tool_args, tool_start};
use support::{Reply, Step, Upstream, answer, chat, config, last, names, start};

const QUESTION: &str = "我家孩子总是打自己的头，怎么办？";

fn ask() -> serde_json::Value {
    json!({"content": QUESTION})
}

#[tokio::test]
async fn a_direct_answer_is_relayed_delta_by_delta() {
    let upstream = Upstream::start(vec![Reply::answer(&["你好！", "有什么", "可以帮你？"])]).await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, json!({"content": "你好"})).await;

    assert_eq!(names(&events), ["delta", "done"]);
    assert_eq!(
        events.iter().filter(|e| e.event == "delta").count(),
        3,
        "one delta per chunk"
    );
    assert_eq!(answer(&events), "你好！有什么可以帮你？");
    assert_eq!(last(&events).data["finish_reason"], "stop");
    assert_eq!(last(&events).data["usage"]["total_tokens"], 15);

    let request = &upstream.requests()[0];
    assert_eq!(request["model"], "scripted-model");
    assert_eq!(request["stream"], true);
    assert_eq!(
        request["messages"][0],
        json!({"role": "system", "content": "你是自闭症康复专家"})
    );
    assert_eq!(
        request["messages"][1],
        json!({"role": "user", "content": "你好"})
    );
    assert_eq!(request["tools"][0]["function"]["name"], "autism_expert");
    assert_eq!(
        request["tools"][0]["function"]["description"],
        "当用户咨询自闭症类问题有用"
    );
    assert_eq!(request["tool_choice"], "auto");
    assert_eq!(
        upstream.headers(0)["authorization"],
        "Bearer sk-test-secret-key"
    );
}

#[tokio::test]
async fn the_first_delta_reaches_the_client_while_the_model_is_still_writing() {
    let stream = Reply::Stream(vec![
        Step::Bytes(support::upstream::frame(&content("先说").to_string())),
        Step::Sleep(std::time::Duration::from_millis(300)),
        Step::Bytes(support::upstream::frame(&content("后说").to_string())),
        Step::Bytes(support::upstream::frame(&finish("stop").to_string())),
        Step::Bytes(support::upstream::frame("[DONE]")),
    ]);
    let upstream = Upstream::start(vec![stream]).await;
    let server = start(config(&upstream.base_url)).await;

    let mut response = support::post(&server, "/api/chat", ask()).await;
    let first = response.chunk().await.unwrap().unwrap();

    assert!(String::from_utf8_lossy(&first).contains("先说"));
    assert_eq!(
        upstream.open_streams(),
        1,
        "the upstream turn is not over yet"
    );
    let rest = support::read_events(response).await;
    assert_eq!(answer(&rest), "后说");
}

#[tokio::test]
async fn a_tool_call_searches_the_knowledge_base_and_the_model_answers_from_it() {
    let upstream = Upstream::start(vec![
        Reply::tool_call(
            "call_1",
            "autism_expert",
            &["{\"ques", "tion\": \"孩子", "自伤怎么办\"}"],
        ),
        Reply::answer(&["先保证", "安全。"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(
        names(&events),
        [
            "status",
            "tool_call",
            "tool_result",
            "sources",
            "status",
            "delta",
            "done"
        ]
    );
    assert_eq!(events[0].data["stage"], "searching");
    assert_eq!(events[0].data["tool"], "autism_expert");
    assert_eq!(events[0].data["message"], "正在查询知识库…");
    assert_eq!(
        events[1].data["arguments"],
        "{\"question\": \"孩子自伤怎么办\"}"
    );
    assert_eq!(events[2].data["ok"], true);
    let sources = events[3].data["sources"].as_array().unwrap();
    assert_eq!(sources[0]["id"], "self-injury");
    assert_eq!(sources[0]["n"], 1);
    assert_eq!(sources[0]["source"], "test-kb");
    assert_eq!(answer(&events), "先保证安全。");
    assert_eq!(last(&events).data["steps"], 2);
    assert_eq!(
        last(&events).data["usage"]["total_tokens"],
        30,
        "usage summed over both calls"
    );

    let second = &upstream.requests()[1];
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(messages[2]["content"], serde_json::Value::Null);
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        messages[2]["tool_calls"][0]["function"]["arguments"],
        "{\"question\": \"孩子自伤怎么办\"}"
    );
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], "call_1");
    let tool_text = messages[3]["content"].as_str().unwrap();
    assert!(
        tool_text.starts_with("[1] Q: 自闭症孩子自伤怎么办？\nA: answer: 先确保孩子安全"),
        "the model gets the matched question and its whole answer: {tool_text}"
    );
    assert_eq!(
        second["temperature"], 0.0,
        "chat.answer_temperature applies after the tool call"
    );
}

#[tokio::test]
async fn the_legacy_function_call_dialect_works_both_ways() {
    let upstream = Upstream::start(vec![
        Reply::fixture("legacy_function_call.sse", 7),
        Reply::answer(&["好的"]),
    ])
    .await;
    let mut raw = config(&upstream.base_url);
    raw.llm.dialect = Dialect::Functions;
    let server = start(raw).await;

    let events = chat(&server, ask()).await;

    assert_eq!(answer(&events), "好的");
    let first = &upstream.requests()[0];
    assert_eq!(first["functions"][0]["name"], "autism_expert");
    assert_eq!(first["function_call"], "auto");
    assert!(first.get("tools").is_none());
    let messages = upstream.requests()[1]["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(messages[2]["function_call"]["name"], "autism_expert");
    assert_eq!(messages[3]["role"], "function");
    assert_eq!(messages[3]["name"], "autism_expert");
    assert!(
        messages[3]["content"]
            .as_str()
            .unwrap()
            .contains("自闭症孩子自伤怎么办")
    );
}

#[tokio::test]
async fn arguments_split_at_every_byte_are_assembled() {
    let upstream = Upstream::start(vec![
        Reply::fixture("parallel_tool_calls.sse", 1),
        Reply::answer(&["ok"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    let calls: Vec<_> = events.iter().filter(|e| e.event == "tool_call").collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].data["arguments"], "{\"question\":\"自伤怎么办\"}");
    assert_eq!(
        calls[1].data["arguments"],
        "{\"question\":\"语言发育迟缓\"}"
    );
}

#[tokio::test]
async fn parallel_calls_run_and_sources_are_numbered_across_them() {
    let upstream = Upstream::start(vec![
        Reply::fixture("parallel_tool_calls.sse", 64),
        Reply::answer(&["ok"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(
        events.iter().filter(|e| e.event == "tool_result").count(),
        2
    );
    let sources = events.iter().find(|e| e.event == "sources").unwrap().data["sources"].clone();
    let numbers: Vec<u64> = sources
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["n"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
    let messages = upstream.requests()[1]["messages"]
        .as_array()
        .unwrap()
        .clone();
    let tool_messages: Vec<_> = messages.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(tool_messages[0]["tool_call_id"], "call_a");
    assert_eq!(tool_messages[1]["tool_call_id"], "call_b");
    let second_text = tool_messages[1]["content"].as_str().unwrap();
    assert!(
        !second_text.starts_with("[1]"),
        "the second call continues the numbering: {second_text}"
    );
}

#[tokio::test]
async fn content_before_a_tool_call_is_relayed_and_kept_in_the_history() {
    let upstream = Upstream::start(vec![
        Reply::fixture("content_then_tool.sse", 50),
        Reply::answer(&["答"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(names(&events)[..2], ["delta", "status"]);
    assert_eq!(answer(&events), "让我查一下知识库。答");
    let messages = upstream.requests()[1]["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(messages[2]["content"], "让我查一下知识库。");
    assert_eq!(
        messages[2]["tool_calls"][0]["function"]["name"],
        "autism_expert"
    );
}

#[tokio::test]
async fn reasoning_is_its_own_event_and_goes_back_with_the_tool_turn() {
    let upstream = Upstream::start(vec![
        Reply::chunks(&[
            reasoning("用户在问"),
            reasoning("自伤。"),
            tool_start(0, "call_r", "autism_expert"),
            tool_args(0, "{\"question\":\"自伤\"}"),
            finish("tool_calls"),
        ]),
        Reply::chunks(&[reasoning("整理"), content("答案"), finish("stop")]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(
        answer(&events),
        "答案",
        "thinking never mixes into the answer"
    );
    let thinking: String = events
        .iter()
        .filter(|e| e.event == "reasoning")
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    assert_eq!(thinking, "用户在问自伤。整理");
    let assistant = &upstream.requests()[1]["messages"][2];
    assert_eq!(assistant["reasoning_content"], "用户在问自伤。");
}

#[tokio::test]
async fn prompt_template_mode_builds_the_classic_prompt_from_the_models_question() {
    let upstream = Upstream::start(vec![
        Reply::tool_call(
            "c1",
            "autism_expert",
            &["{\"question\":\"自闭症孩子自伤怎么办\"}"],
        ),
        Reply::answer(&["有趣的回答"]),
    ])
    .await;
    let mut raw = config(&upstream.base_url);
    raw.chat.answer_mode = AnswerMode::PromptTemplate;
    let server = start(raw).await;

    let events = chat(&server, ask()).await;

    assert_eq!(answer(&events), "有趣的回答");
    let second = &upstream.requests()[1];
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        2,
        "system prompt and one new user message: {messages:?}"
    );
    let prompt = messages[1]["content"].as_str().unwrap();
    assert!(
        prompt.contains("根据用户的问题，参考背景信息，输出回答。"),
        "{prompt}"
    );
    assert!(
        prompt.contains("用户问题：自闭症孩子自伤怎么办"),
        "the model's own argument: {prompt}"
    );
    assert!(
        prompt.contains("先确保孩子安全"),
        "the background: {prompt}"
    );
    assert!(
        second.get("tools").is_none(),
        "the answer call offers no tools"
    );
    assert_eq!(second["temperature"], 0.0);
}

#[tokio::test]
async fn the_step_limit_stops_a_model_that_keeps_calling_tools() {
    let upstream = Upstream::start(vec![
        Reply::tool_call("c1", "autism_expert", &["{\"question\":\"a\"}"]),
        Reply::tool_call("c2", "autism_expert", &["{\"question\":\"b\"}"]),
    ])
    .await;
    let mut raw = config(&upstream.base_url);
    raw.chat.max_steps = 2;
    let server = start(raw).await;

    let events = chat(&server, ask()).await;

    assert_eq!(last(&events).event, "error");
    assert_eq!(last(&events).data["code"], "step_limit");
    assert_eq!(
        upstream.requests()[1]["tool_choice"],
        "none",
        "the last step asks for an answer"
    );
}

#[tokio::test]
async fn an_unknown_tool_or_broken_arguments_become_errors_the_model_sees() {
    let upstream = Upstream::start(vec![
        Reply::chunks(&[
            tool_start(0, "c1", "weather"),
            tool_args(0, "{}"),
            tool_start(1, "c2", "autism_expert"),
            tool_args(1, "{\"question\": "),
            finish("tool_calls"),
        ]),
        Reply::answer(&["抱歉"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let events = chat(&server, ask()).await;

    assert_eq!(last(&events).event, "done");
    let results: Vec<_> = events.iter().filter(|e| e.event == "tool_result").collect();
    assert_eq!(results[0].data["ok"], false);
    assert_eq!(results[1].data["ok"], false);
    let messages = upstream.requests()[1]["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        messages[3]["content"],
        "error: tool `weather` does not exist; available tools: autism_expert"
    );
    assert!(
        messages[4]["content"]
            .as_str()
            .unwrap()
            .starts_with("error: arguments of `autism_expert` are not a valid JSON object")
    );
}

#[tokio::test]
async fn a_conversation_with_history_is_sent_whole() {
    let upstream = Upstream::start(vec![Reply::answer(&["嗯"])]).await;
    let server = start(config(&upstream.base_url)).await;

    chat(
        &server,
        json!({"messages": [
            {"role": "user", "content": "孩子四岁"},
            {"role": "assistant", "content": "了解"},
            {"role": "user", "content": "不说话怎么办"}
        ]}),
    )
    .await;

    let messages = upstream.requests()[0]["messages"]
        .as_array()
        .unwrap()
        .clone();
    let roles: Vec<_> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
}

#[tokio::test]
async fn without_a_model_the_knowledge_base_answers_clearly_labelled() {
    let mut raw = config("http://unused");
    raw.llm.base_url = None;
    raw.llm.api_key = None;
    let server = start(raw).await;

    let events = chat(&server, json!({"content": "孩子有刻板行为"})).await;

    assert_eq!(names(&events), ["status", "sources", "delta", "done"]);
    assert_eq!(events[0].data["stage"], "retrieval_only");
    assert_eq!(events[1].data["sources"][0]["id"], "repetitive");
    let text = answer(&events);
    assert!(text.starts_with("【知识库回答】"), "{text}");
    assert!(text.contains("刻板行为常有自我调节的作用"), "{text}");
    assert_eq!(last(&events).data["finish_reason"], "retrieval_only");

    let nothing = chat(&server, json!({"content": "明天北京天气"})).await;
    assert_eq!(answer(&nothing), "知识库中没有找到相关内容。");
    assert_eq!(last(&nothing).data["finish_reason"], "no_match");
}

#[tokio::test]
async fn without_a_model_close_hits_are_offered_as_questions_not_answered() {
    let mut raw = config("http://unused");
    raw.llm.base_url = None;
    raw.llm.api_key = None;
    let server = start(raw).await;

    // Every stored question is about 孩子 and nothing else of this one: no hit stands out.
    let events = chat(&server, json!({"content": "我家孩子怎么办"})).await;

    assert_eq!(names(&events), ["status", "sources", "delta", "done"]);
    assert_eq!(last(&events).data["finish_reason"], "did_you_mean");
    let text = answer(&events);
    assert!(text.contains("你是不是想问："), "{text}");
    for question in [
        "自闭症孩子自伤怎么办？",
        "孩子语言发育迟缓怎么办？",
        "孩子有刻板行为怎么办？",
    ] {
        assert!(text.contains(question), "{text}");
    }
    assert!(
        !text.contains("刻板行为常有自我调节的作用"),
        "no answer is given: {text}"
    );
    assert_eq!(events[1].data["sources"].as_array().unwrap().len(), 3);
}

// Issue 11: a "did you mean" offers a choice; one weak hit (今天天气怎么样 meets the
// sample's 今天的安排 through 今天 alone) is no choice and no answer: the no-match message.
#[tokio::test]
async fn without_a_model_a_single_weak_hit_gets_the_no_match_message() {
    let mut raw = config("http://unused");
    raw.llm.base_url = None;
    raw.llm.api_key = None;
    raw.kb.sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb/autism-qa.jsonl");
    let server = start(raw).await;

    let events = chat(&server, json!({"content": "今天天气怎么样"})).await;
    assert_eq!(answer(&events), "知识库中没有找到相关内容。");
    assert_eq!(last(&events).data["finish_reason"], "no_match");
    assert!(!names(&events).contains(&"sources"), "{events:?}");
}

#[tokio::test]
async fn the_classic_endpoint_streams_the_answer_text_alone() {
    let upstream = Upstream::start(vec![
        Reply::tool_call("c1", "autism_expert", &["{\"question\":\"自伤\"}"]),
        Reply::answer(&["第一句。", "第二句。"]),
    ])
    .await;
    let server = start(config(&upstream.base_url)).await;

    let response = support::post(&server, "/api/python", ask()).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(response.text().await.unwrap(), "第一句。第二句。");
}

/// A knowledge base of three question/answer pairs that all match 孩子…怎么办,
/// each answer 150 characters long.
fn long_answers_kb(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("long.jsonl");
    let rows: String = [
        ("long-a", "孩子自伤怎么办？", "甲"),
        ("long-b", "孩子自伤了怎么办？", "乙"),
        ("long-c", "孩子总是自伤怎么办？", "丙"),
    ]
    .iter()
    .map(|(id, q, fill)| {
        format!(
            "{}\n",
            json!({"id": id, "question": q, "answer": fill.repeat(150), "source": "long"})
        )
    })
    .collect();
    std::fs::write(&path, rows).unwrap();
    path
}

/// The `[n]` numbers and ids of the hits in a tool message, in order.
fn shown_hits(text: &str) -> Vec<(u64, String)> {
    let mut shown = Vec::new();
    let mut number = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('[') {
            number = rest.split(']').next().and_then(|n| n.parse().ok());
        }
        if let (Some(n), Some(rest)) = (number, line.split(", id: ").nth(1)) {
            shown.push((n, rest.split(',').next().unwrap().to_owned()));
            number = None;
        }
    }
    shown
}

/// The `(n, id)` of every source in every `sources` event.
fn listed_sources(events: &[support::Sse]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter(|e| e.event == "sources")
        .flat_map(|e| e.data["sources"].as_array().unwrap().clone())
        .map(|s| {
            (
                s["n"].as_u64().unwrap(),
                s["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The text of every tool message the model received in request `n`.
fn tool_texts(upstream: &Upstream, n: usize) -> Vec<String> {
    upstream.requests()[n]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

// Issue 10, part 1: sources are exactly what the model saw, and it sees whole answers.
#[tokio::test]
async fn sources_are_exactly_the_whole_answers_the_model_was_shown() {
    let upstream = Upstream::start(vec![
        Reply::tool_call(
            "call_1",
            "autism_expert",
            &["{\"question\":\"孩子自伤怎么办\"}"],
        ),
        Reply::answer(&["好"]),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut raw = config(&upstream.base_url);
    raw.kb.sample = long_answers_kb(dir.path());
    raw.kb.search.min_score = 0.0;
    // Room for one whole hit (about 160 characters) and half of the next.
    raw.kb.search.max_context_chars = 250;
    let server = start(raw).await;

    let events = chat(&server, ask()).await;

    let texts = tool_texts(&upstream, 1);
    let shown = shown_hits(&texts[0]);
    assert_eq!(shown.len(), 1, "one whole hit fits: {}", texts[0]);
    assert!(
        texts[0].contains(&"甲".repeat(150)) || texts[0].contains(&"乙".repeat(150)),
        "the answer is whole: {}",
        texts[0]
    );
    assert!(!texts[0].contains('…'), "no fragment: {}", texts[0]);
    assert_eq!(
        listed_sources(&events),
        shown,
        "sources are what the model saw"
    );
    let result = events.iter().find(|e| e.event == "tool_result").unwrap();
    assert_eq!(result.data["hits"], 1);
}

// Issue 10, part 1: numbering runs on across parallel calls and across steps.
#[tokio::test]
async fn sources_are_numbered_as_the_model_saw_them_across_calls_and_steps() {
    let upstream = Upstream::start(vec![
        Reply::fixture("parallel_tool_calls.sse", 64),
        Reply::tool_call(
            "call_c",
            "autism_expert",
            &["{\"question\":\"孩子总是自伤怎么办\"}"],
        ),
        Reply::answer(&["好"]),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut raw = config(&upstream.base_url);
    raw.kb.sample = long_answers_kb(dir.path());
    raw.kb.search.min_score = 0.0;
    raw.kb.search.max_context_chars = 340;
    let server = start(raw).await;

    let events = chat(&server, ask()).await;

    assert_eq!(last(&events).event, "done", "{events:?}");
    let seen: Vec<(u64, String)> = tool_texts(&upstream, 2)
        .iter()
        .flat_map(|text| shown_hits(text))
        .collect();
    let numbers: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, (1..=seen.len() as u64).collect::<Vec<_>>());
    assert!(
        seen.len() >= 3,
        "three calls each showed something: {seen:?}"
    );
    assert_eq!(listed_sources(&events), seen);
    assert_eq!(
        tool_texts(&upstream, 1),
        tool_texts(&upstream, 2)[..2],
        "the first round is sent again unchanged"
    );
}
