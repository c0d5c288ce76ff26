//! The data directory as an operator meets it through the `ragstream` binary: lost or
//! truncated databases, corrupt full-text indexes, when the sample is seeded, and what
//! the `kb` commands say when there is nothing to do (issue 10, part 8).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tokio::io::AsyncBufReadExt;

/// A question the sample answers.
const QUESTION: &str = "孩子自伤怎么办";

/// A fresh data directory (not yet created) inside its own temporary directory.
struct Data {
    /// Keeps the directory alive.
    _dir: tempfile::TempDir,
    /// `…/data`.
    path: PathBuf,
}

impl Data {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        Self { _dir: dir, path }
    }

    fn db(&self) -> PathBuf {
        self.path.join("kb.sqlite3")
    }

    fn fulltext(&self) -> PathBuf {
        self.path.join("fulltext")
    }

    /// The binary with a clean environment and this data directory, run from the
    /// repository root with the reference config and no model.
    fn ragstream(&self, args: &[&str]) -> Command {
        let mut command = support::process::ragstream("warn");
        command
            .env("RAGSTREAM_KB__DATA_DIR", &self.path)
            .arg("--config")
            .arg("examples/autism.toml");
        command.args(args);
        command
    }

    /// `ragstream ARGS…`, its exit code, stdout and stderr.
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let Output {
            status,
            stdout,
            stderr,
        } = self.ragstream(args).output().unwrap();
        (
            status.code(),
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }

    /// `ragstream kb COMMAND --data DIR ARGS…`.
    fn kb(&self, command: &str, args: &[&str]) -> (Option<i32>, String, String) {
        let data = self.path.to_str().unwrap();
        let mut all = vec!["kb", command, "--data", data];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `ask` answers from the knowledge base (the first run seeds the sample).
    fn ask_answers(&self) {
        let (code, stdout, stderr) = self.run(&["ask", QUESTION]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stdout.contains("自伤"),
            "not answered from the sample: {stdout}"
        );
    }

    /// The number of stored documents, as `kb stats` says.
    fn documents(&self) -> String {
        let (code, stdout, stderr) = self.kb("stats", &[]);
        assert_eq!(code, Some(0), "{stderr}");
        stdout.lines().next().unwrap_or_default().to_owned()
    }
}

/// The committed files of the full-text index with `extension`.
fn index_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    assert!(
        !files.is_empty(),
        "no .{extension} files in {}",
        dir.display()
    );
    files
}

#[test]
fn a_truncated_database_is_an_error_and_nothing_is_seeded_over_it() {
    let data = Data::new();
    data.ask_answers();
    let meta = std::fs::read(data.fulltext().join("meta.json")).unwrap();
    std::fs::File::create(data.db()).unwrap(); // truncates to 0 bytes

    let (code, stdout, stderr) = data.run(&["ask", QUESTION]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("kb.sqlite3 is empty (0 bytes)") && stderr.contains("backup"),
        "says what happened and what to do: {stderr}"
    );
    assert_eq!(
        std::fs::metadata(data.db()).unwrap().len(),
        0,
        "seeded over it"
    );
    assert_eq!(
        std::fs::read(data.fulltext().join("meta.json")).unwrap(),
        meta,
        "the index was discarded"
    );
}

#[tokio::test]
async fn a_missing_database_beside_its_index_stops_serve() {
    let data = Data::new();
    data.ask_answers();
    std::fs::remove_file(data.db()).unwrap();

    let mut command =
        tokio::process::Command::from(data.ragstream(&["serve", "--addr", "127.0.0.1:0"]));
    let mut child = command
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        stderr.push_str(&line);
        stderr.push('\n');
        assert!(!line.contains("seeded"), "seeded over it:\n{stderr}");
    }
    assert_eq!(child.wait().await.unwrap().code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("kb.sqlite3 is missing") && stderr.contains("backup"),
        "{stderr}"
    );
    assert!(!data.db().exists(), "an empty database was created");
}

#[test]
fn the_sample_is_seeded_only_into_a_store_that_never_held_documents() {
    let data = Data::new();
    // A read command first creates an empty store; it has never held a document.
    assert_eq!(
        data.documents(),
        "documents: 0 (0 question/answer pairs, 0 passages)"
    );
    data.ask_answers();
    assert!(data.documents().starts_with("documents: 47 "));

    // Emptied on purpose: stays empty.
    let (code, _, stderr) = data.kb("delete", &["--all"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = data.run(&["ask", QUESTION]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("知识库中没有找到相关内容"), "{stdout}");
    assert!(data.documents().starts_with("documents: 0 "));
}

#[test]
fn an_unreadable_index_meta_file_is_rebuilt_with_a_warning() {
    let data = Data::new();
    data.ask_answers();
    std::fs::write(data.fulltext().join("meta.json"), "garbage").unwrap();

    let (code, stdout, stderr) = data.run(&["ask", QUESTION]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("自伤"), "{stdout}");
    assert!(
        stderr.contains("WARN") && stderr.contains("rebuilding it from"),
        "{stderr}"
    );
    // Rebuilt once: the next start is quiet.
    let (_, _, stderr) = data.run(&["ask", QUESTION]);
    assert!(!stderr.contains("rebuilding"), "{stderr}");
}

#[tokio::test]
async fn serve_rebuilds_a_corrupt_fulltext_segment_and_answers() {
    let data = Data::new();
    data.ask_answers();
    for file in index_files(&data.fulltext(), "term") {
        std::fs::write(file, b"not a term dictionary").unwrap();
    }

    let mut command =
        tokio::process::Command::from(data.ragstream(&["serve", "--addr", "127.0.0.1:0"]));
    let mut child = command
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut url = None;
    let mut warned = false;
    while let Some(line) = lines.next_line().await.unwrap() {
        warned |= line.contains("WARN") && line.contains("rebuilding it from");
        if let Some(at) = line.strip_prefix("ragstream listening on ") {
            url = Some(at.to_owned());
        }
        seen.push(line);
        // The knowledge base has opened once it was seeded or found populated.
        if url.is_some() && warned {
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("serve stopped: {seen:#?}"));
    let hits: serde_json::Value = reqwest::get(format!("{url}/api/kb/search?q={QUESTION}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hits["hits"][0]["id"], "self-injury", "{hits}");
    child.kill().await.unwrap();
}

#[test]
fn an_empty_eval_file_is_an_error_naming_it() {
    let data = Data::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("empty-eval.jsonl");
    std::fs::write(&file, "\n\n").unwrap();
    let (code, stdout, stderr) = data.kb("eval", &[file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stderr.contains("empty-eval.jsonl") && stderr.contains("no questions"),
        "{stderr}"
    );
}

#[test]
fn deleting_what_is_not_there_exits_2_naming_it() {
    let data = Data::new();
    data.ask_answers();
    let (code, stdout, stderr) = data.kb("delete", &["no-such-id"]);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(stderr.contains("no-such-id"), "{stderr}");

    let (code, stdout, stderr) = data.kb("delete", &["--origin", "never-imported.jsonl"]);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stderr.contains("never-imported.jsonl") && stderr.contains("nothing was deleted"),
        "{stderr}"
    );
    assert!(data.documents().starts_with("documents: 47 "));
}
