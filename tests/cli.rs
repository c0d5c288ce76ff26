//! The `ragstream` binary as a user runs it.

mod support;

use std::process::{Command, Output};

use support::{Reply, Upstream};
use tokio::io::AsyncBufReadExt;

/// The binary with a clean environment, run from the repository root, with
/// its knowledge base in a directory of its own.
fn ragstream() -> Command {
    let mut command = support::process::ragstream("warn");
    let data = tempfile::tempdir().unwrap().keep();
    command.env("RAGSTREAM_KB__DATA_DIR", data.join("data"));
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(command: &mut Command) -> (Output, String, String) {
    let output = command.output().unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    (output, stdout, stderr)
}

#[test]
fn check_config_masks_the_key_and_shows_env_overrides() {
    let (output, stdout, _) = run(ragstream()
        .args([
            "check-config",
            "--no-probe",
            "--config",
            "examples/autism.toml",
        ])
        .env("OPENAI_API_KEY", "sk-abcdef1234567890")
        .env("OPENAI_MODEL", "deepseek-chat")
        .env("RAGSTREAM_LLM__DIALECT", "functions"));
    assert!(output.status.success(), "{stdout}");
    assert!(
        !stdout.contains("abcdef1234567890"),
        "the key leaked:\n{stdout}"
    );
    assert!(
        stdout.contains("api_key = \"sk-*** (19 chars)\""),
        "{stdout}"
    );
    assert!(stdout.contains("model = \"deepseek-chat\""), "{stdout}");
    assert!(stdout.contains("dialect = \"functions\""), "{stdout}");
    assert!(
        stdout.contains("ok: the configuration is valid"),
        "{stdout}"
    );
}

/// Issue 16: prefetch is on by default and turned off by one variable; a wrong
/// value names the right ones.
#[test]
fn prefetch_is_auto_by_default_and_off_by_environment() {
    let (_, stdout, _) = run(ragstream().args(["check-config", "--no-probe"]));
    assert!(stdout.contains("prefetch = \"auto\""), "{stdout}");
    let (output, stdout, _) = run(ragstream()
        .args(["check-config", "--no-probe"])
        .env("RAGSTREAM_CHAT__PREFETCH", "off"));
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("prefetch = \"off\""), "{stdout}");
    let (output, stdout, stderr) = run(ragstream()
        .args(["check-config", "--no-probe"])
        .env("RAGSTREAM_CHAT__PREFETCH", "sometimes"));
    assert!(!output.status.success());
    assert!(
        format!("{stdout}{stderr}").contains("expected ``auto` or `off``"),
        "{stdout}{stderr}"
    );
}

#[test]
fn check_config_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[chat]\nmax_steps = 0\n[kb]\nuser_dictionary = \"missing.txt\"\n",
    )
    .unwrap();
    let (output, stdout, _) = run(ragstream().arg("check-config").arg("--config").arg(&path));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains("chat.max_steps must be at least 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("kb.user_dictionary: missing.txt is not a file"),
        "{stdout}"
    );

    std::fs::write(&path, "[llm]\nmodle = \"typo\"\n").unwrap();
    let (output, stdout, _) = run(ragstream().arg("check-config").arg("--config").arg(&path));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains("unknown field") && stdout.contains("modle"),
        "{stdout}"
    );
}

#[test]
fn a_dotenv_file_in_the_working_directory_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "OPENAI_API_KEY=sk-from-dotenv\n").unwrap();
    std::fs::write(dir.path().join("ragstream.toml"), "[chat]\nmax_steps = 4\n").unwrap();
    let (output, stdout, _) = run(ragstream()
        .args(["check-config", "--no-probe"])
        .current_dir(dir.path()));
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("api_key = \"sk-*** (14 chars)\""),
        "{stdout}"
    );
    assert!(stdout.contains("config file: ragstream.toml"), "{stdout}");
}

#[test]
fn ask_without_a_model_answers_from_the_knowledge_base() {
    let (output, stdout, stderr) =
        run(ragstream().args(["ask", "--config", "examples/autism.toml", "孩子自伤怎么办"]));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.starts_with("【知识库回答】"), "{stdout}");
    assert!(stderr.contains("[1] "), "sources go to stderr: {stderr}");
}

#[tokio::test]
async fn ask_streams_the_answer_to_stdout_and_status_to_stderr() {
    let upstream = Upstream::start(vec![
        Reply::tool_call("c1", "autism_expert", &["{\"question\":\"自伤\"}"]),
        Reply::answer(&["先保证", "安全。"]),
    ])
    .await;
    let mut command = ragstream();
    command
        .args(["ask", "--config", "examples/autism.toml", "孩子自伤怎么办"])
        .env("OPENAI_BASE_URL", &upstream.base_url)
        .env("OPENAI_API_KEY", "sk-test");
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout, "先保证安全。\n");
    assert!(stderr.contains("[正在查询知识库…]"), "{stderr}");
    assert!(
        stderr.contains("[1] ") && stderr.contains("score"),
        "sources on stderr: {stderr}"
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["ask", "--help"],
        vec!["check-config", "--help"],
    ] {
        let (output, stdout, _) = run(ragstream().args(&args));
        assert!(output.status.success(), "{args:?}");
        assert!(stdout.contains("Usage: ragstream"), "{args:?}: {stdout}");
    }
}

/// The stderr lines of a running `serve`.
type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>;

/// Starts `serve` and waits for its listening line; returns the process, the
/// rest of its stderr and its URL.
async fn spawn_serve(
    mut command: tokio::process::Command,
) -> (tokio::process::Child, Lines, String) {
    let mut child = command
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("serve exited before listening");
        if let Some(url) = line.strip_prefix("ragstream listening on ") {
            return (child, lines, url.to_owned());
        }
    }
}

#[tokio::test]
async fn serve_exits_cleanly_on_sigterm() {
    let command = tokio::process::Command::from({
        let mut c = ragstream();
        c.args([
            "serve",
            "--config",
            "examples/autism.toml",
            "--addr",
            "127.0.0.1:0",
        ]);
        c
    });
    let (mut child, _lines, url) = spawn_serve(command).await;
    let health = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);

    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("serve did not stop on SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn json_logs_carry_the_request_id_through_the_stream() {
    let upstream = Upstream::start(vec![Reply::Status(
        401,
        vec![],
        r#"{"error":{"message":"bad key"}}"#.into(),
    )])
    .await;
    let command = tokio::process::Command::from({
        let mut c = ragstream();
        c.args([
            "--log-format",
            "json",
            "serve",
            "--config",
            "examples/autism.toml",
            "--addr",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "info")
        .env("OPENAI_BASE_URL", &upstream.base_url)
        .env("OPENAI_API_KEY", "sk-never-logged");
        c
    });
    let (mut child, mut lines, url) = spawn_serve(command).await;
    let response = reqwest::Client::new()
        .post(format!("{url}/api/chat"))
        .header("x-request-id", "trace-me-7")
        .json(&serde_json::json!({"content": "你好"}))
        .send()
        .await
        .unwrap();
    assert!(response.text().await.unwrap().contains("upstream_rejected"));
    let pid = child.id().unwrap().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();

    let mut logs = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        logs.push(line);
    }
    child.wait().await.unwrap();
    let records: Vec<serde_json::Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let with_id = |message: &str| {
        records
            .iter()
            .any(|r| r["fields"]["message"] == message && r["span"]["id"] == "trace-me-7")
    };
    assert!(with_id("model call failed"), "{logs:#?}");
    assert!(with_id("stream ended"), "{logs:#?}");
    assert!(with_id("response started"), "{logs:#?}");
    assert!(
        !logs.iter().any(|l| l.contains("sk-never-logged")),
        "the key leaked into the logs"
    );
}

/// Issue 10: URL credentials are redacted from what `check-config` prints,
/// the rendered config and the problems alike.
#[test]
fn check_config_hides_credentials_in_urls() {
    let (_, stdout, _) = run(ragstream()
        .args(["check-config", "--no-probe"])
        .env(
            "OPENAI_BASE_URL",
            "https://team:hunter2-pw@llm.example.com/v1",
        )
        .env("RAGSTREAM_CHAT__MAX_STEPS", "0"));
    assert!(
        stdout.contains("base_url = \"https://***@llm.example.com/v1\""),
        "{stdout}"
    );
    assert!(stdout.contains("chat.max_steps"), "{stdout}");
    assert!(
        !stdout.contains("hunter2"),
        "the password leaked:\n{stdout}"
    );
}

// Issue 10, part 8: a malformed .env is ignored whole and never quoted.
#[test]
fn a_malformed_dotenv_is_ignored_whole_and_its_lines_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "OPENAI_MODEL=model-from-dotenv\n# a comment\nOPENAI_API_KEY=sk-leaked secret\n",
    )
    .unwrap();
    let (output, stdout, stderr) = run(ragstream()
        .args(["check-config", "--no-probe"])
        .current_dir(dir.path()));
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        !stdout.contains("model-from-dotenv"),
        "a line before the bad one was applied:\n{stdout}"
    );
    assert!(
        stderr.contains(".env") && stderr.contains("line 3"),
        "the warning names the file and line: {stderr}"
    );
    for secret in ["sk-leaked", "secret", "model-from-dotenv"] {
        assert!(!stderr.contains(secret), "`{secret}` printed: {stderr}");
        assert!(!stdout.contains(secret), "`{secret}` printed: {stdout}");
    }
    assert!(
        !stderr.contains("OPENAI_API_KEY"),
        "the key's name printed: {stderr}"
    );

    std::fs::write(
        dir.path().join(".env"),
        "OPENAI_MODEL=model-from-dotenv\nOPENAI_API_KEY=\"sk-unterminated\n",
    )
    .unwrap();
    let (_, stdout, stderr) = run(ragstream()
        .args(["check-config", "--no-probe"])
        .current_dir(dir.path()));
    assert!(!stdout.contains("model-from-dotenv"), "{stdout}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!stderr.contains("sk-unterminated"), "{stderr}");
}

// Issue 10, part 4: `ask` takes --data like every kb command.
#[test]
fn ask_takes_a_data_directory() {
    let data = tempfile::tempdir().unwrap();
    let (output, stdout, stderr) = run(ragstream()
        .args(["ask", "--config", "examples/autism.toml", "--data"])
        .arg(data.path())
        .arg("孩子自伤怎么办"));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.starts_with("【知识库回答】"), "{stdout}");
    assert!(
        data.path().join("kb.sqlite3").is_file(),
        "the store was opened in --data"
    );
}

// Issue 10, part 4: no colour codes in logs that go to a file or a pipe.
#[test]
fn text_logs_into_a_pipe_have_no_colour_codes() {
    let (output, _, stderr) = run(ragstream().env_remove("NO_COLOR").args([
        "ask",
        "--config",
        "examples/autism.toml",
        "孩子自伤怎么办",
    ]));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("no language model"),
        "a warning is logged: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI codes in piped logs: {stderr:?}"
    );
}

// Issue 10, part 8: an empty question is a usage error.
#[test]
fn an_empty_question_is_a_usage_error() {
    for question in ["", "   "] {
        let (output, _, stderr) =
            run(ragstream().args(["ask", "--config", "examples/autism.toml", question]));
        assert_eq!(output.status.code(), Some(2), "{question:?}: {stderr}");
        assert!(stderr.contains("empty"), "{stderr}");
    }
}

// Issue 10, part 8: out-of-range values and ignored variables are reported.
#[test]
fn check_config_rejects_out_of_range_values_and_names_ignored_variables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hot.toml");
    std::fs::write(
        &path,
        "[llm]\ntemperature = 9\n[chat]\nanswer_temperature = -1\n",
    )
    .unwrap();
    let (output, stdout, _) = run(ragstream()
        .args(["check-config", "--no-probe", "--config"])
        .arg(&path));
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("llm.temperature 9 must be between 0 and 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("chat.answer_temperature -1 must be between 0 and 2"),
        "{stdout}"
    );

    let (output, stdout, _) = run(ragstream()
        .args([
            "check-config",
            "--no-probe",
            "--config",
            "examples/autism.toml",
        ])
        .env("RAGSTREAM_CHAT_MAX_STEPS", "5"));
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("warning: RAGSTREAM_CHAT_MAX_STEPS matches no setting")
            && stdout.contains("RAGSTREAM_CHAT__MAX_STEPS"),
        "{stdout}"
    );
}

// Issue 10, part 8: check-config says when the provider's base URL answers 404.
#[tokio::test]
async fn check_config_probes_the_provider_and_hints_at_a_missing_v1() {
    let upstream = Upstream::start(vec![]).await;
    let without_v1 = upstream.base_url.trim_end_matches("/v1").to_owned();
    let mut command = ragstream();
    command
        .args(["check-config", "--config", "examples/autism.toml"])
        .env("OPENAI_BASE_URL", &without_v1)
        .env("OPENAI_API_KEY", "sk-test");
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .unwrap();
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "a probe failure is a warning: {stdout}"
    );
    assert!(
        stdout.contains("warning: the model provider answered HTTP 404") && stdout.contains("/v1"),
        "{stdout}"
    );

    let mut command = ragstream();
    command
        .args(["check-config", "--config", "examples/autism.toml"])
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .env("OPENAI_API_KEY", "sk-test");
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .unwrap();
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("warning: the model provider at http://127.0.0.1:9/v1 is unreachable"),
        "{stdout}"
    );
}

/// MiniMax embeddings as the classic back end configured them: key and group id
/// in the environment, not in the file.
fn minimax_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("minimax.toml");
    std::fs::write(&path, "[kb.embeddings]\nprovider = \"minimax\"\n").unwrap();
    path
}

#[test]
fn minimax_credentials_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = minimax_config(dir.path());
    let (output, stdout, _) = run(ragstream()
        .args(["check-config", "--no-probe", "--config"])
        .arg(&path)
        .env("MINIMAX_API_KEY", "mm-secret-key-123456")
        .env("MINIMAX_GROUP_ID", "1782658868262748467"));
    assert!(output.status.success(), "{stdout}");
    assert!(
        !stdout.contains("secret-key-123456"),
        "the key leaked:\n{stdout}"
    );
    assert!(
        stdout.contains("api_key = \"mm-*** (20 chars)\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("group_id = \"1782658868262748467\""),
        "{stdout}"
    );
}

#[test]
fn minimax_without_credentials_is_refused_by_check_config_and_kb_commands() {
    let dir = tempfile::tempdir().unwrap();
    let path = minimax_config(dir.path());
    let (output, stdout, _) = run(ragstream()
        .args(["check-config", "--no-probe", "--config"])
        .arg(&path));
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("MINIMAX_API_KEY"), "{stdout}");
    assert!(stdout.contains("MINIMAX_GROUP_ID"), "{stdout}");

    let (output, _, stderr) = run(ragstream()
        .args(["--config"])
        .arg(&path)
        .args(["kb", "stats"]));
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("needs kb.embeddings.api_key or MINIMAX_API_KEY"),
        "{stderr}"
    );

    std::fs::write(&path, "[kb.search]\ntop_k = 0\n").unwrap();
    let (output, _, stderr) = run(ragstream()
        .args(["--config"])
        .arg(&path)
        .args(["kb", "search", "自伤"]));
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("kb.search.top_k must be at least 1"),
        "{stderr}"
    );
}
