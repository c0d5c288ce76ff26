//! A scripted embeddings server on 127.0.0.1:0 speaking the OpenAI and MiniMax wire formats.
//!
//! Vectors are deterministic: each character bigram of the text adds ±1 to a hashed
//! component, so texts that share words get similar vectors and vector search ranks
//! meaningfully. Scripted failures are served first, in order. Requests can be
//! delayed or held; [`EmbedServer::in_flight`] counts those not answered yet and
//! drops when the client hangs up, which shows a cancelled search.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `/v1/embeddings` etc.
    pub path: String,
    /// Query string parameters.
    pub query: Vec<(String, String)>,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// JSON body.
    pub body: Value,
}

/// A canned reply served instead of vectors.
#[derive(Debug, Clone)]
pub struct Canned {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Value,
}

/// Shared server state.
#[derive(Debug, Default)]
struct Script {
    /// Vector size.
    dim: usize,
    /// Replies to serve before normal operation.
    canned: VecDeque<Canned>,
    /// Every request.
    seen: Vec<Seen>,
    /// When true, every request hangs for a long time (to test cancellation).
    hang: bool,
    /// A pause before every answer.
    delay: Duration,
    /// Requests received and not answered yet (their client may still hang up).
    in_flight: Arc<AtomicUsize>,
}

/// A running scripted server.
#[derive(Clone)]
pub struct EmbedServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Shared state.
    script: Arc<Mutex<Script>>,
}

impl EmbedServer {
    /// Starts a server producing `dim`-dimension vectors.
    pub async fn start(dim: usize) -> Self {
        let script = Arc::new(Mutex::new(Script {
            dim,
            ..Script::default()
        }));
        let app = Router::new()
            .route("/v1/embeddings", post(embeddings))
            .with_state(Arc::clone(&script));
        let addr = super::serve_on_loopback(app).await;
        Self { addr, script }
    }

    /// The base URL to configure (`…/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues a reply to serve before vectors.
    pub fn push(&self, status: u16, body: Value) {
        self.script
            .lock()
            .unwrap()
            .canned
            .push_back(Canned { status, body });
    }

    /// Changes the vector size from now on.
    pub fn set_dim(&self, dim: usize) {
        self.script.lock().unwrap().dim = dim;
    }

    /// Makes every request hang.
    pub fn hang(&self) {
        self.script.lock().unwrap().hang = true;
    }

    /// Pauses `delay` before answering each request from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.script.lock().unwrap().delay = delay;
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }

    /// The single texts embedded since request `from` (query embeddings; imports send batches).
    pub fn queries_since(&self, from: usize) -> Vec<String> {
        self.seen()[from..]
            .iter()
            .filter_map(|s| {
                let input = s.body["input"].as_array()?;
                (input.len() == 1).then(|| input[0].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    }

    /// Requests received and not answered yet, whose client has not hung up.
    pub fn in_flight(&self) -> usize {
        self.script.lock().unwrap().in_flight.load(Ordering::SeqCst)
    }

    /// Waits until `count` requests have arrived in all; panics after 10 s with `what`.
    pub async fn wait_for_requests(&self, count: usize, what: &str) {
        for _ in 0..1000 {
            if self.seen().len() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{what}: the embeddings server saw {} requests, expected {count}",
            self.seen().len()
        );
    }

    /// Waits until no request is in flight; false if one still is after 10 s.
    pub async fn wait_idle(&self) -> bool {
        for _ in 0..1000 {
            if self.in_flight() == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

/// Counts a request as in flight until its handler ends or is dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The deterministic fake embedding of `text`.
pub fn fake_vector(text: &str, dim: usize) -> Vec<f32> {
    let chars: Vec<char> = text.chars().filter(|c| c.is_alphanumeric()).collect();
    let mut v = vec![0.0f32; dim];
    for pair in chars.windows(2) {
        let mut h: u64 = 1469598103934665603;
        for c in pair {
            h ^= *c as u64;
            h = h.wrapping_mul(1099511628211);
        }
        let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
        v[(h % dim as u64) as usize] += sign;
    }
    v
}

/// Serves both wire formats: MiniMax requests carry `texts` and `GroupId`, OpenAI ones `input`.
async fn embeddings(
    State(script): State<Arc<Mutex<Script>>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (canned, dim, hang, delay, _in_flight) = {
        let mut s = script.lock().unwrap();
        s.seen.push(Seen {
            path: "/v1/embeddings".into(),
            query: query.clone(),
            authorization: headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned()),
            body: body.clone(),
        });
        let in_flight = InFlight::new(&s.in_flight);
        (s.canned.pop_front(), s.dim, s.hang, s.delay, in_flight)
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    tokio::time::sleep(delay).await;
    if let Some(c) = canned {
        return (StatusCode::from_u16(c.status).unwrap(), Json(c.body)).into_response();
    }
    if let Some(texts) = body.get("texts").and_then(Value::as_array) {
        let vectors: Vec<Vec<f32>> = texts
            .iter()
            .map(|t| fake_vector(t.as_str().unwrap(), dim))
            .collect();
        return Json(json!({
            "vectors": vectors,
            "total_tokens": 10,
            "base_resp": {"status_code": 0, "status_msg": "success"}
        }))
        .into_response();
    }
    let inputs = body["input"].as_array().cloned().unwrap_or_default();
    // Reverse the order on the wire: clients must sort by `index`.
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": fake_vector(t.as_str().unwrap(), dim)}))
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": 10, "total_tokens": 10}
    }))
    .into_response()
}
