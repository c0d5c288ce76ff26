//! The chat page in a real browser: Debian's headless Chromium, driven by the
//! Node scripts in `tests/web/` (playwright-core), against a real
//! `ragstream serve` talking to the scripted upstream (issue 13).
//!
//! Each test scripts the upstream, starts the server, runs one spec and
//! fails with the spec's output. Screenshots land in `target/web-screenshots/`.
//! The specs run one at a time: two browsers at once on a 2-core machine only
//! slow each other down.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::process::{self, Process, ROOT};
use support::{Reply, Step, Upstream, upstream};
use tokio::sync::Mutex;

/// One browser at a time.
static BROWSER: Mutex<()> = Mutex::const_new(());

/// Where the Node project and its specs live.
const SPECS: &str = "tests/web";

/// The Chromium the specs drive (`CHROMIUM` overrides it).
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Fails with what to run when the browser or the Node project is missing.
fn require_tools() {
    let modules = Path::new(ROOT)
        .join(SPECS)
        .join("node_modules/playwright-core");
    assert!(
        modules.is_dir(),
        "{} is missing: run scripts/setup (it runs `npm ci` in {SPECS})",
        modules.display()
    );
    assert!(
        Path::new(&chromium()).is_file(),
        "{} is missing: run scripts/setup (it installs Debian's chromium)",
        chromium()
    );
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "node is missing: install Node.js 18 or newer, then run scripts/setup"
    );
}

/// A `ragstream serve` whose stderr is drained (so its logs never block it)
/// and kept for a failure report.
struct Served {
    /// Killed when the test ends.
    _child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`.
    url: String,
    /// Its log lines so far.
    logs: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn serve(upstream: &Upstream, env: &[(&str, &str)]) -> Served {
    let mut command = process::serve(&upstream.base_url);
    for (key, value) in env {
        command.env(key, value);
    }
    let Process {
        child,
        mut stderr,
        url,
    } = Process::start(command).await;
    let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            kept.lock().unwrap().push(line);
        }
    });
    Served {
        _child: child,
        url,
        logs,
    }
}

/// Runs `tests/web/<spec>.mjs` against the server and fails with its output.
async fn browser(spec: &str, served: &Served, upstream: &Upstream) {
    browser_with(spec, served, upstream, &[]).await;
}

/// [`browser`] with extra environment variables for the spec.
async fn browser_with(spec: &str, served: &Served, upstream: &Upstream, env: &[(&str, &str)]) {
    require_tools();
    let upstream_root = upstream.base_url.trim_end_matches("/v1");
    let screenshots = Path::new(ROOT).join("target/web-screenshots");
    let run = tokio::process::Command::new("node")
        .arg(format!("{SPECS}/{spec}.mjs"))
        .current_dir(ROOT)
        .env("RAGSTREAM_URL", &served.url)
        .env("UPSTREAM_URL", upstream_root)
        .env("SCREENSHOTS", &screenshots)
        .env("CHROMIUM", chromium())
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser spec hung for 3 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{spec}.mjs:\n{stdout}{stderr}");
    if !output.status.success() {
        let logs = served.logs.lock().unwrap().join("\n");
        panic!(
            "{spec}.mjs failed ({})\n--- server log ---\n{logs}",
            output.status
        );
    }
}

/// The roles and contents of the conversation the upstream received.
fn conversation(request: &Value) -> Vec<(String, String)> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_page_modules_pass_their_unit_tests() {
    require_tools();
    let output = tokio::process::Command::new("node")
        .args(["--test", &format!("{SPECS}/units.mjs")])
        .current_dir(ROOT)
        .output()
        .await
        .expect("node runs");
    println!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "units.mjs failed");
}

#[tokio::test]
async fn a_direct_answer_streams_in_then_the_conversation_goes_on_and_survives_a_reload() {
    let _one = BROWSER.lock().await;
    let upstream = Upstream::start(vec![
        Reply::chunks(&[
            upstream::reasoning("The user greets me. "),
            upstream::reasoning("I will greet back."),
            upstream::content("Hello! "),
            upstream::content("Here is "),
            upstream::content("**bold** text, "),
            upstream::content("a list:\n\n- one\n"),
            upstream::content("- two\n\nand `code`."),
            upstream::finish("stop"),
        ])
        .paced(Duration::from_millis(250)),
        Reply::answer(&["Then the second ", "answer."]),
    ])
    .await;
    let served = serve(&upstream, &[]).await;
    browser("stream", &served, &upstream).await;

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    let second: Vec<(String, String)> = conversation(&requests[1]);
    let asked: Vec<(&str, &str)> = second
        .iter()
        .filter(|(role, _)| role != "system")
        .map(|(r, c)| (r.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        asked,
        [
            ("user", "Hello\nthere"),
            (
                "assistant",
                "Hello! Here is **bold** text, a list:\n\n- one\n- two\n\nand `code`."
            ),
            ("user", "And then?"),
        ],
        "the page sends the whole conversation"
    );
}

#[tokio::test]
async fn a_knowledge_base_question_shows_status_then_sources_then_the_answer() {
    let _one = BROWSER.lock().await;
    let gap = Duration::from_millis(300);
    let upstream = Upstream::start(vec![
        Reply::tool_call(
            "call_1",
            "autism_expert",
            &["{\"question\":", "\"自闭症孩子自伤怎么办\"}"],
        )
        .paced(gap),
        Reply::answer(&["孩子自伤时，", "先保证安全 [1]，", "再找出原因。"]).paced(gap),
    ])
    .await;
    let served = serve(&upstream, &[]).await;
    browser("kb", &served, &upstream).await;
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test]
async fn model_output_cannot_inject_html_and_an_error_in_the_stream_is_shown_then_retried() {
    let _one = BROWSER.lock().await;
    let upstream = Upstream::start(vec![
        Reply::answer(&[
            "Look: <img src=x onerror=alert(1)> and ",
            "[click me](javascript:alert(1)) and <script>alert(2)</script> ",
            "![a picture](https://example.com/x.png) ",
            "and [docs](https://example.com/docs).",
        ]),
        Reply::Status(
            401,
            vec![("content-type", "application/json".into())],
            r#"{"error":{"message":"Invalid API key"}}"#.into(),
        ),
        Reply::answer(&["Recovered."]),
    ])
    .await;
    let served = serve(&upstream, &[]).await;
    browser("xss", &served, &upstream).await;
    let requests = upstream.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        conversation(&requests[2]).last().unwrap(),
        &("user".to_owned(), "Now fail".to_owned()),
        "Retry asks the failed question again"
    );
}

#[tokio::test]
async fn stop_ends_the_answer_and_the_upstream_connection() {
    let _one = BROWSER.lock().await;
    let upstream = Upstream::start(vec![
        Reply::answer(&["Once upon a time", " there was"])
            .paced(Duration::from_millis(100))
            .cut(4, Step::Hang),
    ])
    .await;
    let served = serve(&upstream, &[]).await;
    browser("stop", &served, &upstream).await;
    assert_eq!(upstream.open_streams(), 0);
}

#[tokio::test]
async fn a_503_overloaded_and_an_unreachable_server_are_shown() {
    let _one = BROWSER.lock().await;
    let upstream = Upstream::start(vec![Reply::Stream(vec![Step::Hang])]).await;
    let served = serve(&upstream, &[("RAGSTREAM_SERVER__MAX_STREAMS", "1")]).await;
    // Take the only stream slot and hold it while the page asks.
    let held = reqwest::Client::new()
        .post(format!("{}/api/chat", served.url))
        .json(&json!({"content": "hold the slot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 200);
    browser("overloaded", &served, &upstream).await;
    drop(held);
}

#[tokio::test]
async fn the_history_sent_is_trimmed_to_the_servers_limits() {
    let _one = BROWSER.lock().await;
    let long = "a".repeat(30) + &"b".repeat(30);
    let upstream = Upstream::start(vec![
        Reply::answer(&[&long]),
        Reply::answer(&[&long]),
        Reply::answer(&["third"]),
    ])
    .await;
    let served = serve(
        &upstream,
        &[
            ("RAGSTREAM_SERVER__MAX_MESSAGES", "3"),
            ("RAGSTREAM_SERVER__MAX_MESSAGE_CHARS", "40"),
        ],
    )
    .await;
    let questions = json!(["first question", "second question", "third question"]).to_string();
    browser_with(
        "conversation",
        &served,
        &upstream,
        &[("QUESTIONS", &questions)],
    )
    .await;
    let requests = upstream.requests();
    assert_eq!(
        requests.len(),
        3,
        "every question was answered, none refused"
    );
    let third: Vec<(String, String)> = conversation(&requests[2])
        .into_iter()
        .filter(|(role, _)| role != "system")
        .collect();
    let expected = [
        ("user", "second question".to_owned()),
        ("assistant", "a".repeat(30) + &"b".repeat(10)),
        ("user", "third question".to_owned()),
    ]
    .map(|(role, content)| (role.to_owned(), content));
    assert_eq!(
        third, expected,
        "the newest 3 messages (server.max_messages), earlier ones cut to 40 characters"
    );
}

/// With API keys (issue 15, `RAGSTREAM_API_KEYS`) the page stays open and
/// asks for a key.
#[tokio::test]
async fn the_page_asks_for_an_api_key_once_and_keeps_it() {
    let _one = BROWSER.lock().await;
    let key = "test-key-0123456789abcdef";
    let upstream = Upstream::start(vec![
        Reply::answer(&["Keyed answer."]),
        Reply::answer(&["Second keyed answer."]),
    ])
    .await;
    let served = serve(&upstream, &[("RAGSTREAM_API_KEYS", key)]).await;
    let refused = reqwest::Client::new()
        .post(format!("{}/api/chat", served.url))
        .json(&json!({"content": "no key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "keys are configured");
    browser_with("key", &served, &upstream, &[("RAGSTREAM_TEST_KEY", key)]).await;
    assert_eq!(
        upstream.requests().len(),
        2,
        "refused requests never reach the model"
    );
    let sent = upstream.headers(0);
    assert!(
        sent.get("authorization").is_some_and(|v| v != key),
        "the page's key is ragstream's, not the provider's"
    );
}
