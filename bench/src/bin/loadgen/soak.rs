//! `loadgen soak`: a long run at constant load, to show that ragstream does not leak.
//!
//! ```text
//! loadgen soak [--concurrency 200] [--minutes 10] [--warmup-s 30] [--gap-ms 20]
//!              [--chunks 100] [--chat-every 10] [--upstream-bin B] [--ragstream-bin B]
//!              [--ragstream-config F] [--out FILE] [--logs DIR]
//! ```
//!
//! It starts a fresh scripted upstream and a fresh ragstream, then keeps `concurrency`
//! streams in flight for the warm-up and the soak: each worker opens a stream, reads it to
//! the end, checks the body, and opens the next. One worker in `chat-every` asks on
//! `POST /api/chat` with [`script::TOOL_HINT`], so the upstream (in `mixed` mode) answers it
//! with a tool call and ragstream goes through the knowledge-base search; the others ask on
//! `POST /api/python` and get the answer at once. Every `sample` (10 s) it records
//! ragstream's VmRSS, threads, open files, CPU and its `ragstream_active_streams` gauge.
//! When the soak ends, workers start no new streams; once the last stream is read, it
//! reads `/metrics` again: the gauge must be back at 0.
//!
//! Every loop is bounded: workers by the end of the soak and `--max-streams`, each stream
//! by `STREAM_CAP`, the sampler by its number of samples.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ragstream_bench::script;

use crate::load::{self, Kind, RequestSpec};
use crate::proc_stats;
use crate::soak_report;

/// No stream may take longer than this; one that does counts as failed.
const STREAM_CAP: Duration = Duration::from_secs(60);
/// After the last stream, how long to wait for the gauge to reach 0 before giving up.
const SETTLE_CAP: Duration = Duration::from_secs(10);

/// Command-line settings of a soak.
pub struct Settings {
    /// Streams in flight at once.
    pub concurrency: usize,
    /// Length of the measured soak, after the warm-up.
    pub duration: Duration,
    /// Load before the soak starts, so that RSS at the start is past the allocator's growth.
    pub warmup: Duration,
    /// Milliseconds between two chunks.
    pub gap_ms: u64,
    /// Content chunks per answer.
    pub chunks: usize,
    /// One worker in this many asks on `/api/chat` through the tool; 0: none.
    pub chat_every: usize,
    /// Time between two samples of the process.
    pub sample_every: Duration,
    /// Stop starting streams after this many in all (a bound; a soak should not reach it).
    pub max_streams: u64,
    pub upstream_bin: PathBuf,
    pub ragstream_bin: PathBuf,
    pub ragstream_config: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub logs: PathBuf,
}

/// One look at ragstream during the soak.
pub struct ProcSample {
    /// Since the start of the soak (the end of the warm-up).
    pub at: Duration,
    pub rss_kib: u64,
    /// Of `rss_kib`: anonymous memory (heap, stacks) and mapped files, KiB.
    pub rss_anon_kib: u64,
    pub rss_file_kib: u64,
    pub threads: u64,
    pub open_files: u64,
    /// `ragstream_active_streams`; `None` if `/metrics` did not answer.
    pub active: Option<f64>,
    /// Streams that ended ok / failed since the start of the soak.
    pub ok: u64,
    pub failed: u64,
    /// ragstream's CPU time since the previous sample.
    pub cpu: Duration,
}

/// One stream, as the client saw it.
pub struct StreamRecord {
    /// End of the stream, since the start of the soak (negative: during the warm-up).
    pub end_s: f64,
    /// Request to end of body.
    pub ttlb: Duration,
    pub ok: bool,
    /// `/api/chat` on the tool path (else `/api/python`).
    pub chat: bool,
}

/// `/metrics` figures the soak checks.
#[derive(Default, Clone)]
pub struct Metrics {
    pub active: Option<f64>,
    /// `ragstream_streams_total` by `outcome`.
    pub streams: BTreeMap<String, f64>,
    /// `ragstream_tool_calls_total` by `outcome`.
    pub tool_calls: BTreeMap<String, f64>,
}

/// Everything a soak measured.
pub struct Soak {
    pub settings: Settings,
    /// When the load started (UTC, from `date`).
    pub started_at: String,
    /// Share of the machine's cores busy during the soak, %.
    pub machine_busy_pct: f64,
    /// RSS after the one-stream warm-up of each path, before the load.
    pub idle_rss_kib: u64,
    /// Metrics before the load (the one-stream warm-ups).
    pub before: Metrics,
    pub samples: Vec<ProcSample>,
    pub streams: Vec<StreamRecord>,
    /// Failure messages and how often each came.
    pub errors: BTreeMap<String, u64>,
    /// Metrics read as soon as the last stream was read.
    pub after: Metrics,
    /// When the gauge first read 0 after the last stream (`None`: not within `SETTLE_CAP`).
    pub settled_after: Option<Duration>,
    /// Metrics once settled (or at `SETTLE_CAP`).
    pub settled: Metrics,
    /// RSS once the load is over.
    pub drained_rss_kib: u64,
    /// Peak RSS (VmHWM) of the whole life of the process.
    pub hwm_kib: u64,
    /// From the end of the soak to the end of the last stream.
    pub drain: Duration,
    /// Streams not started because `max_streams` was reached.
    pub capped: bool,
    pub wall: Duration,
}

pub fn main(args: impl Iterator<Item = String>) {
    let settings = parse_args(args);
    std::fs::create_dir_all(&settings.logs).expect("create log directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build tokio runtime");
    let soak = runtime.block_on(run(settings));
    let markdown = soak_report::markdown(&soak);
    println!("{markdown}");
    if let Some(out) = &soak.settings.out {
        std::fs::write(out, &markdown).expect("write report");
        eprintln!("report written to {}", out.display());
    }
}

/// Counters the workers bump and the sampler reads.
#[derive(Default)]
struct Live {
    ok: AtomicU64,
    failed: AtomicU64,
    started: AtomicU64,
}

async fn run(settings: Settings) -> Soak {
    let wall = Instant::now();
    let started_at = crate::report::shell("date -u '+%Y-%m-%d %H:%M:%S UTC'");
    let upstream_addr = crate::free_addr();
    let mut upstream_cmd = std::process::Command::new(&settings.upstream_bin);
    upstream_cmd.args(["--addr", &upstream_addr.to_string()]);
    upstream_cmd.args(["--chunks", &settings.chunks.to_string()]);
    upstream_cmd.args(["--gap-ms", &settings.gap_ms.to_string()]);
    let mode = if settings.chat_every > 0 {
        "mixed"
    } else {
        "direct"
    };
    upstream_cmd.args(["--mode", mode]);
    let mut upstream = crate::spawn(upstream_cmd, &settings.logs.join("soak-upstream.log"));
    crate::wait_ready(upstream_addr, None).await;

    let addr = crate::free_addr();
    let cmd = crate::ragstream_command(
        &settings.ragstream_bin,
        settings.ragstream_config.as_deref(),
        addr,
        &format!("http://{upstream_addr}/v1"),
    );
    let mut ragstream = crate::spawn(cmd, &settings.logs.join("soak-ragstream.log"));
    crate::wait_ready(addr, Some("/healthz")).await;
    let pid = ragstream.id();

    let expected: Arc<[u8]> = script::answer(settings.chunks).into_bytes().into();
    let python = Arc::new(RequestSpec::new(Kind::Python));
    let tool_question = format!("{}{}", load::QUESTION, script::TOOL_HINT);
    let chat = Arc::new(RequestSpec::asking(Kind::Chat, &tool_question));
    let mut errors = BTreeMap::new();
    let mut paths = vec![(Kind::Python, &python)];
    if settings.chat_every > 0 {
        paths.push((Kind::Chat, &chat));
    }
    for (kind, spec) in paths {
        let sample = warm_up(addr, spec, kind, &expected).await;
        if let Some(err) = sample.error {
            eprintln!("warm-up stream on {kind:?} failed: {err}");
            *errors.entry(format!("warm-up: {err}")).or_insert(0) += 1;
        }
    }
    let idle_rss_kib = proc_stats::rss_kib(pid);
    let before = metrics(addr).await.unwrap_or_default();

    let live = Arc::new(Live::default());
    let errors = Arc::new(Mutex::new(errors));
    let load_start = Instant::now();
    let soak_start = load_start + settings.warmup;
    let soak_end = soak_start + settings.duration;
    let connecting = Arc::new(tokio::sync::Semaphore::new(64));
    let workers: Vec<_> = (0..settings.concurrency)
        .map(|i| {
            let is_chat = settings.chat_every > 0 && i % settings.chat_every == 0;
            let (kind, spec) = if is_chat {
                (Kind::Chat, chat.clone())
            } else {
                (Kind::Python, python.clone())
            };
            let worker = Worker {
                addr,
                kind,
                spec,
                expected: expected.clone(),
                live: live.clone(),
                errors: errors.clone(),
                connecting: connecting.clone(),
                soak_start,
                soak_end,
                max_streams: settings.max_streams,
            };
            tokio::spawn(worker.run())
        })
        .collect();

    eprintln!(
        "soak: {} streams in flight, warm-up {} s, soak {} s, ragstream pid {pid}",
        settings.concurrency,
        settings.warmup.as_secs(),
        settings.duration.as_secs()
    );
    tokio::time::sleep_until(soak_start.into()).await;
    let machine_before = proc_stats::machine();
    let samples = sample_until(&settings, addr, pid, &live, soak_start).await;
    let machine = proc_stats::machine();
    let machine_busy_pct = (machine.0 - machine_before.0) as f64
        / (machine.1 - machine_before.1).max(1) as f64
        * 100.0;

    let mut streams = Vec::new();
    for worker in workers {
        streams.extend(worker.await.expect("soak worker panicked"));
    }
    let drain = soak_end.elapsed();
    let after = metrics(addr).await.unwrap_or_default();
    let settle_start = Instant::now();
    let mut settled = after.clone();
    let mut settled_after = (settled.active == Some(0.0)).then(Duration::default);
    while settled_after.is_none() && settle_start.elapsed() < SETTLE_CAP {
        tokio::time::sleep(Duration::from_millis(100)).await;
        settled = metrics(addr).await.unwrap_or_default();
        if settled.active == Some(0.0) {
            settled_after = Some(settle_start.elapsed());
        }
    }
    // Let the runtime's idle threads and the allocator settle before the last look.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let drained_rss_kib = proc_stats::rss_kib(pid);
    let hwm_kib = proc_stats::peak_rss_kib(pid);
    let capped = live.started.load(Ordering::Relaxed) >= settings.max_streams;
    crate::stop(&mut ragstream);
    crate::stop(&mut upstream);
    let errors = std::mem::take(&mut *errors.lock().expect("errors lock"));
    Soak {
        settings,
        started_at,
        machine_busy_pct,
        idle_rss_kib,
        before,
        samples,
        streams,
        errors,
        after,
        settled_after,
        settled,
        drained_rss_kib,
        hwm_kib,
        drain,
        capped,
        wall: wall.elapsed(),
    }
}

/// One stream on a fresh connection, to start both paths before the load.
async fn warm_up(
    addr: SocketAddr,
    spec: &RequestSpec,
    kind: Kind,
    expected: &[u8],
) -> load::Sample {
    let mut conn = None;
    match load::ready_conn(&mut conn, addr).await {
        Ok(sender) => {
            tokio::time::timeout(STREAM_CAP, load::one_stream(sender, spec, kind, expected))
                .await
                .unwrap_or_else(|_| load::failed("stream still open after 60 s"))
        }
        Err(err) => load::failed(&format!("connect: {err}")),
    }
}

/// Samples ragstream every `sample_every` from the start of the soak to its end.
async fn sample_until(
    settings: &Settings,
    addr: SocketAddr,
    pid: u32,
    live: &Live,
    soak_start: Instant,
) -> Vec<ProcSample> {
    let count = settings.duration.as_millis() / settings.sample_every.as_millis().max(1);
    let mut samples = Vec::new();
    let mut cpu_before = proc_stats::cpu(pid);
    let (ok0, failed0) = (
        live.ok.load(Ordering::Relaxed),
        live.failed.load(Ordering::Relaxed),
    );
    for k in 0..=count as u32 {
        tokio::time::sleep_until((soak_start + settings.sample_every * k).into()).await;
        let cpu_now = proc_stats::cpu(pid);
        let (rss_anon_kib, rss_file_kib) = proc_stats::rss_split_kib(pid);
        let sample = ProcSample {
            at: soak_start.elapsed(),
            rss_kib: proc_stats::rss_kib(pid),
            rss_anon_kib,
            rss_file_kib,
            threads: proc_stats::threads(pid),
            open_files: proc_stats::open_files(pid),
            active: metrics(addr).await.ok().and_then(|m| m.active),
            ok: live.ok.load(Ordering::Relaxed) - ok0,
            failed: live.failed.load(Ordering::Relaxed) - failed0,
            cpu: cpu_now.since(&cpu_before),
        };
        cpu_before = cpu_now;
        eprintln!(
            "  t={:>4.0}s rss {:>6.1} MiB (anon {:>6.1})  active {:>4}  ok {:>6}  failed {}  threads {}  files {}",
            sample.at.as_secs_f64(),
            sample.rss_kib as f64 / 1024.0,
            sample.rss_anon_kib as f64 / 1024.0,
            sample.active.map_or("?".into(), |a| a.to_string()),
            sample.ok,
            sample.failed,
            sample.threads,
            sample.open_files
        );
        samples.push(sample);
    }
    samples
}

/// One of the `concurrency` loops: open a stream, read it to the end, check it, repeat.
struct Worker {
    addr: SocketAddr,
    kind: Kind,
    spec: Arc<RequestSpec>,
    expected: Arc<[u8]>,
    live: Arc<Live>,
    errors: Arc<Mutex<BTreeMap<String, u64>>>,
    /// At most 64 handshakes at once (see `load::run`).
    connecting: Arc<tokio::sync::Semaphore>,
    soak_start: Instant,
    soak_end: Instant,
    max_streams: u64,
}

impl Worker {
    async fn run(self) -> Vec<StreamRecord> {
        let mut conn = {
            let _permit = self.connecting.acquire().await.expect("semaphore open");
            load::connect(self.addr).await.ok()
        };
        let mut records = Vec::new();
        while Instant::now() < self.soak_end
            && self.live.started.fetch_add(1, Ordering::Relaxed) < self.max_streams
        {
            let sample = match load::ready_conn(&mut conn, self.addr).await {
                Ok(sender) => {
                    let stream = load::one_stream(sender, &self.spec, self.kind, &self.expected);
                    tokio::time::timeout(STREAM_CAP, stream)
                        .await
                        .unwrap_or_else(|_| load::failed("stream still open after 60 s"))
                }
                Err(err) => load::failed(&format!("connect: {err}")),
            };
            let end = Instant::now();
            let end_s = if end >= self.soak_start {
                (end - self.soak_start).as_secs_f64()
            } else {
                -(self.soak_start - end).as_secs_f64()
            };
            records.push(StreamRecord {
                end_s,
                ttlb: sample.ttlb,
                ok: sample.ok,
                chat: self.kind == Kind::Chat,
            });
            if sample.ok {
                self.live.ok.fetch_add(1, Ordering::Relaxed);
            } else {
                self.live.failed.fetch_add(1, Ordering::Relaxed);
                let error = sample.error.unwrap_or_default();
                let key: String = error.chars().take(160).collect();
                *self
                    .errors
                    .lock()
                    .expect("errors lock")
                    .entry(key)
                    .or_insert(0) += 1;
                conn = None;
                // A failing server must not turn the loop into a busy one.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        records
    }
}

/// `GET /metrics`, the figures the soak checks.
async fn metrics(addr: SocketAddr) -> Result<Metrics, String> {
    let (status, body) = load::get(addr, "/metrics").await?;
    if status != 200 {
        return Err(format!("/metrics answered {status}"));
    }
    Ok(parse_metrics(&String::from_utf8_lossy(&body)))
}

/// Reads the gauge and the two counters from the Prometheus text format.
fn parse_metrics(text: &str) -> Metrics {
    let mut metrics = Metrics::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let outcome = labels
            .split(',')
            .find_map(|l| l.trim().strip_prefix("outcome=\""))
            .and_then(|v| v.split('"').next())
            .unwrap_or("")
            .to_owned();
        match name {
            "ragstream_active_streams" => metrics.active = Some(value),
            "ragstream_streams_total" => *metrics.streams.entry(outcome).or_insert(0.0) += value,
            "ragstream_tool_calls_total" => {
                *metrics.tool_calls.entry(outcome).or_insert(0.0) += value
            }
            _ => {}
        }
    }
    metrics
}

fn parse_args(args: impl Iterator<Item = String>) -> Settings {
    let mut settings = Settings {
        concurrency: 200,
        duration: Duration::from_secs(600),
        warmup: Duration::from_secs(30),
        gap_ms: 20,
        chunks: 100,
        chat_every: 10,
        sample_every: Duration::from_secs(10),
        max_streams: 2_000_000,
        upstream_bin: "bench/target/release/upstream".into(),
        ragstream_bin: "target/release/ragstream".into(),
        ragstream_config: None,
        out: None,
        logs: "bench/results/logs".into(),
    };
    let mut it = args;
    while let Some(key) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("`{key}` needs a value")));
        let number = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|n| *n >= 0.0)
                .unwrap_or_else(|| usage(&format!("bad {key}")))
        };
        match key.as_str() {
            "--concurrency" => settings.concurrency = number() as usize,
            "--minutes" => settings.duration = Duration::from_secs_f64(number() * 60.0),
            "--warmup-s" => settings.warmup = Duration::from_secs_f64(number()),
            "--gap-ms" => settings.gap_ms = number() as u64,
            "--chunks" => settings.chunks = number() as usize,
            "--chat-every" => settings.chat_every = number() as usize,
            "--sample-s" => settings.sample_every = Duration::from_secs_f64(number().max(1.0)),
            "--max-streams" => settings.max_streams = number() as u64,
            "--upstream-bin" => settings.upstream_bin = value.into(),
            "--ragstream-bin" => settings.ragstream_bin = value.into(),
            "--ragstream-config" => settings.ragstream_config = Some(value.into()),
            "--out" => settings.out = Some(value.into()),
            "--logs" => settings.logs = value.into(),
            _ => usage(&format!("unknown option {key}")),
        }
    }
    if settings.concurrency == 0 {
        usage("--concurrency must be at least 1");
    }
    settings
}

fn usage(problem: &str) -> ! {
    eprintln!("loadgen soak: {problem}");
    eprintln!(
        "usage: loadgen soak [--concurrency N] [--minutes M] [--warmup-s S] [--gap-ms MS] \
         [--chunks N] [--chat-every N]\n\
         \x20                   [--sample-s S] [--max-streams N] [--upstream-bin B] \
         [--ragstream-bin B] [--ragstream-config F] [--out FILE] [--logs DIR]"
    );
    std::process::exit(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_reads_the_gauge_and_outcomes() {
        let text = "# TYPE ragstream_active_streams gauge\n\
                    ragstream_active_streams 3\n\
                    ragstream_streams_total{outcome=\"done\"} 120\n\
                    ragstream_streams_total{outcome=\"cancelled\"} 2\n\
                    ragstream_tool_calls_total{tool=\"autism_expert\",outcome=\"ok\"} 12\n\
                    ragstream_stream_duration_seconds_count 122\n";
        let m = parse_metrics(text);
        assert_eq!(m.active, Some(3.0));
        assert_eq!(m.streams["done"], 120.0);
        assert_eq!(m.streams["cancelled"], 2.0);
        assert_eq!(m.tool_calls["ok"], 12.0);
    }
}
