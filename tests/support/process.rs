//! The real `ragstream` binary, for what only a process shows: signals, exit
//! codes, stderr, and metrics no other test has touched.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

/// The repository root, where `examples/` lives.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The binary as a user runs it, from the repository root, with plain logs at
/// `log_level` and none of this machine's `OPENAI_`, `RAGSTREAM_` or `MINIMAX_`
/// variables.
pub fn ragstream(log_level: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ragstream"));
    command
        .current_dir(ROOT)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", log_level);
    for (key, _) in std::env::vars() {
        if key.starts_with("OPENAI_")
            || key.starts_with("RAGSTREAM_")
            || key.starts_with("MINIMAX_")
        {
            command.env_remove(key);
        }
    }
    command
}

/// `ragstream serve --config examples/autism.toml --addr 127.0.0.1:0` with a
/// clean environment and a knowledge base of its own, talking to `base_url`.
pub fn serve(base_url: &str) -> Command {
    let mut command = Command::from(ragstream("info"));
    command
        .args([
            "serve",
            "--config",
            "examples/autism.toml",
            "--addr",
            "127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let data = tempfile::tempdir().unwrap().keep();
    command
        .env("RAGSTREAM_KB__DATA_DIR", data.join("data"))
        .env("OPENAI_BASE_URL", base_url)
        .env("OPENAI_API_KEY", "sk-test-secret-key");
    command
}

/// A running `serve`.
pub struct Process {
    /// The process.
    pub child: Child,
    /// The rest of its stderr.
    pub stderr: Lines<BufReader<ChildStderr>>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Process {
    /// Starts `command` and waits for its listening line.
    pub async fn start(mut command: Command) -> Self {
        let mut child = command.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            let line = stderr
                .next_line()
                .await
                .unwrap()
                .expect("serve exited before listening");
            if let Some(url) = line.strip_prefix("ragstream listening on ") {
                return Self {
                    child,
                    stderr,
                    url: url.to_owned(),
                };
            }
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }
}
