//! Test harness: a scripted upstream, a real ragstream server on a loopback
//! port, and an SSE client that reads named events.

#![allow(dead_code, reason = "each test binary uses a different part")]

pub mod embed_server;
pub mod kb;
pub mod logs;
pub mod pg;
pub mod process;
pub mod rerank_server;
pub mod upstream;

use std::time::Duration;

use ragstream::config::RawConfig;
use ragstream::llm::Secret;
use ragstream::llm::sse::Decoder;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[allow(unused_imports, reason = "each test binary uses a different part")]
pub use upstream::{Gate, Reply, Step, Upstream};

/// Serves `app` on a fresh loopback port (Nagle off, as real services run) and
/// returns the address; the server runs until the test's runtime stops.
pub async fn serve_on_loopback(app: axum::Router) -> std::net::SocketAddr {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// A loopback address nothing listens on: bound, then closed.
pub fn closed_port() -> std::net::SocketAddr {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    closed.local_addr().unwrap()
}

/// The knowledge base the tests search.
pub fn kb_path() -> String {
    format!("{}/tests/fixtures/kb.jsonl", env!("CARGO_MANIFEST_DIR"))
}

/// The reference use case (examples/autism.toml) pointed at `base_url`,
/// with short timeouts and quick retries.
pub fn config(base_url: &str) -> RawConfig {
    let path = format!("{}/examples/autism.toml", env!("CARGO_MANIFEST_DIR"));
    let mut raw: RawConfig = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    raw.server.addr = "127.0.0.1:0".into();
    raw.kb.sample = kb_path().into();
    raw.llm.base_url = Some(base_url.to_owned());
    raw.llm.api_key = Some(Secret::new("sk-test-secret-key"));
    raw.llm.model = "scripted-model".into();
    raw.llm.connect_timeout_ms = 1_000;
    raw.llm.first_byte_timeout_ms = 2_000;
    raw.llm.idle_timeout_ms = 1_000;
    raw.llm.retries = 2;
    raw.llm.backoff_ms = 10;
    raw.llm.max_backoff_ms = 200;
    raw
}

/// A ragstream server running in this process.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Stops the server.
    pub shutdown: CancellationToken,
    /// The server's own knowledge-base directory, removed when the test ends.
    pub data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts ragstream with `raw` on a free port, with a fresh knowledge base
/// seeded from `kb.sample`.
pub async fn start(mut raw: RawConfig) -> Server {
    let data = tempfile::tempdir().unwrap();
    raw.kb.data_dir = data.path().join("data");
    let config = raw.lift().expect("test config is valid");
    let listener = ragstream::app::bind(&config).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        ragstream::app::serve(&config, listener, token)
            .await
            .unwrap()
    });
    wait_ready(&url).await;
    Server {
        url,
        shutdown,
        data,
    }
}

/// Waits until the server answers `/healthz` (opening the store takes a moment).
async fn wait_ready(url: &str) {
    for _ in 0..500 {
        if let Ok(response) = reqwest::get(format!("{url}/healthz")).await {
            if response.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("ragstream did not come up at {url}");
}

/// One named SSE event with its JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    /// The `event:` name.
    pub event: String,
    /// The parsed `data:`.
    pub data: Value,
}

/// Posts to `/api/chat` and reads every event until the stream ends.
pub async fn chat(server: &Server, body: Value) -> Vec<Sse> {
    let response = post(server, "/api/chat", body).await;
    assert_eq!(
        response.status(),
        200,
        "chat failed: {:?}",
        response.text().await
    );
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    read_events(response).await
}

/// Reads SSE events from a response until it ends.
pub async fn read_events(mut response: reqwest::Response) -> Vec<Sse> {
    let mut decoder = Decoder::new();
    let mut events = Vec::new();
    let read = async {
        while let Some(bytes) = response.chunk().await.expect("ragstream stream broke") {
            decoder.feed(&bytes);
            while let Some(frame) = decoder.next_frame().expect("ragstream's SSE frames") {
                events.push(Sse {
                    event: String::from_utf8(frame.event.to_vec()).unwrap(),
                    data: serde_json::from_slice(frame.data).unwrap(),
                });
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("ragstream left the client hanging");
    events
}

/// Posts JSON to `path`.
pub async fn post(server: &Server, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The answer text of a list of events.
pub fn answer(events: &[Sse]) -> String {
    events
        .iter()
        .filter(|e| e.event == "delta")
        .map(|e| e.data["text"].as_str().unwrap())
        .collect()
}

/// The event names, in order, with consecutive `delta`s collapsed.
pub fn names(events: &[Sse]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for e in events {
        if !(e.event == "delta" && names.last() == Some(&"delta")) {
            names.push(&e.event);
        }
    }
    names
}

/// The last event, which must be `done` or `error`.
pub fn last(events: &[Sse]) -> &Sse {
    let last = events.last().expect("no events");
    assert!(
        last.event == "done" || last.event == "error",
        "stream ended with {last:?}"
    );
    last
}

/// The value of one series in Prometheus text, e.g. `name{a="b"}`.
pub fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}
