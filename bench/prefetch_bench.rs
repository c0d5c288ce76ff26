//! Prefetch benchmark (issue 16): the knowledge-base path with `chat.prefetch` on and
//! off, in one run, against a 100,000-chunk hybrid store.
//!
//! ```sh
//! cargo run --release --example prefetch_bench -- [--chunks 100000] [--dim 1024] \
//!     [--requests 15] [--direct 200] [--runs 3]
//! ```
//!
//! 1. Generates `--chunks` Markdown sections (as `kb_bench`) and imports them with the
//!    in-process embedder into one store.
//! 2. Starts a scripted model upstream and a scripted embeddings API (`/v1/embeddings`,
//!    the same vectors as the import, after a set delay), each on a thread and runtime
//!    of its own, and two ragstream servers on that store (on a two-worker runtime):
//!    `chat.prefetch = "auto"` and `"off"`.
//! 3. For each query-embedding delay (50, 150 ms) and first-turn time (20, 300 ms), asks
//!    `--requests` tool-path questions of each server, alternating. The model's tool call
//!    asks the user's question (a prefetch hit). Measured per request: ragstream's own
//!    share of the tool path (the upstream's stamp of the end of the tool call to its
//!    stamp of the second request's arrival), the time from the question to the first
//!    answer delta, and the embeddings calls it caused.
//! 4. Asks `--direct` direct-answer questions of each server, alternating, with the
//!    embeddings API at 150 ms and no first-turn delay: time to first byte of the body,
//!    request sent to first byte, connection reused.
//!
//! Everything repeats `--runs` times; the Markdown rows give min / median / max over the
//! runs of each run's p50. `PREFETCH_BENCH_STORE=DIR` keeps the imported store in `DIR`
//! and reuses it on the next run (the import takes one to two minutes).

#[path = "kb_gen.rs"]
mod kb_gen;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use kb_gen::{LocalEmbedder, MODEL, fake_vector, generate, vocabulary};
use ragstream::config::RawConfig;
use ragstream::engine::PrefetchMode;
use ragstream::kb::config::{EmbeddingsConfig, KbConfig, Provider};
use ragstream::kb::embed::Embeddings;
use ragstream::kb::import::{Options, Silent};
use ragstream::kb::{KnowledgeBaseAdmin, Store};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The tool-path question; the scripted model asks the knowledge base exactly this.
const QUESTION: &str = "自闭症孩子自伤怎么办？";
/// Questions holding this get a direct answer.
const DIRECT_HINT: &str = "直接";

/// Command-line settings.
struct Args {
    chunks: usize,
    dim: usize,
    requests: usize,
    direct: usize,
    runs: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        chunks: 100_000,
        dim: 1024,
        requests: 15,
        direct: 200,
        runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: usize = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--chunks" => args.chunks = value,
            "--dim" => args.dim = value,
            "--requests" => args.requests = value,
            "--direct" => args.direct = value,
            "--runs" => args.runs = value,
            other => {
                panic!("unknown flag {other}; use --chunks, --dim, --requests, --direct, --runs")
            }
        }
    }
    args
}

/// The scripted model and embeddings API, and what they saw.
#[derive(Default)]
struct Fakes {
    /// Vector size.
    dim: usize,
    /// Delay of each embeddings request, ms.
    embed_delay_ms: AtomicU64,
    /// Delay before a first turn's first frame, ms.
    ttft_ms: AtomicU64,
    /// Embeddings requests so far.
    embed_calls: AtomicUsize,
    /// When the last tool call's last frame was handed out.
    tool_end: Mutex<Option<Instant>>,
    /// When the last second call (one with a tool message) arrived.
    second_req: Mutex<Option<Instant>>,
}

fn frame(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

async fn chat(State(fakes): State<Arc<Fakes>>, body: Bytes) -> Response {
    let arrived = Instant::now();
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let second = messages.iter().any(|m| m["role"] == "tool");
    let question = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    if second {
        *fakes.second_req.lock().unwrap() = Some(arrived);
    }
    let tool_call = !second && body.get("tools").is_some() && !question.contains(DIRECT_HINT);
    let ttft = Duration::from_millis(if second {
        0
    } else {
        fakes.ttft_ms.load(Ordering::Relaxed)
    });
    let stream = async_stream::stream! {
        tokio::time::sleep(ttft).await;
        if tool_call {
            let arguments = json!({ "question": QUESTION }).to_string();
            let cut = arguments.find(':').unwrap_or(0) + 1;
            let frames = [
                json!({"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"autism_expert","arguments":""}}]}}]}),
                json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":&arguments[..cut]}}]}}]}),
                json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":&arguments[cut..]}}]}}]}),
            ];
            for f in frames {
                yield Ok::<_, std::convert::Infallible>(frame(&f.to_string()));
            }
            *fakes.tool_end.lock().unwrap() = Some(Instant::now());
            let last = json!({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]});
            yield Ok(Bytes::from(format!("data: {last}\n\ndata: [DONE]\n\n")));
        } else {
            for piece in ["先确保", "孩子安全，", "再找出", "行为的功能。"] {
                let chunk = json!({"choices":[{"index":0,"delta":{"content":piece}}]});
                yield Ok(frame(&chunk.to_string()));
            }
            let last = json!({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]});
            yield Ok(Bytes::from(format!("data: {last}\n\ndata: [DONE]\n\n")));
        }
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn embeddings(State(fakes): State<Arc<Fakes>>, body: Bytes) -> Response {
    fakes.embed_calls.fetch_add(1, Ordering::Relaxed);
    let delay = Duration::from_millis(fakes.embed_delay_ms.load(Ordering::Relaxed));
    tokio::time::sleep(delay).await;
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let data: Vec<Value> = body["input"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"index": i, "embedding": fake_vector(t.as_str().unwrap_or_default(), fakes.dim)}))
        .collect();
    axum::Json(json!({"data": data, "model": MODEL})).into_response()
}

/// Serves `router` on a thread and single-threaded runtime of its own; returns its address.
fn serve_on_thread(router: Router) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            // Without TCP_NODELAY a reply's later frames wait for a delayed ACK (~40 ms).
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, router).await.unwrap();
        });
    });
    rx.recv().expect("server started")
}

/// Starts the model and the embeddings API, each on a thread of its own (they are
/// different hosts in production); returns their addresses.
fn start_fakes(fakes: Arc<Fakes>) -> (SocketAddr, SocketAddr) {
    let model = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(Arc::clone(&fakes));
    let embedder = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state(fakes);
    (serve_on_thread(model), serve_on_thread(embedder))
}

/// Starts a ragstream server over `data_dir` on `runtime`; returns its URL.
fn start_ragstream(
    runtime: &tokio::runtime::Runtime,
    (model, embedder): (SocketAddr, SocketAddr),
    data_dir: &std::path::Path,
    prefetch: PrefetchMode,
) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/autism.toml");
    let mut raw: RawConfig =
        toml::from_str(&std::fs::read_to_string(path).expect("example config")).expect("toml");
    raw.server.addr = "127.0.0.1:0".into();
    raw.llm.base_url = Some(format!("http://{model}/v1"));
    raw.llm.api_key = Some(ragstream::llm::Secret::new("bench"));
    raw.llm.model = "bench-model".into();
    raw.kb.data_dir = data_dir.to_path_buf();
    raw.kb.embeddings.provider = Provider::Openai;
    raw.kb.embeddings.base_url = Some(format!("http://{embedder}/v1"));
    raw.kb.embeddings.api_key = Some("bench".into());
    raw.kb.embeddings.model = Some(MODEL.into());
    raw.chat.prefetch = prefetch;
    let config = raw.lift().expect("valid config");
    runtime.block_on(async move {
        let listener = ragstream::app::bind(&config).await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            ragstream::app::serve(&config, listener, CancellationToken::new())
                .await
                .expect("serve")
        });
        url
    })
}

/// One question's timings.
struct Asked {
    /// Request sent to the first body byte.
    first_byte: Duration,
    /// Request sent to the first `delta` event.
    first_delta: Duration,
}

async fn ask(client: &reqwest::Client, url: &str, question: &str) -> Asked {
    let started = Instant::now();
    let mut response = client
        .post(format!("{url}/api/chat"))
        .json(&json!({ "content": question }))
        .send()
        .await
        .expect("ask");
    assert_eq!(response.status(), 200);
    let (mut first_byte, mut first_delta) = (None, None);
    let mut tail = String::new();
    while let Some(bytes) = response.chunk().await.expect("stream") {
        first_byte.get_or_insert_with(|| started.elapsed());
        tail.push_str(&String::from_utf8_lossy(&bytes));
        if first_delta.is_none() && tail.contains("event: delta") {
            first_delta = Some(started.elapsed());
        }
    }
    assert!(tail.contains("event: done"), "the answer failed: {tail}");
    Asked {
        first_byte: first_byte.unwrap_or_default(),
        first_delta: first_delta.unwrap_or_default(),
    }
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[i]
}

/// `min / median / max` of `values`.
fn spread(values: &mut [f64], digits: usize) -> String {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    format!(
        "{:.d$} / **{:.d$}** / {:.d$}",
        values[0],
        median,
        values[values.len() - 1],
        d = digits
    )
}

/// Per-run p50s of one tool-path configuration.
#[derive(Default)]
struct ToolRow {
    share_p50: Vec<f64>,
    share_p99: Vec<f64>,
    delta_p50: Vec<f64>,
    embed_calls: Vec<f64>,
}

fn main() {
    let args = parse_args();
    let work = tempfile::tempdir().expect("temp dir");
    let input: PathBuf = work.path().join("input");
    std::fs::create_dir_all(&input).expect("input dir");
    // PREFETCH_BENCH_STORE=DIR keeps the imported store there and reuses it next time.
    let kept = std::env::var_os("PREFETCH_BENCH_STORE").map(PathBuf::from);
    let data_dir = kept.clone().unwrap_or_else(|| work.path().join("store"));
    let started = Instant::now();
    if kept.as_ref().is_some_and(|dir| dir.exists()) {
        eprintln!("reusing the store in {}", data_dir.display());
    } else {
        let words = vocabulary();
        generate(&input, args.chunks, &words);
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let cfg = KbConfig {
                data_dir: data_dir.clone(),
                ..KbConfig::default()
            };
            let embedder = Embeddings::new(
                Box::new(LocalEmbedder { dim: args.dim }),
                &EmbeddingsConfig {
                    batch_size: 256,
                    ..EmbeddingsConfig::default()
                },
            );
            let store = Store::open_with(&cfg, Some(embedder)).expect("open");
            let report = store
                .import(
                    std::slice::from_ref(&input),
                    &Options::default(),
                    &CancellationToken::new(),
                    &Silent,
                )
                .await
                .expect("import");
            eprintln!(
                "imported {} chunks ({} dimensions) in {:.1} s",
                report.added,
                args.dim,
                started.elapsed().as_secs_f64()
            );
        });
    }

    let fakes = Arc::new(Fakes {
        dim: args.dim,
        ..Fakes::default()
    });
    let fakes_addr = start_fakes(Arc::clone(&fakes));
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let on = start_ragstream(&servers, fakes_addr, &data_dir, PrefetchMode::Auto);
    let off = start_ragstream(&servers, fakes_addr, &data_dir, PrefetchMode::Off);

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::new();
    let combos = [(50u64, 20u64), (50, 300), (150, 20), (150, 300)];
    let mut tool_rows: Vec<[ToolRow; 2]> = combos.iter().map(|_| Default::default()).collect();
    let mut direct_on = Vec::new();
    let mut direct_off = Vec::new();
    let mut direct_diff = Vec::new();
    let mut direct_calls = Vec::new();

    client_rt.block_on(async {
        // Warm-up: pools, the jieba dictionary, the vector index pages.
        for url in [&on, &off] {
            fakes.embed_delay_ms.store(0, Ordering::Relaxed);
            fakes.ttft_ms.store(0, Ordering::Relaxed);
            for _ in 0..3 {
                ask(&client, url, QUESTION).await;
                ask(&client, url, "你好，直接回答").await;
            }
        }
        for run in 0..args.runs {
            for (c, &(embed_ms, ttft_ms)) in combos.iter().enumerate() {
                fakes.embed_delay_ms.store(embed_ms, Ordering::Relaxed);
                fakes.ttft_ms.store(ttft_ms, Ordering::Relaxed);
                let mut shares = [Vec::new(), Vec::new()];
                let mut deltas = [Vec::new(), Vec::new()];
                let mut calls = [0usize, 0];
                for _ in 0..args.requests {
                    for (m, url) in [&on, &off].into_iter().enumerate() {
                        let before = fakes.embed_calls.load(Ordering::Relaxed);
                        let asked = ask(&client, url, QUESTION).await;
                        calls[m] += fakes.embed_calls.load(Ordering::Relaxed) - before;
                        let end = fakes.tool_end.lock().unwrap().expect("tool call");
                        let second = fakes.second_req.lock().unwrap().expect("second call");
                        shares[m].push(second.duration_since(end).as_secs_f64() * 1e3);
                        deltas[m].push(asked.first_delta.as_secs_f64() * 1e3);
                    }
                }
                for m in 0..2 {
                    let row = &mut tool_rows[c][m];
                    row.share_p50.push(percentile(&mut shares[m], 0.5));
                    row.share_p99.push(percentile(&mut shares[m], 0.99));
                    row.delta_p50.push(percentile(&mut deltas[m], 0.5));
                    row.embed_calls.push(calls[m] as f64 / args.requests as f64);
                }
            }
            fakes.embed_delay_ms.store(150, Ordering::Relaxed);
            fakes.ttft_ms.store(0, Ordering::Relaxed);
            let mut ttfb = [Vec::new(), Vec::new()];
            let mut calls = 0;
            for _ in 0..args.direct {
                for (m, url) in [&on, &off].into_iter().enumerate() {
                    let before = fakes.embed_calls.load(Ordering::Relaxed);
                    let asked = ask(&client, url, "你好，直接回答").await;
                    if m == 0 {
                        calls += fakes.embed_calls.load(Ordering::Relaxed) - before;
                    }
                    ttfb[m].push(asked.first_byte.as_secs_f64() * 1e3);
                }
            }
            let (p_on, p_off) = (percentile(&mut ttfb[0], 0.5), percentile(&mut ttfb[1], 0.5));
            direct_on.push(p_on);
            direct_off.push(p_off);
            direct_diff.push(p_on - p_off);
            direct_calls.push(calls as f64 / args.direct as f64);
            eprintln!("run {} of {} done", run + 1, args.runs);
        }
    });

    println!(
        "store: {} chunks, {} dimensions; {} tool-path questions per configuration and server, {} direct, {} runs; min / **median** / max over the runs",
        args.chunks, args.dim, args.requests, args.direct, args.runs
    );
    println!();
    println!(
        "| embeddings API | first turn | prefetch | ragstream's share of the tool path, p50 ms | p99 ms (median run) | question to first answer delta, p50 ms | embeddings calls per request |"
    );
    println!("|--:|--:|---|---|--:|---|--:|");
    for (c, &(embed_ms, ttft_ms)) in combos.iter().enumerate() {
        for (m, label) in ["on", "off"].into_iter().enumerate() {
            let row = &mut tool_rows[c][m];
            let mut p99 = row.share_p99.clone();
            println!(
                "| {embed_ms} ms | {ttft_ms} ms | {label} | {} | {:.2} | {} | {} |",
                spread(&mut row.share_p50, 2),
                percentile(&mut p99, 0.5),
                spread(&mut row.delta_p50, 1),
                spread(&mut row.embed_calls, 2),
            );
        }
    }
    println!();
    println!(
        "| direct answer (embeddings API 150 ms) | time to first byte p50, ms |\n|---|---|\n| prefetch on | {} |\n| prefetch off | {} |\n| on − off | {} |\n| embeddings calls per request, on | {} |",
        spread(&mut direct_on, 3),
        spread(&mut direct_off, 3),
        spread(&mut direct_diff, 3),
        spread(&mut direct_calls, 2),
    );
}
