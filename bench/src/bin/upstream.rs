//! A fast scripted OpenAI-compatible upstream: `POST …/chat/completions` streams a fixed
//! answer as `chat.completion.chunk` SSE frames, `gap` apart, after `ttft`.
//!
//! ```text
//! upstream --addr 127.0.0.1:9000 --chunks 100 --gap-ms 20 --ttft-ms 0 --mode direct|tool|mixed
//! ```
//!
//! In `tool` mode the first call (it offers `tools` and holds no `tool` message) streams an
//! `autism_expert` tool call split over several chunks and ends with `finish_reason:
//! "tool_calls"`; the second call (a `tool` message, or no `tools`) streams the answer.
//! `mixed` mode is `tool` mode for questions that hold [`script::TOOL_HINT`] and `direct` mode
//! for the rest, so one upstream serves both paths at once (the soak).
//! `GET /bench/marks` returns, and clears, CLOCK_MONOTONIC stamps of each request's arrival
//! and first frame, and of each end of a tool call, second-call arrival and second-call first
//! chunk, so the load generator can split time to first byte into request path, upstream and
//! response path, and the tool path into search time and second-call time.
//!
//! Every frame is built once at start-up: the upstream must cost as little CPU as possible,
//! because it shares two cores with the relay under test.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ragstream_bench::{clock, script};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio::time::{Instant, Sleep};

/// Settings read once from the command line.
struct Settings {
    /// Address to listen on.
    addr: std::net::SocketAddr,
    /// Content chunks in an answer.
    chunks: usize,
    /// Pause between two content chunks.
    gap: Duration,
    /// Pause before the first chunk (time to first token).
    ttft: Duration,
    /// Which calls answer with a tool call.
    mode: Mode,
    /// Chunks the tool call's arguments are split over.
    tool_chunks: usize,
    /// Name of the tool the model calls.
    tool_name: String,
    /// JSON arguments of the tool call.
    tool_args: String,
    /// Tokio worker threads.
    workers: usize,
}

/// Which first calls the model answers with a tool call.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// None: every call gets the answer.
    Direct,
    /// Every first call.
    Tool,
    /// First calls whose last user message holds [`script::TOOL_HINT`].
    Mixed,
}

/// What every connection shares.
struct Upstream {
    /// SSE frames of the direct answer: one per content chunk, the last one carries the
    /// `finish_reason: "stop"` chunk and `[DONE]` as well.
    answer: Arc<[Bytes]>,
    /// SSE frames of the tool call, the last one with `finish_reason: "tool_calls"` and `[DONE]`.
    tool_call: Arc<[Bytes]>,
    settings: Settings,
    /// CLOCK_MONOTONIC stamps for `/bench/marks`.
    marks: Arc<Mutex<Marks>>,
}

/// Stamps (ns, CLOCK_MONOTONIC), in the order they happened.
#[derive(Default, serde::Serialize)]
struct Marks {
    /// A chat-completion request arrived (headers read).
    arrival: Vec<u64>,
    /// The first frame of a reply was handed to the socket.
    first_frame: Vec<u64>,
    /// The last frame of a tool call was handed to the socket.
    tool_end: Vec<u64>,
    /// A second call (one carrying the tool result) arrived.
    second_req: Vec<u64>,
    /// The first frame of a second call's answer was handed to the socket.
    second_first: Vec<u64>,
}

fn main() {
    let settings = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.workers)
        .enable_all()
        .build()
        .expect("build tokio runtime");
    runtime.block_on(serve(settings));
}

async fn serve(settings: Settings) {
    let socket = TcpSocket::new_v4().expect("create socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(settings.addr).expect("bind upstream address");
    let listener = socket.listen(4096).expect("listen");
    let upstream = Arc::new(Upstream {
        answer: answer_frames(settings.chunks),
        tool_call: tool_call_frames(&settings),
        settings,
        marks: Arc::default(),
    });
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        // Without TCP_NODELAY the first chunk of each reply waits ~40 ms (Nagle + delayed ACK).
        tcp.set_nodelay(true).expect("TCP_NODELAY");
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(upstream.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

type Reply = Response<BoxBody<Bytes, Infallible>>;

async fn handle(up: Arc<Upstream>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET && path == "/healthz" {
        return Ok(text(StatusCode::OK, "ok"));
    }
    if req.method() == Method::GET && path == "/bench/marks" {
        let marks = std::mem::take(&mut *up.marks.lock().expect("marks lock"));
        return Ok(text(
            StatusCode::OK,
            serde_json::to_string(&marks).expect("marks json"),
        ));
    }
    if req.method() != Method::POST || !path.ends_with("/chat/completions") {
        return Ok(text(StatusCode::NOT_FOUND, "not found"));
    }
    let arrived = clock::now_ns();
    up.marks.lock().expect("marks lock").arrival.push(arrived);
    let Ok(body) = req.into_body().collect().await else {
        return Ok(text(StatusCode::BAD_REQUEST, "unreadable body"));
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
        return Ok(text(StatusCode::BAD_REQUEST, "body is not JSON"));
    };
    if request["stream"] != json!(true) {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            "only stream: true is scripted",
        ));
    }
    let tool_path = match up.settings.mode {
        Mode::Direct => false,
        Mode::Tool => true,
        Mode::Mixed => asks_for_tool(&request),
    };
    let (frames, mark) = if tool_path && !is_second_call(&request) {
        (up.tool_call.clone(), Mark::ToolEnd)
    } else if tool_path {
        up.marks
            .lock()
            .expect("marks lock")
            .second_req
            .push(arrived);
        (up.answer.clone(), Mark::SecondFirst)
    } else {
        (up.answer.clone(), Mark::None)
    };
    let body = Script {
        frames,
        next: 0,
        gap: up.settings.gap,
        sleep: Box::pin(tokio::time::sleep(up.settings.ttft)),
        armed: !up.settings.ttft.is_zero(),
        mark,
        marks: up.marks.clone(),
    };
    let reply = Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(body.boxed())
        .expect("valid response");
    Ok(reply)
}

/// A second call carries the tool result (`role: "tool"`), or offers no tools at all
/// (prompt-template mode folds the result into one user message).
fn is_second_call(request: &Value) -> bool {
    let has_tool_message = request["messages"]
        .as_array()
        .is_some_and(|messages| messages.iter().any(|m| m["role"] == "tool"));
    has_tool_message || request.get("tools").is_none()
}

/// In `mixed` mode: the last user message holds [`script::TOOL_HINT`]. The second call
/// carries the same question, so it stays on the tool path and is stamped as one.
fn asks_for_tool(request: &Value) -> bool {
    request["messages"].as_array().is_some_and(|messages| {
        messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .is_some_and(|content| content.contains(script::TOOL_HINT))
    })
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    Response::builder()
        .status(status)
        .body(Full::new(body.into()).boxed())
        .expect("valid response")
}

/// Which stamp a [`Script`] leaves.
#[derive(Clone, Copy, PartialEq)]
enum Mark {
    None,
    /// Stamp `tool_end` when the last frame leaves.
    ToolEnd,
    /// Stamp `second_first` when the first frame leaves.
    SecondFirst,
}

/// A response body that hands out pre-built frames, sleeping `gap` between content chunks.
struct Script {
    frames: Arc<[Bytes]>,
    /// Index of the next frame to hand out.
    next: usize,
    gap: Duration,
    /// One timer per stream, reset for each gap rather than allocated again.
    sleep: Pin<Box<Sleep>>,
    /// `true` while `sleep` must elapse before the next frame.
    armed: bool,
    mark: Mark,
    marks: Arc<Mutex<Marks>>,
}

impl Body for Script {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.armed {
            ready!(this.sleep.as_mut().poll(cx));
            this.armed = false;
        }
        let Some(frame) = this.frames.get(this.next).cloned() else {
            return Poll::Ready(None);
        };
        this.next += 1;
        let last = this.next == this.frames.len();
        if this.next == 1 {
            let mut marks = this.marks.lock().expect("marks lock");
            let now = clock::now_ns();
            marks.first_frame.push(now);
            if this.mark == Mark::SecondFirst {
                marks.second_first.push(now);
            }
        }
        if this.mark == Mark::ToolEnd && last {
            this.marks
                .lock()
                .expect("marks lock")
                .tool_end
                .push(clock::now_ns());
        }
        if !last && !this.gap.is_zero() {
            this.sleep.as_mut().reset(Instant::now() + this.gap);
            this.armed = true;
        }
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }
}

/// One `data:` line holding a chat.completion.chunk with `delta` and `finish_reason`, its
/// fields in the order OpenAI sends them (a parser skips `id`…`model` before `choices`).
fn chunk(delta: Value, finish_reason: Value) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1764000000,\
         \"model\":\"bench-model\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{{\"index\":0,\
         \"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish_reason}}}]}}\n\n"
    )
}

fn answer_frames(chunks: usize) -> Arc<[Bytes]> {
    let mut frames: Vec<String> = (0..chunks)
        .map(|i| {
            let delta = if i == 0 {
                json!({"role": "assistant", "content": script::word(i)})
            } else {
                json!({"content": script::word(i)})
            };
            chunk(delta, Value::Null)
        })
        .collect();
    let end = chunk(json!({}), json!("stop")) + "data: [DONE]\n\n";
    match frames.last_mut() {
        Some(last) => last.push_str(&end),
        None => frames.push(end),
    }
    frames.into_iter().map(Bytes::from).collect()
}

fn tool_call_frames(settings: &Settings) -> Arc<[Bytes]> {
    let args: Vec<char> = settings.tool_args.chars().collect();
    let pieces = settings.tool_chunks.max(1);
    let per_piece = args.len().div_ceil(pieces).max(1);
    let mut frames: Vec<String> = args
        .chunks(per_piece)
        .enumerate()
        .map(|(i, piece)| {
            let piece: String = piece.iter().collect();
            let call = if i == 0 {
                json!({"index": 0, "id": "call_1", "type": "function",
                       "function": {"name": settings.tool_name, "arguments": piece}})
            } else {
                json!({"index": 0, "function": {"arguments": piece}})
            };
            let delta = if i == 0 {
                json!({"role": "assistant", "content": null, "tool_calls": [call]})
            } else {
                json!({"tool_calls": [call]})
            };
            chunk(delta, Value::Null)
        })
        .collect();
    let end = chunk(json!({}), json!("tool_calls")) + "data: [DONE]\n\n";
    frames
        .last_mut()
        .expect("at least one argument piece")
        .push_str(&end);
    frames.into_iter().map(Bytes::from).collect()
}

fn parse_args() -> Settings {
    let mut settings = Settings {
        addr: "127.0.0.1:18300".parse().expect("default address"),
        chunks: 100,
        gap: Duration::from_millis(20),
        ttft: Duration::ZERO,
        mode: Mode::Direct,
        tool_chunks: 4,
        tool_name: "autism_expert".to_owned(),
        tool_args: r#"{"question":"自闭症孩子自伤怎么办"}"#.to_owned(),
        workers: 2,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [key, value] = pair else {
            usage(&format!("`{}` needs a value", pair[0]))
        };
        let number = || {
            value
                .parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("bad {key}")))
        };
        match key.as_str() {
            "--addr" => settings.addr = value.parse().unwrap_or_else(|_| usage("bad --addr")),
            "--chunks" => settings.chunks = number() as usize,
            "--gap-ms" => settings.gap = Duration::from_millis(number()),
            "--gap-us" => settings.gap = Duration::from_micros(number()),
            "--ttft-ms" => settings.ttft = Duration::from_millis(number()),
            "--mode" => {
                settings.mode = match value.as_str() {
                    "direct" => Mode::Direct,
                    "tool" => Mode::Tool,
                    "mixed" => Mode::Mixed,
                    _ => usage("bad --mode"),
                }
            }
            "--tool-chunks" => settings.tool_chunks = number() as usize,
            "--tool-name" => settings.tool_name = value.clone(),
            "--tool-args" => settings.tool_args = value.clone(),
            "--workers" => settings.workers = number() as usize,
            _ => usage(&format!("unknown option {key}")),
        }
    }
    settings
}

fn usage(problem: &str) -> ! {
    eprintln!("upstream: {problem}");
    eprintln!(
        "usage: upstream [--addr A] [--chunks N] [--gap-ms MS] [--ttft-ms MS] [--mode direct|tool|mixed]\n\
         \x20               [--tool-chunks N] [--tool-name NAME] [--tool-args JSON] [--workers N]"
    );
    std::process::exit(2)
}
