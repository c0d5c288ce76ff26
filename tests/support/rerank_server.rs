//! A scripted rerank service on 127.0.0.1:0 speaking the common rerank API:
//! `POST /v1/rerank` with `{model, query, documents, top_n}`, answered with
//! `{results: [{index, relevance_score}]}` plus the extra fields real services send.
//!
//! Scores are deterministic: a document containing a preferred phrase
//! ([`RerankServer::prefer`]) gets that phrase's score; any other gets 0.05.
//! Scripted replies (any status, JSON or not) are served first, in order;
//! requests can be made to hang, to show a timeout.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// The score of a document with no preferred phrase.
pub const OTHER_SCORE: f64 = 0.05;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// JSON body (`Null` if it was not JSON).
    pub body: Value,
}

/// Shared server state.
#[derive(Debug, Default)]
struct Script {
    /// Phrases and the score of a document containing them, first match wins.
    prefer: Vec<(String, f64)>,
    /// Replies (status, raw body) to serve before normal operation.
    canned: VecDeque<(u16, String)>,
    /// Every request.
    seen: Vec<Seen>,
    /// When true, every request hangs for an hour.
    hang: bool,
}

/// A running scripted rerank service.
#[derive(Clone)]
pub struct RerankServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Shared state.
    script: Arc<Mutex<Script>>,
}

impl RerankServer {
    /// Starts a server that scores every document [`OTHER_SCORE`] until told otherwise.
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let app = Router::new()
            .route("/v1/rerank", post(rerank))
            .with_state(Arc::clone(&script));
        let addr = super::serve_on_loopback(app).await;
        Self { addr, script }
    }

    /// The base URL to configure (`…/v1`; the client appends `/rerank`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Documents containing `phrase` score `score` from now on.
    pub fn prefer(&self, phrase: &str, score: f64) {
        self.script
            .lock()
            .unwrap()
            .prefer
            .push((phrase.to_owned(), score));
    }

    /// Queues a JSON reply to serve before scores.
    pub fn push(&self, status: u16, body: Value) {
        self.push_raw(status, &body.to_string());
    }

    /// Queues a raw reply (not necessarily JSON) to serve before scores.
    pub fn push_raw(&self, status: u16, body: &str) {
        self.script
            .lock()
            .unwrap()
            .canned
            .push_back((status, body.to_owned()));
    }

    /// Makes every request hang (or answer again, with `false`).
    pub fn hang(&self, hang: bool) {
        self.script.lock().unwrap().hang = hang;
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }
}

/// Scores the documents, best first, cut to `top_n`.
async fn rerank(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (canned, hang, prefer) = {
        let mut s = script.lock().unwrap();
        s.seen.push(Seen {
            authorization: headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned()),
            body: body.clone(),
        });
        (s.canned.pop_front(), s.hang, s.prefer.clone())
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if let Some((status, text)) = canned {
        return (StatusCode::from_u16(status).unwrap(), text).into_response();
    }
    let documents = body["documents"].as_array().cloned().unwrap_or_default();
    let mut results: Vec<(usize, f64, String)> = documents
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let text = d.as_str().unwrap_or_default().to_owned();
            let score = prefer
                .iter()
                .find(|(phrase, _)| text.contains(phrase.as_str()))
                .map_or(OTHER_SCORE, |(_, score)| *score);
            (i, score, text)
        })
        .collect();
    results.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top_n = body["top_n"].as_u64().map_or(results.len(), |n| n as usize);
    results.truncate(top_n);
    let results: Vec<Value> = results
        .into_iter()
        .map(|(index, score, text)| {
            json!({"index": index, "relevance_score": score, "document": {"text": text}})
        })
        .collect();
    Json(json!({
        "id": "rerank-1",
        "model": body["model"],
        "results": results,
        "usage": {"total_tokens": 42},
        "meta": {"api_version": {"version": "1"}}
    }))
    .into_response()
}
