//! The minimal relay: the least a Rust relay must do, as the baseline ragstream is measured
//! against. `POST /api/python {"content": "…"}` posts the question upstream with a pooled
//! client, parses the SSE reply incrementally, decodes each chunk's JSON, and writes each
//! `choices[0].delta.content` to the client as plain text.
//!
//! ```text
//! OPENAI_BASE_URL=http://127.0.0.1:9000/v1 minrelay --addr 127.0.0.1:9001
//! ```
//!
//! Honest: every chunk is parsed with serde_json (escapes included); nothing is skipped.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::{Json, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, stream};
use serde::Deserialize;

/// What every request shares: one pooled client and the upstream's address.
#[derive(Clone)]
struct App {
    client: reqwest::Client,
    /// `{OPENAI_BASE_URL}/chat/completions`.
    url: String,
    key: String,
    model: String,
}

#[derive(Deserialize)]
struct Ask {
    content: String,
}

/// The only part of a chat.completion.chunk a relay of text needs. Borrowed where the JSON
/// string has no escapes, owned where it does.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    delta: Delta<'a>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let addr = std::env::args().skip_while(|a| a != "--addr").nth(1);
    let addr = addr.unwrap_or_else(|| "127.0.0.1:18301".to_owned());
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let app = App {
        client: reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .expect("build client"),
        url: format!(
            "{}/chat/completions",
            env("OPENAI_BASE_URL", "http://127.0.0.1:18300/v1")
        ),
        key: env("OPENAI_API_KEY", "bench"),
        model: env("OPENAI_MODEL", "bench-model"),
    };
    let router = axum::Router::new()
        .route("/api/python", post(relay))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(app);
    // The same accept backlog as ragstream (server.backlog) and the upstream: with
    // TcpListener::bind's 128, a burst of 1,000 connects waits a second for SYN retries.
    let socket = tokio::net::TcpSocket::new_v4().expect("create socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(addr.parse().expect("relay address"))
        .expect("bind relay address");
    let listener = socket.listen(4096).expect("listen");
    let listener = listener.tap_io(|tcp| tcp.set_nodelay(true).expect("TCP_NODELAY"));
    axum::serve(listener, router).await.expect("serve");
}

async fn relay(State(app): State<App>, Json(ask): Json<Ask>) -> Response {
    let request = serde_json::json!({
        "model": app.model,
        "stream": true,
        "messages": [{"role": "user", "content": ask.content}],
    });
    let sent = app
        .client
        .post(&app.url)
        .bearer_auth(&app.key)
        .header(header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&request).expect("request json"))
        .send()
        .await;
    let upstream = match sent {
        Ok(reply) if reply.status().is_success() => reply,
        Ok(reply) => return bad_gateway(format!("upstream returned {}", reply.status())),
        Err(err) => return bad_gateway(format!("upstream unreachable: {err}")),
    };
    let text = deltas(upstream.bytes_stream());
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(text),
    )
        .into_response()
}

fn bad_gateway(message: String) -> Response {
    (StatusCode::BAD_GATEWAY, message).into_response()
}

/// Upstream SSE bytes in, one text frame per content delta out. Lines are cut as bytes arrive;
/// a line split across reads waits in `buf` for its end.
fn deltas(
    upstream: impl Stream<Item = reqwest::Result<Bytes>> + Send + Unpin + 'static,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let state = (
        upstream,
        BytesMut::new(),
        std::collections::VecDeque::<Bytes>::new(),
        false,
    );
    stream::unfold(
        state,
        |(mut upstream, mut buf, mut ready, mut done)| async move {
            loop {
                if let Some(text) = ready.pop_front() {
                    return Some((Ok(text), (upstream, buf, ready, done)));
                }
                if done {
                    return None;
                }
                match upstream.next().await {
                    Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
                    Some(Err(err)) => {
                        return Some((
                            Err(std::io::Error::other(err)),
                            (upstream, buf, ready, true),
                        ));
                    }
                    None => return None,
                }
                while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                    let line = buf.split_to(end + 1);
                    let line = line.strip_suffix(b"\n").unwrap_or(&line);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let Some(data) = line.strip_prefix(b"data:") else {
                        continue;
                    };
                    let data = data.strip_prefix(b" ").unwrap_or(data);
                    if data == b"[DONE]" {
                        done = true;
                        break;
                    }
                    match serde_json::from_slice::<Chunk>(data) {
                        Ok(chunk) => {
                            let content = chunk
                                .choices
                                .into_iter()
                                .next()
                                .and_then(|c| c.delta.content);
                            if let Some(text) = content.filter(|t| !t.is_empty()) {
                                ready.push_back(Bytes::copy_from_slice(text.as_bytes()));
                            }
                        }
                        Err(err) => {
                            let err = std::io::Error::other(format!("bad chunk: {err}"));
                            return Some((Err(err), (upstream, buf, ready, true)));
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two chunks, one with an escaped newline, then `[DONE]`, as an OpenAI-style upstream sends.
    const SSE: &str = concat!(
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"自闭\"},\"finish_reason\":null}]}\n\n",
        ": a comment\n\n",
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"症\\n\\\"ok\\\"\"},\"finish_reason\":null}]}\r\n\r\n",
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n",
    );

    fn relay(pieces: Vec<Bytes>) -> String {
        let upstream = stream::iter(pieces.into_iter().map(Ok));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let frames: Vec<_> = runtime.block_on(deltas(upstream).collect());
        let bytes: Vec<u8> = frames
            .into_iter()
            .flat_map(|f| f.unwrap().to_vec())
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn every_split_of_the_upstream_bytes_gives_the_same_text() {
        let bytes = SSE.as_bytes();
        assert_eq!(relay(vec![Bytes::from_static(bytes)]), "自闭症\n\"ok\"");
        for cut in 1..bytes.len() {
            let pieces = vec![
                Bytes::copy_from_slice(&bytes[..cut]),
                Bytes::copy_from_slice(&bytes[cut..]),
            ];
            assert_eq!(relay(pieces), "自闭症\n\"ok\"", "cut at {cut}");
        }
    }

    #[test]
    fn a_chunk_that_is_not_json_ends_the_stream_with_an_error() {
        let upstream = stream::iter([Ok(Bytes::from_static(b"data: {nope\n\n"))]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let frames: Vec<_> = runtime.block_on(deltas(upstream).collect());
        assert!(matches!(frames.as_slice(), [Err(_)]));
    }
}
