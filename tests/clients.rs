//! The official clients, unchanged, against a real `ragstream serve` talking
//! to the scripted upstream (issue 14): the `openai` Python and npm packages
//! on `/v1`, and the AI SDK's `DefaultChatTransport` + `readUIMessageStream`
//! (ai@5.0.0 and the latest major) on `/api/ui/chat`.
//!
//! The scripts live in `tests/clients/`; `scripts/setup` installs what they
//! need (a venv in `target/py-venv`, `npm ci` in `tests/clients`).

mod support;

use std::path::Path;
use std::time::Duration;

use support::process::{self, Process, ROOT};
use support::{Reply, Upstream};

/// Where the client scripts and their Node project live.
const CLIENTS: &str = "tests/clients";

/// The venv's Python, with the pinned `openai` package.
const PYTHON: &str = "target/py-venv/bin/python";

/// Fails with what to run when a client is not installed.
fn require(path: &str, what: &str) {
    assert!(
        Path::new(ROOT).join(path).exists(),
        "{path} is missing: run scripts/setup (it installs {what})"
    );
}

/// The replies of a direct question, then of a knowledge-base one.
fn direct() -> Reply {
    Reply::answer(&["你好！", "有什么可以帮你？"])
}

fn knowledge_base() -> [Reply; 2] {
    [
        Reply::tool_call(
            "call_1",
            "autism_expert",
            &["{\"question\":", "\"孩子自伤怎么办\"}"],
        ),
        Reply::answer(&["先保证", "安全。[1]"]),
    ]
}

/// Runs `program script` against a fresh server on `script` and fails with
/// the client's output and the server's log.
async fn run(program: &str, script: &str, replies: Vec<Reply>) {
    let upstream = Upstream::start(replies).await;
    let Process {
        child: _child,
        mut stderr,
        url,
    } = Process::start(process::serve(&upstream.base_url)).await;
    let logs = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Ok(Some(line)) = stderr.next_line().await {
            lines.push(line);
        }
        lines
    });
    let run = tokio::process::Command::new(program)
        .arg(format!("{CLIENTS}/{script}"))
        .current_dir(ROOT)
        .env("RAGSTREAM_URL", &url)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the client hung for 2 minutes")
        .expect("the client starts");
    println!(
        "{script}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        drop(_child);
        let logs = logs.await.unwrap_or_default().join("\n");
        panic!(
            "{script} failed ({})\n--- server log ---\n{logs}",
            output.status
        );
    }
}

fn four_questions() -> Vec<Reply> {
    let mut replies = vec![direct()];
    replies.extend(knowledge_base());
    replies.push(direct());
    replies.extend(knowledge_base());
    replies
}

#[tokio::test]
async fn the_openai_python_package_streams_and_completes() {
    require(PYTHON, "the openai Python package in target/py-venv");
    run(PYTHON, "openai_client.py", four_questions()).await;
}

#[tokio::test]
async fn the_openai_npm_package_streams_and_completes() {
    require(
        &format!("{CLIENTS}/node_modules/openai"),
        "the openai npm package",
    );
    run("node", "openai.mjs", four_questions()).await;
}

#[tokio::test]
async fn use_chats_transport_reads_the_ui_message_stream_with_ai_5_and_the_latest_ai() {
    require(&format!("{CLIENTS}/node_modules/ai5"), "ai@5.0.0 and ai");
    let mut replies = Vec::new();
    for _ in ["ai5", "ai"] {
        replies.extend(knowledge_base());
        replies.push(Reply::Status(
            400,
            vec![],
            "{\"error\":{\"message\":\"bad request\"}}".into(),
        ));
    }
    run("node", "ui.mjs", replies).await;
}
