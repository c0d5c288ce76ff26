//! A scripted OpenAI-compatible upstream on a real loopback port.
//!
//! Each request to `POST /v1/chat/completions` takes the next [`Reply`] of the
//! script and plays it byte for byte: SSE frames split anywhere, pauses, a
//! hang, a dropped connection, or an HTTP error. Requests are recorded, and
//! the number of response streams still open shows whether the relay
//! cancelled its upstream request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};

/// One step of a streamed reply.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send these bytes as one write.
    Bytes(Vec<u8>),
    /// Send these bytes this many times, without holding copies in memory.
    Repeat(Bytes, usize),
    /// Wait before the next step.
    Sleep(Duration),
    /// Never send anything again, keeping the connection open.
    Hang,
    /// Wait until the test opens the gate ([`Gate::open`]).
    Gate(Gate),
    /// Abort the connection mid-body.
    Drop,
}

/// A point in a reply the test opens when it is ready (e.g. once another
/// server has seen a request), so that ordering is asserted, not timed.
#[derive(Debug, Clone)]
pub struct Gate(Arc<tokio::sync::Semaphore>);

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(0)))
    }

    /// Lets every reply waiting at this gate (and every later one) go on.
    pub fn open(&self) {
        self.0.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }

    async fn pass(&self) {
        let _ = self.0.acquire().await;
    }
}

/// How the upstream answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with an SSE body played step by step.
    Stream(Vec<Step>),
    /// An HTTP error with headers and a body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// Never send the response head (counted as open until ragstream hangs up).
    Silent,
    /// Any status, any headers, and a body played step by step.
    Raw {
        /// The HTTP status.
        status: u16,
        /// Response headers, by name.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<Step>,
    },
}

impl Reply {
    /// A stream of `data:` frames for these JSON chunks, then `[DONE]`.
    pub fn chunks(chunks: &[Value]) -> Self {
        let mut steps: Vec<Step> = chunks
            .iter()
            .map(|c| Step::Bytes(frame(&c.to_string())))
            .collect();
        steps.push(Step::Bytes(frame("[DONE]")));
        Self::Stream(steps)
    }

    /// A recorded stream from `tests/fixtures`, sent in pieces of `piece` bytes.
    pub fn fixture(name: &str, piece: usize) -> Self {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Self::Stream(
            bytes
                .chunks(piece)
                .map(|c| Step::Bytes(c.to_vec()))
                .collect(),
        )
    }

    /// A direct answer streamed as one content chunk per piece.
    pub fn answer(pieces: &[&str]) -> Self {
        let mut chunks: Vec<Value> = pieces.iter().map(|p| content(p)).collect();
        chunks.push(finish("stop"));
        Self::chunks(&chunks)
    }

    /// A modern tool call of `name` whose `arguments` arrive in `pieces`.
    pub fn tool_call(id: &str, name: &str, pieces: &[&str]) -> Self {
        let mut chunks = vec![tool_start(0, id, name)];
        chunks.extend(pieces.iter().map(|p| tool_args(0, p)));
        chunks.push(finish("tool_calls"));
        Self::chunks(&chunks)
    }

    /// Inserts a pause before every step.
    pub fn paced(self, gap: Duration) -> Self {
        match self {
            Self::Stream(steps) => Self::Stream(
                steps
                    .into_iter()
                    .flat_map(|s| [Step::Sleep(gap), s])
                    .collect(),
            ),
            other => other,
        }
    }

    /// Replaces the final `[DONE]` (and everything after the step `keep`) by `tail`.
    pub fn cut(self, keep: usize, tail: Step) -> Self {
        match self {
            Self::Stream(mut steps) => {
                steps.truncate(keep);
                steps.push(tail);
                Self::Stream(steps)
            }
            other => other,
        }
    }
}

/// One SSE `data:` frame.
pub fn frame(data: &str) -> Vec<u8> {
    format!("data: {data}\n\n").into_bytes()
}

/// A chunk with answer text.
pub fn content(text: &str) -> Value {
    json!({"id":"chatcmpl-t","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":text},"finish_reason":null}]})
}

/// A chunk with thinking text.
pub fn reasoning(text: &str) -> Value {
    json!({"choices":[{"index":0,"delta":{"content":null,"reasoning_content":text}}]})
}

/// The first fragment of a modern tool call.
pub fn tool_start(index: usize, id: &str, name: &str) -> Value {
    json!({"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":index,"id":id,"type":"function","function":{"name":name,"arguments":""}}]}}]})
}

/// A fragment of a tool call's arguments.
pub fn tool_args(index: usize, arguments: &str) -> Value {
    json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":index,"function":{"arguments":arguments}}]}}]})
}

/// A legacy function-call fragment.
pub fn function_call(name: Option<&str>, arguments: &str) -> Value {
    let mut call = json!({"arguments": arguments});
    if let Some(name) = name {
        call["name"] = json!(name);
    }
    json!({"choices":[{"index":0,"delta":{"function_call":call}}]})
}

/// The last chunk of a turn.
pub fn finish(reason: &str) -> Value {
    json!({"choices":[{"index":0,"delta":{},"finish_reason":reason}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}})
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<(HeaderMap, Value)>>,
    open: Arc<AtomicUsize>,
    sent: Arc<AtomicUsize>,
}

/// A running scripted upstream.
pub struct Upstream {
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    shared: Arc<Shared>,
}

impl Upstream {
    /// Starts serving `script`, one reply per request, in order.
    pub async fn start(script: Vec<Reply>) -> Self {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            ..Shared::default()
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .route("/test/open", axum::routing::get(open_count))
            .with_state(shared.clone());
        let addr = super::serve_on_loopback(app).await;
        Self {
            base_url: format!("http://{addr}/v1"),
            shared,
        }
    }

    /// The JSON bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// The headers of request `n`.
    pub fn headers(&self, n: usize) -> HeaderMap {
        self.shared.requests.lock().unwrap()[n].0.clone()
    }

    /// Response streams that are still being played.
    pub fn open_streams(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Body bytes handed to the network so far, over all replies.
    pub fn sent_bytes(&self) -> usize {
        self.shared.sent.load(Ordering::SeqCst)
    }

    /// Replaces what is left of the script.
    pub fn reset(&self, script: Vec<Reply>) {
        *self.shared.script.lock().unwrap() = script.into();
    }

    /// Waits until no stream is open, up to `limit`; true if they all closed.
    pub async fn wait_all_closed(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self.open_streams() == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.open_streams() == 0
    }
}

/// `GET /test/open`: [`Upstream::open_streams`] for a test that runs in
/// another process (the browser tests' Node scripts).
async fn open_count(State(shared): State<Arc<Shared>>) -> String {
    shared.open.load(Ordering::SeqCst).to_string()
}

/// Counts a response as open until it is dropped: a body when it ends or its
/// client hangs up, a silent handler when hyper drops it with its connection.
fn open(shared: &Shared) -> OpenGuard {
    shared.open.fetch_add(1, Ordering::SeqCst);
    OpenGuard(shared.open.clone())
}

/// Decrements the open-stream count when the response body is dropped.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let json: Value = serde_json::from_slice(&body).expect("ragstream sent invalid JSON upstream");
    shared.requests.lock().unwrap().push((headers, json));
    let reply = shared.script.lock().unwrap().pop_front();
    match reply {
        None => (StatusCode::INTERNAL_SERVER_ERROR, "script exhausted").into_response(),
        Some(Reply::Silent) => {
            let _guard = open(&shared);
            std::future::pending().await
        }
        Some(Reply::Status(code, headers, body)) => {
            let mut response = (StatusCode::from_u16(code).unwrap(), body).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Some(Reply::Raw {
            status,
            headers,
            body,
        }) => {
            let mut response = play(&shared, body);
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            for (name, value) in headers {
                let name = axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
                response.headers_mut().append(name, value.parse().unwrap());
            }
            response
        }
        Some(Reply::Stream(steps)) => play(&shared, steps),
    }
}

/// A 200 SSE response whose body plays `steps`.
fn play(shared: &Shared, steps: Vec<Step>) -> Response {
    let guard = open(shared);
    let sent = shared.sent.clone();
    let body = async_stream::stream! {
        let _guard = guard;
        for step in steps {
            match step {
                Step::Bytes(bytes) => {
                    sent.fetch_add(bytes.len(), Ordering::SeqCst);
                    yield Ok(Bytes::from(bytes));
                }
                Step::Repeat(bytes, times) => {
                    for _ in 0..times {
                        sent.fetch_add(bytes.len(), Ordering::SeqCst);
                        yield Ok(bytes.clone());
                    }
                }
                Step::Sleep(gap) => tokio::time::sleep(gap).await,
                Step::Hang => std::future::pending::<()>().await,
                Step::Gate(gate) => gate.pass().await,
                Step::Drop => {
                    // Let hyper flush what was written, as a real server would have.
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    yield Err(std::io::Error::other("scripted drop"));
                    return;
                }
            }
        }
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap()
}
