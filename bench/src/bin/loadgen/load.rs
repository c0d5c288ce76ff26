//! Runs `streams` requests over `concurrency` keep-alive connections and times each stream:
//! time to first body byte (TTFB) and to the end of the body (TTLB), from the moment the
//! request is handed to the connection. Connecting is not part of either figure; the stream
//! that opened a connection also carries its connect time, so that the report can give TTFB
//! including connect, what a new client waits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use ragstream_bench::{clock, script};

/// Which endpoint, and so which request and which check of the reply.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Kind {
    /// The upstream's own `POST /v1/chat/completions`: the reply must end with `[DONE]`.
    Direct,
    /// A relay's `POST /api/python`: the reply must be exactly the scripted answer.
    Python,
    /// ragstream's `POST /api/chat` on the tool path: events up to `done`, the `delta`
    /// texts must add up to the scripted answer.
    Chat,
    /// ragstream's `POST /api/chat` on a direct answer: as `Chat`, with no tool call.
    ChatDirect,
}

/// One measured run.
pub struct Load {
    pub addr: SocketAddr,
    pub kind: Kind,
    /// Content chunks the upstream sends per answer.
    pub chunks: usize,
    pub concurrency: usize,
    pub streams: usize,
    /// No stream starts after this much time; each stream also stops at it.
    pub time_cap: Duration,
    /// Every worker connects at the same moment, as part of the measured run (a burst of
    /// new clients), instead of beforehand, at most 64 at a time.
    pub burst: bool,
}

/// What one stream measured.
#[derive(Clone, Default)]
pub struct Sample {
    pub ok: bool,
    pub error: Option<String>,
    /// Request sent → first non-empty body frame.
    pub ttfb: Duration,
    /// Request sent → end of body.
    pub ttlb: Duration,
    /// CLOCK_MONOTONIC (ns) when the request was handed to the connection.
    pub sent_ns: u64,
    /// CLOCK_MONOTONIC (ns) of the first non-empty body frame.
    pub first_byte_ns: u64,
    /// Time to open the keep-alive connection, for the stream that opened it.
    pub connect: Option<Duration>,
    /// Tool path only: CLOCK_MONOTONIC stamps of events seen by the client.
    pub tool: Option<ToolTimes>,
}

/// CLOCK_MONOTONIC (ns) of the `/api/chat` events that frame the tool path.
#[derive(Clone, Default, Debug)]
pub struct ToolTimes {
    /// First `tool_call` event.
    pub tool_call: Option<u64>,
    /// First `sources` event (the search has returned).
    pub sources: Option<u64>,
    /// First `delta` after the tool call: the first byte of the answer.
    pub first_delta: Option<u64>,
}

/// Upstream stamps of the tool path, in order (see the upstream's `/bench/marks`).
#[derive(Default, serde::Deserialize, Debug)]
pub struct Marks {
    #[serde(default)]
    pub arrival: Vec<u64>,
    #[serde(default)]
    pub first_frame: Vec<u64>,
    pub tool_end: Vec<u64>,
    pub second_req: Vec<u64>,
    pub second_first: Vec<u64>,
}

pub struct Run {
    pub samples: Vec<Sample>,
    pub unstarted: usize,
    pub wall: Duration,
    /// `/proc/stat` (busy, total, irq+softirq) jiffies from the start of the streams to their end.
    pub machine: (u64, u64, u64),
}

pub async fn run(load: &Load) -> Run {
    let tickets = Arc::new(AtomicUsize::new(0));
    let request = Arc::new(RequestSpec::new(load.kind));
    let expected: Arc<[u8]> = script::answer(load.chunks).into_bytes().into();
    let workers = load.concurrency.min(load.streams).max(1);
    // Unless `burst`, every worker connects first, then all start together, so that the
    // streams start at the same moment; the connect times are still recorded.
    let barrier = Arc::new(tokio::sync::Barrier::new(workers + 1));
    // At most 64 handshakes at once outside a burst: a listener whose accept queue is
    // short (128 with `TcpListener::bind`) drops SYNs in a burst of 1,000, and the client
    // then waits 1 s to retry. The `burst` cases measure exactly that.
    let connecting = Arc::new(tokio::sync::Semaphore::new(64));
    let burst = load.burst;
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (tickets, request, expected) = (tickets.clone(), request.clone(), expected.clone());
            let (barrier, connecting) = (barrier.clone(), connecting.clone());
            let (addr, kind, streams, time_cap) =
                (load.addr, load.kind, load.streams, load.time_cap);
            tokio::spawn(async move {
                let mut conn: Option<SendRequest<Full<Bytes>>> = None;
                let mut connect_time = None;
                if !burst {
                    let permit = connecting.acquire_owned().await.expect("semaphore open");
                    let connect_started = Instant::now();
                    conn = connect(addr).await.ok();
                    connect_time = conn.is_some().then(|| connect_started.elapsed());
                    drop(permit);
                }
                barrier.wait().await;
                let deadline = Instant::now() + time_cap;
                let mut samples = Vec::new();
                while Instant::now() < deadline && tickets.fetch_add(1, Ordering::Relaxed) < streams
                {
                    let connecting = Instant::now();
                    let fresh = conn.is_none();
                    let mut sample = match ready_conn(&mut conn, addr).await {
                        Ok(sender) => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            let stream = one_stream(sender, &request, kind, &expected);
                            tokio::time::timeout(left, stream)
                                .await
                                .unwrap_or_else(|_| failed("stream still open at the time cap"))
                        }
                        Err(err) => failed(&format!("connect: {err}")),
                    };
                    if fresh {
                        connect_time = Some(connecting.elapsed().saturating_sub(sample.ttlb));
                    }
                    sample.connect = connect_time.take();
                    if !sample.ok {
                        conn = None;
                    }
                    samples.push(sample);
                }
                samples
            })
        })
        .collect();
    barrier.wait().await;
    let machine_before = crate::proc_stats::machine();
    let started = Instant::now();
    let mut samples = Vec::with_capacity(load.streams);
    for handle in handles {
        samples.extend(handle.await.expect("load worker panicked"));
    }
    let wall = started.elapsed();
    let after = crate::proc_stats::machine();
    let machine = (
        after.0 - machine_before.0,
        after.1 - machine_before.1,
        after.2 - machine_before.2,
    );
    Run {
        unstarted: load.streams.saturating_sub(samples.len()),
        samples,
        wall,
        machine,
    }
}

/// The question every stream asks.
pub const QUESTION: &str = "自闭症孩子自伤怎么办？";

/// The request each stream sends, built once.
pub struct RequestSpec {
    path: &'static str,
    body: Bytes,
}

impl RequestSpec {
    pub fn new(kind: Kind) -> Self {
        Self::asking(kind, QUESTION)
    }

    /// The request of `kind` with another question (the soak's tool-path streams).
    pub fn asking(kind: Kind, question: &str) -> Self {
        let (path, body) = match kind {
            Kind::Direct => (
                "/v1/chat/completions",
                serde_json::json!({"model": "bench-model", "stream": true,
                                   "messages": [{"role": "user", "content": question}]}),
            ),
            Kind::Python => ("/api/python", serde_json::json!({"content": question})),
            Kind::Chat | Kind::ChatDirect => (
                "/api/chat",
                serde_json::json!({"messages": [{"role": "user", "content": question}]}),
            ),
        };
        RequestSpec {
            path,
            body: serde_json::to_vec(&body).expect("request json").into(),
        }
    }
}

pub fn failed(error: &str) -> Sample {
    Sample {
        ok: false,
        error: Some(error.to_owned()),
        ..Sample::default()
    }
}

/// The open connection, or a new one when there is none or it has closed.
pub async fn ready_conn(
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    addr: SocketAddr,
) -> Result<&mut SendRequest<Full<Bytes>>, String> {
    if let Some(sender) = conn.as_mut()
        && sender.ready().await.is_err()
    {
        *conn = None;
    }
    if conn.is_none() {
        *conn = Some(connect(addr).await?);
    }
    Ok(conn.as_mut().expect("connection just made"))
}

pub async fn connect<B>(addr: SocketAddr) -> Result<SendRequest<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .map_err(|_| "connect timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

pub async fn one_stream(
    sender: &mut SendRequest<Full<Bytes>>,
    spec: &RequestSpec,
    kind: Kind,
    expected: &[u8],
) -> Sample {
    let request = Request::post(spec.path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(spec.body.clone()))
        .expect("valid request");
    let sent = Instant::now();
    let sent_ns = clock::now_ns();
    let mut first_byte_ns = 0;
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(err) => return failed(&format!("request: {err}")),
    };
    if response.status() != StatusCode::OK {
        return failed(&format!("status {}", response.status()));
    }
    let mut body = response.into_body();
    let mut ttfb = None;
    let mut received = Vec::with_capacity(expected.len() * 2);
    let mut events = matches!(kind, Kind::Chat | Kind::ChatDirect).then(EventScanner::default);
    loop {
        match body.frame().await {
            None => break,
            Some(Err(err)) => return failed(&format!("body: {err}")),
            Some(Ok(frame)) => {
                let Some(data) = frame.data_ref().filter(|d| !d.is_empty()) else {
                    continue;
                };
                ttfb.get_or_insert_with(|| {
                    first_byte_ns = clock::now_ns();
                    sent.elapsed()
                });
                received.extend_from_slice(data);
                if let Some(scanner) = events.as_mut() {
                    scanner.scan(&received);
                }
            }
        }
    }
    let ttlb = sent.elapsed();
    let ttfb = ttfb.unwrap_or(ttlb);
    let check = match kind {
        Kind::Direct if received.ends_with(b"data: [DONE]\n\n") => Ok(()),
        Kind::Direct => Err("reply does not end with [DONE]".to_owned()),
        Kind::Python if received == expected => Ok(()),
        Kind::Python => Err(format!(
            "reply differs from the scripted answer ({} bytes, {} expected): {:?}",
            received.len(),
            expected.len(),
            String::from_utf8_lossy(&received[..received.len().min(200)])
        )),
        Kind::Chat => events
            .as_ref()
            .expect("chat scanner")
            .verdict(expected, true),
        Kind::ChatDirect => events
            .as_ref()
            .expect("chat scanner")
            .verdict(expected, false),
    };
    match check {
        Ok(()) => Sample {
            ok: true,
            ttfb,
            ttlb,
            sent_ns,
            first_byte_ns,
            tool: events.map(|e| e.times),
            ..Sample::default()
        },
        Err(error) => Sample {
            ok: false,
            error: Some(error),
            ttfb,
            ttlb,
            ..Sample::default()
        },
    }
}

/// Reads ragstream's `/api/chat` SSE as it arrives and stamps the events of the tool path.
#[derive(Default)]
struct EventScanner {
    /// Bytes of `received` already scanned.
    scanned: usize,
    /// Name of the event being read (`event:` line), until the blank line that ends it.
    event: String,
    times: ToolTimes,
    /// Concatenated `text` of every `delta` event.
    text: String,
    done: bool,
    error: Option<String>,
}

impl EventScanner {
    fn scan(&mut self, received: &[u8]) {
        while let Some(end) = received[self.scanned..].iter().position(|&b| b == b'\n') {
            let line = &received[self.scanned..self.scanned + end];
            self.scanned += end + 1;
            let line =
                String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned();
            if let Some(name) = line.strip_prefix("event:") {
                self.event = name.trim().to_owned();
                let now = clock::now_ns();
                match self.event.as_str() {
                    "tool_call" => _ = self.times.tool_call.get_or_insert(now),
                    "sources" => _ = self.times.sources.get_or_insert(now),
                    "delta" => _ = self.times.first_delta.get_or_insert(now),
                    "done" => self.done = true,
                    _ => {}
                }
            } else if let Some(data) = line.strip_prefix("data:") {
                let data = data.strip_prefix(' ').unwrap_or(data);
                let json: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
                match self.event.as_str() {
                    "delta" => self
                        .text
                        .push_str(json["text"].as_str().unwrap_or_default()),
                    "error" => self.error = Some(data.to_owned()),
                    _ => {}
                }
            } else if line.is_empty() {
                self.event.clear();
            }
        }
    }

    fn verdict(&self, expected: &[u8], tool_call: bool) -> Result<(), String> {
        if let Some(error) = &self.error {
            return Err(format!("error event: {error}"));
        }
        if !self.done {
            return Err("no done event".to_owned());
        }
        if tool_call && self.times.tool_call.is_none() {
            return Err("no tool_call event".to_owned());
        }
        if self.text.as_bytes() != expected {
            return Err(format!(
                "answer text differs: {:?}",
                &self.text[..self.text.len().min(200)]
            ));
        }
        Ok(())
    }
}

/// `GET path` on a fresh connection: status and body.
pub async fn get(addr: SocketAddr, path: &str) -> Result<(u16, Bytes), String> {
    let mut sender = connect::<Empty<Bytes>>(addr).await?;
    let request = Request::get(path)
        .header("host", "127.0.0.1")
        .body(Empty::new())
        .expect("request");
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// Take (and clear) the upstream's tool-path stamps.
pub async fn marks(upstream: SocketAddr) -> Marks {
    match get(upstream, "/bench/marks").await {
        Ok((200, body)) => serde_json::from_slice(&body).unwrap_or_default(),
        _ => Marks::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ragstream's `/api/chat` on the tool path, shortened.
    const CHAT: &str = concat!(
        "event: status\ndata: {\"stage\":\"searching\"}\n\n",
        "event: tool_call\ndata: {\"id\":\"call_1\",\"name\":\"autism_expert\"}\n\n",
        "event: sources\ndata: {\"sources\":[]}\n\n",
        "event: delta\ndata: {\"text\":\" The\"}\n\n",
        "event: delta\ndata: {\"text\":\" relay\"}\n\n",
        "event: done\ndata: {\"finish_reason\":\"stop\"}\n\n",
    );

    #[test]
    fn the_scanner_sees_every_event_wherever_the_bytes_are_cut() {
        for cut in 0..CHAT.len() {
            let mut scanner = EventScanner::default();
            scanner.scan(&CHAT.as_bytes()[..cut]);
            scanner.scan(CHAT.as_bytes());
            assert_eq!(scanner.text, " The relay", "cut at {cut}");
            assert!(scanner.times.tool_call.is_some() && scanner.times.sources.is_some());
            assert!(scanner.times.first_delta.is_some());
            assert_eq!(scanner.verdict(script::answer(2).as_bytes(), true), Ok(()));
        }
    }

    #[test]
    fn an_error_event_fails_the_stream() {
        let mut scanner = EventScanner::default();
        scanner.scan(
            b"event: error\ndata: {\"code\":\"upstream_timeout\"}\n\nevent: done\ndata: {}\n\n",
        );
        assert!(
            scanner
                .verdict(b"", false)
                .unwrap_err()
                .contains("upstream_timeout")
        );
    }
}

/// Where the first byte of one round's streams went, as CLOCK_MONOTONIC offsets (ms) from
/// the round's start (the first connect of a burst, else the first request sent): p50 and
/// p99 of when each request left the load generator, reached the upstream, got its first
/// frame written by the upstream, and reached the client as a first body byte. The
/// percentiles are of each stamp on its own (the upstream cannot tell which client a request
/// came from), which is enough to see which step the late streams wait in.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    pub sent: [f64; 2],
    pub arrival: [f64; 2],
    pub first_frame: [f64; 2],
    pub first_byte: [f64; 2],
}

impl Phases {
    /// The phases of one round: `samples` and the upstream's `marks` of that round alone.
    pub fn of(samples: &[Sample], marks: &Marks) -> Option<Phases> {
        let ok: Vec<&Sample> = samples.iter().filter(|s| s.ok).collect();
        let start = ok
            .iter()
            .map(|s| {
                let connect = s.connect.map_or(0, |c| c.as_nanos() as u64);
                s.sent_ns.saturating_sub(connect)
            })
            .min()?;
        let offsets = |stamps: &mut dyn Iterator<Item = u64>| -> [f64; 2] {
            let mut ms: Vec<f64> = stamps
                .map(|t| t.saturating_sub(start) as f64 / 1e6)
                .collect();
            ms.sort_by(f64::total_cmp);
            let at = |q: f64| {
                if ms.is_empty() {
                    f64::NAN
                } else {
                    ms[((ms.len() - 1) as f64 * q).round() as usize]
                }
            };
            [at(0.5), at(0.99)]
        };
        // Only the first frame of each stream (the upstream stamps one per stream).
        let arrivals: Vec<u64> = marks
            .arrival
            .iter()
            .copied()
            .filter(|&t| t >= start)
            .collect();
        let frames: Vec<u64> = marks
            .first_frame
            .iter()
            .copied()
            .filter(|&t| t >= start)
            .collect();
        Some(Phases {
            sent: offsets(&mut ok.iter().map(|s| s.sent_ns)),
            arrival: offsets(&mut arrivals.into_iter()),
            first_frame: offsets(&mut frames.into_iter()),
            first_byte: offsets(&mut ok.iter().map(|s| s.first_byte_ns)),
        })
    }

    /// One line for the log: p50 / p99 of each step.
    pub fn line(&self) -> String {
        let p = |v: [f64; 2]| format!("{:>7.1} / {:>7.1}", v[0], v[1]);
        format!(
            "sent {}  upstream arrival {}  upstream first frame {}  client first byte {}",
            p(self.sent),
            p(self.arrival),
            p(self.first_frame),
            p(self.first_byte)
        )
    }
}
